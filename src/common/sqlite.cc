#include "common/sqlite.h"

#include <sys/stat.h>

namespace moat {

SqliteStmt& SqliteStmt::operator=(SqliteStmt&& other) noexcept {
  if (this != &other) {
    sqlite3_finalize(stmt_);
    stmt_ = other.stmt_;
    other.stmt_ = nullptr;
  }
  return *this;
}

SqliteStmt::~SqliteStmt() { sqlite3_finalize(stmt_); }

void SqliteStmt::Reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

void SqliteStmt::BindText(int index, std::string_view s) {
  sqlite3_bind_text64(stmt_, index, s.data(), s.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
}

void SqliteStmt::BindBlob(int index, std::string_view s) {
  sqlite3_bind_blob64(stmt_, index, s.data(), s.size(), SQLITE_TRANSIENT);
}

StatusOr<bool> SqliteStmt::Step() {
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  sqlite3* db = sqlite3_db_handle(stmt_);
  std::string message = std::string("sqlite step: ") + sqlite3_errmsg(db);
  if ((rc & 0xff) == SQLITE_CONSTRAINT) return AlreadyExistsError(std::move(message));
  return InternalError(std::move(message));
}

Status SqliteStmt::Run() {
  MOAT_ASSIGN_OR_RETURN(bool row, Step());
  (void)row;
  return Status::Ok();
}

std::string SqliteStmt::ColumnText(int col) const {
  // Read as a blob so bytes come back exactly as bound, whatever the declared type.
  const void* p = sqlite3_column_blob(stmt_, col);
  int n = sqlite3_column_bytes(stmt_, col);
  if (p == nullptr || n <= 0) return std::string();
  return std::string(static_cast<const char*>(p), static_cast<size_t>(n));
}

StatusOr<std::unique_ptr<SqliteDb>> SqliteDb::Open(const std::string& path, Mode mode,
                                                   int busy_timeout_ms) {
  int flags = SQLITE_OPEN_NOMUTEX;
  if (mode == Mode::kReadOnly) {
    struct stat st;
    if (stat(path.c_str(), &st) != 0) return NotFoundError("database not found: " + path);
    flags |= SQLITE_OPEN_READONLY;
  } else {
    flags |= SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
  }
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &db, flags, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close(db);
    return UnavailableError("cannot open database " + path + ": " + msg);
  }
  sqlite3_busy_timeout(db, busy_timeout_ms);
  return std::unique_ptr<SqliteDb>(new SqliteDb(db));
}

SqliteDb::~SqliteDb() { sqlite3_close_v2(db_); }

Status SqliteDb::Exec(const std::string& sql) {
  char* err = nullptr;
  int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errstr(rc);
    sqlite3_free(err);
    return InternalError("sqlite exec: " + msg);
  }
  return Status::Ok();
}

StatusOr<SqliteStmt> SqliteDb::Prepare(const std::string& sql) {
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v3(db_, sql.c_str(), static_cast<int>(sql.size()),
                              SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
  if (rc != SQLITE_OK) return Error("sqlite prepare");
  return SqliteStmt(stmt);
}

Status SqliteDb::Error(std::string_view context) const {
  return InternalError(std::string(context) + ": " + sqlite3_errmsg(db_));
}

StatusOr<SqliteTransaction> SqliteTransaction::Begin(SqliteDb& db, Kind kind) {
  MOAT_RETURN_IF_ERROR(db.Exec(kind == Kind::kImmediate ? "BEGIN IMMEDIATE" : "BEGIN"));
  return SqliteTransaction(&db);
}

SqliteTransaction::~SqliteTransaction() {
  // Nothing to report to: a failed rollback leaves SQLite to roll back when the connection
  // closes or the next BEGIN fails loudly.
  if (db_ != nullptr) (void)db_->Exec("ROLLBACK");
}

Status SqliteTransaction::Commit() {
  MOAT_RETURN_IF_ERROR(db_->Exec("COMMIT"));
  db_ = nullptr;
  return Status::Ok();
}

}  // namespace moat
