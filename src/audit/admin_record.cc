#include "audit/admin_record.h"

#include <sodium.h>

#include <cstdlib>

#include "audit/audit_hash.h"

namespace moat::audit {
namespace {

constexpr size_t kRequestIdRandomBytes = 8;

std::string FreshRequestId() {
  if (sodium_init() < 0) std::abort();  // the OS random source is unusable
  std::string bytes(kRequestIdRandomBytes, '\0');
  randombytes_buf(bytes.data(), bytes.size());
  return "adm_" + HexEncode(bytes);
}

}  // namespace

AuditRecord AdminAuditRecord(const AdminAction& a) {
  AuditRecord r;
  r.time_ns = a.time_ns;
  r.request_id = a.request_id.empty() ? FreshRequestId() : a.request_id;
  r.account_id = a.account_id;
  r.org_id = a.org_id;
  r.key_id = a.key_id;
  r.end_user = a.actor;
  r.client_ip = a.source;
  r.user_agent = a.user_agent;
  r.endpoint = a.via;
  r.params_json = a.details_json.empty() ? "{}" : a.details_json;
  r.http_status = a.status;
  r.error_code = a.status / 100 == 2 ? "" : "admin_failed";
  r.verdict = kAdminVerdict;
  r.action = a.operation;
  r.reasons_json = "[]";
  r.retention = "none";
  return r;
}

bool IsAdminRecord(const AuditRecord& record) { return record.verdict == kAdminVerdict; }

}  // namespace moat::audit
