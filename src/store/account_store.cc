#include "store/account_store.h"

#include <fcntl.h>
#include <sodium.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <unordered_map>
#include <utility>

#include "common/private_files.h"

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

// One prepared statement; finalized on scope exit.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) : db_(db) {
    rc_ = sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr);
  }
  ~Stmt() { sqlite3_finalize(stmt_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  Status prepared() const {
    if (rc_ == SQLITE_OK) return Status::Ok();
    return InternalError(std::string("sqlite prepare: ") + sqlite3_errmsg(db_));
  }
  Stmt& Bind(int i, std::string_view s) {
    sqlite3_bind_text(stmt_, i, s.data(), static_cast<int>(s.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& BindBlob(int i, std::string_view s) {
    sqlite3_bind_blob(stmt_, i, s.data(), static_cast<int>(s.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& Bind(int i, int64_t v) {
    sqlite3_bind_int64(stmt_, i, v);
    return *this;
  }
  Stmt& BindNull(int i) {
    sqlite3_bind_null(stmt_, i);
    return *this;
  }
  // SQLITE_ROW, SQLITE_DONE or an error code.
  int Step() { return sqlite3_step(stmt_); }
  std::string Text(int col) const {
    const unsigned char* p = sqlite3_column_text(stmt_, col);
    return p ? std::string(reinterpret_cast<const char*>(p),
                           static_cast<size_t>(sqlite3_column_bytes(stmt_, col)))
             : std::string();
  }
  std::string Blob(int col) const {
    const void* p = sqlite3_column_blob(stmt_, col);
    return p ? std::string(static_cast<const char*>(p),
                           static_cast<size_t>(sqlite3_column_bytes(stmt_, col)))
             : std::string();
  }
  int64_t Int(int col) const { return sqlite3_column_int64(stmt_, col); }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
  int rc_;
};

Status SqlError(sqlite3* db, std::string_view what) {
  return InternalError(std::string(what) + ": " + sqlite3_errmsg(db));
}

Status Exec(sqlite3* db, const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "unknown error";
    sqlite3_free(err);
    return InternalError(std::string("sqlite: ") + msg);
  }
  return Status::Ok();
}

// Rolls back an open transaction unless Commit() succeeded.
class Transaction {
 public:
  explicit Transaction(sqlite3* db) : db_(db) {}
  ~Transaction() {
    // Nothing to report to from a destructor; a failed rollback leaves SQLite to roll back
    // when the connection closes.
    if (open_) (void)Exec(db_, "ROLLBACK");
  }
  Status BeginImmediate() {
    MOAT_RETURN_IF_ERROR(Exec(db_, "BEGIN IMMEDIATE"));
    open_ = true;
    return Status::Ok();
  }
  Status BeginRead() {
    MOAT_RETURN_IF_ERROR(Exec(db_, "BEGIN"));
    open_ = true;
    return Status::Ok();
  }
  Status Commit() {
    MOAT_RETURN_IF_ERROR(Exec(db_, "COMMIT"));
    open_ = false;
    return Status::Ok();
  }

 private:
  sqlite3* db_;
  bool open_ = false;
};

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

Account AccountFromRow(const Stmt& s, int col) {
  Account a;
  a.id = s.Text(col);
  a.name = s.Text(col + 1);
  a.org_id = s.Text(col + 2);
  auto tier = ParseTier(s.Text(col + 3));
  a.tier = tier.ok() ? *tier : Tier::kUnverified;  // unknown tier in DB: least privileged
  a.created_ns = s.Int(col + 4);
  a.disabled = s.Int(col + 5) != 0;
  return a;
}

constexpr const char* kAccountCols = "id, name, IFNULL(org_id, ''), tier, created_ns, disabled";

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

struct AccountStore::Snapshot {
  std::unordered_map<std::string, Principal, KeyHashHasher, KeyHashEqual> by_hash;
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

AccountStore::AccountStore(sqlite3* db, std::string pepper, const Clock* clock)
    : db_(db),
      pepper_(std::move(pepper)),
      clock_(clock),
      snapshot_(std::make_shared<Snapshot>()) {}

AccountStore::~AccountStore() { sqlite3_close_v2(db_); }

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
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(db_path.c_str(), &db,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                           nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close_v2(db);
    return UnavailableError("cannot open account database " + db_path + ": " + msg);
  }
  std::unique_ptr<AccountStore> store(new AccountStore(db, std::string(pepper), clock));
  MOAT_RETURN_IF_ERROR(store->Init());
  return store;
}

Status AccountStore::Init() {
  std::lock_guard lock(db_mu_);
  sqlite3_busy_timeout(db_, kBusyTimeoutMs);
  MOAT_RETURN_IF_ERROR(Exec(db_, "PRAGMA journal_mode=WAL"));
  MOAT_RETURN_IF_ERROR(Exec(db_, "PRAGMA synchronous=NORMAL"));
  MOAT_RETURN_IF_ERROR(Exec(db_, "PRAGMA foreign_keys=ON"));
  MOAT_RETURN_IF_ERROR(Exec(db_, kSchema));
  return ReloadLocked();
}

std::string AccountStore::KeyHash(std::string_view key) const {
  std::string out(kHashBytes, '\0');
  crypto_generichash(reinterpret_cast<unsigned char*>(out.data()), out.size(),
                     reinterpret_cast<const unsigned char*>(key.data()), key.size(),
                     reinterpret_cast<const unsigned char*>(pepper_.data()), pepper_.size());
  return out;
}

StatusOr<int64_t> AccountStore::DataVersionLocked() const {
  Stmt s(db_, "PRAGMA data_version");
  MOAT_RETURN_IF_ERROR(s.prepared());
  if (s.Step() != SQLITE_ROW) return SqlError(db_, "PRAGMA data_version");
  return s.Int(0);
}

Status AccountStore::ReloadLocked() {
  MOAT_ASSIGN_OR_RETURN(int64_t version, DataVersionLocked());
  auto snap = std::make_shared<Snapshot>();
  {
    Transaction txn(db_);
    MOAT_RETURN_IF_ERROR(txn.BeginRead());
    Stmt s(db_,
           "SELECT k.key_hash, k.key_id, a.id, a.name, IFNULL(a.org_id, ''), a.tier, "
           "a.created_ns, a.disabled FROM api_keys k JOIN accounts a ON a.id = k.account_id "
           "WHERE k.revoked_ns = 0");
    MOAT_RETURN_IF_ERROR(s.prepared());
    int rc;
    while ((rc = s.Step()) == SQLITE_ROW) {
      std::string hash = s.Blob(0);
      if (hash.size() != kHashBytes) continue;  // corrupt row: never matches anything
      Principal p{AccountFromRow(s, 2), s.Text(1)};
      snap->by_hash.emplace(std::move(hash), std::move(p));
    }
    if (rc != SQLITE_DONE) return SqlError(db_, "loading API keys");
    MOAT_RETURN_IF_ERROR(txn.Commit());
  }
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

size_t AccountStore::ActiveKeyCount() const { return snapshot()->by_hash.size(); }

StatusOr<Principal> AccountStore::Authenticate(std::string_view presented_key) const {
  if (presented_key.size() > kMaxPresentedKeyBytes ||
      presented_key.substr(0, kKeyPrefix.size()) != kKeyPrefix) {
    return UnauthenticatedError("invalid API key");
  }
  std::string hash = KeyHash(presented_key);
  std::shared_ptr<const Snapshot> snap = snapshot();
  auto it = snap->by_hash.find(hash);
  if (it == snap->by_hash.end()) return UnauthenticatedError("invalid API key");
  if (it->second.account.disabled) return UnauthenticatedError("account is disabled");
  return it->second;
}

StatusOr<Organization> AccountStore::CreateOrganization(const std::string& name) {
  if (name.empty() || name.size() > 256) {
    return InvalidArgumentError("organisation name must be 1..256 bytes");
  }
  Organization org{"org_" + RandomHex(6), name, clock_->NowNanos()};
  std::lock_guard lock(db_mu_);
  Stmt s(db_, "INSERT INTO organizations (id, name, created_ns) VALUES (?, ?, ?)");
  MOAT_RETURN_IF_ERROR(s.prepared());
  s.Bind(1, org.id).Bind(2, org.name).Bind(3, org.created_ns);
  int rc = s.Step();
  if (rc == SQLITE_CONSTRAINT) return AlreadyExistsError("organisation '" + name + "' exists");
  if (rc != SQLITE_DONE) return SqlError(db_, "creating organisation");
  return org;
}

std::vector<Organization> AccountStore::ListOrganizations() const {
  std::vector<Organization> out;
  std::lock_guard lock(db_mu_);
  Stmt s(db_, "SELECT id, name, created_ns FROM organizations ORDER BY created_ns, rowid");
  if (!s.prepared().ok()) return out;
  while (s.Step() == SQLITE_ROW) out.push_back({s.Text(0), s.Text(1), s.Int(2)});
  return out;
}

StatusOr<Account> AccountStore::CreateAccount(const std::string& name, const std::string& org_id,
                                              Tier tier) {
  if (!ValidAccountName(name)) {
    return InvalidArgumentError(
        "account name must be 1..128 chars of [A-Za-z0-9._@+-] and not start with 'acct_'");
  }
  Account a{"acct_" + RandomHex(6), name, org_id, tier, clock_->NowNanos(), false};
  std::lock_guard lock(db_mu_);
  Transaction txn(db_);
  MOAT_RETURN_IF_ERROR(txn.BeginImmediate());
  {
    Stmt q(db_, "SELECT 1 FROM accounts WHERE name = ?");
    MOAT_RETURN_IF_ERROR(q.prepared());
    q.Bind(1, name);
    if (q.Step() == SQLITE_ROW) return AlreadyExistsError("account '" + name + "' exists");
  }
  if (!org_id.empty()) {
    Stmt q(db_, "SELECT 1 FROM organizations WHERE id = ?");
    MOAT_RETURN_IF_ERROR(q.prepared());
    q.Bind(1, org_id);
    if (q.Step() != SQLITE_ROW) return NotFoundError("no organisation '" + org_id + "'");
  }
  Stmt s(db_,
         "INSERT INTO accounts (id, name, org_id, tier, created_ns, disabled) "
         "VALUES (?, ?, ?, ?, ?, 0)");
  MOAT_RETURN_IF_ERROR(s.prepared());
  s.Bind(1, a.id).Bind(2, a.name).Bind(4, TierName(tier)).Bind(5, a.created_ns);
  if (org_id.empty()) {
    s.BindNull(3);
  } else {
    s.Bind(3, org_id);
  }
  if (s.Step() != SQLITE_DONE) return SqlError(db_, "creating account");
  MOAT_RETURN_IF_ERROR(txn.Commit());
  return a;  // an account without keys does not change the snapshot
}

StatusOr<Account> AccountStore::GetAccount(const std::string& id_or_name) const {
  std::lock_guard lock(db_mu_);
  std::string sql =
      std::string("SELECT ") + kAccountCols + " FROM accounts WHERE id = ?1 OR name = ?1";
  Stmt s(db_, sql.c_str());
  MOAT_RETURN_IF_ERROR(s.prepared());
  s.Bind(1, id_or_name);
  int rc = s.Step();
  if (rc == SQLITE_ROW) return AccountFromRow(s, 0);
  if (rc == SQLITE_DONE) return NotFoundError("no account '" + id_or_name + "'");
  return SqlError(db_, "reading account");
}

std::vector<Account> AccountStore::ListAccounts() const {
  std::vector<Account> out;
  std::lock_guard lock(db_mu_);
  std::string sql = std::string("SELECT ") + kAccountCols + " FROM accounts ORDER BY created_ns, rowid";
  Stmt s(db_, sql.c_str());
  if (!s.prepared().ok()) return out;
  while (s.Step() == SQLITE_ROW) out.push_back(AccountFromRow(s, 0));
  return out;
}

Status AccountStore::SetTier(const std::string& account_id, Tier tier) {
  std::lock_guard lock(db_mu_);
  Stmt s(db_, "UPDATE accounts SET tier = ? WHERE id = ?");
  MOAT_RETURN_IF_ERROR(s.prepared());
  s.Bind(1, TierName(tier)).Bind(2, account_id);
  if (s.Step() != SQLITE_DONE) return SqlError(db_, "setting tier");
  if (sqlite3_changes(db_) == 0) return NotFoundError("no account '" + account_id + "'");
  return ReloadLocked();
}

Status AccountStore::SetDisabled(const std::string& account_id, bool disabled) {
  std::lock_guard lock(db_mu_);
  Stmt s(db_, "UPDATE accounts SET disabled = ? WHERE id = ?");
  MOAT_RETURN_IF_ERROR(s.prepared());
  s.Bind(1, int64_t{disabled ? 1 : 0}).Bind(2, account_id);
  if (s.Step() != SQLITE_DONE) return SqlError(db_, "disabling account");
  if (sqlite3_changes(db_) == 0) return NotFoundError("no account '" + account_id + "'");
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

  std::lock_guard lock(db_mu_);
  {
    Transaction txn(db_);
    MOAT_RETURN_IF_ERROR(txn.BeginImmediate());
    {
      Stmt q(db_, "SELECT disabled FROM accounts WHERE id = ?");
      MOAT_RETURN_IF_ERROR(q.prepared());
      q.Bind(1, account_id);
      if (q.Step() != SQLITE_ROW) return NotFoundError("no account '" + account_id + "'");
      if (q.Int(0) != 0) return FailedPreconditionError("account '" + account_id + "' is disabled");
    }
    Stmt s(db_,
           "INSERT INTO api_keys (key_id, account_id, label, key_hash, created_ns, revoked_ns) "
           "VALUES (?, ?, ?, ?, ?, 0)");
    MOAT_RETURN_IF_ERROR(s.prepared());
    s.Bind(1, out.info.key_id).Bind(2, account_id).Bind(3, label);
    s.BindBlob(4, KeyHash(out.secret)).Bind(5, out.info.created_ns);
    if (s.Step() != SQLITE_DONE) return SqlError(db_, "creating key");
    MOAT_RETURN_IF_ERROR(txn.Commit());
  }
  MOAT_RETURN_IF_ERROR(ReloadLocked());
  return out;
}

Status AccountStore::RevokeKey(const std::string& key_id) {
  std::lock_guard lock(db_mu_);
  Stmt s(db_,
         "UPDATE api_keys SET revoked_ns = CASE WHEN revoked_ns = 0 THEN ? ELSE revoked_ns END "
         "WHERE key_id = ?");
  MOAT_RETURN_IF_ERROR(s.prepared());
  s.Bind(1, clock_->NowNanos()).Bind(2, key_id);
  if (s.Step() != SQLITE_DONE) return SqlError(db_, "revoking key");
  if (sqlite3_changes(db_) == 0) return NotFoundError("no key '" + key_id + "'");
  return ReloadLocked();
}

std::vector<ApiKeyInfo> AccountStore::ListKeys(const std::string& account_id) const {
  std::vector<ApiKeyInfo> out;
  std::lock_guard lock(db_mu_);
  Stmt s(db_,
         "SELECT key_id, account_id, label, created_ns, revoked_ns FROM api_keys "
         "WHERE account_id = ? ORDER BY created_ns, rowid");
  if (!s.prepared().ok()) return out;
  s.Bind(1, account_id);
  while (s.Step() == SQLITE_ROW) {
    out.push_back({s.Text(0), s.Text(1), s.Text(2), s.Int(3), s.Int(4)});
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
    // Write a temporary file, then link() it into place: atomic, and never overwrites a secret
    // another process created meanwhile (then we loop and read theirs).
    std::string tmp = path + ".tmp." + RandomHex(6);
    int wfd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (wfd < 0) {
      return UnavailableError("cannot create secret file " + tmp + ": " + std::strerror(errno));
    }
    std::string secret(kPepperBytes, '\0');
    randombytes_buf(secret.data(), secret.size());
    bool ok = ::write(wfd, secret.data(), secret.size()) == static_cast<ssize_t>(secret.size()) &&
              ::fsync(wfd) == 0;
    ::close(wfd);
    int link_rc = ok ? ::link(tmp.c_str(), path.c_str()) : -1;
    int link_errno = errno;
    ::unlink(tmp.c_str());
    if (!ok) return UnavailableError("cannot write secret file " + tmp);
    if (link_rc == 0) return secret;
    if (link_errno != EEXIST) {
      return UnavailableError("cannot create secret file " + path + ": " +
                              std::strerror(link_errno));
    }
  }
  return UnavailableError("secret file " + path + " keeps appearing and vanishing");
}

}  // namespace moat::store
