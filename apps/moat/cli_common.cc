#include "cli_common.h"

#include <sodium.h>

#include <filesystem>
#include <iostream>

#include "moat/clock.h"

namespace moat::cli {

moat::StatusOr<server::GatewayConfig> LoadConfigOrDefaults(const std::string& path) {
  if (!path.empty()) return server::LoadGatewayConfig(path);
  if (std::filesystem::exists("moat.toml")) return server::LoadGatewayConfig("moat.toml");
  return server::DefaultGatewayConfig();
}

moat::StatusOr<std::unique_ptr<store::AccountStore>> OpenAccountStore(const server::GatewayConfig& config) {
  if (sodium_init() < 0) return moat::InternalError("libsodium failed to initialise");
  std::error_code ec;
  std::filesystem::create_directories(config.storage.data_dir, ec);
  if (ec) return moat::UnavailableError("cannot create data directory " + config.storage.data_dir + ": " + ec.message());
  MOAT_ASSIGN_OR_RETURN(std::string pepper, store::LoadOrCreateSecret(config.storage.key_pepper_file));
  return store::AccountStore::Open(config.storage.accounts_db, pepper, SystemClock::Get());
}

detect::DetectionConfig DetectionConfigFrom(const server::DetectionSettings& ds) {
  detect::DetectionConfig dc;
  dc.max_subjects = ds.max_subjects;
  if (ds.degrade_score >= 0) dc.policy.degrade_score = ds.degrade_score;
  if (ds.step_up_score >= 0) dc.policy.step_up_score = ds.step_up_score;
  if (ds.throttle_score >= 0) dc.policy.throttle_score = ds.throttle_score;
  if (ds.block_score >= 0) dc.policy.block_score = ds.block_score;
  dc.policy.silent_degrade = ds.silent_degrade;
  return dc;
}

int Fail(const moat::Status& status) {
  std::cerr << "error: " << status.message() << "\n";
  switch (status.code()) {
    case moat::StatusCode::kInvalidArgument: return 2;
    case moat::StatusCode::kNotFound: return 3;
    default: return 1;
  }
}

}  // namespace moat::cli
