#include "audit/audit_schema.h"

#include <string_view>

namespace moat::audit {
namespace {

// Column order shared by InsertRecordSql, BindRecord, SelectRecordsSql and ReadRecord.
constexpr const char* kColumns =
    "seq, prev_hash, record_hash, time_ns, request_id, account_id, org_id, end_user, key_id, "
    "client_ip, user_agent, endpoint, model, params_json, stream, prompt_tokens, "
    "completion_tokens, latency_ms, http_status, error_code, verdict, action, reasons_json, "
    "watermark_key_id, retention, prompt_text, completion_text, model_attestation";
constexpr int kColumnCount = 28;

// The columns added after schema version 1, with the definition ALTER TABLE adds them with. A
// row written before its column existed reads the default ('').
struct AddedColumn {
  const char* name;
  const char* definition;
};
constexpr AddedColumn kAddedColumns[] = {
    {"model_attestation", "model_attestation TEXT NOT NULL DEFAULT ''"},  // version 2
};

// Whether the records table has a column named `name`.
StatusOr<bool> HasRecordsColumn(SqliteDb& db, std::string_view name) {
  MOAT_ASSIGN_OR_RETURN(SqliteStmt info, db.Prepare("PRAGMA table_info(records)"));
  for (;;) {
    MOAT_ASSIGN_OR_RETURN(bool row, info.Step());
    if (!row) return false;
    if (info.ColumnText(1) == name) return true;
  }
}

// Brings a database created by an older version up to kSchemaVersion: adds the missing columns
// (existing rows keep their values and their hashes) and records the version. One write
// transaction, so two gateways opening the same old file do not both add a column.
Status MigrateSchema(SqliteDb& db) {
  MOAT_ASSIGN_OR_RETURN(SqliteTransaction tx,
                        SqliteTransaction::Begin(db, SqliteTransaction::Kind::kImmediate));
  for (const AddedColumn& column : kAddedColumns) {
    MOAT_ASSIGN_OR_RETURN(bool present, HasRecordsColumn(db, column.name));
    if (!present) {
      MOAT_RETURN_IF_ERROR(
          db.Exec(std::string("ALTER TABLE records ADD COLUMN ") + column.definition));
    }
  }
  // Never lowers the version a newer gateway wrote.
  const std::string version = std::to_string(kSchemaVersion);
  MOAT_RETURN_IF_ERROR(db.Exec("UPDATE audit_meta SET value = '" + version +
                               "' WHERE key = 'schema_version' AND CAST(value AS INTEGER) < " +
                               version));
  return tx.Commit();
}

}  // namespace

Status CreateSchema(SqliteDb& db) {
  MOAT_RETURN_IF_ERROR(
      db.Exec("CREATE TABLE IF NOT EXISTS records ("
              "  seq INTEGER PRIMARY KEY,"
              "  prev_hash TEXT NOT NULL,"
              "  record_hash TEXT NOT NULL,"
              "  time_ns INTEGER NOT NULL,"
              "  request_id TEXT NOT NULL,"
              "  account_id TEXT NOT NULL,"
              "  org_id TEXT NOT NULL,"
              "  end_user TEXT NOT NULL,"
              "  key_id TEXT NOT NULL,"
              "  client_ip TEXT NOT NULL,"
              "  user_agent TEXT NOT NULL,"
              "  endpoint TEXT NOT NULL,"
              "  model TEXT NOT NULL,"
              "  params_json TEXT NOT NULL,"
              "  stream INTEGER NOT NULL,"
              "  prompt_tokens INTEGER NOT NULL,"
              "  completion_tokens INTEGER NOT NULL,"
              "  latency_ms REAL NOT NULL,"
              "  http_status INTEGER NOT NULL,"
              "  error_code TEXT NOT NULL,"
              "  verdict TEXT NOT NULL,"
              "  action TEXT NOT NULL,"
              "  reasons_json TEXT NOT NULL,"
              "  watermark_key_id TEXT NOT NULL,"
              "  retention TEXT NOT NULL,"
              "  prompt_text TEXT NOT NULL,"
              "  completion_text TEXT NOT NULL,"
              "  model_attestation TEXT NOT NULL DEFAULT '');"
              "CREATE TABLE IF NOT EXISTS checkpoints ("
              "  seq INTEGER PRIMARY KEY,"
              "  record_hash TEXT NOT NULL,"
              "  time_ns INTEGER NOT NULL,"
              "  signature TEXT NOT NULL);"
              "CREATE TABLE IF NOT EXISTS audit_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
              "INSERT OR IGNORE INTO audit_meta(key, value) VALUES ('schema_version', '" +
              std::to_string(kSchemaVersion) + "');"));
  return MigrateSchema(db);
}

std::string InsertRecordSql() {
  std::string sql = std::string("INSERT INTO records (") + kColumns + ") VALUES (";
  for (int i = 0; i < kColumnCount; ++i) sql += (i == 0 ? "?" : ", ?");
  sql += ")";
  return sql;
}

void BindRecord(SqliteStmt& s, const AuditRecord& r) {
  int i = 1;
  s.BindInt64(i++, r.seq);
  s.BindText(i++, r.prev_hash);
  s.BindText(i++, r.record_hash);
  s.BindInt64(i++, r.time_ns);
  s.BindText(i++, r.request_id);
  s.BindText(i++, r.account_id);
  s.BindText(i++, r.org_id);
  s.BindText(i++, r.end_user);
  s.BindText(i++, r.key_id);
  s.BindText(i++, r.client_ip);
  s.BindText(i++, r.user_agent);
  s.BindText(i++, r.endpoint);
  s.BindText(i++, r.model);
  s.BindText(i++, r.params_json);
  s.BindInt64(i++, r.stream ? 1 : 0);
  s.BindInt64(i++, r.prompt_tokens);
  s.BindInt64(i++, r.completion_tokens);
  s.BindDouble(i++, r.latency_ms);
  s.BindInt64(i++, r.http_status);
  s.BindText(i++, r.error_code);
  s.BindText(i++, r.verdict);
  s.BindText(i++, r.action);
  s.BindText(i++, r.reasons_json);
  s.BindText(i++, r.watermark_key_id);
  s.BindText(i++, r.retention);
  s.BindText(i++, r.prompt_text);
  s.BindText(i++, r.completion_text);
  s.BindText(i++, r.model_attestation);
}

std::string SelectRecordsSql() { return std::string("SELECT ") + kColumns + " FROM records "; }

StatusOr<std::string> SelectRecordsSqlFor(SqliteDb& db) {
  std::string columns = kColumns;
  for (const AddedColumn& column : kAddedColumns) {
    MOAT_ASSIGN_OR_RETURN(bool present, HasRecordsColumn(db, column.name));
    if (present) continue;
    const std::string name = column.name;
    columns.replace(columns.find(name), name.size(), "'' AS " + name);
  }
  return "SELECT " + columns + " FROM records ";
}

namespace {

// Describes the first column of the current row whose storage differs from what BindRecord
// writes, or returns "".
std::string CheckStorage(const SqliteStmt& s) {
  static constexpr const char* kNames[kColumnCount] = {"seq",
                                                       "prev_hash",
                                                       "record_hash",
                                                       "time_ns",
                                                       "request_id",
                                                       "account_id",
                                                       "org_id",
                                                       "end_user",
                                                       "key_id",
                                                       "client_ip",
                                                       "user_agent",
                                                       "endpoint",
                                                       "model",
                                                       "params_json",
                                                       "stream",
                                                       "prompt_tokens",
                                                       "completion_tokens",
                                                       "latency_ms",
                                                       "http_status",
                                                       "error_code",
                                                       "verdict",
                                                       "action",
                                                       "reasons_json",
                                                       "watermark_key_id",
                                                       "retention",
                                                       "prompt_text",
                                                       "completion_text",
                                                       "model_attestation"};
  for (int c = 0; c < kColumnCount; ++c) {
    int type = sqlite3_column_type(s.get(), c);
    std::string_view name = kNames[c];
    bool is_int = name == "seq" || name == "time_ns" || name == "stream" ||
                  name == "prompt_tokens" || name == "completion_tokens" || name == "http_status";
    bool ok = is_int                 ? type == SQLITE_INTEGER
              : name == "latency_ms" ? type == SQLITE_FLOAT
                                     : (type == SQLITE_TEXT || type == SQLITE_BLOB);
    if (!ok) return "column " + std::string(name) + " has an unexpected storage type";
  }
  int64_t stream = s.ColumnInt64(14);
  if (stream != 0 && stream != 1) return "column stream is not 0 or 1";
  int64_t status = s.ColumnInt64(18);
  if (status < INT32_MIN || status > INT32_MAX) return "column http_status is out of range";
  return "";
}

}  // namespace

AuditRecord ReadRecord(const SqliteStmt& s, std::string* problem) {
  if (problem != nullptr) *problem = CheckStorage(s);
  AuditRecord r;
  int c = 0;
  r.seq = s.ColumnInt64(c++);
  r.prev_hash = s.ColumnText(c++);
  r.record_hash = s.ColumnText(c++);
  r.time_ns = s.ColumnInt64(c++);
  r.request_id = s.ColumnText(c++);
  r.account_id = s.ColumnText(c++);
  r.org_id = s.ColumnText(c++);
  r.end_user = s.ColumnText(c++);
  r.key_id = s.ColumnText(c++);
  r.client_ip = s.ColumnText(c++);
  r.user_agent = s.ColumnText(c++);
  r.endpoint = s.ColumnText(c++);
  r.model = s.ColumnText(c++);
  r.params_json = s.ColumnText(c++);
  r.stream = s.ColumnInt64(c++) != 0;
  r.prompt_tokens = s.ColumnInt64(c++);
  r.completion_tokens = s.ColumnInt64(c++);
  r.latency_ms = s.ColumnDouble(c++);
  r.http_status = static_cast<int>(s.ColumnInt64(c++));
  r.error_code = s.ColumnText(c++);
  r.verdict = s.ColumnText(c++);
  r.action = s.ColumnText(c++);
  r.reasons_json = s.ColumnText(c++);
  r.watermark_key_id = s.ColumnText(c++);
  r.retention = s.ColumnText(c++);
  r.prompt_text = s.ColumnText(c++);
  r.completion_text = s.ColumnText(c++);
  r.model_attestation = s.ColumnText(c++);
  return r;
}

}  // namespace moat::audit
