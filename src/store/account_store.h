#pragma once
// AccountStore: organisations, accounts (with a verification tier) and API keys, persisted in
// SQLite and served to the hot path from an immutable in-memory snapshot.
//
// API keys are shown once at creation and stored only as a keyed BLAKE2b hash
// (crypto_generichash keyed with a 32-byte server-side pepper), so a copy of the database alone
// lets nobody authenticate. Authenticate() hashes the presented key and looks the hash up in the
// snapshot; hashes are compared with sodium_memcmp (constant time).

#include <cstdint>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

#include "moat/clock.h"
#include "moat/status.h"

namespace moat {
class SqliteDb;
}  // namespace moat

namespace moat::store {

// An account's verification tier; rate limits and quotas depend on it.
enum class Tier { kUnverified, kVerified, kEnterprise };

// "unverified", "verified" or "enterprise".
std::string_view TierName(Tier tier);
// Inverse of TierName; InvalidArgument for anything else.
moat::StatusOr<Tier> ParseTier(std::string_view name);

// A group of accounts (a company, a team).
struct Organization {
  std::string id;  // "org_" + 12 hex
  std::string name;
  int64_t created_ns = 0;
};

// One customer account; owns API keys.
struct Account {
  std::string id;  // "acct_" + 12 hex
  std::string name;
  std::string org_id;  // "" when the account belongs to no organisation
  Tier tier = Tier::kUnverified;  // the tier in force (an expired verification already undone)
  int64_t created_ns = 0;
  bool disabled = false;
  // A verification for a period (AccountStore::VerifyUntil): `tier` holds until
  // tier_expires_ns, then the account is back to tier_after_expiry. 0: `tier` does not expire.
  int64_t tier_expires_ns = 0;
  Tier tier_after_expiry = Tier::kUnverified;
};

// The public facts about one API key (never the secret).
struct ApiKeyInfo {
  std::string key_id;  // "key_" + 12 hex; safe to show in listings and audit records
  std::string account_id;
  std::string label;
  int64_t created_ns = 0;
  int64_t revoked_ns = 0;  // 0 = active
};

// A freshly created key. `secret` ("sk-moat-...") is returned exactly once and never stored.
struct CreatedKey {
  ApiKeyInfo info;
  std::string secret;
};

// Who a request authenticated as.
struct Principal {
  Account account;
  std::string key_id;
};

// Prefix of every secret this store issues.
inline constexpr std::string_view kKeyPrefix = "sk-moat-";
// Length of the pepper (the key of the keyed hash) in bytes.
inline constexpr size_t kPepperBytes = 32;

// The store. All methods are thread-safe. Mutations write SQLite first and then rebuild the
// snapshot, so a successful mutation is visible to Authenticate() in this process on return;
// other processes see it after their RefreshIfChanged().
class AccountStore {
 public:
  // Opens (creating if needed) the SQLite database at `db_path` in WAL mode. `pepper` must be
  // kPepperBytes long (see LoadOrCreateSecret). `clock` must outlive the store.
  static moat::StatusOr<std::unique_ptr<AccountStore>> Open(const std::string& db_path,
                                                            std::string_view pepper,
                                                            const moat::Clock* clock);
  ~AccountStore();
  AccountStore(const AccountStore&) = delete;
  AccountStore& operator=(const AccountStore&) = delete;

  // Creates an organisation with a unique non-empty name; AlreadyExists if the name is taken.
  moat::StatusOr<Organization> CreateOrganization(const std::string& name);
  // Creates an account with a unique name (1..128 chars of [A-Za-z0-9._@+-], not starting with
  // "acct_"). `org_id` may be "" or must name an existing organisation (NotFound otherwise).
  moat::StatusOr<Account> CreateAccount(const std::string& name, const std::string& org_id,
                                        Tier tier);
  // Finds an account by id or by name; NotFound otherwise. Accounts are returned as they stand
  // now (Account::tier: an expired verification is already undone).
  moat::StatusOr<Account> GetAccount(const std::string& id_or_name) const;
  // All accounts, oldest first.
  std::vector<Account> ListAccounts() const;
  // All organisations, oldest first.
  std::vector<Organization> ListOrganizations() const;
  // Sets the account's tier for good (a verification's expiry is cleared). NotFound if the
  // account does not exist.
  moat::Status SetTier(const std::string& account_id, Tier tier);
  // Verifies the account for a period: `tier` holds until `expires_ns` (ns since the epoch,
  // later than now), then the account falls back to the tier it had before, i.e. its tier
  // without any verification still running (verifying again replaces the period, not that
  // tier). SetTier ends the period early. Returns the account as it was before and as it is
  // now (for the audit record). NotFound if missing, InvalidArgument for an expiry not in the
  // future.
  struct Verification {
    Account before;
    Account after;
  };
  moat::StatusOr<Verification> VerifyUntil(const std::string& account_id, Tier tier, int64_t expires_ns);
  // A disabled account's keys stop authenticating (they are not revoked). NotFound if missing.
  moat::Status SetDisabled(const std::string& account_id, bool disabled);
  // Issues a new key for an existing, enabled account (NotFound / FailedPrecondition otherwise).
  moat::StatusOr<CreatedKey> CreateKey(const std::string& account_id, const std::string& label);
  // Revokes a key; NotFound if there is no such key. Revoking twice is OK and keeps the first
  // revocation time.
  moat::Status RevokeKey(const std::string& key_id);
  // The account's keys (active and revoked), oldest first.
  std::vector<ApiKeyInfo> ListKeys(const std::string& account_id) const;

  // Hot path: no disk I/O, no lock held longer than a shared_ptr copy. Returns the principal for
  // an active key of an enabled account, Unauthenticated otherwise (the message never echoes the
  // key).
  moat::StatusOr<Principal> Authenticate(std::string_view presented_key) const;

  // Reloads the snapshot if another connection (e.g. the `moat` CLI) committed to the database
  // since the last load (PRAGMA data_version). One cheap query when nothing changed.
  moat::Status RefreshIfChanged();

  // Number of active keys in the snapshot (for stats and tests).
  size_t ActiveKeyCount() const;

 private:
  struct Snapshot;
  AccountStore(std::unique_ptr<moat::SqliteDb> db, std::string pepper, const moat::Clock* clock);

  moat::Status Init();
  // Adds the columns of newer versions to a database made by an older one. Requires db_mu_.
  moat::Status MigrateLocked();
  // Rebuilds the snapshot from the database. Requires db_mu_.
  moat::Status ReloadLocked();
  moat::StatusOr<int64_t> DataVersionLocked() const;
  std::shared_ptr<const Snapshot> snapshot() const;
  std::string KeyHash(std::string_view key) const;

  const std::unique_ptr<moat::SqliteDb> db_;  // used only under db_mu_
  const std::string pepper_;
  const moat::Clock* const clock_;

  mutable std::mutex db_mu_;  // serialises every use of db_
  int64_t data_version_ = -1;  // GUARDED_BY(db_mu_)

  mutable std::shared_mutex snap_mu_;         // held only to copy/swap snapshot_
  std::shared_ptr<const Snapshot> snapshot_;  // GUARDED_BY(snap_mu_)
};

// Loads a kPepperBytes-long secret from `path`, creating it (random bytes, mode 0600, created
// atomically) if missing. Fails if the file has the wrong size or is readable by group/others.
moat::StatusOr<std::string> LoadOrCreateSecret(const std::string& path);

}  // namespace moat::store
