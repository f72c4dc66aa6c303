#pragma once
// The audit database schema (tables `records`, `checkpoints`, `audit_meta`) and the one mapping
// between an AuditRecord and a `records` row, shared by the writer, verifier and exporter.

#include <string>

#include "common/sqlite.h"
#include "moat/audit_record.h"
#include "moat/status.h"

namespace moat::audit {

// Schema version stored in audit_meta('schema_version').
inline constexpr int kSchemaVersion = 1;

// Creates the tables if missing. Idempotent.
Status CreateSchema(SqliteDb& db);

// INSERT of one full record (every AuditRecord field, seq first); bind with BindRecord.
std::string InsertRecordSql();
// Binds every field of `record` to a statement prepared from InsertRecordSql().
void BindRecord(SqliteStmt& stmt, const AuditRecord& record);

// "SELECT <every record column> FROM records " (note the trailing space): append a WHERE /
// ORDER BY clause, then read rows with ReadRecord.
std::string SelectRecordsSql();
// Reads the current row of a statement prepared from SelectRecordsSql(). When `problem` is given
// it is set to a description of the first column not stored the way the writer stores it (a
// TEXT in an INTEGER column, stream not 0/1, http_status out of int range), else left empty;
// such a row could read back as values that still hash correctly, so the verifier rejects it.
AuditRecord ReadRecord(const SqliteStmt& stmt, std::string* problem = nullptr);

}  // namespace moat::audit
