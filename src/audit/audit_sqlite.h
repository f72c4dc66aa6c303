#pragma once
// SqliteDb / SqliteStmt: minimal RAII owners of a sqlite3 connection and a prepared statement,
// used by the audit writer, verifier and exporter. Not thread-safe: one owner thread each.

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "moat/status.h"

namespace moat::audit {

// A prepared statement. Column/bind indexes follow SQLite (bind from 1, columns from 0).
class SqliteStmt {
 public:
  SqliteStmt() = default;
  explicit SqliteStmt(sqlite3_stmt* stmt) : stmt_(stmt) {}
  SqliteStmt(SqliteStmt&& other) noexcept : stmt_(other.stmt_) { other.stmt_ = nullptr; }
  SqliteStmt& operator=(SqliteStmt&& other) noexcept;
  SqliteStmt(const SqliteStmt&) = delete;
  SqliteStmt& operator=(const SqliteStmt&) = delete;
  ~SqliteStmt();

  // Clears bindings and resets the statement so it can be stepped again.
  void Reset();
  void BindInt64(int index, int64_t v) { sqlite3_bind_int64(stmt_, index, v); }
  void BindDouble(int index, double v) { sqlite3_bind_double(stmt_, index, v); }
  // Binds the bytes of `s` as TEXT (no UTF-8 validation; bytes round-trip exactly).
  void BindText(int index, std::string_view s);

  // Steps once. Returns true when a row is available, false when done; errors as Status.
  StatusOr<bool> Step();
  // Steps a statement that returns no rows.
  Status Run();

  int64_t ColumnInt64(int col) const { return sqlite3_column_int64(stmt_, col); }
  double ColumnDouble(int col) const { return sqlite3_column_double(stmt_, col); }
  // The column's bytes exactly as stored (NULL -> "").
  std::string ColumnText(int col) const;
  bool ColumnIsNull(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }

  sqlite3_stmt* get() const { return stmt_; }

 private:
  sqlite3_stmt* stmt_ = nullptr;
};

// An open database connection.
class SqliteDb {
 public:
  enum class Mode { kReadWriteCreate, kReadOnly };

  // Opens `path`. Returns NotFound when a read-only open finds no file.
  static StatusOr<std::unique_ptr<SqliteDb>> Open(const std::string& path, Mode mode);
  ~SqliteDb();
  SqliteDb(const SqliteDb&) = delete;
  SqliteDb& operator=(const SqliteDb&) = delete;

  // Runs one or more statements that return no rows.
  Status Exec(const std::string& sql);
  StatusOr<SqliteStmt> Prepare(const std::string& sql);
  sqlite3* handle() const { return db_; }
  // The connection's last error as "<context>: <sqlite message>".
  Status Error(std::string_view context) const;

 private:
  explicit SqliteDb(sqlite3* db) : db_(db) {}
  sqlite3* db_;
};

}  // namespace moat::audit
