#include "traffic/per_account_rate_engine.h"

#include <gtest/gtest.h>

namespace moat::traffic {
namespace {

using detect::Action;
constexpr int64_t kMin = 60'000'000'000LL;

detect::RequestEvent At(std::string account, int64_t t) {
  detect::RequestEvent e;
  e.account_id = std::move(account);
  e.time_ns = t;
  return e;
}

TEST(PerAccountRateEngineTest, ThrottlesAboveTheHourlyLimitThenRecovers) {
  PerAccountRateEngine engine({.max_requests_per_hour = 3});
  const int64_t t0 = 1'000 * 60 * kMin;
  EXPECT_EQ(engine.Observe(At("a", t0)).action, Action::kAllow);
  EXPECT_EQ(engine.Observe(At("a", t0 + kMin)).action, Action::kAllow);
  EXPECT_EQ(engine.Observe(At("a", t0 + 2 * kMin)).action, Action::kAllow);
  detect::Verdict v = engine.Observe(At("a", t0 + 3 * kMin));
  EXPECT_EQ(v.action, Action::kThrottle);
  ASSERT_EQ(v.reasons.size(), 1u);
  EXPECT_NE(v.reasons[0].find("4/h"), std::string::npos);
  // Another account is unaffected.
  EXPECT_EQ(engine.Observe(At("b", t0 + 3 * kMin)).action, Action::kAllow);
  // Seventy minutes later the hour has slid past all of a's requests.
  EXPECT_EQ(engine.Observe(At("a", t0 + 73 * kMin)).action, Action::kAllow);
}

TEST(PerAccountRateEngineTest, SpreadTrafficStaysUnderTheLimit) {
  PerAccountRateEngine engine({.max_requests_per_hour = 10});
  const int64_t t0 = 5'000 * 60 * kMin;
  // 9 requests an hour for a day: never throttled, which is what sybil campaigns exploit.
  for (int i = 0; i < 24 * 9; ++i) {
    ASSERT_EQ(engine.Observe(At("slow", t0 + i * 60 * kMin / 9)).action, Action::kAllow) << i;
  }
}

TEST(PerAccountRateEngineTest, MemoryIsBoundedUnderAFlood) {
  PerAccountRateEngine engine({.max_requests_per_hour = 5, .max_accounts = 64});
  for (int i = 0; i < 10'000; ++i) engine.Observe(At("fresh-" + std::to_string(i), i));
  EXPECT_LE(engine.tracked_accounts(), 64u);
  EXPECT_GT(engine.tracked_accounts(), 0u);
}

}  // namespace
}  // namespace moat::traffic
