#pragma once
// Readers of historical request logs for the offline audit (`moat audit scan`): moat's own audit
// export JSONL, the documented generic JSONL format (docs/offline-audit.md), and the audit
// SQLite database itself. Each record becomes the detect::RequestEvent the gateway would have
// built, so the same DetectionEngine can judge it.

#include <boost/json/value.hpp>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>

#include "moat/audit_record.h"
#include "moat/detect_engine.h"
#include "moat/status.h"

namespace moat::forensics {

// Which of the line formats a record was read as.
enum class LogFormat { kAuditExport, kGeneric };
// What the reader should accept: auto-detect per line, or force one format.
enum class FormatChoice { kAuto, kAuditExport, kGeneric };

// One request of the log.
struct LogRecord {
  detect::RequestEvent event;
  LogFormat format = LogFormat::kGeneric;
  bool has_content = true;    // false: prompt text hashed or dropped (retention), no body
  std::string logged_action;  // the gateway's action at the time (audit logs), else ""
  uint64_t line = 0;          // 1-based line number (JSONL) or seq (store)
};

// Parses an RFC 3339 timestamp ("2024-06-03T12:00:00Z", fractional seconds and +hh:mm offsets
// allowed, 't'/'z'/' ' accepted) into ns since the epoch; InvalidArgument otherwise.
StatusOr<int64_t> ParseRfc3339(std::string_view s);
// A generic-format "time" value: a number (seconds below 1e11, milliseconds below 1e14,
// microseconds below 1e17, else nanoseconds; fractions allowed) or an RFC 3339 string.
StatusOr<int64_t> ParseTimeValue(const boost::json::value& v);

// Rebuilds an OpenAI request body from what the audit log keeps: the gateway's prompt text
// ("role: content" lines for chat, see PromptText in src/server/openai.cc; the raw prompt for
// completions), the model and the sampling parameters JSON object.
std::string RebuildBody(std::string_view endpoint, std::string_view model,
                        std::string_view params_json, std::string_view prompt_text,
                        bool has_content);

// True when an audit record's prompt text is usable content (retention "full" and not empty).
bool AuditRecordHasContent(const AuditRecord& record);
// The request an audit record describes. Records without an account are still converted (the
// caller decides to skip them); admin records (audit/admin_record.h) come back without an
// account, since they are no request of the account they name.
LogRecord FromAuditRecord(const AuditRecord& record);

// Parses one JSONL line (auto-detected or forced format); InvalidArgument with a short reason
// for malformed lines or lines missing the required fields.
StatusOr<LogRecord> ParseLogLine(std::string_view line, FormatChoice choice = FormatChoice::kAuto);

// A source of records in log order.
class LogSource {
 public:
  virtual ~LogSource() = default;
  // Reads the next record into *out. Returns true when one was read, false at the end, and
  // InvalidArgument (with the line number in the message and in *bad_line) for a bad line, after
  // which reading may continue; other errors are fatal.
  virtual StatusOr<bool> Next(LogRecord* out, uint64_t* bad_line) = 0;
  // Bytes consumed so far and the total (0 when unknown), for progress.
  virtual uint64_t bytes_read() const = 0;
  virtual uint64_t bytes_total() const = 0;
  virtual std::string name() const = 0;
};

// Streams a JSONL file line by line ("-" reads stdin). NotFound when it cannot be opened.
StatusOr<std::unique_ptr<LogSource>> OpenJsonlSource(const std::string& path,
                                                     FormatChoice choice = FormatChoice::kAuto);
// Reads the `records` table of an audit database read-only, in seq order, with one cursor.
// NotFound for a missing database.
StatusOr<std::unique_ptr<LogSource>> OpenAuditStoreSource(const std::string& db_path);

}  // namespace moat::forensics
