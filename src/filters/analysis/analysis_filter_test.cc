#include "filters/analysis/analysis_filter.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "detect/detection_settings.h"
#include "detect/engine.h"
#include "detect/test_corpus.h"
#include "stepup/verification_url.h"
#include "test/upstream/test_http_server.h"

#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

namespace moat::filters {
namespace {

namespace json = boost::json;

std::string Escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out.push_back('\\');
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out.push_back(c);
  }
  return out;
}

RequestContext MakeRequest(const std::string& account, const std::string& body, int64_t t_ns,
                           const std::string& tier = "verified") {
  RequestContext ctx;
  ctx.request_id = "req_test";
  ctx.start_ns = t_ns;
  ctx.endpoint = "/v1/chat/completions";
  ctx.account_id = account;
  ctx.key_id = "key_" + account;
  ctx.tier = tier;
  ctx.client_ip = "203.0.113.9";
  ctx.headers = {{"user-agent", "test-agent"}};
  ctx.raw_body = body;
  ctx.body = json::parse(body).as_object();
  ctx.max_tokens = 2000;
  return ctx;
}

const std::string* Header(const HeaderList& headers, const std::string& name) {
  for (const auto& [k, v] : headers) {
    if (k == name) return &v;
  }
  return nullptr;
}

// An engine on the synthetic model whose budgets a handful of harvesting requests exceed.
detect::DetectionConfig SmallBudgets() {
  detect::DetectionConfig c;
  c.model = detect::testing::SyntheticModel();
  for (const char* tier : {"unverified", "verified", "enterprise"}) {
    EXPECT_TRUE(detect::ApplySetting(c, std::string("tier.") + tier + ".subject_budget", 2000).ok());
  }
  return c;
}

struct Harvested {
  RequestContext ctx;               // the last request's context
  std::optional<LocalReply> reply;  // the filter's LocalReply to it, when it refused it
};

// Sends reasoning-harvest requests (with logprobs) from `account` until one is restricted;
// returns the last request.
Harvested Harvest(AnalysisFilterFactory& factory, const std::string& account,
                  const std::string& tier) {
  const auto texts = detect::testing::SyntheticTexts(detect::kHeadReasoning, 60, 31);
  const int64_t t = 1'700'000'000'000'000'000;
  Harvested last;
  for (int i = 0; i < 60; ++i) {
    const std::string body = R"({"model":"m","logprobs":true,"top_logprobs":5,"prompt_logprobs":5,"best_of":4,)"
                             R"("use_beam_search":true,"max_tokens":2000,"messages":[{"role":"user","content":")" +
                             Escape(texts[i]) + R"("}]})";
    RequestContext ctx = MakeRequest(account, body, t + i * 60'000'000'000LL, tier);
    const FilterStatus st = factory.Create()->OnRequest(ctx);
    last.ctx = std::move(ctx);
    if (st.is_local_reply()) last.reply = st.reply();
    const bool restricted = last.ctx.action != Action::kAllow || last.ctx.verdict != Action::kAllow;
    if (st.is_local_reply() || restricted) break;
  }
  return last;
}

TEST(AnalysisFilterTest, DenyListBlocksNamingOnlyACategoryAndAReference) {
  detect::DetectionEngine engine(SmallBudgets());
  MetricsRegistry metrics;
  AnalysisFilterFactory factory(&engine, AnalysisSettings{}, &metrics);
  engine.SetListEntry("acct_bad", detect::ListEntry::kDeny);
  std::string body = R"({"model":"m","messages":[{"role":"user","content":"hello"}]})";
  RequestContext ctx = MakeRequest("acct_bad", body, 1'700'000'000'000'000'000);
  const FilterStatus ctx_status = factory.Create()->OnRequest(ctx);
  ASSERT_TRUE(ctx_status.is_local_reply());
  EXPECT_EQ(ctx_status.reply().http_status, 403);
  EXPECT_EQ(ctx_status.reply().code, "account_blocked");
  EXPECT_EQ(ctx.action, Action::kBlock);
  ASSERT_NE(Header(ctx_status.reply().headers, "x-moat-category"), nullptr);
  EXPECT_EQ(*Header(ctx_status.reply().headers, "x-moat-category"), "account_policy");
  ASSERT_NE(Header(ctx_status.reply().headers, "x-moat-reference"), nullptr);
  EXPECT_EQ(Header(ctx_status.reply().headers, "x-moat-reason"), nullptr);
  EXPECT_NE(ctx_status.reply().message.find("ref_"), std::string::npos);
  EXPECT_EQ(factory.verdicts().With({"block"}).value(), 1u);
}

TEST(AnalysisFilterTest, OrdinaryRequestIsAllowedUntouched) {
  detect::DetectionEngine engine(SmallBudgets());
  MetricsRegistry metrics;
  AnalysisFilterFactory factory(&engine, AnalysisSettings{}, &metrics);
  std::string body = R"({"model":"m","messages":[{"role":"user","content":"what should I cook tonight with leeks?"}]})";
  RequestContext ctx = MakeRequest("acct_ok", body, 1'700'000'000'000'000'000);
  EXPECT_TRUE(factory.Create()->OnRequest(ctx).is_continue());
  EXPECT_EQ(ctx.action, Action::kAllow);
  EXPECT_FALSE(ctx.strip_reasoning);
  EXPECT_EQ(ctx.max_tokens, 2000);
  EXPECT_TRUE(ctx.response_headers.empty());
  EXPECT_EQ(factory.verdicts().With({"allow"}).value(), 1u);
  // The engine's time is measured for every request judged, and shown on /metrics.
  EXPECT_EQ(factory.judge_seconds().count(), 1u);
  EXPECT_NE(metrics.RenderPrometheus().find("moat_detection_duration_seconds_count 1"), std::string::npos);
}

// A verified account over its budget is degraded: no logprobs, capped answers, no reasoning
// trace; it is told the category and a reference, not the evidence (which the audit keeps).
TEST(AnalysisFilterTest, HarvestingIsDegradedAndHardenedWithoutShowingTheEvidence) {
  detect::DetectionEngine engine(SmallBudgets());
  MetricsRegistry metrics;
  AnalysisSettings settings;
  settings.degrade_max_tokens = 128;
  AnalysisFilterFactory factory(&engine, settings, &metrics);
  RequestContext last = Harvest(factory, "acct_harvest", "verified").ctx;
  ASSERT_EQ(last.action, Action::kDegrade);
  EXPECT_TRUE(last.strip_reasoning);
  EXPECT_FALSE(last.body.contains("logprobs"));
  EXPECT_FALSE(last.body.contains("top_logprobs"));
  EXPECT_FALSE(last.body.contains("prompt_logprobs"));
  EXPECT_FALSE(last.body.contains("best_of"));
  EXPECT_FALSE(last.body.contains("use_beam_search"));
  EXPECT_EQ(last.body.at("max_tokens").as_int64(), 128);
  EXPECT_EQ(last.max_tokens, 128);
  ASSERT_NE(Header(last.response_headers, "x-moat-category"), nullptr);
  EXPECT_EQ(*Header(last.response_headers, "x-moat-category"), "automated_extraction");
  EXPECT_NE(Header(last.response_headers, "x-moat-reference"), nullptr);
  EXPECT_EQ(Header(last.response_headers, "x-moat-reason"), nullptr);
  std::string audit;
  for (const auto& r : last.reasons) audit += r + " ";
  EXPECT_NE(audit.find("content.reasoning_content"), std::string::npos) << audit;
  EXPECT_NE(audit.find("rule:subject_budget"), std::string::npos) << audit;
  EXPECT_EQ(factory.verdicts().With({"degrade"}).value(), 1u);
}

// The tier's hardening profile replaces the default one: it decides logprobs, the cap and
// whether streams lose the trace, and rides on the context for the backend.
TEST(AnalysisFilterTest, DegradedRequestsCarryTheirTiersHardeningProfile) {
  detect::DetectionEngine engine(SmallBudgets());
  MetricsRegistry metrics;
  AnalysisSettings settings;
  settings.degrade_max_tokens = 128;
  resistance::HardeningProfile verified;
  verified.trace = resistance::TraceMode::kKeep;
  verified.refuse_logprobs = false;
  verified.max_tokens = 64;
  verified.antidistill_kl = 0.3;
  settings.tier_hardening["verified"] = verified;
  AnalysisFilterFactory factory(&engine, settings, &metrics);
  const RequestContext last = Harvest(factory, "acct_harvest", "verified").ctx;
  ASSERT_EQ(last.action, Action::kDegrade);
  ASSERT_NE(last.hardening, nullptr);
  EXPECT_EQ(last.hardening, &factory.settings().tier_hardening.at("verified"));
  EXPECT_EQ(last.hardening->antidistill_kl, 0.3);
  EXPECT_FALSE(last.strip_reasoning);
  EXPECT_TRUE(last.body.contains("logprobs"));
  EXPECT_EQ(last.max_tokens, 64);

  const RequestContext other = Harvest(factory, "acct_other", "enterprise").ctx;
  ASSERT_EQ(other.action, Action::kDegrade);
  EXPECT_EQ(other.hardening, &factory.settings().hardening);
  EXPECT_TRUE(other.strip_reasoning);
  EXPECT_FALSE(other.body.contains("logprobs"));
  EXPECT_EQ(other.max_tokens, 128);
}

TEST(AnalysisFilterTest, UnverifiedAccountsAreAskedToVerify) {
  detect::DetectionEngine engine(SmallBudgets());
  MetricsRegistry metrics;
  AnalysisSettings settings;
  settings.step_up_url = *stepup::ParseVerificationUrl("https://example.com/verify");
  AnalysisFilterFactory factory(&engine, settings, &metrics);
  const Harvested last = Harvest(factory, "acct_new", "unverified");
  ASSERT_TRUE(last.reply.has_value());
  EXPECT_EQ(last.reply->http_status, 403);
  EXPECT_EQ(last.reply->code, "step_up_required");
  EXPECT_NE(last.reply->message.find("https://example.com/verify"), std::string::npos);
  EXPECT_EQ(last.reply->verification_url, "https://example.com/verify");
  EXPECT_NE(last.reply->message.find("ref_"), std::string::npos);
  EXPECT_EQ(last.reply->message.find("reasoning"), std::string::npos) << last.reply->message;
}

TEST(AnalysisFilterTest, AStepUpCarriesItsSubjectsVerificationUrlAndNotifiesTheIdentityServiceOnce) {
  detect::DetectionEngine engine(SmallBudgets());
  MetricsRegistry metrics;
  std::mutex mu;
  std::vector<std::string> bodies;
  moat::testing::TestHttpServer identity([&](const moat::testing::TestHttpServer::Request& r) {
    std::lock_guard lock(mu);
    bodies.push_back(r.body);
    return moat::testing::TestHttpServer::Reply{204, "", "application/json"};
  });
  stepup::StepUpNotifierOptions options;
  options.url = identity.url() + "/hooks";
  options.secret = "whsec_0123456789abcdef";
  auto notifier = stepup::StepUpNotifier::Create(options, SystemClock::Get(), &metrics);
  ASSERT_TRUE(notifier.ok()) << notifier.status().ToString();
  AnalysisSettings settings;
  settings.step_up_url = *stepup::ParseVerificationUrl("https://id.example/v?a={account}&u={end_user}&r={reference}");
  AnalysisFilterFactory factory(&engine, settings, &metrics, notifier->get());
  const Harvested last = Harvest(factory, "acct_new", "unverified");
  ASSERT_TRUE(last.reply.has_value());
  ASSERT_EQ(last.reply->code, "step_up_required");
  const std::string* ref = Header(last.reply->headers, "x-moat-reference");
  ASSERT_NE(ref, nullptr);
  const std::string url = "https://id.example/v?a=acct_new&u=&r=" + *ref;
  EXPECT_EQ(last.reply->verification_url, url);
  EXPECT_NE(last.reply->message.find("Verify at " + url + "."), std::string::npos) << last.reply->message;

  // Asked again: the same answer, but the identity service heard of the subject once.
  std::string body = R"({"model":"m","messages":[{"role":"user","content":"hello"}]})";
  RequestContext again = MakeRequest("acct_new", body, last.ctx.start_ns + 1'000'000'000, "unverified");
  const FilterStatus st = factory.Create()->OnRequest(again);
  ASSERT_TRUE(st.is_local_reply());
  EXPECT_EQ(st.reply().code, "step_up_required");
  for (int i = 0; i < 1000; ++i) {  // delivered off this thread: wait for it
    {
      std::lock_guard lock(mu);
      if (!bodies.empty()) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  notifier->reset();  // the second step-up was deduplicated when it was asked: nothing queued
  std::lock_guard lock(mu);
  ASSERT_EQ(bodies.size(), 1u);
  const json::object event = json::parse(bodies[0]).as_object();
  EXPECT_EQ(event.at("account_id").as_string(), "acct_new");
  EXPECT_EQ(event.at("reference").as_string(), *ref);
  EXPECT_EQ(event.at("verification_url").as_string(), url);
  EXPECT_EQ(event.at("request_id").as_string(), "req_test");
}

TEST(AnalysisFilterTest, TrustedTiersSeeTheEvidence) {
  detect::DetectionConfig c = SmallBudgets();
  c.policy.tiers[static_cast<size_t>(detect::Tier::kEnterprise)].show_evidence = true;
  detect::DetectionEngine engine(c);
  MetricsRegistry metrics;
  AnalysisFilterFactory factory(&engine, AnalysisSettings{}, &metrics);
  RequestContext last = Harvest(factory, "acct_partner", "enterprise").ctx;
  ASSERT_EQ(last.action, Action::kDegrade);
  const std::string* reason = Header(last.response_headers, "x-moat-reason");
  ASSERT_NE(reason, nullptr);
  EXPECT_NE(reason->find("content"), std::string::npos) << *reason;
  EXPECT_EQ(reason->find("posterior"), std::string::npos) << *reason;
}

TEST(AnalysisFilterTest, SilentDegradeHidesTheRestrictionFromTheClientOnly) {
  detect::DetectionEngine engine(SmallBudgets());
  MetricsRegistry metrics;
  AnalysisSettings settings;
  settings.silent_degrade = true;
  AnalysisFilterFactory factory(&engine, settings, &metrics);
  RequestContext last = Harvest(factory, "acct_quiet", "verified").ctx;
  ASSERT_EQ(last.verdict, Action::kDegrade);
  EXPECT_EQ(last.action, Action::kAllow);  // what the client is told
  EXPECT_TRUE(last.response_headers.empty());
  EXPECT_FALSE(last.body.contains("logprobs"));
}

}  // namespace
}  // namespace moat::filters
