#include "audit/audit_hash.h"

#include <sodium.h>

#include <bit>
#include <cstring>

namespace moat::audit {
namespace {

constexpr std::string_view kRecordTag = "moat-audit-record-v1";
constexpr std::string_view kCheckpointTag = "moat-audit-checkpoint-v1";

void AppendU64Be(std::string& out, uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8)
    out.push_back(static_cast<char>((v >> shift) & 0xff));
}

void AppendBytesField(std::string& out, std::string_view bytes) {
  AppendU64Be(out, bytes.size());
  out.append(bytes);
}

void AppendInt64Field(std::string& out, int64_t v) {
  AppendU64Be(out, 8);
  AppendU64Be(out, static_cast<uint64_t>(v));
}

void AppendBoolField(std::string& out, bool v) {
  AppendU64Be(out, 1);
  out.push_back(v ? '\x01' : '\x00');
}

void AppendDoubleField(std::string& out, double v) {
  AppendU64Be(out, 8);
  AppendU64Be(out, std::bit_cast<uint64_t>(v));
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::string HexEncode(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 0xf]);
  }
  return out;
}

StatusOr<std::string> HexDecode(std::string_view hex) {
  if (hex.size() % 2 != 0) return InvalidArgumentError("hex string has odd length");
  std::string out;
  out.reserve(hex.size() / 2);
  for (size_t i = 0; i < hex.size(); i += 2) {
    int hi = HexValue(hex[i]);
    int lo = HexValue(hex[i + 1]);
    if (hi < 0 || lo < 0) return InvalidArgumentError("invalid hex character");
    out.push_back(static_cast<char>((hi << 4) | lo));
  }
  return out;
}

std::string Sha256Hex(std::string_view data) {
  unsigned char digest[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(digest, reinterpret_cast<const unsigned char*>(data.data()), data.size());
  return HexEncode(std::string_view(reinterpret_cast<const char*>(digest), sizeof(digest)));
}

std::string CanonicalEncoding(const AuditRecord& r) {
  std::string out;
  out.reserve(512 + r.prompt_text.size() + r.completion_text.size() + r.params_json.size() +
              r.user_agent.size() + r.reasons_json.size() + r.model_attestation.size());
  out.append(kRecordTag);
  AppendBytesField(out, r.prev_hash);
  AppendInt64Field(out, r.seq);
  AppendInt64Field(out, r.time_ns);
  AppendBytesField(out, r.request_id);
  AppendBytesField(out, r.account_id);
  AppendBytesField(out, r.org_id);
  AppendBytesField(out, r.end_user);
  AppendBytesField(out, r.key_id);
  AppendBytesField(out, r.client_ip);
  AppendBytesField(out, r.user_agent);
  AppendBytesField(out, r.endpoint);
  AppendBytesField(out, r.model);
  AppendBytesField(out, r.params_json);
  AppendBoolField(out, r.stream);
  AppendInt64Field(out, r.prompt_tokens);
  AppendInt64Field(out, r.completion_tokens);
  AppendDoubleField(out, r.latency_ms);
  AppendInt64Field(out, r.http_status);
  AppendBytesField(out, r.error_code);
  AppendBytesField(out, r.verdict);
  AppendBytesField(out, r.action);
  AppendBytesField(out, r.reasons_json);
  AppendBytesField(out, r.watermark_key_id);
  AppendBytesField(out, r.retention);
  AppendBytesField(out, r.prompt_text);
  AppendBytesField(out, r.completion_text);
  // Optional fields: only when set, so records written before a field existed hash as they did.
  if (!r.model_attestation.empty()) {
    AppendBytesField(out, "model_attestation");
    AppendBytesField(out, r.model_attestation);
  }
  return out;
}

std::string ComputeRecordHash(const AuditRecord& record) {
  return Sha256Hex(CanonicalEncoding(record));
}

std::string CheckpointMessage(int64_t seq, int64_t time_ns, std::string_view record_hash) {
  std::string out(kCheckpointTag);
  AppendU64Be(out, static_cast<uint64_t>(seq));
  AppendU64Be(out, static_cast<uint64_t>(time_ns));
  out.append(record_hash);
  return out;
}

}  // namespace moat::audit
