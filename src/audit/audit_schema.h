#pragma once
// The audit database schema (tables `records`, `checkpoints`, `audit_meta`) and the one mapping
// between an AuditRecord and a `records` row, shared by the writer, verifier and exporter.

#include <string>

#include "common/sqlite.h"
#include "moat/audit_record.h"
#include "moat/status.h"

namespace moat::audit {

// Schema version stored in audit_meta('schema_version'). 2 added records.model_attestation.
inline constexpr int kSchemaVersion = 2;

// Creates the tables if missing and migrates a database of an older version (adds the columns
// it lacks, with '' in its existing rows, whose hashes do not change). Idempotent. The writer
// calls it; readers never change the file and read an old one through SelectRecordsSqlFor.
Status CreateSchema(SqliteDb& db);

// INSERT of one full record (every AuditRecord field, seq first); bind with BindRecord.
std::string InsertRecordSql();
// Binds every field of `record` to a statement prepared from InsertRecordSql().
void BindRecord(SqliteStmt& stmt, const AuditRecord& record);

// "SELECT <every record column> FROM records " (note the trailing space): append a WHERE /
// ORDER BY clause, then read rows with ReadRecord.
// Requires the current schema (a database the writer has opened since it was migrated).
std::string SelectRecordsSql();
// The same for a database of any version: a column it lacks reads as ''. Errors as Prepare.
StatusOr<std::string> SelectRecordsSqlFor(SqliteDb& db);
// Reads the current row of a statement prepared from SelectRecordsSql(). When `problem` is given
// it is set to a description of the first column not stored the way the writer stores it (a
// TEXT in an INTEGER column, stream not 0/1, http_status out of int range), else left empty;
// such a row could read back as values that still hash correctly, so the verifier rejects it.
AuditRecord ReadRecord(const SqliteStmt& stmt, std::string* problem = nullptr);

}  // namespace moat::audit
