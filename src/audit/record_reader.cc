#include "audit/record_reader.h"

#include "audit/audit_schema.h"

namespace moat::audit {

StatusOr<AuditRecordReader> AuditRecordReader::Open(const std::string& db_path, int64_t since_ns) {
  MOAT_ASSIGN_OR_RETURN(auto db, SqliteDb::Open(db_path, SqliteDb::Mode::kReadOnly));
  MOAT_ASSIGN_OR_RETURN(std::string select, SelectRecordsSqlFor(*db));
  MOAT_ASSIGN_OR_RETURN(SqliteStmt rows, db->Prepare(select + "WHERE time_ns >= ? ORDER BY seq"));
  rows.BindInt64(1, since_ns);
  return AuditRecordReader(std::move(db), std::move(rows));
}

StatusOr<int64_t> AuditRecordReader::CountRecords() {
  MOAT_ASSIGN_OR_RETURN(SqliteStmt count, db_->Prepare("SELECT COUNT(*) FROM records"));
  MOAT_ASSIGN_OR_RETURN(bool row, count.Step());
  return row ? count.ColumnInt64(0) : 0;
}

StatusOr<bool> AuditRecordReader::Next(AuditRecord* out) {
  MOAT_ASSIGN_OR_RETURN(bool row, rows_.Step());
  if (!row) return false;
  *out = ReadRecord(rows_);
  return true;
}

}  // namespace moat::audit
