#include "store/account_store.h"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <memory>
#include <unordered_map>
#include <utility>

#include "common/private_files.h"
#include "common/sqlite.h"

namespace moat::store {
namespace {

constexpr size_t kHashBytes = crypto_generichash_BYTES;  // 32
constexpr size_t kSecretBytes = 32;                      // entropy of an issued key
constexpr size_t kMaxPresentedKeyBytes = 256;
constexpr int kBusyTimeoutMs = 5000;

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS organizations (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  created_ns INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS accounts (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  org_id TEXT REFERENCES organizations(id),
  tier TEXT NOT NULL,
  created_ns INTEGER NOT NULL,
  disabled INTEGER NOT NULL DEFAULT 0
);
-- Columns added since (a verification's period): MigrateLocked adds them to older databases.
CREATE TABLE IF NOT EXISTS api_keys (
  key_id TEXT PRIMARY KEY,
  account_id TEXT NOT NULL REFERENCES accounts(id),
  label TEXT NOT NULL,
  key_hash BLOB NOT NULL UNIQUE,
  created_ns INTEGER NOT NULL,
  revoked_ns INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS api_keys_by_account ON api_keys(account_id);
)sql";

std::string RandomHex(size_t bytes) {
  std::string raw(bytes, '\0');
  randombytes_buf(raw.data(), raw.size());
  std::string hex(bytes * 2 + 1, '\0');
  sodium_bin2hex(hex.data(), hex.size(), reinterpret_cast<const unsigned char*>(raw.data()),
                 raw.size());
  hex.pop_back();
  return hex;
}

bool ValidAccountName(const std::string& name) {
  if (name.empty() || name.size() > 128 || name.rfind("acct_", 0) == 0) return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '@' || c == '+' || c == '-';
    if (!ok) return false;
  }
  return true;
}

Account AccountFromRow(const SqliteStmt& s, int col) {
  Account a;
  a.id = s.ColumnText(col);
  a.name = s.ColumnText(col + 1);
  a.org_id = s.ColumnText(col + 2);
  auto tier = ParseTier(s.ColumnText(col + 3));
  a.tier = tier.ok() ? *tier : Tier::kUnverified;  // unknown tier in DB: least privileged
  a.created_ns = s.ColumnInt64(col + 4);
  a.disabled = s.ColumnInt64(col + 5) != 0;
  a.tier_expires_ns = s.ColumnInt64(col + 6);
  auto after = ParseTier(s.ColumnText(col + 7));
  a.tier_after_expiry = after.ok() ? *after : Tier::kUnverified;
  return a;
}

// The account as it stands at `now_ns`: a verification whose period is over is undone.
Account AsOf(Account a, int64_t now_ns) {
  if (a.tier_expires_ns != 0 && now_ns >= a.tier_expires_ns) {
    a.tier = a.tier_after_expiry;
    a.tier_expires_ns = 0;
  }
  return a;
}

// Steps a listing query: true while a row is ready. A failed step ends the listing like the last
// row (the listing methods return what they read; their callers are CLI listings).
bool RowReady(SqliteStmt& s) {
  StatusOr<bool> row = s.Step();
  return row.ok() && *row;
}

// Prefixes a failed step's message with what was being done, keeping its code.
Status Failed(const Status& s, std::string_view what) {
  return Status(s.code(), std::string(what) + ": " + s.message());
}

constexpr const char* kAccountCols =
    "id, name, IFNULL(org_id, ''), tier, created_ns, disabled, tier_expires_ns, tier_after_expiry";

// Columns added after the first schema: name -> definition (ALTER TABLE accounts ADD COLUMN).
constexpr std::pair<const char*, const char*> kAddedAccountColumns[] = {
    {"tier_expires_ns", "INTEGER NOT NULL DEFAULT 0"},
    {"tier_after_expiry", "TEXT NOT NULL DEFAULT 'unverified'"},
};

// The keyed hash is uniformly random, so its first bytes are already a good bucket hash.
struct KeyHashHasher {
  size_t operator()(const std::string& h) const {
    size_t v = 0;
    std::memcpy(&v, h.data(), std::min(sizeof(v), h.size()));
    return v;
  }
};
struct KeyHashEqual {
  bool operator()(const std::string& a, const std::string& b) const {
    return a.size() == b.size() && sodium_memcmp(a.data(), b.data(), a.size()) == 0;
  }
};

}  // namespace

// The active keys by keyed hash, in shards (by a hash byte the bucket hash does not use), so
// that issuing a key copies one shard instead of rebuilding every key from the database.
struct AccountStore::Snapshot {
  static constexpr size_t kShards = 64;
  using Shard = std::unordered_map<std::string, Principal, KeyHashHasher, KeyHashEqual>;
  std::array<std::shared_ptr<const Shard>, kShards> shards;

  Snapshot() {
    for (auto& s : shards) s = std::make_shared<const Shard>();
  }
  static size_t ShardOf(const std::string& hash) {
    return static_cast<unsigned char>(hash[sizeof(size_t)]) % kShards;
  }
  const Shard& For(const std::string& hash) const { return *shards[ShardOf(hash)]; }
  size_t size() const {
    size_t n = 0;
    for (const auto& s : shards) n += s->size();
    return n;
  }
};

std::string_view TierName(Tier tier) {
  switch (tier) {
    case Tier::kUnverified:
      return "unverified";
    case Tier::kVerified:
      return "verified";
    case Tier::kEnterprise:
      return "enterprise";
  }
  return "unverified";
}

StatusOr<Tier> ParseTier(std::string_view name) {
  if (name == "unverified") return Tier::kUnverified;
  if (name == "verified") return Tier::kVerified;
  if (name == "enterprise") return Tier::kEnterprise;
  return InvalidArgumentError("unknown tier '" + std::string(name) +
                              "' (expected unverified, verified or enterprise)");
}

AccountStore::AccountStore(std::unique_ptr<SqliteDb> db, std::string pepper, const Clock* clock)
    : db_(std::move(db)),
      pepper_(std::move(pepper)),
      clock_(clock),
      snapshot_(std::make_shared<Snapshot>()) {}

AccountStore::~AccountStore() = default;

StatusOr<std::unique_ptr<AccountStore>> AccountStore::Open(const std::string& db_path,
                                                           std::string_view pepper,
                                                           const Clock* clock) {
  if (sodium_init() < 0) return InternalError("libsodium initialisation failed");
  if (pepper.size() != kPepperBytes) {
    return InvalidArgumentError("API key pepper must be " + std::to_string(kPepperBytes) +
                                " bytes");
  }
  if (clock == nullptr) return InvalidArgumentError("clock is null");
  // Owner-only; SQLite gives the -wal and -shm files the database file's mode.
  MOAT_RETURN_IF_ERROR(EnsurePrivateFile(db_path));
  MOAT_ASSIGN_OR_RETURN(
      std::unique_ptr<SqliteDb> db,
      SqliteDb::Open(db_path, SqliteDb::Mode::kReadWriteCreate, kBusyTimeoutMs));
  std::unique_ptr<AccountStore> store(
      new AccountStore(std::move(db), std::string(pepper), clock));
  MOAT_RETURN_IF_ERROR(store->Init());
  return store;
}

Status AccountStore::Init() {
  std::lock_guard lock(db_mu_);
  MOAT_RETURN_IF_ERROR(db_->Exec("PRAGMA journal_mode=WAL"));
  MOAT_RETURN_IF_ERROR(db_->Exec("PRAGMA synchronous=NORMAL"));
  MOAT_RETURN_IF_ERROR(db_->Exec("PRAGMA foreign_keys=ON"));
  MOAT_RETURN_IF_ERROR(db_->Exec(kSchema));
  MOAT_RETURN_IF_ERROR(MigrateLocked());
  return ReloadLocked();
}

Status AccountStore::MigrateLocked() {
  // Immediate: two processes opening an old database at once add each column once.
  MOAT_ASSIGN_OR_RETURN(SqliteTransaction txn, SqliteTransaction::Begin(*db_, SqliteTransaction::Kind::kImmediate));
  std::vector<std::string> columns;
  {
    MOAT_ASSIGN_OR_RETURN(SqliteStmt s, db_->Prepare("SELECT name FROM pragma_table_info('accounts')"));
    for (;;) {
      StatusOr<bool> row = s.Step();
      if (!row.ok()) return Failed(row.status(), "reading the accounts table's columns");
      if (!*row) break;
      columns.push_back(s.ColumnText(0));
    }
  }
  for (const auto& [name, definition] : kAddedAccountColumns) {
    if (std::find(columns.begin(), columns.end(), name) != columns.end()) continue;
    if (Status added = db_->Exec(std::string("ALTER TABLE accounts ADD COLUMN ") + name + " " + definition);
        !added.ok()) {
      return Failed(added, std::string("adding column accounts.") + name);
    }
  }
  return txn.Commit();
}

std::string AccountStore::KeyHash(std::string_view key) const {
  std::string out(kHashBytes, '\0');
  crypto_generichash(reinterpret_cast<unsigned char*>(out.data()), out.size(),
                     reinterpret_cast<const unsigned char*>(key.data()), key.size(),
                     reinterpret_cast<const unsigned char*>(pepper_.data()), pepper_.size());
  return out;
}

StatusOr<int64_t> AccountStore::DataVersionLocked() const {
  MOAT_ASSIGN_OR_RETURN(SqliteStmt s, db_->Prepare("PRAGMA data_version"));
  MOAT_ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row) return InternalError("PRAGMA data_version returned no row");
  return s.ColumnInt64(0);
}

Status AccountStore::ReloadLocked() {
  MOAT_ASSIGN_OR_RETURN(int64_t version, DataVersionLocked());
  std::array<Snapshot::Shard, Snapshot::kShards> shards;
  {
    MOAT_ASSIGN_OR_RETURN(SqliteTransaction txn,
                          SqliteTransaction::Begin(*db_, SqliteTransaction::Kind::kDeferred));
    MOAT_ASSIGN_OR_RETURN(
        SqliteStmt s,
        db_->Prepare("SELECT k.key_hash, k.key_id, a.id, a.name, IFNULL(a.org_id, ''), a.tier, "
                     "a.created_ns, a.disabled, a.tier_expires_ns, a.tier_after_expiry "
                     "FROM api_keys k JOIN accounts a ON "
                     "a.id = k.account_id WHERE k.revoked_ns = 0"));
    for (;;) {
      StatusOr<bool> row = s.Step();
      if (!row.ok()) return Failed(row.status(), "loading API keys");
      if (!*row) break;
      std::string hash = s.ColumnText(0);
      if (hash.size() != kHashBytes) continue;  // corrupt row: never matches anything
      Principal p{AccountFromRow(s, 2), s.ColumnText(1)};
      const size_t shard = Snapshot::ShardOf(hash);
      shards[shard].emplace(std::move(hash), std::move(p));
    }
    MOAT_RETURN_IF_ERROR(txn.Commit());
  }
  auto snap = std::make_shared<Snapshot>();
  for (size_t i = 0; i < Snapshot::kShards; ++i) snap->shards[i] = std::make_shared<const Snapshot::Shard>(std::move(shards[i]));
  {
    std::unique_lock lock(snap_mu_);
    snapshot_ = std::move(snap);
  }
  data_version_ = version;
  return Status::Ok();
}

std::shared_ptr<const AccountStore::Snapshot> AccountStore::snapshot() const {
  std::shared_lock lock(snap_mu_);
  return snapshot_;
}

Status AccountStore::RefreshIfChanged() {
  std::lock_guard lock(db_mu_);
  MOAT_ASSIGN_OR_RETURN(int64_t version, DataVersionLocked());
  if (version == data_version_) return Status::Ok();
  return ReloadLocked();
}

size_t AccountStore::ActiveKeyCount() const { return snapshot()->size(); }

StatusOr<Principal> AccountStore::Authenticate(std::string_view presented_key) const {
  if (presented_key.size() > kMaxPresentedKeyBytes ||
      presented_key.substr(0, kKeyPrefix.size()) != kKeyPrefix) {
    return UnauthenticatedError("invalid API key");
  }
  std::string hash = KeyHash(presented_key);
  std::shared_ptr<const Snapshot> snap = snapshot();
  const Snapshot::Shard& shard = snap->For(hash);
  auto it = shard.find(hash);
  if (it == shard.end()) return UnauthenticatedError("invalid API key");
  if (it->second.account.disabled) return UnauthenticatedError("account is disabled");
  if (it->second.account.tier_expires_ns == 0) return it->second;
  return Principal{AsOf(it->second.account, clock_->NowNanos()), it->second.key_id};
}

StatusOr<Organization> AccountStore::CreateOrganization(const std::string& name) {
  if (name.empty() || name.size() > 256) {
    return InvalidArgumentError("organisation name must be 1..256 bytes");
  }
  Organization org{"org_" + RandomHex(6), name, clock_->NowNanos()};
  std::lock_guard lock(db_mu_);
  MOAT_ASSIGN_OR_RETURN(
      SqliteStmt s, db_->Prepare("INSERT INTO organizations (id, name, created_ns) VALUES (?, ?, ?)"));
  s.BindText(1, org.id);
  s.BindText(2, org.name);
  s.BindInt64(3, org.created_ns);
  Status inserted = s.Run();
  if (inserted.code() == StatusCode::kAlreadyExists) {
    return AlreadyExistsError("organisation '" + name + "' exists");
  }
  if (!inserted.ok()) return Failed(inserted, "creating organisation");
  return org;
}

std::vector<Organization> AccountStore::ListOrganizations() const {
  std::vector<Organization> out;
  std::lock_guard lock(db_mu_);
  StatusOr<SqliteStmt> s =
      db_->Prepare("SELECT id, name, created_ns FROM organizations ORDER BY created_ns, rowid");
  if (!s.ok()) return out;
  while (RowReady(*s)) out.push_back({s->ColumnText(0), s->ColumnText(1), s->ColumnInt64(2)});
  return out;
}

StatusOr<Account> AccountStore::CreateAccount(const std::string& name, const std::string& org_id,
                                              Tier tier) {
  if (!ValidAccountName(name)) {
    return InvalidArgumentError(
        "account name must be 1..128 chars of [A-Za-z0-9._@+-] and not start with 'acct_'");
  }
  Account a{"acct_" + RandomHex(6), name, org_id, tier, clock_->NowNanos(), false, 0, Tier::kUnverified};
  std::lock_guard lock(db_mu_);
  MOAT_ASSIGN_OR_RETURN(SqliteTransaction txn,
                        SqliteTransaction::Begin(*db_, SqliteTransaction::Kind::kImmediate));
  {
    MOAT_ASSIGN_OR_RETURN(SqliteStmt q, db_->Prepare("SELECT 1 FROM accounts WHERE name = ?"));
    q.BindText(1, name);
    MOAT_ASSIGN_OR_RETURN(bool taken, q.Step());
    if (taken) return AlreadyExistsError("account '" + name + "' exists");
  }
  if (!org_id.empty()) {
    MOAT_ASSIGN_OR_RETURN(SqliteStmt q, db_->Prepare("SELECT 1 FROM organizations WHERE id = ?"));
    q.BindText(1, org_id);
    MOAT_ASSIGN_OR_RETURN(bool found, q.Step());
    if (!found) return NotFoundError("no organisation '" + org_id + "'");
  }
  MOAT_ASSIGN_OR_RETURN(SqliteStmt s,
                        db_->Prepare("INSERT INTO accounts (id, name, org_id, tier, created_ns, "
                                     "disabled) VALUES (?, ?, ?, ?, ?, 0)"));
  s.BindText(1, a.id);
  s.BindText(2, a.name);
  if (org_id.empty()) {
    s.BindNull(3);
  } else {
    s.BindText(3, org_id);
  }
  s.BindText(4, TierName(tier));
  s.BindInt64(5, a.created_ns);
  if (Status inserted = s.Run(); !inserted.ok()) return Failed(inserted, "creating account");
  MOAT_RETURN_IF_ERROR(txn.Commit());
  return a;  // an account without keys does not change the snapshot
}

StatusOr<Account> AccountStore::GetAccount(const std::string& id_or_name) const {
  std::lock_guard lock(db_mu_);
  std::string sql =
      std::string("SELECT ") + kAccountCols + " FROM accounts WHERE id = ?1 OR name = ?1";
  MOAT_ASSIGN_OR_RETURN(SqliteStmt s, db_->Prepare(sql));
  s.BindText(1, id_or_name);
  StatusOr<bool> row = s.Step();
  if (!row.ok()) return Failed(row.status(), "reading account");
  if (!*row) return NotFoundError("no account '" + id_or_name + "'");
  return AsOf(AccountFromRow(s, 0), clock_->NowNanos());
}

std::vector<Account> AccountStore::ListAccounts() const {
  std::vector<Account> out;
  std::lock_guard lock(db_mu_);
  std::string sql = std::string("SELECT ") + kAccountCols + " FROM accounts ORDER BY created_ns, rowid";
  StatusOr<SqliteStmt> s = db_->Prepare(sql);
  if (!s.ok()) return out;
  const int64_t now = clock_->NowNanos();
  while (RowReady(*s)) out.push_back(AsOf(AccountFromRow(*s, 0), now));
  return out;
}

Status AccountStore::SetTier(const std::string& account_id, Tier tier) {
  std::lock_guard lock(db_mu_);
  MOAT_ASSIGN_OR_RETURN(SqliteStmt s, db_->Prepare("UPDATE accounts SET tier = ?, tier_expires_ns = 0, "
                                                   "tier_after_expiry = 'unverified' WHERE id = ?"));
  s.BindText(1, TierName(tier));
  s.BindText(2, account_id);
  if (Status updated = s.Run(); !updated.ok()) return Failed(updated, "setting tier");
  if (db_->changes() == 0) return NotFoundError("no account '" + account_id + "'");
  return ReloadLocked();
}

StatusOr<AccountStore::Verification> AccountStore::VerifyUntil(const std::string& account_id, Tier tier,
                                                               int64_t expires_ns) {
  const int64_t now = clock_->NowNanos();
  if (expires_ns <= now) return InvalidArgumentError("a verification must expire in the future");
  std::lock_guard lock(db_mu_);
  Verification v;
  {
    MOAT_ASSIGN_OR_RETURN(SqliteTransaction txn,
                          SqliteTransaction::Begin(*db_, SqliteTransaction::Kind::kImmediate));
    {
      MOAT_ASSIGN_OR_RETURN(SqliteStmt q, db_->Prepare(std::string("SELECT ") + kAccountCols +
                                                       " FROM accounts WHERE id = ?"));
      q.BindText(1, account_id);
      MOAT_ASSIGN_OR_RETURN(bool found, q.Step());
      if (!found) return NotFoundError("no account '" + account_id + "'");
      const Account stored = AccountFromRow(q, 0);
      v.before = AsOf(stored, now);
      v.after = v.before;
      // The tier to return to: the one under any verification, running or expired.
      v.after.tier_after_expiry = stored.tier_expires_ns != 0 ? stored.tier_after_expiry : stored.tier;
    }
    v.after.tier = tier;
    v.after.tier_expires_ns = expires_ns;
    MOAT_ASSIGN_OR_RETURN(SqliteStmt s, db_->Prepare("UPDATE accounts SET tier = ?, tier_expires_ns = ?, "
                                                     "tier_after_expiry = ? WHERE id = ?"));
    s.BindText(1, TierName(tier));
    s.BindInt64(2, expires_ns);
    s.BindText(3, TierName(v.after.tier_after_expiry));
    s.BindText(4, account_id);
    if (Status updated = s.Run(); !updated.ok()) return Failed(updated, "verifying account");
    MOAT_RETURN_IF_ERROR(txn.Commit());
  }
  MOAT_RETURN_IF_ERROR(ReloadLocked());
  return v;
}

Status AccountStore::SetDisabled(const std::string& account_id, bool disabled) {
  std::lock_guard lock(db_mu_);
  MOAT_ASSIGN_OR_RETURN(SqliteStmt s,
                        db_->Prepare("UPDATE accounts SET disabled = ? WHERE id = ?"));
  s.BindInt64(1, disabled ? 1 : 0);
  s.BindText(2, account_id);
  if (Status updated = s.Run(); !updated.ok()) return Failed(updated, "disabling account");
  if (db_->changes() == 0) return NotFoundError("no account '" + account_id + "'");
  return ReloadLocked();
}

StatusOr<CreatedKey> AccountStore::CreateKey(const std::string& account_id,
                                             const std::string& label) {
  if (label.size() > 256) return InvalidArgumentError("key label longer than 256 bytes");
  // base64url without padding: 32 random bytes -> 43 characters.
  unsigned char raw[kSecretBytes];
  randombytes_buf(raw, sizeof(raw));
  char b64[sodium_base64_ENCODED_LEN(kSecretBytes, sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
  sodium_bin2base64(b64, sizeof(b64), raw, sizeof(raw), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  sodium_memzero(raw, sizeof(raw));
  CreatedKey out;
  out.secret = std::string(kKeyPrefix) + b64;
  sodium_memzero(b64, sizeof(b64));
  out.info = ApiKeyInfo{"key_" + RandomHex(6), account_id, label, clock_->NowNanos(), 0};
  const std::string hash = KeyHash(out.secret);

  std::lock_guard lock(db_mu_);
  Account account;
  {
    MOAT_ASSIGN_OR_RETURN(SqliteTransaction txn,
                          SqliteTransaction::Begin(*db_, SqliteTransaction::Kind::kImmediate));
    {
      MOAT_ASSIGN_OR_RETURN(SqliteStmt q, db_->Prepare(std::string("SELECT ") + kAccountCols +
                                                       " FROM accounts WHERE id = ?"));
      q.BindText(1, account_id);
      MOAT_ASSIGN_OR_RETURN(bool found, q.Step());
      if (!found) return NotFoundError("no account '" + account_id + "'");
      account = AccountFromRow(q, 0);
      if (account.disabled) {
        return FailedPreconditionError("account '" + account_id + "' is disabled");
      }
    }
    MOAT_ASSIGN_OR_RETURN(
        SqliteStmt s,
        db_->Prepare("INSERT INTO api_keys (key_id, account_id, label, key_hash, created_ns, "
                     "revoked_ns) VALUES (?, ?, ?, ?, ?, 0)"));
    s.BindText(1, out.info.key_id);
    s.BindText(2, account_id);
    s.BindText(3, label);
    s.BindBlob(4, hash);
    s.BindInt64(5, out.info.created_ns);
    if (Status inserted = s.Run(); !inserted.ok()) return Failed(inserted, "creating key");
    MOAT_RETURN_IF_ERROR(txn.Commit());
  }
  // The new key joins a copy of its shard; the rest of the snapshot is shared. (Commits by other
  // connections are still picked up by RefreshIfChanged: data_version_ is left as it was.)
  auto snap = std::make_shared<Snapshot>(*snapshot());
  const size_t shard = Snapshot::ShardOf(hash);
  auto copy = std::make_shared<Snapshot::Shard>(*snap->shards[shard]);
  copy->insert_or_assign(hash, Principal{account, out.info.key_id});
  snap->shards[shard] = std::move(copy);
  {
    std::unique_lock lock(snap_mu_);
    snapshot_ = std::move(snap);
  }
  return out;
}

Status AccountStore::RevokeKey(const std::string& key_id) {
  std::lock_guard lock(db_mu_);
  MOAT_ASSIGN_OR_RETURN(
      SqliteStmt s,
      db_->Prepare("UPDATE api_keys SET revoked_ns = CASE WHEN revoked_ns = 0 THEN ? ELSE "
                   "revoked_ns END WHERE key_id = ?"));
  s.BindInt64(1, clock_->NowNanos());
  s.BindText(2, key_id);
  if (Status updated = s.Run(); !updated.ok()) return Failed(updated, "revoking key");
  if (db_->changes() == 0) return NotFoundError("no key '" + key_id + "'");
  return ReloadLocked();
}

std::vector<ApiKeyInfo> AccountStore::ListKeys(const std::string& account_id) const {
  std::vector<ApiKeyInfo> out;
  std::lock_guard lock(db_mu_);
  StatusOr<SqliteStmt> s =
      db_->Prepare("SELECT key_id, account_id, label, created_ns, revoked_ns FROM api_keys "
                   "WHERE account_id = ? ORDER BY created_ns, rowid");
  if (!s.ok()) return out;
  s->BindText(1, account_id);
  while (RowReady(*s)) {
    out.push_back({s->ColumnText(0), s->ColumnText(1), s->ColumnText(2), s->ColumnInt64(3),
                   s->ColumnInt64(4)});
  }
  return out;
}

StatusOr<std::string> LoadOrCreateSecret(const std::string& path) {
  if (sodium_init() < 0) return InternalError("libsodium initialisation failed");
  for (int attempt = 0; attempt < 2; ++attempt) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd >= 0) {
      struct stat st {};
      if (::fstat(fd, &st) != 0) {
        ::close(fd);
        return InternalError("cannot stat " + path + ": " + std::strerror(errno));
      }
      if ((st.st_mode & 077) != 0) {
        ::close(fd);
        return FailedPreconditionError("secret file " + path +
                                       " is readable by group/others; chmod 600 it");
      }
      std::string secret(kPepperBytes + 1, '\0');
      ssize_t n = ::read(fd, secret.data(), secret.size());
      ::close(fd);
      if (n != static_cast<ssize_t>(kPepperBytes)) {
        return DataLossError("secret file " + path + " must hold exactly " +
                             std::to_string(kPepperBytes) + " bytes");
      }
      secret.resize(kPepperBytes);
      return secret;
    }
    if (errno != ENOENT) {
      return UnavailableError("cannot open secret file " + path + ": " + std::strerror(errno));
    }
    // Another process may create it first: then we loop and read theirs.
    std::string secret(kPepperBytes, '\0');
    randombytes_buf(secret.data(), secret.size());
    Status created = CreateSecretFile(path, secret);
    if (created.ok()) return secret;
    if (created.code() != StatusCode::kAlreadyExists) return created;
  }
  return UnavailableError("secret file " + path + " keeps appearing and vanishing");
}

}  // namespace moat::store
