#pragma once
// AuditRecordReader: the records of an audit database in chain (seq) order, for the offline
// readers (export, `moat audit scan`). They read through this class instead of writing SQL
// against the schema, so the schema stays private to src/audit.
//
// Opens the database read-only and never writes; a gateway may be appending at the same time
// (SQLite WAL: the reader sees the records committed when its first read began). Not
// thread-safe: one reader per thread.

#include <cstdint>
#include <limits>
#include <memory>
#include <string>

#include "common/sqlite.h"
#include "moat/audit_record.h"
#include "moat/status.h"

namespace moat::audit {

class AuditRecordReader {
 public:
  // Opens `db_path` positioned before its first record with time_ns >= `since_ns` (every record
  // by default). NotFound when the file does not exist, Unavailable when SQLite cannot open it,
  // Internal when it has no audit records table.
  static StatusOr<AuditRecordReader> Open(
      const std::string& db_path, int64_t since_ns = std::numeric_limits<int64_t>::min());

  // How many records the database holds, whatever `since_ns` (for progress reports).
  StatusOr<int64_t> CountRecords();

  // Reads the next record into *out and returns true; returns false after the last one.
  StatusOr<bool> Next(AuditRecord* out);

 private:
  AuditRecordReader(std::unique_ptr<SqliteDb> db, SqliteStmt rows)
      : db_(std::move(db)), rows_(std::move(rows)) {}

  std::unique_ptr<SqliteDb> db_;  // declared first: the statement is finalized before it closes
  SqliteStmt rows_;
};

}  // namespace moat::audit
