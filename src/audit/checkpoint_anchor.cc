#include "audit/checkpoint_anchor.h"

#include <fstream>
#include <sstream>

#include <boost/json.hpp>

#include "audit/audit_hash.h"
#include "audit/signing_key.h"
#include "common/file_contents.h"

namespace moat::audit {

namespace json = boost::json;

std::string FormatAnchor(const CheckpointAnchor& a) {
  const json::object o{{"seq", a.seq}, {"record_hash", a.record_hash}, {"time_ns", a.time_ns},
                       {"signature", a.signature}, {"public_key", a.public_key_hex}};
  return json::serialize(o) + "\n";
}

StatusOr<CheckpointAnchor> ParseAnchor(std::string_view text) {
  json::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_object()) return InvalidArgumentError("the anchor is not a JSON object");
  const json::object& o = v.as_object();
  auto int_field = [&](const char* key, int64_t* out) {
    const json::value* f = o.if_contains(key);
    if (f == nullptr || !f->is_int64()) return false;
    *out = f->as_int64();
    return true;
  };
  auto str_field = [&](const char* key, std::string* out) {
    const json::value* f = o.if_contains(key);
    if (f == nullptr || !f->is_string()) return false;
    *out = std::string(f->as_string());
    return true;
  };
  CheckpointAnchor a;
  if (!int_field("seq", &a.seq) || a.seq < 1 || !str_field("record_hash", &a.record_hash) ||
      !int_field("time_ns", &a.time_ns) || !str_field("signature", &a.signature) ||
      !str_field("public_key", &a.public_key_hex)) {
    return InvalidArgumentError(
        "the anchor needs seq (>= 1), record_hash, time_ns, signature and public_key");
  }
  return a;
}

bool AnchorSignatureValid(const CheckpointAnchor& a) {
  return VerifySignatureHex(a.public_key_hex, CheckpointMessage(a.seq, a.time_ns, a.record_hash),
                            a.signature);
}

StatusOr<CheckpointAnchor> ReadAnchorFile(const std::string& path) {
  MOAT_ASSIGN_OR_RETURN(std::string text, ReadFileContents(path, "the checkpoint anchor"));
  auto anchor = ParseAnchor(text);
  if (!anchor.ok()) return InvalidArgumentError(path + ": " + anchor.status().message());
  return anchor;
}

Status AdvanceAnchorFile(const std::string& path, const CheckpointAnchor& anchor) {
  if (auto existing = ReadAnchorFile(path); existing.ok() && existing->seq >= anchor.seq) {
    return Status::Ok();
  }
  // One temporary file per process (ReplaceFileContents): gateways and the CLI may advance the
  // same anchor.
  return ReplaceFileContents(path, FormatAnchor(anchor), "the checkpoint anchor");
}

}  // namespace moat::audit
