#pragma once
// Helpers shared by the subcommands: loading the config (or defaults) and opening stores.

#include <memory>
#include <string>

#include "audit/admin_record.h"
#include "audit/audit_log.h"
#include "detect/engine.h"
#include "moat/status.h"
#include "server/config.h"
#include "store/account_store.h"

namespace moat::cli {

// Loads `path`; when `path` is empty, loads ./moat.toml if it exists, else the defaults.
moat::StatusOr<server::GatewayConfig> LoadConfigOrDefaults(const std::string& path);
// Creates the data directory (owner-only, storage.data_dir_mode) and opens the account store
// named by the config.
moat::StatusOr<std::unique_ptr<store::AccountStore>> OpenAccountStore(const server::GatewayConfig& config);
// The audit log's options from the [storage] and [audit] sections (the same for `moat serve`
// and the CLI's admin records).
audit::AuditLogOptions AuditLogOptionsFrom(const server::GatewayConfig& config);

// Writes the CLI's administrative changes into the audit hash chain, as `cli:<user>@<host>`
// from "local". Open() it before making the change, so that a change is never made when its
// record cannot be written.
class CliAdminAudit {
 public:
  static moat::StatusOr<CliAdminAudit> Open(const server::GatewayConfig& config);
  // Appends `action` (actor, source, via and time filled in) and waits until it is durable.
  moat::Status Record(audit::AdminAction action);

 private:
  std::shared_ptr<audit::AuditLog> log_;
};
// The detection engine's config from the [detection] section (the same for `moat serve` and
// `moat audit scan`, so an offline scan judges with the gateway's policy). Loads the model the
// section names (NotFound / DataLoss when it cannot), InvalidArgument for a bad stage list.
moat::StatusOr<detect::DetectionConfig> DetectionConfigFrom(const server::DetectionSettings& settings);
// A time flag (--since, --until): ns since the epoch, "YYYY-MM-DD", "YYYY-MM-DDTHH:MM:SSZ", or a
// duration before now ("24h", "7d", "30m"); "" is 0. InvalidArgument otherwise.
moat::StatusOr<int64_t> ParseSince(const std::string& s);
// Exit codes of the `moat` command, the same for every subcommand.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;        // any error without a code of its own below
inline constexpr int kExitBadArguments = 2;   // InvalidArgument: bad flags, values or input
inline constexpr int kExitNotFound = 3;       // NotFound: a missing file, account or record
inline constexpr int kExitAuditBroken = 4;    // `moat audit verify`: the chain does not verify
inline constexpr int kExitNoEvidence = 5;     // `moat wm trace|radioactive`: nobody implicated

// The exit code for a failed `status`: kExitBadArguments, kExitNotFound or kExitFailure.
int ExitCodeForError(const moat::Status& status);
// Prints "error: <message>" to stderr and returns ExitCodeForError(status). The one way a
// subcommand reports a failed Status.
int Fail(const moat::Status& status);
// kExitOk when `status` is OK, else Fail(status).
int ExitCodeOf(const moat::Status& status);
// The command's own exit code when it succeeded, else Fail(its status).
int ExitCodeOf(const moat::StatusOr<int>& code);

}  // namespace moat::cli
