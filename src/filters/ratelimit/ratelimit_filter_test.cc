#include "filters/ratelimit/ratelimit_filter.h"

#include <map>
#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "common/metrics.h"
#include "moat/clock.h"
#include "ratelimit/quota_enforcer.h"

namespace moat::filters {
namespace {

RequestContext Request(const std::string& key_id, const std::string& tier = "verified",
                       int64_t max_tokens = 10) {
  RequestContext ctx;
  ctx.request_id = "req_test";
  ctx.endpoint = "/v1/chat/completions";
  ctx.client_ip = "203.0.113.9";
  ctx.key_id = key_id;
  ctx.account_id = "acct_" + key_id;
  ctx.tier = tier;
  ctx.prompt_tokens_estimate = 5;
  ctx.max_tokens = max_tokens;
  return ctx;
}

std::string Header(const LocalReply& reply, const std::string& name) {
  for (const auto& [k, v] : reply.headers)
    if (k == name) return v;
  return "";
}

// A factory over a real QuotaEnforcer with only the "verified" tier configured.
std::unique_ptr<RateLimitFilterFactory> MakeFactory(const Clock* clock, MetricsRegistry* metrics,
                                                    const ratelimit::TierLimits& verified) {
  return std::make_unique<RateLimitFilterFactory>(
      std::make_unique<ratelimit::QuotaEnforcer>(
          clock, std::map<std::string, ratelimit::TierLimits>{{"verified", verified}}, 1000),
      metrics);
}

TEST(RateLimitFilterTest, RequestsOverTheKeyLimitAre429WithRetryAfter) {
  ManualClock clock;
  MetricsRegistry metrics;
  ratelimit::TierLimits limits;
  limits.key_requests = {60, 2};
  auto factory = MakeFactory(&clock, &metrics, limits);

  for (int i = 0; i < 2; ++i) {
    RequestContext ctx = Request("k1");
    EXPECT_TRUE(factory->Create()->OnRequest(ctx).is_continue()) << "request " << i;
  }
  RequestContext refused = Request("k1");
  const FilterStatus refused_status = factory->Create()->OnRequest(refused);
  ASSERT_TRUE(refused_status.is_local_reply());
  EXPECT_EQ(refused_status.reply().http_status, 429);
  EXPECT_EQ(refused_status.reply().code, "rate_limit_exceeded");
  EXPECT_EQ(refused.action, Action::kThrottle);
  EXPECT_EQ(Header(refused_status.reply(), "x-moat-limit-scope"), "key_requests");
  EXPECT_GE(std::stoi(Header(refused_status.reply(), "retry-after")), 1);
  EXPECT_EQ(factory->rejections().With({"key_requests"}).value(), 1u);

  // Another key has its own budget; the refused key is admitted again once the limit refills.
  RequestContext other = Request("k2");
  EXPECT_TRUE(factory->Create()->OnRequest(other).is_continue());
  clock.AdvanceSeconds(1.5);
  RequestContext later = Request("k1");
  EXPECT_TRUE(factory->Create()->OnRequest(later).is_continue());
  EXPECT_EQ(factory->rejections().With({"key_requests"}).value(), 1u);
}

TEST(RateLimitFilterTest, ARequestAboveTheBurstIs400NotRetryable) {
  ManualClock clock;
  MetricsRegistry metrics;
  ratelimit::TierLimits limits;
  limits.key_tokens = {100, 100};
  auto factory = MakeFactory(&clock, &metrics, limits);
  RequestContext ctx = Request("k1", "verified", /*max_tokens=*/500);
  const FilterStatus ctx_status = factory->Create()->OnRequest(ctx);
  ASSERT_TRUE(ctx_status.is_local_reply());
  EXPECT_EQ(ctx_status.reply().http_status, 400);
  EXPECT_EQ(ctx_status.reply().code, "request_exceeds_limit");
  EXPECT_EQ(ctx_status.reply().param, "max_tokens");
  EXPECT_EQ(Header(ctx_status.reply(), "retry-after"), "");
  EXPECT_EQ(factory->rejections().With({"key_tokens"}).value(), 1u);
}

TEST(RateLimitFilterTest, ATierWithoutLimitsIsRefused403) {
  ManualClock clock;
  MetricsRegistry metrics;
  ratelimit::TierLimits limits;
  limits.key_requests = {60, 10};
  auto factory = MakeFactory(&clock, &metrics, limits);
  RequestContext ctx = Request("k1", "enterprise");
  const FilterStatus ctx_status = factory->Create()->OnRequest(ctx);
  ASSERT_TRUE(ctx_status.is_local_reply());
  EXPECT_EQ(ctx_status.reply().http_status, 403);
  EXPECT_EQ(ctx_status.reply().code, "tier_not_configured");
  EXPECT_EQ(factory->rejections().With({"tier"}).value(), 1u);
}

TEST(RateLimitFilterTest, StreamIsCutWhenItOutgrowsTheTokenLimitAndUsageIsReconciled) {
  ManualClock clock;
  MetricsRegistry metrics;
  ratelimit::TierLimits limits;
  limits.key_tokens = {100, 100};
  auto factory = MakeFactory(&clock, &metrics, limits);

  // Reserves 5 + 10 tokens; the stream may grow to the burst of 100 and no further.
  RequestContext ctx = Request("k1");
  std::unique_ptr<Filter> filter = factory->Create();
  ASSERT_TRUE(filter->OnRequest(ctx).is_continue());
  ctx.completion_tokens = 60;
  EXPECT_TRUE(filter->OnStreamProgress(ctx).is_continue());
  ctx.completion_tokens = 200;
  const FilterStatus ctx_status = filter->OnStreamProgress(ctx);
  ASSERT_TRUE(ctx_status.is_local_reply());
  EXPECT_EQ(ctx_status.reply().http_status, 429);
  EXPECT_EQ(factory->rejections().With({"stream_tokens"}).value(), 1u);

  // Reconciling to a small real usage refunds the rest of the reservation.
  ctx.prompt_tokens = 5;
  ctx.completion_tokens = 5;
  filter->OnComplete(ctx);
  RequestContext next = Request("k1", "verified", /*max_tokens=*/80);
  EXPECT_TRUE(factory->Create()->OnRequest(next).is_continue());
}

}  // namespace
}  // namespace moat::filters
