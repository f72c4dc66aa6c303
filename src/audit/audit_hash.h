#pragma once
// The audit chain's hashing rules: the canonical byte encoding of an AuditRecord, the record
// hash that chains records together, and the message an Ed25519 checkpoint signs.
//
// Canonical record encoding (version 1), the input to the record hash:
//
//   "moat-audit-record-v1"                     domain tag, 20 ASCII bytes, no length prefix
//   prev_hash                                  as F below (64 lowercase hex chars)
//   then, in this order, every other field as F:
//     seq, time_ns, request_id, account_id, org_id, end_user, key_id, client_ip, user_agent,
//     endpoint, model, params_json, stream, prompt_tokens, completion_tokens, latency_ms,
//     http_status, error_code, verdict, action, reasons_json, watermark_key_id, retention,
//     prompt_text, completion_text
//   then the optional fields, in this order, each only when it is not empty, as
//   F(field name) || F(value):
//     model_attestation
//
//   F(field) = u64be(byte length) || bytes, where the bytes are
//     strings:  the raw bytes (no normalisation, no terminator)
//     int64/int: 8 bytes, big-endian two's complement (int widened to int64)
//     bool:      1 byte, 0x00 or 0x01
//     double:    8 bytes, the IEEE-754 binary64 bit pattern, big-endian
//
//   record_hash = lowercase hex( SHA-256( canonical encoding ) )
//
// Every field is length-prefixed, so no two distinct records share an encoding; an optional
// field is named, so a record without it (every record written before it existed) encodes and
// hashes exactly as it did then, and one with it commits to it. record_hash
// itself is not part of the encoding. The first record's prev_hash is 64 '0' characters.
//
// Checkpoint message (version 1), signed with Ed25519 (crypto_sign_detached):
//
//   "moat-audit-checkpoint-v1" || u64be(seq) || u64be(time_ns) || record_hash (64 hex chars)

#include <cstdint>
#include <string>
#include <string_view>

#include "moat/audit_record.h"
#include "moat/status.h"

namespace moat::audit {

// prev_hash of the first record in a chain.
inline const std::string kGenesisHash(64, '0');

// Lowercase hex of `bytes`.
std::string HexEncode(std::string_view bytes);
// Decodes lowercase/uppercase hex; InvalidArgument on odd length or a non-hex character.
StatusOr<std::string> HexDecode(std::string_view hex);

// Lowercase hex SHA-256 of `data` (libsodium crypto_hash_sha256).
std::string Sha256Hex(std::string_view data);

// The canonical encoding described above. Uses record.prev_hash as is.
std::string CanonicalEncoding(const AuditRecord& record);
// Lowercase hex SHA-256 of CanonicalEncoding(record).
std::string ComputeRecordHash(const AuditRecord& record);

// The message a checkpoint's Ed25519 signature covers.
std::string CheckpointMessage(int64_t seq, int64_t time_ns, std::string_view record_hash);

}  // namespace moat::audit
