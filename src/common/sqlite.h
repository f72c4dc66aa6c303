#pragma once
// SqliteDb / SqliteStmt / SqliteTransaction: the one way moat talks to SQLite (audit log,
// account store, risk lists, offline readers). RAII owners of a connection, a prepared
// statement and a transaction; every failure is a Status naming what was attempted.
//
// Thread-safety: none. A connection is opened without SQLite's own mutex (SQLITE_OPEN_NOMUTEX),
// so each SqliteDb, and every statement and transaction made from it, must be used by one
// thread at a time; owners that share one across threads hold their own mutex around it.

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "moat/status.h"

namespace moat {

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
  void BindNull(int index) { sqlite3_bind_null(stmt_, index); }
  // Binds the bytes of `s` as TEXT (no UTF-8 validation; bytes round-trip exactly).
  void BindText(int index, std::string_view s);
  // Binds the bytes of `s` as a BLOB.
  void BindBlob(int index, std::string_view s);

  // Steps once. Returns true when a row is available, false when done; errors as Internal, or
  // AlreadyExists when the step violated a constraint (UNIQUE, PRIMARY KEY, ...).
  StatusOr<bool> Step();
  // Steps a statement that returns no rows (errors as Step).
  Status Run();

  int64_t ColumnInt64(int col) const { return sqlite3_column_int64(stmt_, col); }
  double ColumnDouble(int col) const { return sqlite3_column_double(stmt_, col); }
  // The column's bytes exactly as stored, TEXT or BLOB (NULL -> "").
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

  // Opens `path` with a busy timeout of `busy_timeout_ms`. Returns NotFound when a read-only
  // open finds no file, Unavailable when SQLite cannot open it.
  static StatusOr<std::unique_ptr<SqliteDb>> Open(const std::string& path, Mode mode,
                                                  int busy_timeout_ms = 5000);
  ~SqliteDb();
  SqliteDb(const SqliteDb&) = delete;
  SqliteDb& operator=(const SqliteDb&) = delete;

  // Runs one or more statements that return no rows.
  Status Exec(const std::string& sql);
  // Prepares one statement for repeated use.
  StatusOr<SqliteStmt> Prepare(const std::string& sql);
  // Rows changed by the last INSERT, UPDATE or DELETE on this connection.
  int64_t changes() const { return sqlite3_changes64(db_); }
  sqlite3* handle() const { return db_; }
  // The connection's last error as Internal "<context>: <sqlite message>".
  Status Error(std::string_view context) const;

 private:
  explicit SqliteDb(sqlite3* db) : db_(db) {}
  sqlite3* db_;
};

// A transaction that rolls back on scope exit unless Commit() succeeded.
class SqliteTransaction {
 public:
  enum class Kind {
    kDeferred,   // BEGIN: takes locks as statements need them (consistent reads)
    kImmediate,  // BEGIN IMMEDIATE: takes the write lock at once (read-then-write)
  };
  // Begins a transaction on `db`, which must outlive it. Errors as SqliteDb::Exec.
  static StatusOr<SqliteTransaction> Begin(SqliteDb& db, Kind kind);
  SqliteTransaction(SqliteTransaction&& other) noexcept : db_(other.db_) { other.db_ = nullptr; }
  SqliteTransaction& operator=(SqliteTransaction&&) = delete;
  SqliteTransaction(const SqliteTransaction&) = delete;
  SqliteTransaction& operator=(const SqliteTransaction&) = delete;
  // Rolls back when the transaction is still open.
  ~SqliteTransaction();

  // Commits. On error the transaction stays open and is rolled back on scope exit.
  Status Commit();

 private:
  explicit SqliteTransaction(SqliteDb* db) : db_(db) {}
  SqliteDb* db_;  // null once committed or moved from
};

}  // namespace moat
