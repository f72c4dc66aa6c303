#include "store/risk_lists.h"

#include <utility>

#include "common/sqlite.h"

namespace moat::store {

RiskLists::RiskLists(std::unique_ptr<moat::SqliteDb> db, const moat::Clock* clock)
    : db_(std::move(db)), clock_(clock) {}

RiskLists::~RiskLists() = default;

moat::StatusOr<std::unique_ptr<RiskLists>> RiskLists::Open(const std::string& db_path, const moat::Clock* clock) {
  MOAT_ASSIGN_OR_RETURN(std::unique_ptr<moat::SqliteDb> db,
                        moat::SqliteDb::Open(db_path, moat::SqliteDb::Mode::kReadWriteCreate));
  moat::Status created = db->Exec(
      "PRAGMA journal_mode=WAL;"
      "CREATE TABLE IF NOT EXISTS risk_lists (account_id TEXT PRIMARY KEY, entry TEXT NOT NULL "
      "CHECK (entry IN ('allow','deny')), note TEXT NOT NULL DEFAULT '', updated_ns INTEGER NOT NULL);");
  if (!created.ok()) return moat::InternalError("cannot create risk_lists: " + created.message());
  return std::unique_ptr<RiskLists>(new RiskLists(std::move(db), clock));
}

moat::Status RiskLists::Set(const std::string& account_id, const std::string& entry, const std::string& note) {
  if (entry != "allow" && entry != "deny" && entry != "none")
    return moat::InvalidArgumentError("list entry must be allow, deny or none, got \"" + entry + "\"");
  std::lock_guard lock(mu_);
  const char* sql = entry == "none"
      ? "DELETE FROM risk_lists WHERE account_id = ?1"
      : "INSERT INTO risk_lists (account_id, entry, note, updated_ns) VALUES (?1, ?2, ?3, ?4) "
        "ON CONFLICT(account_id) DO UPDATE SET entry = excluded.entry, note = excluded.note, "
        "updated_ns = excluded.updated_ns";
  MOAT_ASSIGN_OR_RETURN(moat::SqliteStmt st, db_->Prepare(sql));
  st.BindText(1, account_id);
  if (entry != "none") {
    st.BindText(2, entry);
    st.BindText(3, note);
    st.BindInt64(4, clock_->NowNanos());
  }
  moat::Status updated = st.Run();
  if (!updated.ok()) return moat::InternalError("update risk_lists: " + updated.message());
  return moat::Status::Ok();
}

moat::StatusOr<std::map<std::string, std::string>> RiskLists::All() const {
  std::lock_guard lock(mu_);
  MOAT_ASSIGN_OR_RETURN(moat::SqliteStmt st, db_->Prepare("SELECT account_id, entry FROM risk_lists"));
  std::map<std::string, std::string> out;
  for (;;) {
    MOAT_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    out[st.ColumnText(0)] = st.ColumnText(1);
  }
  return out;
}

}  // namespace moat::store
