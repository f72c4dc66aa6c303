#pragma once
// RiskLists: the manual allow/deny lists of the detection policy, persisted in the accounts
// database (table risk_lists). `allow` overrides every detection verdict for an account;
// `deny` blocks it. Written by `moat account allow|deny|unlist` and the admin API; the gateway
// reloads them when the database changes. Thread-safe (one connection, used under a mutex).

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "moat/clock.h"
#include "moat/status.h"

namespace moat {
class SqliteDb;
}  // namespace moat

namespace moat::store {

class RiskLists {
 public:
  static moat::StatusOr<std::unique_ptr<RiskLists>> Open(const std::string& db_path, const moat::Clock* clock);
  ~RiskLists();
  // entry: "allow" | "deny" | "none" (removes the account from both lists).
  moat::Status Set(const std::string& account_id, const std::string& entry, const std::string& note);
  // account id -> "allow" | "deny".
  moat::StatusOr<std::map<std::string, std::string>> All() const;

 private:
  RiskLists(std::unique_ptr<moat::SqliteDb> db, const moat::Clock* clock);
  mutable std::mutex mu_;                      // serialises every use of db_
  const std::unique_ptr<moat::SqliteDb> db_;  // GUARDED_BY(mu_)
  const moat::Clock* clock_;
};

}  // namespace moat::store
