#include "store/account_store.h"

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <thread>

#include <gtest/gtest.h>

#include "common/sqlite.h"

namespace moat::store {
namespace {

namespace fs = std::filesystem;

const std::string kPepper(32, 'p');

class AccountStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("moat_store_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    db_path_ = (dir_ / "accounts.db").string();
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::unique_ptr<AccountStore> OpenStore() {
    auto s = AccountStore::Open(db_path_, kPepper, &clock_);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? std::move(s).value() : nullptr;
  }

  std::string ReadAllDbBytes() {
    std::string all;
    for (const auto& e : fs::directory_iterator(dir_)) {
      std::ifstream in(e.path(), std::ios::binary);
      all.append(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    return all;
  }

  fs::path dir_;
  std::string db_path_;
  ManualClock clock_;
};

TEST(TierTest, ParseAndName) {
  for (Tier t : {Tier::kUnverified, Tier::kVerified, Tier::kEnterprise}) {
    auto parsed = ParseTier(TierName(t));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, t);
  }
  EXPECT_EQ(TierName(Tier::kVerified), "verified");
  EXPECT_EQ(ParseTier("gold").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseTier("").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseTier("Verified").status().code(), StatusCode::kInvalidArgument);
}

TEST_F(AccountStoreTest, OpenRejectsBadPepper) {
  EXPECT_EQ(AccountStore::Open(db_path_, "short", &clock_).status().code(),
            StatusCode::kInvalidArgument);
}

TEST_F(AccountStoreTest, CreateAuthenticateRevoke) {
  auto store = OpenStore();
  ASSERT_TRUE(store);
  auto acct = store->CreateAccount("alice", "", Tier::kVerified);
  ASSERT_TRUE(acct.ok()) << acct.status().ToString();
  EXPECT_EQ(acct->id.rfind("acct_", 0), 0u);
  EXPECT_EQ(acct->id.size(), 5u + 12u);

  auto key = store->CreateKey(acct->id, "laptop");
  ASSERT_TRUE(key.ok()) << key.status().ToString();
  EXPECT_EQ(key->secret.rfind("sk-moat-", 0), 0u);
  EXPECT_GE(key->secret.size(), 8u + 43u);
  EXPECT_EQ(key->info.key_id.rfind("key_", 0), 0u);
  EXPECT_EQ(key->info.key_id.size(), 4u + 12u);

  auto p = store->Authenticate(key->secret);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->account.id, acct->id);
  EXPECT_EQ(p->account.name, "alice");
  EXPECT_EQ(p->account.tier, Tier::kVerified);
  EXPECT_EQ(p->key_id, key->info.key_id);

  // A second key for the same account is independent.
  auto key2 = store->CreateKey(acct->id, "ci");
  ASSERT_TRUE(key2.ok());
  EXPECT_NE(key2->secret, key->secret);
  EXPECT_EQ(store->ActiveKeyCount(), 2u);

  ASSERT_TRUE(store->RevokeKey(key->info.key_id).ok());
  EXPECT_EQ(store->Authenticate(key->secret).status().code(), StatusCode::kUnauthenticated);
  EXPECT_TRUE(store->Authenticate(key2->secret).ok());
  // Idempotent revoke keeps the first time.
  clock_.AdvanceSeconds(5);
  ASSERT_TRUE(store->RevokeKey(key->info.key_id).ok());
  auto keys = store->ListKeys(acct->id);
  ASSERT_EQ(keys.size(), 2u);
  EXPECT_EQ(keys[0].key_id, key->info.key_id);
  EXPECT_EQ(keys[0].label, "laptop");
  EXPECT_EQ(keys[0].revoked_ns, clock_.NowNanos() - 5'000'000'000);
  EXPECT_EQ(keys[1].revoked_ns, 0);
  EXPECT_EQ(store->RevokeKey("key_000000000000").code(), StatusCode::kNotFound);
}

TEST_F(AccountStoreTest, UnknownAndMalformedKeys) {
  auto store = OpenStore();
  ASSERT_TRUE(store);
  auto acct = store->CreateAccount("bob", "", Tier::kUnverified);
  ASSERT_TRUE(acct.ok());
  auto key = store->CreateKey(acct->id, "");
  ASSERT_TRUE(key.ok());
  std::string tampered = key->secret;
  tampered.back() = tampered.back() == 'A' ? 'B' : 'A';
  for (const std::string& bad : {std::string(), std::string("sk-moat-"), tampered,
                                 key->secret.substr(0, key->secret.size() - 1),
                                 key->secret + "x", std::string("Bearer ") + key->secret,
                                 std::string(10000, 'x'), key->secret.substr(8)}) {
    auto r = store->Authenticate(bad);
    EXPECT_EQ(r.status().code(), StatusCode::kUnauthenticated) << bad;
    EXPECT_EQ(r.status().message().find(key->secret), std::string::npos);
  }
  // A store with a different pepper does not accept the key.
  auto other = AccountStore::Open(db_path_, std::string(32, 'q'), &clock_);
  ASSERT_TRUE(other.ok());
  EXPECT_EQ((*other)->Authenticate(key->secret).status().code(), StatusCode::kUnauthenticated);
}

TEST_F(AccountStoreTest, DisabledAccountCannotAuthenticate) {
  auto store = OpenStore();
  ASSERT_TRUE(store);
  auto acct = store->CreateAccount("carol", "", Tier::kEnterprise);
  ASSERT_TRUE(acct.ok());
  auto key = store->CreateKey(acct->id, "k");
  ASSERT_TRUE(key.ok());
  ASSERT_TRUE(store->SetDisabled(acct->id, true).ok());
  EXPECT_EQ(store->Authenticate(key->secret).status().code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(store->CreateKey(acct->id, "k2").status().code(), StatusCode::kFailedPrecondition);
  ASSERT_TRUE(store->SetDisabled(acct->id, false).ok());
  EXPECT_TRUE(store->Authenticate(key->secret).ok());
  EXPECT_EQ(store->SetDisabled("acct_nope", true).code(), StatusCode::kNotFound);
}

TEST_F(AccountStoreTest, AccountsOrganisationsAndTiers) {
  auto store = OpenStore();
  ASSERT_TRUE(store);
  auto org = store->CreateOrganization("Acme Inc");
  ASSERT_TRUE(org.ok());
  EXPECT_EQ(store->CreateOrganization("Acme Inc").status().code(), StatusCode::kAlreadyExists);
  auto a = store->CreateAccount("dave", org->id, Tier::kUnverified);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(a->org_id, org->id);
  EXPECT_EQ(store->CreateAccount("dave", "", Tier::kVerified).status().code(),
            StatusCode::kAlreadyExists);
  EXPECT_EQ(store->CreateAccount("erin", "org_missing", Tier::kVerified).status().code(),
            StatusCode::kNotFound);
  EXPECT_EQ(store->CreateAccount("", "", Tier::kVerified).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(store->CreateAccount("acct_123", "", Tier::kVerified).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(store->CreateAccount("a b", "", Tier::kVerified).status().code(),
            StatusCode::kInvalidArgument);

  auto by_name = store->GetAccount("dave");
  ASSERT_TRUE(by_name.ok());
  auto by_id = store->GetAccount(a->id);
  ASSERT_TRUE(by_id.ok());
  EXPECT_EQ(by_name->id, by_id->id);
  EXPECT_EQ(store->GetAccount("nobody").status().code(), StatusCode::kNotFound);

  auto key = store->CreateKey(a->id, "k");
  ASSERT_TRUE(key.ok());
  ASSERT_TRUE(store->SetTier(a->id, Tier::kEnterprise).ok());
  EXPECT_EQ(store->GetAccount(a->id)->tier, Tier::kEnterprise);
  EXPECT_EQ(store->Authenticate(key->secret)->account.tier, Tier::kEnterprise);
  EXPECT_EQ(store->SetTier("acct_nope", Tier::kVerified).code(), StatusCode::kNotFound);
  EXPECT_EQ(store->CreateKey("acct_nope", "k").status().code(), StatusCode::kNotFound);

  ASSERT_TRUE(store->CreateAccount("frank", "", Tier::kVerified).ok());
  auto all = store->ListAccounts();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(store->ListOrganizations().size(), 1u);
}

TEST_F(AccountStoreTest, AVerificationHoldsForItsPeriodThenFallsBack) {
  constexpr int64_t kSec = 1'000'000'000;
  auto store = OpenStore();
  auto a = store->CreateAccount("alice", "", Tier::kUnverified);
  ASSERT_TRUE(a.ok());
  auto key = store->CreateKey(a->id, "");
  ASSERT_TRUE(key.ok());
  EXPECT_EQ(store->VerifyUntil(a->id, Tier::kVerified, clock_.NowNanos()).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(store->VerifyUntil("acct_nobody", Tier::kVerified, clock_.NowNanos() + kSec).status().code(),
            StatusCode::kNotFound);

  const int64_t until = clock_.NowNanos() + 60 * kSec;
  auto v = store->VerifyUntil(a->id, Tier::kVerified, until);
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(v->before.tier, Tier::kUnverified);
  EXPECT_EQ(v->before.tier_expires_ns, 0);
  EXPECT_EQ(v->after.tier, Tier::kVerified);
  EXPECT_EQ(v->after.tier_expires_ns, until);
  EXPECT_EQ(v->after.tier_after_expiry, Tier::kUnverified);
  auto p = store->Authenticate(key->secret);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->account.tier, Tier::kVerified);
  EXPECT_EQ(store->GetAccount("alice")->tier_expires_ns, until);

  // Verifying again during the period moves its end; the tier to return to stays unverified.
  clock_.AdvanceSeconds(30);
  auto again = store->VerifyUntil(a->id, Tier::kEnterprise, until + 60 * kSec);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->before.tier, Tier::kVerified);
  EXPECT_EQ(again->after.tier_after_expiry, Tier::kUnverified);
  clock_.AdvanceSeconds(40);  // past the first period, inside the second
  EXPECT_EQ(store->Authenticate(key->secret)->account.tier, Tier::kEnterprise);

  // Once the period is over every reader sees the tier before it, without a write.
  clock_.AdvanceSeconds(60);
  EXPECT_EQ(store->Authenticate(key->secret)->account.tier, Tier::kUnverified);
  auto expired = store->GetAccount(a->id);
  ASSERT_TRUE(expired.ok());
  EXPECT_EQ(expired->tier, Tier::kUnverified);
  EXPECT_EQ(expired->tier_expires_ns, 0);
  EXPECT_EQ(store->ListAccounts().at(0).tier, Tier::kUnverified);
  // Another process sees the same.
  auto other = OpenStore();
  EXPECT_EQ(other->Authenticate(key->secret)->account.tier, Tier::kUnverified);

  // A verification after an expired one still returns to the tier under both.
  auto third = store->VerifyUntil(a->id, Tier::kVerified, clock_.NowNanos() + 10 * kSec);
  ASSERT_TRUE(third.ok());
  EXPECT_EQ(third->before.tier, Tier::kUnverified);
  EXPECT_EQ(third->after.tier_after_expiry, Tier::kUnverified);
  // SetTier is for good: it ends the period.
  ASSERT_TRUE(store->SetTier(a->id, Tier::kVerified).ok());
  clock_.AdvanceSeconds(3600);
  EXPECT_EQ(store->Authenticate(key->secret)->account.tier, Tier::kVerified);
  EXPECT_EQ(store->GetAccount(a->id)->tier_expires_ns, 0);
}

TEST_F(AccountStoreTest, ADatabaseFromBeforeVerificationPeriodsOpensAndGainsThem) {
  {
    // The accounts table as the first schema made it, with one account in it.
    auto db = SqliteDb::Open(db_path_, SqliteDb::Mode::kReadWriteCreate, 1000);
    ASSERT_TRUE(db.ok()) << db.status().ToString();
    ASSERT_TRUE((*db)->Exec("CREATE TABLE accounts (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, "
                            "org_id TEXT, tier TEXT NOT NULL, created_ns INTEGER NOT NULL, "
                            "disabled INTEGER NOT NULL DEFAULT 0);"
                            "INSERT INTO accounts VALUES ('acct_000000000001', 'old', NULL, 'verified', 5, 0);")
                    .ok());
  }
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  auto old = store->GetAccount("old");
  ASSERT_TRUE(old.ok()) << old.status().ToString();
  EXPECT_EQ(old->tier, Tier::kVerified);
  EXPECT_EQ(old->tier_expires_ns, 0);
  auto v = store->VerifyUntil(old->id, Tier::kEnterprise, clock_.NowNanos() + 1'000'000'000);
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(v->after.tier_after_expiry, Tier::kVerified);
  store.reset();
  auto reopened = OpenStore();  // the migration runs once; opening again changes nothing
  ASSERT_NE(reopened, nullptr);
  EXPECT_EQ(reopened->GetAccount("old")->tier, Tier::kEnterprise);
}

TEST_F(AccountStoreTest, SecretsNeverStoredInClear) {
  std::vector<std::string> secrets;
  {
    auto store = OpenStore();
    ASSERT_TRUE(store);
    auto acct = store->CreateAccount("grace", "", Tier::kVerified);
    ASSERT_TRUE(acct.ok());
    for (int i = 0; i < 5; ++i) {
      auto key = store->CreateKey(acct->id, "k" + std::to_string(i));
      ASSERT_TRUE(key.ok());
      secrets.push_back(key->secret);
    }
    // Store still open: the WAL holds the data.
    std::string bytes = ReadAllDbBytes();
    ASSERT_FALSE(bytes.empty());
    for (const auto& s : secrets) {
      EXPECT_EQ(bytes.find(s), std::string::npos);
      EXPECT_EQ(bytes.find(s.substr(8)), std::string::npos);  // nor the random part
    }
    // Sanity: the scan would find a stored label.
    EXPECT_NE(bytes.find("grace"), std::string::npos);
  }
  std::string bytes = ReadAllDbBytes();  // after close (checkpointed into the main file)
  for (const auto& s : secrets) EXPECT_EQ(bytes.find(s.substr(8)), std::string::npos);
  // Keys survive a reopen.
  auto store = OpenStore();
  ASSERT_TRUE(store);
  for (const auto& s : secrets) EXPECT_TRUE(store->Authenticate(s).ok());
}

TEST_F(AccountStoreTest, SecondInstanceSeesChangesAfterRefresh) {
  auto a = OpenStore();
  auto b = OpenStore();
  ASSERT_TRUE(a && b);
  auto acct = a->CreateAccount("heidi", "", Tier::kUnverified);
  ASSERT_TRUE(acct.ok());
  auto key = a->CreateKey(acct->id, "k");
  ASSERT_TRUE(key.ok());
  EXPECT_FALSE(b->Authenticate(key->secret).ok());  // b's snapshot is stale
  ASSERT_TRUE(b->RefreshIfChanged().ok());
  EXPECT_TRUE(b->Authenticate(key->secret).ok());
  ASSERT_TRUE(b->RefreshIfChanged().ok());  // unchanged: still fine
  EXPECT_TRUE(b->Authenticate(key->secret).ok());

  ASSERT_TRUE(a->SetTier(acct->id, Tier::kVerified).ok());
  ASSERT_TRUE(b->RefreshIfChanged().ok());
  EXPECT_EQ(b->Authenticate(key->secret)->account.tier, Tier::kVerified);

  ASSERT_TRUE(a->RevokeKey(key->info.key_id).ok());
  EXPECT_TRUE(b->Authenticate(key->secret).ok());
  ASSERT_TRUE(b->RefreshIfChanged().ok());
  EXPECT_FALSE(b->Authenticate(key->secret).ok());

  // And the other direction.
  auto key2 = b->CreateKey(acct->id, "from-b");
  ASSERT_TRUE(key2.ok());
  ASSERT_TRUE(a->RefreshIfChanged().ok());
  EXPECT_TRUE(a->Authenticate(key2->secret).ok());

  // A key issued by `a` after another connection's change does not hide that change from the
  // next refresh (issuing a key updates a's snapshot without reloading it).
  ASSERT_TRUE(b->SetDisabled(acct->id, true).ok());
  auto other = a->CreateAccount("ivy", "", Tier::kUnverified);
  ASSERT_TRUE(other.ok());
  auto key3 = a->CreateKey(other->id, "after-b");
  ASSERT_TRUE(key3.ok());
  EXPECT_TRUE(a->Authenticate(key3->secret).ok());
  ASSERT_TRUE(a->RefreshIfChanged().ok());
  EXPECT_FALSE(a->Authenticate(key2->secret).ok());  // disabled by b
  EXPECT_TRUE(a->Authenticate(key3->secret).ok());
}

// Issuing a key updates one shard of the key snapshot in place of a reload from the database:
// after hundreds of keys on several accounts, some revoked and one account disabled, the store
// that issued them answers exactly as a store freshly loaded from the same database.
TEST_F(AccountStoreTest, IssuedKeysMatchAFreshLoad) {
  auto store = OpenStore();
  ASSERT_TRUE(store);
  std::vector<Account> accounts;
  for (const char* name : {"judy", "mallory", "niaj"}) {
    auto a = store->CreateAccount(name, "", Tier::kUnverified);
    ASSERT_TRUE(a.ok());
    accounts.push_back(*a);
  }
  ASSERT_TRUE(store->SetTier(accounts[1].id, Tier::kEnterprise).ok());
  std::vector<CreatedKey> keys;
  for (int i = 0; i < 300; ++i) {
    auto k = store->CreateKey(accounts[i % 3].id, "k" + std::to_string(i));
    ASSERT_TRUE(k.ok()) << k.status().ToString();
    keys.push_back(*k);
  }
  for (int i = 0; i < 300; i += 7) ASSERT_TRUE(store->RevokeKey(keys[i].info.key_id).ok());
  auto late = store->CreateKey(accounts[0].id, "after-revocations");
  ASSERT_TRUE(late.ok());
  keys.push_back(*late);
  ASSERT_TRUE(store->SetDisabled(accounts[2].id, true).ok());
  EXPECT_EQ(store->CreateKey(accounts[2].id, "disabled").status().code(), StatusCode::kFailedPrecondition);

  auto fresh = OpenStore();
  ASSERT_TRUE(fresh);
  EXPECT_EQ(store->ActiveKeyCount(), fresh->ActiveKeyCount());
  EXPECT_EQ(store->ActiveKeyCount(), 301u - 43u);  // 43 revoked (0, 7, ..., 294)
  for (size_t i = 0; i < keys.size(); ++i) {
    auto got = store->Authenticate(keys[i].secret);
    auto want = fresh->Authenticate(keys[i].secret);
    ASSERT_EQ(got.ok(), want.ok()) << i << ": " << got.status().ToString() << " vs " << want.status().ToString();
    const bool revoked = i < 300 && i % 7 == 0;
    const bool disabled = i < 300 && i % 3 == 2;
    EXPECT_EQ(got.ok(), !revoked && !disabled) << i;
    if (!got.ok()) continue;
    EXPECT_EQ(got->key_id, keys[i].info.key_id);
    EXPECT_EQ(got->account.id, want->account.id);
    EXPECT_EQ(got->account.tier, want->account.tier);
    EXPECT_EQ(got->account.tier, i % 3 == 1 ? Tier::kEnterprise : Tier::kUnverified);
  }
}

TEST_F(AccountStoreTest, ConcurrentAuthenticateDuringMutations) {
  auto store = OpenStore();
  ASSERT_TRUE(store);
  auto acct = store->CreateAccount("ivan", "", Tier::kVerified);
  ASSERT_TRUE(acct.ok());
  auto key = store->CreateKey(acct->id, "stable");
  ASSERT_TRUE(key.ok());
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 2; ++t) {
    readers.emplace_back([&] {
      while (!stop.load()) {
        if (!store->Authenticate(key->secret).ok()) failures.fetch_add(1);
      }
    });
  }
  for (int i = 0; i < 30; ++i) {
    auto k = store->CreateKey(acct->id, "tmp");
    ASSERT_TRUE(k.ok());
    ASSERT_TRUE(store->RevokeKey(k->info.key_id).ok());
  }
  stop = true;
  for (auto& t : readers) t.join();
  EXPECT_EQ(failures.load(), 0);
}

TEST_F(AccountStoreTest, LoadOrCreateSecret) {
  std::string path = (dir_ / "pepper").string();
  auto s1 = LoadOrCreateSecret(path);
  ASSERT_TRUE(s1.ok()) << s1.status().ToString();
  EXPECT_EQ(s1->size(), 32u);
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto s2 = LoadOrCreateSecret(path);
  ASSERT_TRUE(s2.ok());
  EXPECT_EQ(*s1, *s2);
  EXPECT_NE(*s1, *LoadOrCreateSecret((dir_ / "pepper2").string()));

  ::chmod(path.c_str(), 0644);
  EXPECT_EQ(LoadOrCreateSecret(path).status().code(), StatusCode::kFailedPrecondition);
  std::string bad = (dir_ / "bad").string();
  { std::ofstream(bad) << "short"; }
  ::chmod(bad.c_str(), 0600);
  EXPECT_EQ(LoadOrCreateSecret(bad).status().code(), StatusCode::kDataLoss);
}

}  // namespace
}  // namespace moat::store
