#include "cli_common.h"

#include <pwd.h>
#include <sodium.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <iomanip>
#include <sstream>
#include <future>
#include <iostream>

#include "common/private_files.h"
#include "detect/detection_settings.h"
#include "moat/clock.h"

namespace moat::cli {

moat::StatusOr<server::GatewayConfig> LoadConfigOrDefaults(const std::string& path) {
  if (!path.empty()) return server::LoadGatewayConfig(path);
  if (std::filesystem::exists("moat.toml")) return server::LoadGatewayConfig("moat.toml");
  return server::DefaultGatewayConfig();
}

moat::StatusOr<std::unique_ptr<store::AccountStore>> OpenAccountStore(const server::GatewayConfig& config) {
  if (sodium_init() < 0) return moat::InternalError("libsodium failed to initialise");
  MOAT_RETURN_IF_ERROR(EnsurePrivateDirectory(config.storage.data_dir, config.storage.data_dir_mode));
  MOAT_ASSIGN_OR_RETURN(std::string pepper, store::LoadOrCreateSecret(config.storage.key_pepper_file));
  return store::AccountStore::Open(config.storage.accounts_db, pepper, SystemClock::Get());
}

audit::AuditLogOptions AuditLogOptionsFrom(const server::GatewayConfig& config) {
  audit::AuditLogOptions o;
  o.db_path = config.storage.audit_db;
  o.signing_key_path = config.storage.audit_signing_key;
  o.checkpoint_every = config.audit.checkpoint_every;
  o.wal_checkpoint_interval_ms = config.audit.wal_checkpoint_interval_ms;
  o.wal_max_bytes = config.audit.wal_max_bytes;
  o.min_free_bytes = config.audit.min_free_bytes;
  o.anchor_path = config.audit.anchor_file;
  return o;
}

namespace {

// "cli:<user>@<host>" for the CLI's admin records.
std::string CliActor() {
  std::string user = "uid" + std::to_string(::geteuid());
  if (const passwd* pw = ::getpwuid(::geteuid()); pw != nullptr && pw->pw_name != nullptr) user = pw->pw_name;
  char host[256] = {};
  if (::gethostname(host, sizeof(host) - 1) != 0) host[0] = '\0';
  return "cli:" + user + "@" + host;
}

}  // namespace

moat::StatusOr<CliAdminAudit> CliAdminAudit::Open(const server::GatewayConfig& config) {
  MOAT_RETURN_IF_ERROR(EnsurePrivateDirectory(config.storage.data_dir, config.storage.data_dir_mode));
  auto log = audit::AuditLog::Open(AuditLogOptionsFrom(config));
  if (!log.ok()) {
    return moat::Status(log.status().code(),
                        "cannot open the audit log for the record of this change: " + log.status().message());
  }
  CliAdminAudit audit;
  audit.log_ = std::shared_ptr<audit::AuditLog>(std::move(*log));
  return audit;
}

moat::Status CliAdminAudit::Record(audit::AdminAction action) {
  action.actor = CliActor();
  action.source = "local";
  action.via = "cli";
  action.user_agent = "moat-cli";
  action.time_ns = SystemClock::Get()->NowNanos();
  auto done = std::make_shared<std::promise<moat::Status>>();
  auto result = done->get_future();
  MOAT_RETURN_IF_ERROR(log_->Append(audit::AdminAuditRecord(action),
                                    [done](const moat::Status& s) { done->set_value(s); }));
  moat::Status s = result.get();
  if (!s.ok()) return moat::Status(s.code(), "the change was made but its audit record failed: " + s.message());
  return moat::Status::Ok();
}

moat::StatusOr<detect::DetectionConfig> DetectionConfigFrom(const server::DetectionSettings& ds) {
  detect::DetectionConfig dc;
  dc.max_subjects = ds.max_subjects;
  dc.max_evicted_subjects = ds.max_evicted_subjects;
  MOAT_ASSIGN_OR_RETURN(dc.stages, detect::StageSwitches::Parse(ds.stages));
  if (ds.model == "none") {
    dc.use_default_model = false;
  } else if (!ds.model.empty()) {
    MOAT_ASSIGN_OR_RETURN(detect::DetectionModel m, detect::DetectionModel::Load(ds.model));
    dc.model = std::make_shared<const detect::DetectionModel>(std::move(m));
  }
  if (ds.restrict_posterior > 0) dc.policy.restrict_posterior = ds.restrict_posterior;
  if (ds.release_posterior > 0) dc.policy.release_posterior = ds.release_posterior;
  if (ds.typical_answer_tokens > 0) dc.typical_answer_tokens = static_cast<int>(ds.typical_answer_tokens);
  for (const auto& [name, value] : ds.settings) MOAT_RETURN_IF_ERROR(detect::ApplySetting(dc, name, value));
  for (const auto& [name, ts] : ds.tiers) {
    detect::TierPolicy& tp = dc.policy.tiers[static_cast<size_t>(detect::ParseTier(name))];
    if (ts.prior_log_odds) tp.prior_log_odds = *ts.prior_log_odds;
    if (ts.subject_budget) tp.subject_budget = *ts.subject_budget;
    if (ts.pool_budget) tp.pool_budget = *ts.pool_budget;
    if (ts.evidence_budget) tp.evidence_budget = *ts.evidence_budget;
    if (ts.harness_evidence_budget) tp.harness_evidence_budget = *ts.harness_evidence_budget;
    if (ts.show_evidence) tp.show_evidence = *ts.show_evidence;
    if (ts.vouches_for_end_users) tp.vouches_for_end_users = *ts.vouches_for_end_users;
    if (ts.machines_judged_alone) tp.machines_judged_alone = *ts.machines_judged_alone;
    if (ts.action == "degrade") tp.action = detect::Action::kDegrade;
    if (ts.action == "step_up") tp.action = detect::Action::kStepUp;
    if (ts.action == "throttle") tp.action = detect::Action::kThrottle;
    if (ts.action == "block") tp.action = detect::Action::kBlock;
  }
  return dc;
}

int ExitCodeForError(const moat::Status& status) {
  switch (status.code()) {
    case moat::StatusCode::kInvalidArgument: return kExitBadArguments;
    case moat::StatusCode::kNotFound: return kExitNotFound;
    default: return kExitFailure;
  }
}

int Fail(const moat::Status& status) {
  std::cerr << "error: " << status.message() << "\n";
  return ExitCodeForError(status);
}

int ExitCodeOf(const moat::Status& status) { return status.ok() ? kExitOk : Fail(status); }

int ExitCodeOf(const moat::StatusOr<int>& code) { return code.ok() ? *code : Fail(code.status()); }

moat::StatusOr<int64_t> ParseSince(const std::string& s) {
  if (s.empty()) return int64_t{0};
  if (std::all_of(s.begin(), s.end(), ::isdigit)) return static_cast<int64_t>(std::stoll(s));
  char unit = s.back();
  std::string num = s.substr(0, s.size() - 1);
  if ((unit == 'h' || unit == 'd' || unit == 'm') && !num.empty() && std::all_of(num.begin(), num.end(), ::isdigit)) {
    int64_t secs = std::stoll(num) * (unit == 'd' ? 86400 : unit == 'h' ? 3600 : 60);
    auto now = std::chrono::system_clock::now().time_since_epoch();
    return std::chrono::duration_cast<std::chrono::nanoseconds>(now).count() - secs * 1'000'000'000;
  }
  std::tm tm{};
  std::istringstream in(s);
  if (s.size() == 10) {
    in >> std::get_time(&tm, "%Y-%m-%d");
  } else {
    in >> std::get_time(&tm, "%Y-%m-%dT%H:%M:%S");
  }
  if (in.fail()) return moat::InvalidArgumentError("--since must be ns since the epoch, YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ or a duration like 24h: " + s);
  return static_cast<int64_t>(timegm(&tm)) * 1'000'000'000;
}

}  // namespace moat::cli
