#include "ratelimit/gcra_limiter.h"

#include <atomic>
#include <cmath>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace moat::ratelimit {
namespace {

int CountAdmitted(GcraLimiter& l, const std::string& key, const Rate& rate, int attempts,
                  double cost = 1) {
  int n = 0;
  for (int i = 0; i < attempts; ++i) n += l.Acquire(key, rate, cost).allowed ? 1 : 0;
  return n;
}

TEST(GcraLimiterTest, AdmitsExactlyBurstThenRate) {
  ManualClock clock;
  GcraLimiter l(&clock, 1000);
  const Rate rate{60, 10};  // 1 per second, bursts of 10
  EXPECT_EQ(CountAdmitted(l, "k", rate, 100), 10);
  clock.AdvanceSeconds(1);
  EXPECT_EQ(CountAdmitted(l, "k", rate, 100), 1);
  clock.AdvanceSeconds(3.5);
  EXPECT_EQ(CountAdmitted(l, "k", rate, 100), 3);
  clock.AdvanceSeconds(0.5);
  EXPECT_EQ(CountAdmitted(l, "k", rate, 100), 1);
  clock.AdvanceSeconds(1000);  // long idle: a full burst again, never more
  EXPECT_EQ(CountAdmitted(l, "k", rate, 100), 10);
  // Keys are independent.
  EXPECT_EQ(CountAdmitted(l, "other", rate, 100), 10);
}

TEST(GcraLimiterTest, DefaultBurstIsPerMinuteAndUnlimitedKeepsNoState) {
  ManualClock clock;
  GcraLimiter l(&clock, 1000);
  EXPECT_EQ(CountAdmitted(l, "k", Rate{30}, 100), 30);
  EXPECT_EQ(CountAdmitted(l, "u", Rate{}, 1000), 1000);
  EXPECT_EQ(CountAdmitted(l, "u", Rate{0, 5}, 1000), 1000);
  EXPECT_EQ(l.size(), 1u);
}

TEST(GcraLimiterTest, NonIntegerIntervalsStayExact) {
  ManualClock clock;
  GcraLimiter l(&clock, 1000);
  const Rate rate{7, 7};  // interval 8.571428...s
  EXPECT_EQ(CountAdmitted(l, "k", rate, 50), 7);
  clock.AdvanceNanos(3 * 60'000'000'000LL / 7 + 1);
  EXPECT_EQ(CountAdmitted(l, "k", rate, 50), 3);
  // Fractional costs: 0.1 units each -> 70 of them fit in a fresh burst of 7.
  EXPECT_EQ(CountAdmitted(l, "f", rate, 1000, 0.1), 70);
}

TEST(GcraLimiterTest, RetryAfter) {
  ManualClock clock;
  GcraLimiter l(&clock, 1000);
  const Rate rate{60, 5};
  EXPECT_EQ(CountAdmitted(l, "k", rate, 5), 5);
  auto d = l.Acquire("k", rate, 1);
  EXPECT_FALSE(d.allowed);
  EXPECT_NEAR(d.retry_after_s, 1.0, 1e-6);
  EXPECT_NEAR(l.Acquire("k", rate, 3).retry_after_s, 3.0, 1e-6);
  auto never = l.Acquire("k", rate, 6);  // above the burst: can never fit
  EXPECT_FALSE(never.allowed);
  EXPECT_TRUE(std::isinf(never.retry_after_s));
  clock.AdvanceSeconds(0.25);
  EXPECT_NEAR(l.Acquire("k", rate, 1).retry_after_s, 0.75, 1e-6);
  // Denials charged nothing: after exactly the advertised wait, the request is admitted.
  clock.AdvanceSeconds(0.75);
  EXPECT_TRUE(l.Acquire("k", rate, 1).allowed);
  EXPECT_TRUE(l.Acquire("fresh", rate, 1).allowed);
  EXPECT_EQ(l.Acquire("fresh", rate, 1).retry_after_s, 0);
  // Peek agrees with Acquire and charges nothing.
  auto peek = l.Peek("k", rate, 1);
  EXPECT_FALSE(peek.allowed);
  EXPECT_NEAR(peek.retry_after_s, 1.0, 1e-6);
  EXPECT_TRUE(l.Peek("fresh", rate, 3).allowed);  // 2 of 5 used
  EXPECT_FALSE(l.Peek("fresh", rate, 4).allowed);
  EXPECT_EQ(CountAdmitted(l, "fresh", rate, 10), 3);
}

TEST(GcraLimiterTest, AdjustChargesAndRefunds) {
  ManualClock clock;
  GcraLimiter l(&clock, 1000);
  const Rate rate{60, 5};
  EXPECT_EQ(CountAdmitted(l, "a", rate, 5), 5);
  l.Adjust("a", rate, -2);  // refund two
  EXPECT_EQ(CountAdmitted(l, "a", rate, 10), 2);

  // A refund never creates credit beyond a full burst.
  l.Adjust("b", rate, -100);
  EXPECT_EQ(CountAdmitted(l, "b", rate, 10), 5);
  l.Adjust("b", rate, -100);
  EXPECT_EQ(CountAdmitted(l, "b", rate, 10), 5);

  // Charging more, on a fresh key and beyond the burst (debt).
  l.Adjust("c", rate, 3);
  EXPECT_EQ(CountAdmitted(l, "c", rate, 10), 2);
  l.Adjust("d", rate, 10);
  auto d = l.Acquire("d", rate, 1);
  EXPECT_FALSE(d.allowed);
  EXPECT_NEAR(d.retry_after_s, 6.0, 1e-6);  // 10 charged + 1 asked - 5 burst
  clock.AdvanceSeconds(6);
  EXPECT_EQ(CountAdmitted(l, "d", rate, 10), 1);
}

TEST(GcraLimiterTest, ExactUnderConcurrency) {
  ManualClock clock;  // frozen: exactly `burst` admissions in total
  GcraLimiter l(&clock, 1000);
  const Rate rate{600, 1000};
  std::atomic<int> admitted{0};
  std::atomic<int> admitted_b{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 5000; ++i) {
        if (l.Acquire("hot", rate, 1).allowed) admitted.fetch_add(1);
        if (l.Acquire("k" + std::to_string(i % 7), Rate{60, 50}, 2).allowed) {
          admitted_b.fetch_add(1);
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(admitted.load(), 1000);
  EXPECT_EQ(admitted_b.load(), 7 * 25);
}

TEST(GcraLimiterTest, NeverExceedsRateWithMovingClock) {
  ManualClock clock;
  GcraLimiter l(&clock, 1000);
  const Rate rate{6000, 20};  // 100/s
  std::atomic<bool> stop{false};
  std::atomic<int> admitted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      while (!stop.load()) admitted += l.Acquire("k", rate, 1).allowed ? 1 : 0;
    });
  }
  for (int step = 0; step < 200; ++step) {  // 2 simulated seconds
    clock.AdvanceNanos(10'000'000);
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
  stop = true;
  for (auto& t : threads) t.join();
  EXPECT_LE(admitted.load(), 20 + 200);
  EXPECT_GE(admitted.load(), 20);
}

TEST(GcraLimiterTest, MemoryBoundedUnderFloodOfFreshKeys) {
  ManualClock clock;  // frozen: no entry ever expires, the worst case for eviction
  GcraLimiter l(&clock, 10'000);
  const Rate rate{60, 10};
  size_t max_seen = 0;
  for (int i = 0; i < 1'000'000; ++i) {
    ASSERT_TRUE(l.Acquire("acct_" + std::to_string(i), rate, 1).allowed);
    if (i % 50'000 == 0) max_seen = std::max(max_seen, l.size());
  }
  max_seen = std::max(max_seen, l.size());
  EXPECT_LE(max_seen, 10'000u);
  EXPECT_GE(l.size(), 5'000u);  // still remembers a useful number of keys
}

TEST(GcraLimiterTest, EvictsExpiredAndNearlyExpiredBeforeHeavyDebt) {
  ManualClock clock;
  GcraLimiter l(&clock, 1'000);
  const Rate rate{60, 10};
  l.Adjust("heavy", rate, 1000);  // in debt for 1000 s
  for (int i = 0; i < 100'000; ++i) {
    clock.AdvanceNanos(10'000);  // 1 s in total; flood entries expire 1 s after insertion
    ASSERT_TRUE(l.Acquire("flood" + std::to_string(i), rate, 1).allowed);
  }
  EXPECT_LE(l.size(), 1'000u);
  EXPECT_FALSE(l.Acquire("heavy", rate, 1).allowed);
}

}  // namespace
}  // namespace moat::ratelimit
