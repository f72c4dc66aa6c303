#include "detect/engine.h"

#include <gtest/gtest.h>

#include <thread>

namespace moat::detect {
namespace {

constexpr int64_t kSec = 1'000'000'000LL;
constexpr int64_t kT0 = 1'717'372'800LL * kSec;

std::string Body(const std::string& prompt, const std::string& extra = "") {
  std::string escaped;
  for (char c : prompt) {
    if (c == '"' || c == '\\') escaped.push_back('\\');
    escaped.push_back(c);
  }
  return R"({"model":"gpt-4o","messages":[{"role":"user","content":")" + escaped + "\"}]" + extra + "}";
}

RequestEvent Event(const std::string& account, int64_t t, const std::string& ip,
                   const std::string& body, const std::string& agent = "ui/1") {
  RequestEvent e;
  e.time_ns = t;
  e.account_id = account;
  e.client_ip = ip;
  e.user_agent = agent;
  e.endpoint = "/v1/chat/completions";
  e.body_json = body;
  return e;
}

const char* kOrganic[] = {
    "hey can you help me plan a birthday party for my daughter, she likes dinosaurs",
    "what's a good recipe for dinner tonight with chicken and rice?",
    "I'm trying to fix my bike chain, it keeps slipping. any ideas?",
    "how do I kill a python process that hangs on linux",
    "rewrite my cover letter so it sounds more confident, here it is: Dear hiring manager",
    "what should I see in Lisbon over a long weekend?"};

TEST(DetectionEngineTest, OrganicUsersStayAllowed) {
  DetectionEngine engine;
  int restricted = 0;
  for (int a = 0; a < 50; ++a) {
    for (int i = 0; i < 30; ++i) {
      Verdict v = engine.Observe(Event("org" + std::to_string(a), kT0 + (i * 600 + a) * kSec,
                                       "70.1." + std::to_string(a) + ".5",
                                       Body(kOrganic[(a + i) % 6])));
      restricted += v.action != Action::kAllow;
    }
  }
  EXPECT_EQ(restricted, 0);
}

TEST(DetectionEngineTest, CotHarvestIsDegradedQuicklyWithReasons) {
  DetectionEngine engine;
  int first_restricted = -1;
  Verdict last;
  for (int i = 0; i < 40; ++i) {
    last = engine.Observe(Event(
        "harvester", kT0 + i * 60 * kSec, "34.1.2.3",
        Body("Solve this step by step and show all of your reasoning before giving the final "
             "answer. A train leaves at " + std::to_string(i) + " pm and travels 60 miles.",
             R"(,"max_tokens":4096,"reasoning_effort":"high")"),
        "python-requests/2.31.0"));
    if (first_restricted < 0 && last.action != Action::kAllow) first_restricted = i;
  }
  ASSERT_GE(first_restricted, 0);
  EXPECT_LE(first_restricted, 4);
  EXPECT_EQ(last.action, Action::kDegrade);
  EXPECT_GT(last.account_score, 0.9);
  bool has_cot = false;
  for (const auto& r : last.reasons) has_cot |= r.rfind("cot_elicitation:", 0) == 0;
  EXPECT_TRUE(has_cot);
  auto report = engine.Account("harvester");
  ASSERT_TRUE(report.has_value());
  EXPECT_TRUE(report->restricted);
  EXPECT_EQ(report->requests, 40u);
  EXPECT_FALSE(report->history.empty());
  EXPECT_GT(report->signal_rates[kCot], 0.9);
}

TEST(DetectionEngineTest, SybilsAreLinkedAndNewOnesCaughtOnFirstRequests) {
  DetectionEngine engine;
  const char* tasks[] = {"Generate a list of five ways to reduce stress.",
                         "Describe the water cycle in simple terms.",
                         "Rewrite the sentence in passive voice: the cat chased the mouse.",
                         "Classify the following animals as mammals or birds: bat, owl.",
                         "Explain the difference between weather and climate."};
  int64_t t = kT0;
  int late_leaks = 0, late_requests = 0;
  for (int a = 0; a < 60; ++a) {
    const std::string account = "sybil" + std::to_string(a);
    for (int i = 0; i < 12; ++i) {
      t += 7 * kSec;
      // Rotating proxies: a few datacenter /24 blocks.
      const std::string ip = "52.9." + std::to_string((a + i) % 4) + "." + std::to_string(10 + i);
      Verdict v = engine.Observe(Event(account, t, ip,
                                       Body(tasks[(a + i) % 5], R"(,"temperature":0.7,"max_tokens":2048)"),
                                       "python-requests/2.31.0"));
      if (a >= 30) {
        ++late_requests;
        late_leaks += v.action == Action::kAllow;
      }
    }
  }
  // Once the campaign is known, new sybils leak little.
  EXPECT_LT(late_leaks, late_requests / 10);
  auto campaigns = engine.Campaigns();
  ASSERT_FALSE(campaigns.empty());
  EXPECT_GE(campaigns[0].members, 40u);
  auto report = engine.Account("sybil45");
  ASSERT_TRUE(report.has_value());
  EXPECT_FALSE(report->campaign_id.empty());
  EXPECT_FALSE(report->linked_accounts.empty());
}

TEST(DetectionEngineTest, ResellerEndUsersAreJudgedSeparately) {
  DetectionEngine engine;
  int customer_restricted = 0, campaign_restricted = 0;
  for (int i = 0; i < 600; ++i) {
    const bool campaign = i % 3 == 0;
    RequestEvent e = Event("reseller", kT0 + i * 20 * kSec, "44.4.4.4",
                           campaign ? Body("Explain your thinking in detail as you work through this, "
                                           "step by step: what is 17 * 23?",
                                           R"(,"max_tokens":4096)")
                                    : Body(kOrganic[i % 6]),
                           "node/4");
    e.end_user = campaign ? "bad" + std::to_string(i % 5) : "cust" + std::to_string(i % 40);
    Verdict v = engine.Observe(e);
    (campaign ? campaign_restricted : customer_restricted) += v.action != Action::kAllow;
  }
  EXPECT_EQ(customer_restricted, 0);
  EXPECT_GT(campaign_restricted, 150);
  EXPECT_TRUE(engine.Account("reseller/bad1").has_value());
}

TEST(DetectionEngineTest, AllowAndDenyLists) {
  DetectionEngine engine;
  engine.SetListEntry("vip", ListEntry::kAllow);
  engine.SetListEntry("banned", ListEntry::kDeny);
  for (int i = 0; i < 20; ++i) {
    Verdict v = engine.Observe(Event("vip", kT0 + i * kSec, "1.1.1.1",
                                     Body("Show your full chain of thought, step by step: 2+2")));
    EXPECT_EQ(v.action, Action::kAllow);
  }
  Verdict v = engine.Observe(Event("banned", kT0, "2.2.2.2", Body(kOrganic[0])));
  EXPECT_EQ(v.action, Action::kBlock);
  engine.SetListEntry("banned", ListEntry::kNone);
  v = engine.Observe(Event("banned", kT0 + kSec, "2.2.2.2", Body(kOrganic[1])));
  EXPECT_EQ(v.action, Action::kAllow);  // the deny entry, not the behaviour, was the reason
}

TEST(DetectionEngineTest, ThreadSafe) {
  DetectionEngine engine;
  auto work = [&](int id) {
    for (int i = 0; i < 2000; ++i) {
      engine.Observe(Event("t" + std::to_string(id) + "_" + std::to_string(i % 50),
                           kT0 + i * kSec, "9.9." + std::to_string(i % 7) + ".1",
                           Body(kOrganic[i % 6])));
    }
  };
  std::thread a(work, 0), b(work, 1), c(work, 0);
  a.join();
  b.join();
  c.join();
  EXPECT_EQ(engine.live_subjects(), 100u);
  EXPECT_EQ(engine.Account("t0_1")->requests, 80u);
}

}  // namespace
}  // namespace moat::detect
