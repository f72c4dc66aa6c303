#pragma once
// Audit export (`moat audit export --format jsonl`) and the text-retention rules that decide
// how much prompt/completion text a record keeps.

#include <boost/json/object.hpp>
#include <cstdint>
#include <functional>
#include <vector>
#include <ostream>
#include <string>
#include <string_view>

#include "moat/audit_record.h"
#include "moat/status.h"

namespace moat::audit {

// One record as a JSON object with every AuditRecord field under its C++ name (seq, prev_hash,
// record_hash, time_ns, ..., completion_text). Numbers are JSON numbers, stream a boolean, the
// *_json fields strings holding the stored JSON text verbatim. A string field that is not valid
// UTF-8 is written with each invalid byte replaced by U+FFFD, and its exact bytes are added as
// "<field>_base64" (standard alphabet, padded), so the export never loses data.
boost::json::object RecordToJson(const AuditRecord& record);

// Streams every record with time_ns >= since_ns, in chain (seq) order, to `out` as JSON Lines
// (one RecordToJson object per line). Reads with a cursor over one snapshot; memory use does
// not grow with the log. Returns NotFound for a missing database, Internal when the database
// cannot be read or `out` fails.
Status ExportJsonl(const std::string& db_path, int64_t since_ns, std::ostream& out);

// Calls `fn` with every record whose account_id is in `account_ids` (every record when it is
// empty), in chain (seq) order, reading read-only with one cursor. Stops at the first error of
// `fn` and returns it; NotFound for a missing database, Internal when it cannot be read.
Status ForEachAccountRecord(const std::string& db_path, const std::vector<std::string>& account_ids,
                            const std::function<Status(const AuditRecord&)>& fn);

// The text to store for `text` under `retention`: the text itself (kFull), its lowercase hex
// SHA-256 (kHashOnly) or "" (kNone).
std::string ApplyRetention(TextRetention retention, std::string_view text);
// "full" | "hash-only" | "none"; InvalidArgument otherwise.
StatusOr<TextRetention> ParseRetention(std::string_view s);
// The inverse of ParseRetention (the value for AuditRecord::retention).
std::string_view RetentionName(TextRetention retention);

// True when `s` is well-formed UTF-8 (no overlong forms, surrogates or code points > U+10FFFF).
bool IsValidUtf8(std::string_view s);

}  // namespace moat::audit
