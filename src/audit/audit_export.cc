#include "audit/audit_export.h"

#include <algorithm>

#include <sodium.h>

#include <boost/json/serialize.hpp>

#include "audit/audit_hash.h"
#include "common/utf8.h"
#include "audit/record_reader.h"

namespace moat::audit {
namespace {

std::string Base64(std::string_view bytes) {
  const int variant = sodium_base64_VARIANT_ORIGINAL;
  std::string out(sodium_base64_ENCODED_LEN(bytes.size(), variant), '\0');
  sodium_bin2base64(out.data(), out.size(), reinterpret_cast<const unsigned char*>(bytes.data()),
                    bytes.size(), variant);
  out.resize(out.size() - 1);  // drop the terminating NUL
  return out;
}

void PutString(boost::json::object& obj, std::string_view key, std::string_view value) {
  if (IsValidUtf8(value)) {
    obj[key] = value;
    return;
  }
  obj[key] = ReplaceInvalidUtf8(value);
  obj[std::string(key) + "_base64"] = Base64(value);
}

}  // namespace

bool IsValidUtf8(std::string_view s) { return moat::IsValidUtf8(s); }

boost::json::object RecordToJson(const AuditRecord& r) {
  boost::json::object o;
  o["seq"] = r.seq;
  PutString(o, "prev_hash", r.prev_hash);
  PutString(o, "record_hash", r.record_hash);
  o["time_ns"] = r.time_ns;
  PutString(o, "request_id", r.request_id);
  PutString(o, "account_id", r.account_id);
  PutString(o, "org_id", r.org_id);
  PutString(o, "end_user", r.end_user);
  PutString(o, "key_id", r.key_id);
  PutString(o, "client_ip", r.client_ip);
  PutString(o, "user_agent", r.user_agent);
  PutString(o, "endpoint", r.endpoint);
  PutString(o, "model", r.model);
  PutString(o, "params_json", r.params_json);
  o["stream"] = r.stream;
  o["prompt_tokens"] = r.prompt_tokens;
  o["completion_tokens"] = r.completion_tokens;
  o["latency_ms"] = r.latency_ms;
  o["http_status"] = r.http_status;
  PutString(o, "error_code", r.error_code);
  PutString(o, "verdict", r.verdict);
  PutString(o, "action", r.action);
  PutString(o, "reasons_json", r.reasons_json);
  PutString(o, "watermark_key_id", r.watermark_key_id);
  PutString(o, "retention", r.retention);
  PutString(o, "prompt_text", r.prompt_text);
  PutString(o, "completion_text", r.completion_text);
  PutString(o, "model_attestation", r.model_attestation);
  return o;
}

Status ExportJsonl(const std::string& db_path, int64_t since_ns, std::ostream& out) {
  MOAT_ASSIGN_OR_RETURN(AuditRecordReader reader, AuditRecordReader::Open(db_path, since_ns));
  AuditRecord r;
  for (;;) {
    MOAT_ASSIGN_OR_RETURN(bool more, reader.Next(&r));
    if (!more) break;
    out << boost::json::serialize(RecordToJson(r)) << '\n';
    if (!out) return InternalError("audit export: writing the output failed");
  }
  out.flush();
  if (!out) return InternalError("audit export: writing the output failed");
  return Status::Ok();
}

Status ForEachAccountRecord(const std::string& db_path, const std::vector<std::string>& account_ids,
                            const std::function<Status(const AuditRecord&)>& fn) {
  MOAT_ASSIGN_OR_RETURN(AuditRecordReader reader, AuditRecordReader::Open(db_path));
  AuditRecord r;
  for (;;) {
    MOAT_ASSIGN_OR_RETURN(bool more, reader.Next(&r));
    if (!more) break;
    if (!account_ids.empty() &&
        std::find(account_ids.begin(), account_ids.end(), r.account_id) == account_ids.end()) {
      continue;
    }
    MOAT_RETURN_IF_ERROR(fn(r));
  }
  return Status::Ok();
}

std::string ApplyRetention(TextRetention retention, std::string_view text) {
  switch (retention) {
    case TextRetention::kFull:
      return std::string(text);
    case TextRetention::kHashOnly:
      return Sha256Hex(text);
    case TextRetention::kNone:
      return std::string();
  }
  return std::string();
}

StatusOr<TextRetention> ParseRetention(std::string_view s) {
  if (s == "full") return TextRetention::kFull;
  if (s == "hash-only") return TextRetention::kHashOnly;
  if (s == "none") return TextRetention::kNone;
  return InvalidArgumentError("unknown text retention \"" + std::string(s) +
                              "\" (expected full, hash-only or none)");
}

std::string_view RetentionName(TextRetention retention) {
  switch (retention) {
    case TextRetention::kFull:
      return "full";
    case TextRetention::kHashOnly:
      return "hash-only";
    case TextRetention::kNone:
      return "none";
  }
  return "none";
}

}  // namespace moat::audit
