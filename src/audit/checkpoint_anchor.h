#pragma once
// CheckpointAnchor: the latest signed checkpoint of an audit database, kept OUTSIDE it. Signed
// checkpoints inside the database prove what they cover, but someone who can write the file can
// also cut the log and delete the checkpoints after the cut. The writer therefore replaces an
// anchor file beside the database after every checkpoint, and `moat audit verify` requires the
// log to contain the anchored checkpoint. An operator who copies the file elsewhere (or ships it
// with the logs) can prove any later truncation.
//
// File format: one line of JSON,
//   {"seq":N,"record_hash":"<64 hex>","time_ns":T,"signature":"<128 hex>","public_key":"<64 hex>"}
// where signature is the checkpoint's Ed25519 signature of CheckpointMessage(seq, time_ns,
// record_hash) (audit_hash.h).

#include <cstdint>
#include <string>
#include <string_view>

#include "moat/status.h"

namespace moat::audit {

struct CheckpointAnchor {
  int64_t seq = 0;
  std::string record_hash;
  int64_t time_ns = 0;
  std::string signature;
  std::string public_key_hex;
};

// The file's one line (with a trailing newline).
std::string FormatAnchor(const CheckpointAnchor& anchor);
// Parses the file's text; InvalidArgument when it is not an anchor.
StatusOr<CheckpointAnchor> ParseAnchor(std::string_view text);
// True when the anchor's signature verifies under its own public key.
bool AnchorSignatureValid(const CheckpointAnchor& anchor);

// Reads `path`; NotFound when it does not exist, InvalidArgument when it is malformed.
StatusOr<CheckpointAnchor> ReadAnchorFile(const std::string& path);
// Replaces `path` atomically (write a temporary file beside it, then rename; mode 0600) unless
// it already anchors a later checkpoint (several writers may share one database). Unavailable
// when it cannot be written.
Status AdvanceAnchorFile(const std::string& path, const CheckpointAnchor& anchor);

}  // namespace moat::audit
