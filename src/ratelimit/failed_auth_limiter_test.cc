#include "ratelimit/failed_auth_limiter.h"

#include <gtest/gtest.h>

#include <string>

namespace moat::ratelimit {
namespace {

int FailuresUntilRefused(FailedAuthLimiter& l, const std::string& ip, int attempts) {
  int n = 0;
  for (int i = 0; i < attempts && l.Allowed(ip); ++i, ++n) l.RecordFailure(ip);
  return n;
}

TEST(FailedAuthLimiterTest, AnAddressGetsItsBurstOfFailuresThenWaits) {
  ManualClock clock;
  FailedAuthLimiter l(&clock, {/*per_ip_per_minute=*/6, /*per_prefix_per_minute=*/600, 1000});
  EXPECT_EQ(FailuresUntilRefused(l, "192.0.2.7", 100), 6);
  double retry = 0;
  EXPECT_FALSE(l.Allowed("192.0.2.7", &retry));
  EXPECT_NEAR(retry, 10.0, 1e-6);  // one failure per 10 s
  EXPECT_TRUE(l.Allowed("192.0.2.8"));  // another address is unaffected
  clock.AdvanceSeconds(10);
  EXPECT_EQ(FailuresUntilRefused(l, "192.0.2.7", 100), 1);
}

TEST(FailedAuthLimiterTest, ThePrefixBoundsAddressRotation) {
  ManualClock clock;
  FailedAuthLimiter l(&clock, {/*per_ip_per_minute=*/5, /*per_prefix_per_minute=*/12, 1000});
  int total = 0;
  for (int host = 1; host < 50; ++host) total += FailuresUntilRefused(l, "198.51.100." + std::to_string(host), 100);
  EXPECT_EQ(total, 12);
  EXPECT_TRUE(l.Allowed("203.0.113.1"));  // another /24
  // IPv6: one host's whole /64 counts as one address.
  EXPECT_EQ(FailuresUntilRefused(l, "2001:db8:1:2::1", 100), 5);
  EXPECT_FALSE(l.Allowed("2001:db8:1:2::ffff"));
}

TEST(FailedAuthLimiterTest, ADisabledScopeNeverRefuses) {
  ManualClock clock;
  FailedAuthLimiter l(&clock, {0, 0, 1000});
  EXPECT_EQ(FailuresUntilRefused(l, "192.0.2.7", 1000), 1000);
}

}  // namespace
}  // namespace moat::ratelimit
