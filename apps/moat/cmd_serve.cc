// moat serve: wires the config, stores, filters, backends and the HTTP server together.
#include <signal.h>
#include <sodium.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "audit/audit_log.h"
#include "backends/builtin_backend.h"
#include "backends/upstream_backend.h"
#include "cli_common.h"
#include "commands.h"
#include "common/metrics.h"
#include "common/random.h"
#include "detect/engine.h"
#include "filters/analysis/analysis_filter.h"
#include "filters/auth/auth_filter.h"
#include "store/risk_lists.h"
#include "filters/ratelimit/ratelimit_filter.h"
#include "indicators/indicator_set.h"
#include "filters/validate/validate_filter.h"
#include "ratelimit/failed_auth_limiter.h"
#include "server/admin_api.h"
#include "provenance/attestation.h"
#include "server/gateway.h"
#include "server/http_server.h"
#include "stepup/step_up_notifier.h"
#include "stepup/verification_url.h"
#include "stepup/webhook_signature.h"

namespace moat::cli {
namespace {

// The indicators other providers shared ([detection] indicators_dir), as the detection
// engine's matcher (an empty set when none is usable, so that bundles imported while the
// gateway runs can replace it). Without a salt only network prefixes can match.
StatusOr<std::shared_ptr<const detect::IndicatorMatcher>> LoadSharedIndicators(const server::DetectionSettings& ds) {
  std::string salt;
  if (!ds.indicator_salt_file.empty()) {
    MOAT_ASSIGN_OR_RETURN(salt, indicators::ReadSaltFile(ds.indicator_salt_file));
  }
  auto hasher = std::make_shared<const indicators::IndicatorHasher>(salt);
  indicators::ImportSummary summary;
  const int64_t now = SystemClock::Get()->NowNanos();
  MOAT_ASSIGN_OR_RETURN(auto list, indicators::LoadIndicatorDir(ds.indicators_dir, salt.empty() ? "" : hasher->salt_id(),
                                                                now, &summary));
  if (!list.empty() || summary.other_salt + summary.unsupported + summary.expired > 0) {
    std::cerr << "moat: shared indicators from " << ds.indicators_dir << ": " << summary.indicators << " usable, "
              << summary.other_salt << " under another salt" << (salt.empty() ? " (no indicator_salt_file)" : "")
              << ", " << summary.unsupported << " not matchable, " << summary.expired << " expired\n";
  }
  return std::shared_ptr<const detect::IndicatorMatcher>(std::make_shared<indicators::IndicatorSet>(std::move(list), hasher));
}

// The step-up webhook's sender ([step_up]), with its secret read from the private secret file.
StatusOr<std::unique_ptr<stepup::StepUpNotifier>> StartStepUpNotifier(const server::StepUpSettings& su,
                                                                      MetricsRegistry* metrics) {
  MOAT_ASSIGN_OR_RETURN(std::string secret, stepup::LoadWebhookSecret(su.webhook_secret_file));
  stepup::StepUpNotifierOptions o;
  o.url = su.webhook_url;
  o.secret = std::move(secret);
  o.timeout = std::chrono::milliseconds(su.webhook_timeout_ms);
  o.dedup_interval_s = su.dedup_interval_s;
  o.queue_limit = static_cast<size_t>(su.queue_limit);
  o.max_attempts = static_cast<int>(su.max_attempts);
  o.retry_backoff = std::chrono::milliseconds(su.retry_backoff_ms);
  o.max_retry_backoff = std::chrono::milliseconds(su.max_retry_backoff_ms);
  MOAT_ASSIGN_OR_RETURN(auto notifier, stepup::StepUpNotifier::Create(std::move(o), SystemClock::Get(), metrics));
  std::cerr << "moat: step-up webhook to " << su.webhook_url << " (a subject at most once per "
            << su.dedup_interval_s << " s)\n";
  return notifier;
}

// Checks a model's attestation (when it has one) and records its digest in the model's config:
// the signature under the configured key, then the builtin model's file, or the operator's
// digests of an upstream model's files, against the attested subjects.
Status VerifyModelAttestation(server::ModelConfig& m) {
  if (m.attestation.empty()) return Status::Ok();
  const std::string where = "model \"" + m.name + "\": attestation " + m.attestation;
  auto pk = provenance::ReadPublicKeyHex(m.attestation_public_key);
  if (!pk.ok()) return Status(pk.status().code(), where + ": " + pk.status().message());
  std::ifstream in(m.attestation, std::ios::binary);
  if (!in) return NotFoundError(where + ": cannot read the file");
  std::ostringstream text;
  text << in.rdbuf();
  auto verified = provenance::VerifyEnvelope(text.str(), *pk);
  if (!verified.ok()) return Status(verified.status().code(), where + ": " + verified.status().message());
  if (m.backend == "builtin") {
    if (Status s = provenance::CheckArtifact(*verified, m.model_path); !s.ok()) {
      return FailedPreconditionError(where + ": refusing to serve " + m.model_path + ": " + s.message());
    }
  }
  for (const std::string& entry : m.attested_artifacts) {
    const std::string name = entry.substr(0, entry.find('='));
    const std::string sha = entry.substr(entry.find('=') + 1);
    bool found = false;
    for (const auto& subject : verified->attestation.subjects) found = found || (subject.name == name && subject.sha256_hex == sha);
    if (!found) return FailedPreconditionError(where + ": no attested subject " + name + " with sha256 " + sha);
  }
  m.attestation_sha256 = verified->envelope_sha256;
  m.attested_model_name = verified->attestation.predicate.model_name;
  m.attested_model_version = verified->attestation.predicate.model_version;
  m.attestation_key_id = verified->key_id;
  std::cerr << "model " << m.name << ": attestation verified (" << verified->attestation.predicate.model_name << " "
            << verified->attestation.predicate.model_version << ", key " << verified->key_id.substr(0, 16) << ")\n";
  return Status::Ok();
}


struct ServeOpts {
  std::string config = "moat.toml";
  std::string port_file;
  std::string tls_port_file;
  int port = -1;
};

// Detection state across restarts ([detection] state_file, docs/detection.md): what the last run
// saved is read before the first request; a missing or unusable file only means starting afresh.
void RestoreDetectionState(detect::DetectionEngine& engine, const std::string& path) {
  if (path.empty()) return;
  auto loaded = engine.LoadState(path);
  if (loaded.ok()) {
    const int64_t age_s = (SystemClock::Get()->NowNanos() - loaded->saved_at_ns) / 1'000'000'000LL;
    std::cerr << "moat: detection state restored from " << path << ": " << loaded->live_subjects << " live and "
              << loaded->evicted_subjects << " idle subjects, " << loaded->cohorts << " cohorts, saved " << age_s
              << " s ago\n";
  } else if (loaded.status().code() == StatusCode::kNotFound) {
    std::cerr << "moat: no detection state at " << path << " yet: detection starts afresh\n";
  } else {
    std::cerr << "moat: warning: " << loaded.status().message() << ": detection starts afresh\n";
  }
}

void SaveDetectionState(const detect::DetectionEngine& engine, const std::string& path) {
  if (path.empty()) return;
  auto saved = engine.SaveState(path, SystemClock::Get()->NowNanos());
  if (!saved.ok()) std::cerr << "moat: warning: detection state not saved: " << saved.status().message() << "\n";
}

// Writes "<port>\n" to `path` atomically (for tests and supervisors that start on port 0).
void WritePortFile(const std::string& path, uint16_t port) {
  if (path.empty()) return;
  std::string tmp = path + ".tmp";
  std::ofstream(tmp) << port << "\n";
  std::filesystem::rename(tmp, path);
}

ratelimit::Rate PerMinute(double v) { return ratelimit::Rate{v, v}; }

std::map<std::string, ratelimit::TierLimits> ToTierLimits(const std::map<std::string, server::TierLimitsConfig>& in) {
  std::map<std::string, ratelimit::TierLimits> out;
  for (const auto& [tier, l] : in) {
    ratelimit::TierLimits t;
    t.key_requests = PerMinute(l.key_rpm);
    t.key_tokens = PerMinute(l.key_tpm);
    t.account_requests = PerMinute(l.account_rpm);
    t.account_tokens = PerMinute(l.account_tpm);
    t.ip_requests = PerMinute(l.ip_rpm);
    t.ip_tokens = PerMinute(l.ip_tpm);
    t.prefix_requests = PerMinute(l.prefix_rpm);
    t.prefix_tokens = PerMinute(l.prefix_tpm);
    out[tier] = t;
  }
  return out;
}

int Serve(const ServeOpts& opts) {
  auto cfg_or = server::LoadGatewayConfig(opts.config);
  if (!cfg_or.ok()) return Fail(cfg_or.status());
  server::GatewayConfig cfg = std::move(*cfg_or);
  if (auto s = server::RequireServable(cfg); !s.ok()) return Fail(s);
  if (opts.port >= 0) cfg.server.port = static_cast<uint16_t>(opts.port);

  // Block the stop and reload signals in every thread; the main thread waits for them below.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);
  // A file-size limit (ulimit -f) must fail the write (EFBIG: the audit log reports itself
  // unhealthy and requests are refused), not kill the gateway.
  signal(SIGXFSZ, SIG_IGN);

  auto accounts = OpenAccountStore(cfg);
  if (!accounts.ok()) return Fail(accounts.status());

  auto audit_log = audit::AuditLog::Open(AuditLogOptionsFrom(cfg));
  if (!audit_log.ok()) return Fail(audit_log.status());
  if (moat::Status health = (*audit_log)->health(); !health.ok()) {
    std::cerr << "moat: warning: " << health.message()
              << "; requests are refused (503 audit_unavailable) until audit records can be written\n";
  }

  MetricsRegistry metrics;
  const int workers = server::HttpServer::WorkerCount(cfg.server);

  server::GatewayParts parts;
  parts.config = &cfg;
  parts.metrics = &metrics;
  parts.clock = SystemClock::Get();
  parts.random = SystemRandom::Get();
  parts.audit = audit_log->get();
  for (auto& m : cfg.models) {
    if (Status s = VerifyModelAttestation(m); !s.ok()) return Fail(s);
  }
  filters::ValidationSettings validation;
  validation.default_max_tokens = cfg.server.default_max_tokens;
  validation.max_tokens_limit = cfg.server.max_tokens_limit;
  validation.end_user_header = cfg.server.end_user_header;
  for (const auto& m : cfg.models) {
    validation.models.insert(m.name);
    if (m.backend == "builtin") validation.builtin_models.insert(m.name);
    if (m.backend == "upstream") {
      auto b = backends::UpstreamBackend::Create(m, workers, &metrics, SystemClock::Get(),
                                                 cfg.watermark, cfg.storage.watermark_secret);
      if (!b.ok()) return Fail(b.status());
      parts.backends[m.name] = std::move(*b);
    } else {
      auto b = backends::BuiltinBackend::Create(m, cfg.watermark, cfg.storage.watermark_secret,
                                                SystemClock::Get(), SystemRandom::Get());
      if (!b.ok()) return Fail(b.status());
      parts.backends[m.name] = std::move(*b);
    }
  }
  ratelimit::FailedAuthLimiter failed_auth(
      SystemClock::Get(), {cfg.auth.failures_per_ip_per_minute, cfg.auth.failures_per_prefix_per_minute,
                           cfg.auth.max_tracked_addresses});
  parts.failed_auth = &failed_auth;
  parts.filters.push_back(std::make_unique<filters::AuthFilterFactory>(accounts->get(), &metrics, &failed_auth));
  parts.filters.push_back(
      std::make_unique<filters::RequestValidationFilterFactory>(std::move(validation), &metrics));
  parts.filters.push_back(std::make_unique<filters::RateLimitFilterFactory>(
      std::make_unique<ratelimit::QuotaEnforcer>(SystemClock::Get(), ToTierLimits(cfg.limits), 200'000),
      &metrics));
  // The step-up webhook (off the request path: its own sender thread), before the filter that
  // queues its events and destroyed after the server that runs that filter.
  std::unique_ptr<stepup::StepUpNotifier> step_up_notifier;
  if (!cfg.step_up.webhook_url.empty()) {
    if (!cfg.detection.enabled) {
      std::cerr << "moat: warning: [step_up] webhook_url is set but detection is off: no step-up events\n";
    } else {
      auto notifier = StartStepUpNotifier(cfg.step_up, &metrics);
      if (!notifier.ok()) return Fail(notifier.status());
      step_up_notifier = std::move(*notifier);
    }
  }
  // Detection and policy: after the rate limits, before the backend.
  std::unique_ptr<detect::DetectionEngine> engine;
  std::unique_ptr<store::RiskLists> risk_lists;
  std::map<std::string, std::string> applied_lists;
  std::string indicator_dir_seen;  // IndicatorDirFingerprint when the indicators were last read
  if (cfg.detection.enabled) {
    const auto& ds = cfg.detection;
    auto dc = DetectionConfigFrom(ds);
    if (!dc.ok()) return Fail(dc.status());
    indicator_dir_seen = indicators::IndicatorDirFingerprint(ds.indicators_dir);
    auto shared = LoadSharedIndicators(ds);
    if (!shared.ok()) return Fail(shared.status());
    dc->indicators = std::move(*shared);
    engine = std::make_unique<detect::DetectionEngine>(std::move(*dc));
    if (engine->model() == nullptr) {
      std::cerr << "warning: no detection model loaded; content evidence is off ([detection] model)\n";
    }
    for (const auto& peer : ds.replay_clock_peers) {
      std::cerr << "moat: warning: detection runs on the x-moat-replay-time of requests from " << peer
                << " ([detection] replay_clock_peers): for replays of recorded traffic only\n";
    }
    auto lists = store::RiskLists::Open(cfg.storage.accounts_db, SystemClock::Get());
    if (!lists.ok()) return Fail(lists.status());
    risk_lists = std::move(*lists);
    auto all = risk_lists->All();
    if (!all.ok()) return Fail(all.status());
    server::ApplyRiskLists(*all, engine.get(), &applied_lists);
    RestoreDetectionState(*engine, ds.state_file);
    filters::AnalysisSettings as;
    as.degrade_max_tokens = ds.degrade_max_tokens;
    as.throttle_retry_after_s = ds.throttle_retry_after_s;
    auto step_up_url = stepup::ParseVerificationUrl(ds.step_up_url);
    if (!step_up_url.ok()) return Fail(step_up_url.status());
    as.step_up_url = std::move(*step_up_url);
    as.silent_degrade = ds.silent_degrade;
    as.hardening = ds.hardening;
    for (const auto& [tier, ts] : ds.tiers) {
      if (ts.hardening) as.tier_hardening[tier] = *ts.hardening;
    }
    parts.filters.push_back(
        std::make_unique<filters::AnalysisFilterFactory>(engine.get(), as, &metrics, step_up_notifier.get()));
    detect::DetectionEngine* e = engine.get();
    metrics.AddCallbackGauge("moat_detect_live_subjects", "Accounts and end users held in memory by detection.",
                             [e] { return static_cast<double>(e->live_subjects()); });
  }
  std::unique_ptr<server::AdminApi> admin;
  if (!cfg.server.admin_token.empty()) {
    admin = std::make_unique<server::AdminApi>(accounts->get(), cfg.server.admin_token,
                                               engine.get(), risk_lists.get(), &cfg.models);
    parts.admin = admin.get();
  }

  server::Gateway gateway(std::move(parts));
  server::HttpServer http(cfg.server, &gateway, &metrics);
  if (auto s = http.Start(); !s.ok()) return Fail(s);
  std::cerr << "moat: listening on http://" << cfg.server.host << ":" << http.port() << " with "
            << http.workers() << " worker threads, " << cfg.models.size() << " model(s)\n";
  if (http.tls_port() != 0)
    std::cerr << "moat: listening on https://" << cfg.server.tls_host << ":" << http.tls_port() << "\n";
  // The TLS port file first: a waiter on the plain one then finds both.
  WritePortFile(opts.tls_port_file, http.tls_port());
  WritePortFile(opts.port_file, http.port());

  // Accounts and keys changed by `moat account|key ...` in another process show up here.
  std::atomic<bool> done{false};
  // So do the allow/deny lists and newly imported indicator bundles; detection state of
  // accounts idle for an hour is evicted.
  // The audit log's health changes are logged here too (they also show in moat_audit_healthy).
  std::thread refresher([&] {
    int ticks = 0;
    const int save_every_ticks = static_cast<int>(cfg.detection.state_save_interval_s);
    bool audit_healthy = (*audit_log)->health().ok();
    while (!done.load()) {
      for (int i = 0; i < 10 && !done.load(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
      auto s = (*accounts)->RefreshIfChanged();
      if (!s.ok()) std::cerr << "moat: account refresh failed: " << s.message() << "\n";
      if (moat::Status health = (*audit_log)->health(); health.ok() != audit_healthy) {
        audit_healthy = health.ok();
        if (audit_healthy) {
          std::cerr << "moat: audit records can be written again; serving\n";
        } else {
          std::cerr << "moat: " << health.message() << "; refusing requests until it recovers\n";
        }
      }
      if (engine) {
        if (auto all = risk_lists->All(); all.ok() && *all != applied_lists)
          server::ApplyRiskLists(*all, engine.get(), &applied_lists);
        // Bundles imported (`moat indicators import`) while the gateway runs.
        if (std::string seen = indicators::IndicatorDirFingerprint(cfg.detection.indicators_dir);
            seen != indicator_dir_seen) {
          indicator_dir_seen = std::move(seen);
          if (auto shared = LoadSharedIndicators(cfg.detection); shared.ok()) {
            engine->SetIndicators(std::move(*shared));
          } else {
            std::cerr << "moat: shared indicators not reloaded, the previous set stays in use: "
                      << shared.status().message() << "\n";
          }
        }
        if (++ticks % 60 == 0) {
          // A replay with its own clock ([detection] replay_clock_peers) is judged idle on that
          // clock, not on the wall clock its recorded times are far behind.
          const int64_t now = SystemClock::Get()->NowNanos();
          const int64_t latest = engine->latest_event_ns();
          const bool replaying = !cfg.detection.replay_clock_peers.empty() && latest > 0;
          engine->EvictIdle((replaying ? std::min(now, latest) : now) - 3600LL * 1'000'000'000);
        }
        if (ticks % save_every_ticks == 0) SaveDetectionState(*engine, cfg.detection.state_file);
      }
    }
  });

  int sig = 0;
  for (;;) {
    sigwait(&signals, &sig);
    if (sig != SIGHUP) break;
    if (cfg.server.tls_listen.empty()) continue;
    if (auto s = http.ReloadTls(); s.ok()) {
      std::cerr << "moat: SIGHUP: reloaded the TLS certificate " << cfg.server.tls_cert_file << "\n";
    } else {
      std::cerr << "moat: SIGHUP: TLS certificate not reloaded, the previous one stays in use: "
                << s.message() << "\n";
    }
  }
  std::cerr << "moat: signal " << sig << ", draining\n";
  http.Stop(10'000);
  http.Wait();
  gateway.Shutdown();  // pooled upstream sockets must go before the workers' io_contexts
  done.store(true);
  refresher.join();
  if (engine) SaveDetectionState(*engine, cfg.detection.state_file);  // after the last request
  audit_log->reset();  // commits what is queued and signs a final checkpoint
  std::cerr << "moat: stopped\n";
  return 0;
}

}  // namespace

void AddServeCommand(CLI::App& app) {
  auto opts = std::make_shared<ServeOpts>();
  auto* serve = app.add_subcommand("serve", "Run the gateway");
  serve->add_option("--config,-c", opts->config, "Config file")->capture_default_str();
  serve->add_option("--port", opts->port, "Override server.listen's port (0: any free port)");
  serve->add_option("--port-file", opts->port_file, "Write the bound port to this file once listening");
  serve->add_option("--tls-port-file", opts->tls_port_file,
                    "Write the bound HTTPS port (server.tls_listen) to this file once listening");
  serve->callback([opts] { std::exit(Serve(*opts)); });
}

}  // namespace moat::cli
