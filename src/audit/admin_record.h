#pragma once
// AdminAction: an administrative change (organisation, account, tier, disabled flag, API key,
// allow/deny list), made through the /admin API or the `moat` CLI, written into the same hash
// chain as the request records so that who changed what, when and from where is as
// tamper-evident as the traffic it affects.
//
// An admin record is an AuditRecord with verdict "admin"; its fields mean:
//   action      the operation ("key.create", "key.revoke", "account.create", "account.update",
//               "org.create", "list.set", "admin.auth_failed")
//   end_user    who: "admin-token:<fingerprint>" (the /admin API) or "cli:<user>@<host>"
//   client_ip   from where: the client address (the /admin API) or "local" (the CLI)
//   endpoint    through what: the /admin path, or "cli"
//   user_agent  the client's User-Agent, or "moat-cli"
//   account_id, org_id, key_id   the objects changed (when they apply)
//   params_json what changed, a JSON object (never a secret: a created key appears by its id)
//   http_status the outcome (2xx: applied), time_ns when, request_id "adm_..."
// Prompt and completion texts are empty.

#include <cstdint>
#include <string>
#include <utility>

#include "moat/audit_record.h"

namespace moat::audit {

inline constexpr char kAdminVerdict[] = "admin";

struct AdminAction {
  // An action of `operation` changing what `details_json` says; the other fields are set after.
  static AdminAction Of(std::string operation, std::string details_json = "{}") {
    AdminAction a;
    a.operation = std::move(operation);
    a.details_json = std::move(details_json);
    return a;
  }

  std::string operation;
  std::string actor;
  std::string source;
  std::string via;
  std::string user_agent;
  std::string account_id, org_id, key_id;
  std::string details_json = "{}";
  int status = 200;
  int64_t time_ns = 0;
  std::string request_id;  // "" -> a fresh "adm_" id
};

// The audit record of `action` (see above).
AuditRecord AdminAuditRecord(const AdminAction& action);
// True for records written by AdminAuditRecord (offline analysis of traffic skips them).
bool IsAdminRecord(const AuditRecord& record);

}  // namespace moat::audit
