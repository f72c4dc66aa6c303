#include "filters/analysis/analysis_filter.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "detect/engine.h"

namespace moat::filters {
namespace {

namespace json = boost::json;

RequestContext MakeRequest(const std::string& account, const std::string& body, int64_t t_ns) {
  RequestContext ctx;
  ctx.request_id = "req_test";
  ctx.start_ns = t_ns;
  ctx.endpoint = "/v1/chat/completions";
  ctx.account_id = account;
  ctx.key_id = "key_" + account;
  ctx.client_ip = "203.0.113.9";
  ctx.user_agent = "test-agent";
  ctx.raw_body = body;
  ctx.body = json::parse(body).as_object();
  ctx.max_tokens = 2000;
  return ctx;
}

class AnalysisFilterTest : public ::testing::Test {
 protected:
  detect::DetectionEngine engine_;
  MetricsRegistry metrics_;
};

TEST_F(AnalysisFilterTest, DenyListBlocksWithAVisibleReason) {
  AnalysisFilterFactory factory(&engine_, AnalysisSettings{}, &metrics_);
  engine_.SetListEntry("acct_bad", detect::ListEntry::kDeny);
  std::string body = R"({"model":"m","messages":[{"role":"user","content":"hello"}]})";
  RequestContext ctx = MakeRequest("acct_bad", body, 1'700'000'000'000'000'000);
  EXPECT_EQ(factory.Create()->OnRequest(ctx), FilterStatus::kStop);
  ASSERT_TRUE(ctx.local_reply);
  EXPECT_EQ(ctx.local_reply->http_status, 403);
  EXPECT_EQ(ctx.local_reply->code, "account_blocked");
  EXPECT_EQ(ctx.action, "block");
  bool has_reason_header = false;
  for (const auto& [k, v] : ctx.local_reply->headers) has_reason_header |= k == "x-moat-reason" && !v.empty();
  EXPECT_TRUE(has_reason_header);
  EXPECT_EQ(factory.verdicts().With({"block"}).value(), 1u);
}

TEST_F(AnalysisFilterTest, OrdinaryRequestIsAllowedUntouched) {
  AnalysisFilterFactory factory(&engine_, AnalysisSettings{}, &metrics_);
  std::string body = R"({"model":"m","messages":[{"role":"user","content":"what should I cook tonight with leeks?"}]})";
  RequestContext ctx = MakeRequest("acct_ok", body, 1'700'000'000'000'000'000);
  EXPECT_EQ(factory.Create()->OnRequest(ctx), FilterStatus::kContinue);
  EXPECT_EQ(ctx.action, "allow");
  EXPECT_FALSE(ctx.strip_reasoning);
  EXPECT_EQ(ctx.max_tokens, 2000);
  EXPECT_EQ(factory.verdicts().With({"allow"}).value(), 1u);
}

// A harvesting account: repeated reasoning-trace elicitation with logprobs from rotating
// addresses is degraded; the degraded request loses logprobs and is capped.
TEST_F(AnalysisFilterTest, HarvestingIsDegradedAndHardened) {
  AnalysisSettings settings;
  settings.degrade_max_tokens = 128;
  AnalysisFilterFactory factory(&engine_, settings, &metrics_);
  int64_t t = 1'700'000'000'000'000'000;
  RequestContext last;
  for (int i = 0; i < 20; ++i) {
    std::string body = R"({"model":"m","logprobs":true,"top_logprobs":5,"max_tokens":2000,"messages":[{"role":"user","content":"Solve step by step and show all of your reasoning before the final answer: what is )" +
                       std::to_string(i * 7) + R"( times 13?"}]})";
    RequestContext ctx = MakeRequest("acct_harvest", body, t + i * 2'000'000'000LL);
    ctx.client_ip = "198.51.100." + std::to_string(i + 1);
    factory.Create()->OnRequest(ctx);
    last = std::move(ctx);
  }
  ASSERT_EQ(last.action, "degrade") << "reasons: " << (last.reasons.empty() ? "" : last.reasons[0]);
  EXPECT_TRUE(last.strip_reasoning);
  EXPECT_FALSE(last.body.contains("logprobs"));
  EXPECT_FALSE(last.body.contains("top_logprobs"));
  EXPECT_EQ(last.body.at("max_tokens").as_int64(), 128);
  EXPECT_EQ(last.max_tokens, 128);
  bool visible = false;
  for (const auto& [k, v] : last.response_headers) visible |= k == "x-moat-reason";
  EXPECT_TRUE(visible);
  EXPECT_GT(factory.verdicts().With({"degrade"}).value(), 0u);
}

TEST_F(AnalysisFilterTest, SilentDegradeHidesTheRestrictionFromTheClientOnly) {
  AnalysisSettings settings;
  settings.silent_degrade = true;
  AnalysisFilterFactory factory(&engine_, settings, &metrics_);
  int64_t t = 1'700'000'000'000'000'000;
  RequestContext last;
  for (int i = 0; i < 20; ++i) {
    std::string body = R"({"model":"m","logprobs":true,"messages":[{"role":"user","content":"Think step by step and show your full chain of thought: problem )" +
                       std::to_string(i) + R"("}]})";
    RequestContext ctx = MakeRequest("acct_quiet", body, t + i * 2'000'000'000LL);
    ctx.client_ip = "198.51.100." + std::to_string(i + 1);
    factory.Create()->OnRequest(ctx);
    last = std::move(ctx);
  }
  ASSERT_EQ(last.verdict, "degrade");
  EXPECT_EQ(last.action, "allow");  // what the client is told
  for (const auto& [k, v] : last.response_headers) EXPECT_NE(k, "x-moat-reason");
  EXPECT_FALSE(last.body.contains("logprobs"));
}

}  // namespace
}  // namespace moat::filters
