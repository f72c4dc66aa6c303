#include "ratelimit/quota_enforcer.h"

#include <atomic>
#include <cmath>
#include <cstdio>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace moat::ratelimit {
namespace {

using Result = std::variant<Reservation, QuotaEnforcer::Denial>;

bool Admitted(const Result& r) { return std::holds_alternative<Reservation>(r); }
const QuotaEnforcer::Denial& DenialOf(const Result& r) {
  return std::get<QuotaEnforcer::Denial>(r);
}

Subject Who(std::string key, std::string account, std::string ip = "203.0.113.7",
            std::string tier = "verified") {
  return Subject{std::move(key), std::move(account), std::move(ip), std::move(tier)};
}

int CountAdmitted(QuotaEnforcer& q, const Subject& s, int attempts, int64_t tokens = 0) {
  int n = 0;
  for (int i = 0; i < attempts; ++i) n += Admitted(q.Reserve(s, tokens)) ? 1 : 0;
  return n;
}

TEST(QuotaEnforcerTest, RequestScopesAndRollback) {
  ManualClock clock;
  TierLimits lim;
  lim.key_requests = {60, 5};
  lim.account_requests = {60, 3};
  QuotaEnforcer q(&clock, {{"verified", lim}}, 1000);
  EXPECT_EQ(CountAdmitted(q, Who("k1", "acct"), 3), 3);
  for (int i = 0; i < 10; ++i) {
    auto r = q.Reserve(Who("k1", "acct"), 0);
    ASSERT_FALSE(Admitted(r));
    EXPECT_EQ(DenialOf(r).scope, "account_requests");
    EXPECT_NEAR(DenialOf(r).retry_after_s, 1.0, 1e-6);
  }
  // The denied requests charged k1 and were rolled back: k1 has exactly 2 left.
  EXPECT_EQ(CountAdmitted(q, Who("k1", "acct2"), 10), 2);
  auto r = q.Reserve(Who("k1", "acct3"), 0);
  ASSERT_FALSE(Admitted(r));
  EXPECT_EQ(DenialOf(r).scope, "key_requests");
  EXPECT_EQ(q.stats().admitted, 5u);
  EXPECT_EQ(q.stats().denied, 19u);
}

TEST(QuotaEnforcerTest, TokenDenialRefundsEverything) {
  ManualClock clock;
  TierLimits lim;
  lim.key_requests = {60, 100};
  lim.key_tokens = {6000, 6000};
  lim.account_tokens = {1000, 1000};
  QuotaEnforcer q(&clock, {{"verified", lim}}, 1000);
  ASSERT_TRUE(Admitted(q.Reserve(Who("k", "a"), 900)));
  auto r = q.Reserve(Who("k", "a"), 200);  // account_tokens has only 100 left
  ASSERT_FALSE(Admitted(r));
  EXPECT_EQ(DenialOf(r).scope, "account_tokens");
  EXPECT_NEAR(DenialOf(r).retry_after_s, 100 * 60.0 / 1000, 1e-6);
  // k's tokens and request were refunded: k can still take 5100 tokens (spread over accounts,
  // each of which admits 1000) ...
  for (int j = 0; j < 5; ++j) {
    ASSERT_TRUE(Admitted(q.Reserve(Who("k", "o" + std::to_string(j)), 1000)));
  }
  ASSERT_TRUE(Admitted(q.Reserve(Who("k", "o5"), 100)));
  auto r2 = q.Reserve(Who("k", "o6"), 1);
  ASSERT_FALSE(Admitted(r2));
  EXPECT_EQ(DenialOf(r2).scope, "key_tokens");
  // ... and 100 requests, of which 7 were admitted.
  EXPECT_EQ(CountAdmitted(q, Who("k", "o7"), 200), 93);
}

TEST(QuotaEnforcerTest, DenialReportsTheLongestWait) {
  ManualClock clock;
  TierLimits lim;
  lim.key_requests = {60, 1};       // refill in 1 s
  lim.account_tokens = {600, 600};  // 10 tokens / s
  QuotaEnforcer q(&clock, {{"verified", lim}}, 1000);
  ASSERT_TRUE(Admitted(q.Reserve(Who("k", "a"), 600)));
  auto r = q.Reserve(Who("k", "a"), 100);  // both scopes refuse; tokens need 10 s
  ASSERT_FALSE(Admitted(r));
  EXPECT_EQ(DenialOf(r).scope, "account_tokens");
  EXPECT_NEAR(DenialOf(r).retry_after_s, 10.0, 1e-6);
  // Too many tokens to ever fit: infinite wait.
  auto never = q.Reserve(Who("k2", "b"), 601);
  ASSERT_FALSE(Admitted(never));
  EXPECT_EQ(DenialOf(never).scope, "account_tokens");
  EXPECT_TRUE(std::isinf(DenialOf(never).retry_after_s));
  clock.AdvanceSeconds(10);
  EXPECT_TRUE(Admitted(q.Reserve(Who("k", "a"), 100)));
}

TEST(QuotaEnforcerTest, IpAndPrefixScopes) {
  ManualClock clock;
  TierLimits lim;
  lim.ip_requests = {60, 2};
  lim.prefix_requests = {60, 3};
  QuotaEnforcer q(&clock, {{"verified", lim}}, 1000);
  EXPECT_EQ(CountAdmitted(q, Who("k1", "a1", "198.51.100.1"), 5), 2);
  auto r = q.Reserve(Who("k9", "a9", "198.51.100.1"), 0);
  ASSERT_FALSE(Admitted(r));
  EXPECT_EQ(DenialOf(r).scope, "ip_requests");
  EXPECT_EQ(CountAdmitted(q, Who("k2", "a2", "198.51.100.2"), 5), 1);
  r = q.Reserve(Who("k3", "a3", "198.51.100.3"), 0);
  ASSERT_FALSE(Admitted(r));
  EXPECT_EQ(DenialOf(r).scope, "prefix_requests");
  EXPECT_EQ(CountAdmitted(q, Who("k4", "a4", "198.51.101.1"), 5), 2);  // another /24
  // IPv6: one /64 is one client; one /48 is one prefix; v4-mapped is IPv4.
  EXPECT_EQ(CountAdmitted(q, Who("k5", "a5", "2001:db8:1:1::1"), 1), 1);
  EXPECT_EQ(CountAdmitted(q, Who("k5", "a5", "2001:db8:1:1::2"), 5), 1);
  EXPECT_EQ(CountAdmitted(q, Who("k5", "a5", "2001:db8:1:2::1"), 5), 1);  // prefix full
  EXPECT_EQ(CountAdmitted(q, Who("k6", "a6", "::ffff:198.51.101.9"), 5), 1);  // same /24 as above
}

TEST(QuotaEnforcerTest, ReconcileRefundsAndCharges) {
  ManualClock clock;
  TierLimits lim;
  lim.key_tokens = {1000, 1000};
  QuotaEnforcer q(&clock, {{"verified", lim}}, 1000);
  auto r = q.Reserve(Who("k", "a"), 800);
  ASSERT_TRUE(Admitted(r));
  EXPECT_EQ(std::get<Reservation>(r).reserved_tokens, 800);
  EXPECT_FALSE(Admitted(q.Reserve(Who("k", "a"), 201)));
  q.Reconcile(std::get<Reservation>(r), 300);  // used less: refund 500
  EXPECT_FALSE(Admitted(q.Reserve(Who("k", "a"), 701)));
  auto r2 = q.Reserve(Who("k", "a"), 700);
  ASSERT_TRUE(Admitted(r2));
  EXPECT_FALSE(Admitted(q.Reserve(Who("k", "a"), 1)));
  q.Reconcile(std::get<Reservation>(r2), 1300);  // used more: 600 tokens of debt
  auto d = q.Reserve(Who("k", "a"), 100);
  ASSERT_FALSE(Admitted(d));
  EXPECT_NEAR(DenialOf(d).retry_after_s, 60.0 * 700 / 1000, 1e-6);
}

TEST(QuotaEnforcerTest, StreamsExtendWithinLimits) {
  ManualClock clock;
  TierLimits lim;
  lim.key_tokens = {1000, 1000};
  lim.account_tokens = {2000, 2000};
  QuotaEnforcer q(&clock, {{"verified", lim}}, 1000);
  auto res = q.Reserve(Who("k", "a"), 500);
  ASSERT_TRUE(Admitted(res));
  Reservation r = std::get<Reservation>(res);
  EXPECT_TRUE(q.Extend(r, 400));
  EXPECT_EQ(r.reserved_tokens, 900);
  EXPECT_FALSE(q.Extend(r, 200));  // would overshoot key_tokens: nothing charged
  EXPECT_EQ(r.reserved_tokens, 900);
  EXPECT_EQ(q.stats().extend_denied, 1u);
  // The account was not charged by the refused extension either: 1100 left there.
  EXPECT_TRUE(Admitted(q.Reserve(Who("k2", "a"), 1000)));
  EXPECT_TRUE(Admitted(q.Reserve(Who("k3", "a"), 100)));
  EXPECT_FALSE(Admitted(q.Reserve(Who("k4", "a"), 1)));
  // Stream ends after 950 tokens: 50 refunded to k (and a).
  q.Reconcile(r, 950);
  EXPECT_TRUE(Admitted(q.Reserve(Who("k", "b"), 50)));
  EXPECT_FALSE(Admitted(q.Reserve(Who("k", "b"), 1)));
}

TEST(QuotaEnforcerTest, TiersAndUnknownTier) {
  ManualClock clock;
  TierLimits unverified, enterprise;
  unverified.account_requests = {60, 2};
  enterprise.account_requests = {600, 20};
  {
    QuotaEnforcer q(&clock, {{"unverified", unverified}, {"enterprise", enterprise}}, 1000);
    EXPECT_EQ(CountAdmitted(q, Who("k", "a", "", "enterprise"), 50), 20);
    EXPECT_EQ(CountAdmitted(q, Who("k", "b", "", "unverified"), 50), 2);
    EXPECT_EQ(CountAdmitted(q, Who("k", "c", "", "platinum"), 50), 2);  // falls back
  }
  QuotaEnforcer q(&clock, {{"enterprise", enterprise}}, 1000);
  auto r = q.Reserve(Who("k", "a", "", "platinum"), 0);
  ASSERT_FALSE(Admitted(r));
  EXPECT_EQ(DenialOf(r).scope, "tier");
}

TEST(QuotaEnforcerTest, RefusedRequestsNeverConsumeSharedScopes) {
  ManualClock clock;  // frozen
  TierLimits lim;
  lim.key_requests = {60, 100000};
  lim.account_requests = {60, 100};
  lim.key_tokens = {60000, 1500};
  lim.account_tokens = {600000, 100000};
  QuotaEnforcer q(&clock, {{"verified", lim}}, 1000);
  // "bad" keys have spent all their tokens elsewhere: on the shared account they pass the request
  // scopes and are refused on key_tokens. Were the account charged and refunded afterwards, the
  // good keys would see it transiently full and lose some of their exactly-100 admissions.
  for (int t = 0; t < 3; ++t) {
    std::string n = std::to_string(t);
    ASSERT_TRUE(Admitted(q.Reserve(Who("bad" + n, "elsewhere" + n), 1500)));
  }
  std::atomic<int> good{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> bad_threads, good_threads;
  for (int t = 0; t < 3; ++t) {
    bad_threads.emplace_back([&, t] {
      while (!stop.load()) {
        auto r = q.Reserve(Who("bad" + std::to_string(t), "shared"), 50);
        ASSERT_FALSE(Admitted(r));
        // key_tokens; once the good keys filled the account, account_requests (longer wait).
        ASSERT_TRUE(DenialOf(r).scope == "key_tokens" || DenialOf(r).scope == "account_requests");
      }
    });
  }
  for (int t = 0; t < 4; ++t) {
    good_threads.emplace_back([&, t] {
      for (int i = 0; i < 25; ++i) {
        if (Admitted(q.Reserve(Who("good" + std::to_string(t), "shared"), 10))) good++;
        std::this_thread::yield();
      }
    });
  }
  for (auto& t : good_threads) t.join();
  stop = true;
  for (auto& t : bad_threads) t.join();
  EXPECT_EQ(good.load(), 100);
  EXPECT_FALSE(Admitted(q.Reserve(Who("good0", "shared"), 10)));
}

TEST(QuotaEnforcerTest, ExactSharedAccountUnderConcurrency) {
  ManualClock clock;  // frozen
  TierLimits lim;
  lim.key_requests = {60, 30};
  lim.account_requests = {60, 100};
  lim.account_tokens = {60000, 6000};
  QuotaEnforcer q(&clock, {{"verified", lim}}, 1000);
  std::atomic<int> admitted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 3000; ++i) {
        if (Admitted(q.Reserve(Who("k" + std::to_string(t), "shared"), 50))) admitted++;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(admitted.load(), 100);  // the account's request burst, exactly
}

TEST(QuotaEnforcerTest, MemoryBoundedUnderFloodOfAccounts) {
  ManualClock clock;
  TierLimits lim;
  lim.key_requests = lim.account_requests = lim.ip_requests = lim.prefix_requests = {60, 10};
  lim.key_tokens = lim.account_tokens = lim.ip_tokens = lim.prefix_tokens = {60000, 60000};
  QuotaEnforcer q(&clock, {{"verified", lim}}, 2000);
  for (int i = 0; i < 100'000; ++i) {
    std::string n = std::to_string(i);
    char ip[64];  // a distinct /48 per account
    std::snprintf(ip, sizeof(ip), "2001:%x:%x::1", i >> 16, i & 0xffff);
    ASSERT_TRUE(Admitted(q.Reserve(Who("key_" + n, "acct_" + n, ip), 10)));
  }
  EXPECT_LE(q.TrackedKeys(), 4u * 2000u);
}

}  // namespace
}  // namespace moat::ratelimit
