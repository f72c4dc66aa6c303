#include "store/risk_lists.h"

#include <sqlite3.h>

#include <mutex>

namespace moat::store {
namespace {
std::mutex g_mu;  // one connection per RiskLists; serialise its use across threads

moat::Status SqlError(sqlite3* db, const std::string& what) {
  return moat::InternalError(what + ": " + sqlite3_errmsg(db));
}
}  // namespace

moat::StatusOr<std::unique_ptr<RiskLists>> RiskLists::Open(const std::string& db_path, const moat::Clock* clock) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                      nullptr) != SQLITE_OK) {
    moat::Status s = moat::UnavailableError("cannot open " + db_path + ": " + sqlite3_errmsg(db));
    sqlite3_close(db);
    return s;
  }
  sqlite3_busy_timeout(db, 5000);
  const char* schema =
      "PRAGMA journal_mode=WAL;"
      "CREATE TABLE IF NOT EXISTS risk_lists (account_id TEXT PRIMARY KEY, entry TEXT NOT NULL "
      "CHECK (entry IN ('allow','deny')), note TEXT NOT NULL DEFAULT '', updated_ns INTEGER NOT NULL);";
  char* err = nullptr;
  if (sqlite3_exec(db, schema, nullptr, nullptr, &err) != SQLITE_OK) {
    moat::Status s = moat::InternalError(std::string("cannot create risk_lists: ") + (err ? err : "?"));
    sqlite3_free(err);
    sqlite3_close(db);
    return s;
  }
  return std::unique_ptr<RiskLists>(new RiskLists(db, clock));
}

RiskLists::~RiskLists() { sqlite3_close(db_); }

moat::Status RiskLists::Set(const std::string& account_id, const std::string& entry, const std::string& note) {
  if (entry != "allow" && entry != "deny" && entry != "none")
    return moat::InvalidArgumentError("list entry must be allow, deny or none, got \"" + entry + "\"");
  std::lock_guard lock(g_mu);
  sqlite3_stmt* st = nullptr;
  const char* sql = entry == "none"
      ? "DELETE FROM risk_lists WHERE account_id = ?1"
      : "INSERT INTO risk_lists (account_id, entry, note, updated_ns) VALUES (?1, ?2, ?3, ?4) "
        "ON CONFLICT(account_id) DO UPDATE SET entry = excluded.entry, note = excluded.note, "
        "updated_ns = excluded.updated_ns";
  if (sqlite3_prepare_v2(db_, sql, -1, &st, nullptr) != SQLITE_OK) return SqlError(db_, "prepare");
  sqlite3_bind_text(st, 1, account_id.c_str(), -1, SQLITE_TRANSIENT);
  if (entry != "none") {
    sqlite3_bind_text(st, 2, entry.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, note.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 4, clock_->NowNanos());
  }
  int rc = sqlite3_step(st);
  sqlite3_finalize(st);
  if (rc != SQLITE_DONE) return SqlError(db_, "update risk_lists");
  return moat::Status::Ok();
}

moat::StatusOr<std::map<std::string, std::string>> RiskLists::All() const {
  std::lock_guard lock(g_mu);
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(db_, "SELECT account_id, entry FROM risk_lists", -1, &st, nullptr) != SQLITE_OK)
    return SqlError(db_, "prepare");
  std::map<std::string, std::string> out;
  while (sqlite3_step(st) == SQLITE_ROW) {
    out[reinterpret_cast<const char*>(sqlite3_column_text(st, 0))] =
        reinterpret_cast<const char*>(sqlite3_column_text(st, 1));
  }
  sqlite3_finalize(st);
  return out;
}

}  // namespace moat::store
