// End-to-end tests of the detection engine on synthetic traffic and the synthetic model
// (test_corpus.h): who is restricted, by which rule, what a client may see, and who is not.

#include "detect/engine.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <optional>
#include <thread>
#include <vector>

#include "detect/detection_settings.h"
#include "detect/test_corpus.h"

namespace moat::detect {
namespace {

constexpr int64_t kSec = 1'000'000'000LL;
constexpr int64_t kHour = 3600 * kSec;
constexpr int64_t kT0 = 1'717'372'800LL * kSec;

std::string Escaped(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '"' || c == '\\') out.push_back('\\');
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out.push_back(c);
  }
  return out;
}

std::string Body(const std::string& prompt, const std::string& extra = "") {
  return R"({"model":"gpt-4o","messages":[{"role":"user","content":")" + Escaped(prompt) + "\"}]" + extra + "}";
}

RequestEvent Event(const std::string& account, int64_t t, const std::string& prompt,
                   const std::string& tier = "unverified", const std::string& user = "") {
  RequestEvent e;
  e.time_ns = t;
  e.account_id = account;
  e.end_user = user;
  e.tier = tier;
  e.client_ip = "70.1." + std::to_string(std::hash<std::string>{}(account) % 250) + ".7";
  e.user_agent = "OpenAI/Python 1.35.3";
  e.endpoint = "/v1/chat/completions";
  e.body_json = Body(prompt);
  return e;
}

DetectionConfig Config() {
  DetectionConfig c;
  c.model = testing::SyntheticModel();
  return c;
}

// Organic accounts active for `hours`, each a request every ~20 minutes.
void RunOrganic(DetectionEngine& engine, int accounts, int64_t from, int64_t hours, int* restricted) {
  const auto texts = testing::SyntheticTexts(LabeledText::kOrganic, 500, 3);
  int k = 0;
  for (int64_t m = 0; m < hours * 60; m += 20) {
    for (int a = 0; a < accounts; ++a) {
      Verdict v = engine.Observe(Event("org" + std::to_string(a), from + (m * 60 + a) * kSec, texts[k++ % 500]));
      *restricted += v.action != Action::kAllow;
    }
  }
}

TEST(DetectionEngineTest, OrganicUsersStayAllowed) {
  DetectionEngine engine(Config());
  int restricted = 0;
  RunOrganic(engine, 60, kT0, 30, &restricted);
  EXPECT_EQ(restricted, 0);
  auto r = engine.Account("org3");
  ASSERT_TRUE(r.has_value());
  EXPECT_LT(r->score, 0.2);
  EXPECT_EQ(r->tier, "unverified");
}

TEST(DetectionEngineTest, ALoneHarvesterIsRestrictedOnceOverItsBudgetAndTheClientSeesOnlyACategory) {
  DetectionConfig c = Config();
  ASSERT_TRUE(ApplySetting(c, "tier.unverified.subject_budget", 3000).ok());
  // The subject budget alone (the evidence budget has its own test below).
  ASSERT_TRUE(ApplySetting(c, "tier.unverified.evidence_budget", 1e9).ok());
  DetectionEngine engine(c);
  const auto texts = testing::SyntheticTexts(kHeadReasoning, 100, 4);
  int first = -1;
  Verdict v;
  for (int i = 0; i < 60 && first < 0; ++i) {
    v = engine.Observe(Event("harvester", kT0 + i * 90 * kSec, texts[i]));
    if (v.action != Action::kAllow) first = i;
  }
  ASSERT_GE(first, 8);   // not before its budget (3,000 tokens, 300 per answer)
  ASSERT_LE(first, 20);
  EXPECT_EQ(v.action, Action::kStepUp);  // unverified: verify first
  EXPECT_EQ(v.category, "automated_extraction");
  EXPECT_EQ(v.reference.rfind("ref_", 0), 0u);
  EXPECT_FALSE(v.show_evidence);
  // The evidence is in the reasons (for the audit record), with the rule and the budget.
  std::string all;
  for (const auto& r : v.reasons) all += r + " ";
  EXPECT_NE(all.find("rule:subject_budget"), std::string::npos) << all;
  EXPECT_NE(all.find("content.reasoning_content"), std::string::npos) << all;
  auto report = engine.Account("harvester");
  ASSERT_TRUE(report.has_value());
  EXPECT_TRUE(report->restricted);
  EXPECT_EQ(report->restricted_by, "subject_budget");
  EXPECT_GE(report->value, 3000);
}

// A request hidden in the system message under a plain user carrier is scored as the request it
// is (discounted), from the account's second such request on; an app's fixed system prompt never
// counts, however campaign-like it reads.
TEST(DetectionEngineTest, ARequestHiddenInTheSystemMessageIsScoredAFixedSystemPromptIsNot) {
  DetectionEngine engine(Config());
  const auto harvest = testing::SyntheticTexts(kHeadReasoning, 40, 4);
  const auto organic = testing::SyntheticTexts(LabeledText::kOrganic, 40, 5);
  const std::string carrier = "Please answer it.";
  auto with_system = [](RequestEvent e, const std::string& system, const std::string& user) {
    e.body_json = R"({"model":"gpt-4o","messages":[{"role":"system","content":")" + Escaped(system) +
                  R"("},{"role":"user","content":")" + Escaped(user) + R"("}]})";
    return e;
  };
  for (int i = 0; i < 30; ++i) {
    const int64_t t = kT0 + i * 600 * kSec;
    (void)engine.Observe(Event("plain", t, harvest[i]));
    // The user message a carrier: a plain request, or an ordinary question.
    const std::string& user = i % 2 == 0 ? carrier : organic[i];
    (void)engine.Observe(with_system(Event("hidden", t, ""), harvest[i], user));
    // An app whose fixed system prompt reads like a harvest.
    (void)engine.Observe(with_system(Event("app", t, ""), harvest[39], user));
    (void)engine.Observe(Event("carrier-only", t, user));
  }
  const double plain = engine.Account("plain")->evidence;
  const double hidden = engine.Account("hidden")->evidence;
  const double app = engine.Account("app")->evidence;
  const double carrier_only = engine.Account("carrier-only")->evidence;
  EXPECT_GE(plain, 9.0);
  EXPECT_GE(hidden, 0.6 * plain) << "plain " << plain;
  EXPECT_NEAR(app, carrier_only, 0.5);
  // The hidden harvest is what raised "hidden" above what its carrier alone gives.
  EXPECT_GE(hidden, carrier_only + 3.0);
}

// An agent resends the user's task on every step, with one more tool output: the task counts
// once, then only the outputs do. A harvester that dresses each new prompt as an agent step
// (a tool output after it) still has every prompt counted.
TEST(DetectionEngineTest, AnAgentsResentTaskCountsOnceEachNewPromptCounts) {
  DetectionEngine engine(Config());
  const auto harvest = testing::SyntheticTexts(kHeadReasoning, 40, 4);
  const auto organic = testing::SyntheticTexts(LabeledText::kOrganic, 40, 5);
  auto with_tools = [](RequestEvent e, const std::string& task, const std::vector<std::string>& outputs) {
    e.body_json = R"({"model":"gpt-4o","messages":[{"role":"user","content":")" + Escaped(task) + "\"}";
    for (const std::string& output : outputs) {
      e.body_json += R"(,{"role":"assistant","content":"Let me run the tests."},{"role":"tool","content":")" +
                     Escaped(output) + "\"}";
    }
    e.body_json += "]}";
    return e;
  };
  std::vector<std::string> outputs;
  for (int i = 0; i < 30; ++i) {
    const int64_t t = kT0 + i * 600 * kSec;
    outputs.push_back(organic[i]);
    (void)engine.Observe(Event("plain", t, harvest[i]));
    (void)engine.Observe(with_tools(Event("agent", t, ""), harvest[0], outputs));
    (void)engine.Observe(with_tools(Event("dressed", t, ""), harvest[i], {organic[i]}));
    (void)engine.Observe(Event("once", t, i == 0 ? harvest[0] : organic[i]));
  }
  const double plain = engine.Account("plain")->evidence;
  const double agent = engine.Account("agent")->evidence;
  const double dressed = engine.Account("dressed")->evidence;
  const double once = engine.Account("once")->evidence;
  EXPECT_GE(plain, 9.0);
  EXPECT_GE(dressed, 0.9 * plain) << "plain " << plain;
  // Near one harvest request among ordinary ones (above it by the discount: an ordinary tool
  // output counts 0.8 of what the same text counts as a user message), far from the harvest's.
  EXPECT_LE(agent, once + 4.0) << "plain " << plain;
  EXPECT_LE(agent, plain - 10.0);
}

TEST(DetectionEngineTest, OnlyTheNextTurnOfTheSubjectsOwnConversationCountsHalf) {
  const auto harvest = testing::SyntheticTexts(kHeadReasoning, 4, 6);
  const auto organic = testing::SyntheticTexts(LabeledText::kOrganic, 4, 7);
  // Openers on the items' topic (they share content words with every item: "buys", "gives",
  // "away"), where the organic ones share none.
  const std::vector<std::string> on_topic = {
      "I'm stuck on a word problem where somebody buys things and gives some away",
      "my daughter has homework where a kid buys stuff then gives away part of it, ugh",
      "quick one: a puzzle about a person who buys items and gives away a few",
      "help me understand problems where someone buys a bunch and gives away some"};
  // A chat request: an opener, an answer, then the item.
  auto chat = [](int64_t t, const std::string& opener, const std::string& item) {
    RequestEvent e = Event("subject", t, "");
    e.body_json = R"({"model":"gpt-4o","messages":[{"role":"user","content":")" + Escaped(opener) +
                  R"("},{"role":"assistant","content":"Sure, here it is."},{"role":"user","content":")" +
                  Escaped(item) + "\"}]}";
    return e;
  };
  // The evidence four chat requests (item i behind opener openers[i]) add to a subject that sent
  // the openers of the requests in sent_before on their own first (each in an engine of its own:
  // the same items asked by several subjects would be shared items, not one subject's).
  auto chats_evidence = [&](const std::vector<std::string>& openers, const std::vector<int>& sent_before) {
    DetectionEngine engine(Config());
    double added = 0;
    for (int i = 0; i < 4; ++i) {
      const int64_t t = kT0 + i * 600 * kSec;
      const std::string& opener = openers[i];
      if (std::find(sent_before.begin(), sent_before.end(), i) != sent_before.end()) {
        (void)engine.Observe(Event("subject", t - 60 * kSec, opener));
      }
      const auto before = engine.Account("subject");
      (void)engine.Observe(chat(t, opener, harvest[i]));
      added += engine.Account("subject")->evidence - (before ? before->evidence : 0.0);
    }
    return added;
  };
  // Each item inside an opener and answer the subject never sent (a data set's conversation).
  const double made_up = chats_evidence(on_topic, {});
  // The subject's own conversation: it sent each opener, then goes on with the item.
  const double own = chats_evidence(on_topic, {0, 1, 2, 3});
  // Its own conversation, but each item on another topic than the opener: asked anew.
  const double other_topic = chats_evidence(organic, {0, 1, 2, 3});
  // One opener sent once, then reused around every item: it vouches for one request only.
  const double reused = chats_evidence(std::vector<std::string>(4, on_topic[0]), {0});
  ASSERT_GE(made_up, 3.0) << "own " << own << " other topic " << other_topic << " reused " << reused;
  // Going on with its own conversation counts engine.continuation_weight (0.5) ...
  EXPECT_LE(own, 0.6 * made_up) << "made_up " << made_up;
  EXPECT_GE(own, 0.25 * made_up) << "made_up " << made_up;
  // ... where the next turn is about what was said; a new topic counts in full ...
  EXPECT_GE(other_topic, 0.8 * made_up) << "made_up " << made_up;
  // ... and a reused opener goes on with it once: the other three requests count in full.
  EXPECT_GE(reused, own + 0.2 * made_up) << "made_up " << made_up << " own " << own;
  EXPECT_LE(reused, made_up) << "own " << own;
}

TEST(DetectionEngineTest, AVerificationEndsAHeldRestrictionUntilTheVerifiedBudgetIsSpent) {
  DetectionConfig c = Config();
  ASSERT_TRUE(ApplySetting(c, "tier.unverified.subject_budget", 3000).ok());
  ASSERT_TRUE(ApplySetting(c, "tier.verified.subject_budget", 9000).ok());
  // The subject budget alone: these synthetic items are no harness's (see
  // AVerifiedHarvesterIsHeldToItsEvidenceBudgetAHarnessIsNot).
  ASSERT_TRUE(ApplySetting(c, "tier.verified.evidence_budget", 9000).ok());
  DetectionEngine engine(c);
  const auto texts = testing::SyntheticTexts(kHeadReasoning, 100, 4);
  int i = 0;
  auto next = [&](const std::string& tier) {
    Verdict v = engine.Observe(Event("harvester", kT0 + i * 90 * kSec, texts[i % 100], tier));
    ++i;
    return v;
  };
  while (i < 60 && next("unverified").action == Action::kAllow) {
  }
  ASSERT_LT(i, 60) << "never restricted";
  EXPECT_EQ(next("unverified").action, Action::kStepUp);  // held while unverified
  auto held = engine.Account("harvester");
  ASSERT_TRUE(held.has_value());
  const double value_when_verified = held->value;
  ASSERT_LT(value_when_verified, 9000);

  // Verified: served again, though the posterior alone would have held the restriction.
  Verdict verified = next("verified");
  EXPECT_EQ(verified.action, Action::kAllow);
  auto report = engine.Account("harvester");
  ASSERT_TRUE(report.has_value());
  EXPECT_GT(report->score, c.policy.release_posterior);
  EXPECT_FALSE(report->restricted);
  EXPECT_EQ(report->tier, "verified");
  // ... until its value passes the verified budget: then the verified tier's action.
  int served = 1;
  Verdict v;
  while (i < 200 && (v = next("verified")).action == Action::kAllow) ++served;
  ASSERT_LT(i, 200) << "never restricted again";
  EXPECT_EQ(v.action, Action::kDegrade);
  EXPECT_GE(served, 5);  // about (9,000 - value) / 300 tokens per answer
  EXPECT_GE(engine.Account("harvester")->value, 9000);
  // The verification expires: back to the unverified tier, whose budget is long spent.
  EXPECT_EQ(next("unverified").action, Action::kStepUp);
}

TEST(DetectionEngineTest, AVerifiedResearcherRunningOneBenchmarkStaysWithinBudget) {
  DetectionEngine engine(Config());
  const auto items = testing::SyntheticTexts(kHeadBenchmark, 400, 5);
  int restricted = 0;
  for (int i = 0; i < 400; ++i) {
    restricted += engine.Observe(Event("researcher", kT0 + i * 2 * kSec, items[i], "verified")).action != Action::kAllow;
  }
  EXPECT_EQ(restricted, 0);
  auto r = engine.Account("researcher");
  ASSERT_TRUE(r.has_value());
  EXPECT_GT(r->score, 0.99);              // clearly benchmark traffic ...
  EXPECT_LT(r->value, r->budget);         // ... but one run fits the verified budget
}

// An account that has been around for cohort.graduate_hours and is unsuspicious leaves its
// cohort's judgement; once its own evidence reaches policy.pool_min_evidence it is back in.
TEST(DetectionEngineTest, AnUnsuspiciousAccountGraduatesFromItsCohortAndRejoinsOnItsOwnEvidence) {
  const auto organic = testing::SyntheticTexts(LabeledText::kOrganic, 200, 8);
  const auto campaign = testing::SyntheticTexts(kHeadReasoning, 200, 9);
  for (double hours : {2.0, 0.0}) {
    DetectionConfig c = Config();
    ASSERT_TRUE(ApplySetting(c, "cohort.graduate_hours", hours).ok());
    DetectionEngine engine(c);
    auto graduated = [&] { return engine.Account("acct")->cohort_graduated; };
    int k = 0;
    int64_t t = kT0;
    for (; t < kT0 + 90 * 60 * kSec; t += 15 * 60 * kSec) engine.Observe(Event("acct", t, organic[k++]));
    EXPECT_FALSE(graduated()) << "younger than graduate_hours";
    for (; t < kT0 + 3 * kHour; t += 15 * 60 * kSec) engine.Observe(Event("acct", t, organic[k++]));
    EXPECT_EQ(graduated(), hours > 0);
    // Campaign content, one request every few minutes, until its own evidence is a pool's.
    for (int i = 0; i < 40 && engine.Account("acct")->evidence < c.policy.pool_min_evidence; ++i) {
      t += 4 * 60 * kSec;
      engine.Observe(Event("acct", t, campaign[i]));
    }
    ASSERT_GE(engine.Account("acct")->evidence, c.policy.pool_min_evidence);
    EXPECT_FALSE(graduated());
  }
}

// Hour 14, after 14 hours of established organic users (the baseline): 150 newcomers of
// `tier`, 120 of them a campaign sending one item each round, 30 organic. Counts the subjects of
// each kind that were restricted.
struct CohortOutcome {
  int sybils = 0, newbies = 0;
};
CohortOutcome RunNewcomerCohort(DetectionConfig c, const std::string& tier, int rounds) {
  EXPECT_TRUE(ApplySetting(c, "cohort.min_members", 10).ok());
  EXPECT_TRUE(ApplySetting(c, "baseline.min_feature_requests", 300).ok());
  EXPECT_TRUE(ApplySetting(c, "cohort.min_cohort_features", 3000).ok());
  DetectionEngine engine(c);
  int restricted = 0;
  RunOrganic(engine, 60, kT0, 14, &restricted);
  EXPECT_EQ(restricted, 0);
  const auto campaign = testing::SyntheticTexts(kHeadInstruction, 1000, 6);
  const auto organic = testing::SyntheticTexts(LabeledText::kOrganic, 1000, 7);
  std::map<std::string, bool> flagged;
  int k = 0;
  for (int round = 0; round < rounds; ++round) {
    for (int a = 0; a < 150; ++a) {
      const bool bad = a < 120;
      const std::string id = (bad ? "sybil" : "newbie") + std::to_string(a);
      Verdict v = engine.Observe(Event(id, kT0 + 14 * kHour + (round * 150 + a) * 40 * kSec,
                                       bad ? campaign[k % 1000] : organic[k % 1000], tier));
      ++k;
      if (v.action != Action::kAllow) flagged[id] = true;
    }
  }
  CohortOutcome out;
  for (const auto& [id, f] : flagged) (id.rfind("sybil", 0) == 0 ? out.sybils : out.newbies) += f;
  bool shifted = false;
  for (const auto& co : engine.Cohorts()) shifted = shifted || co.shifted;
  EXPECT_TRUE(shifted);
  return out;
}

TEST(DetectionEngineTest, ASybilCohortIsCaughtAsOneWhileItsOrganicNewcomersAreNot) {
  const CohortOutcome out = RunNewcomerCohort(Config(), "unverified", 4);
  EXPECT_GE(out.sybils, 108);  // >= 90 %
  EXPECT_EQ(out.newbies, 0);
}

// Enterprise accounts are trusted with a pool budget five times the other tiers' (100,000),
// not fifty: a campaign that opens or buys enterprise accounts is still caught as a cohort.
TEST(DetectionEngineTest, AnEnterpriseSybilCohortIsCaughtOnceItsPoolPassesTheEnterpriseBudget) {
  const CohortOutcome out = RunNewcomerCohort(Config(), "enterprise", 6);
  EXPECT_GE(out.sybils, 108);
  EXPECT_EQ(out.newbies, 0);
  // The budget is what restricts them: at the former 1,000,000 the cohort never spends it.
  DetectionConfig generous = Config();
  ASSERT_TRUE(ApplySetting(generous, "tier.enterprise.pool_budget", 1e6).ok());
  EXPECT_EQ(RunNewcomerCohort(generous, "enterprise", 6).sybils, 0);
}

TEST(DetectionEngineTest, AResellerIsJudgedPerEndUserAndAChurningClientAsAWhole) {
  DetectionConfig c = Config();
  ASSERT_TRUE(ApplySetting(c, "tier.verified.pool_budget", 5000).ok());
  DetectionEngine engine(c);
  const auto campaign = testing::SyntheticTexts(kHeadReasoning, 400, 8);
  const auto organic = testing::SyntheticTexts(LabeledText::kOrganic, 400, 9);
  std::map<std::string, bool> flagged;
  for (int i = 0; i < 800; ++i) {
    const bool bad = i % 4 == 0;  // 10 campaign end users among 40
    const std::string user = (bad ? "bad" : "good") + std::to_string(i % 40);
    Verdict v = engine.Observe(Event("reseller", kT0 + i * 30 * kSec, bad ? campaign[i % 400] : organic[i % 400],
                                     "verified", user));
    if (v.action != Action::kAllow) flagged[user] = true;
  }
  int bad = 0, good = 0;
  for (const auto& [user, f] : flagged) (user.rfind("bad", 0) == 0 ? bad : good) += f;
  EXPECT_GE(bad, 8);
  EXPECT_EQ(good, 0);
  // A client that names a fresh end user on every request cannot hide behind them.
  DetectionConfig rc = Config();
  ASSERT_TRUE(ApplySetting(rc, "tier.unverified.pool_budget", 5000).ok());
  DetectionEngine rotating(rc);
  int restricted = 0;
  for (int i = 0; i < 60; ++i) {
    restricted += rotating.Observe(Event("rotator", kT0 + i * 300 * kSec, campaign[i], "unverified",
                                         "u" + std::to_string(i)))
                      .action != Action::kAllow;
  }
  EXPECT_GT(restricted, 30);
  auto r = rotating.Account("rotator");
  ASSERT_TRUE(r.has_value());
  EXPECT_GT(r->distinct_end_users, 40);
}

// A campaign that starts sending its end users through a reseller fills the window it starts in:
// those end users are a cohort of the account that asks far more like a campaign than the
// account as a whole, and they are restricted sooner than on the account's share alone; the
// customers who came before are not touched.
TEST(DetectionEngineTest, AResellersEndUsersFirstSeenWithACampaignAreJudgedAsItsCohort) {
  const auto campaign = testing::SyntheticTexts(kHeadReasoning, 400, 18);
  const auto organic = testing::SyntheticTexts(LabeledText::kOrganic, 400, 19);
  const auto run = [&](double window_hours, int* customers_flagged, double min_evidence = 1.5) {
    DetectionConfig c = Config();
    EXPECT_TRUE(ApplySetting(c, "tier.verified.pool_budget", 5000).ok());
    EXPECT_TRUE(ApplySetting(c, "end_users.window_hours", window_hours).ok());
    EXPECT_TRUE(ApplySetting(c, "end_users.window_min_evidence", min_evidence).ok());
    DetectionEngine engine(c);
    std::map<std::string, bool> flagged;
    int answered = 0;
    // Forty customers from the start, a request each every 20 minutes between them.
    for (int i = 0; i < 480; ++i) {
      const std::string user = "good" + std::to_string(i % 40);
      const Verdict v = engine.Observe(Event("reseller", kT0 + i * 30 * kSec, organic[i % 400], "verified", user));
      if (v.action != Action::kAllow) flagged[user] = true;
    }
    // Eight hours in, ten new end users start asking reasoning items, between the customers.
    const int64_t start = kT0 + 8 * 3600 * kSec;
    for (int i = 0; i < 400; ++i) {
      const bool bad = i % 2 == 0;
      const std::string user = (bad ? "bad" : "good") + std::to_string((i / 2) % (bad ? 10 : 40));
      const Verdict v = engine.Observe(
          Event("reseller", start + i * 30 * kSec, bad ? campaign[i / 2] : organic[(i / 2 + 7) % 400], "verified", user));
      if (v.action != Action::kAllow) flagged[user] = true;
      if (bad && v.action == Action::kAllow) ++answered;
    }
    *customers_flagged = 0;
    for (const auto& [user, f] : flagged) *customers_flagged += user.rfind("good", 0) == 0 && f;
    return answered;
  };
  int customers_with = 0, customers_prior_only = 0, customers_without = 0;
  const int with_cohorts = run(6, &customers_with);
  // The cohort's share alone, its members held to policy.pool_min_evidence (3) like others.
  const int prior_only = run(6, &customers_prior_only, 3);
  const int without = run(0, &customers_without);
  EXPECT_EQ(customers_with, 0);
  EXPECT_EQ(customers_prior_only, 0);
  EXPECT_EQ(customers_without, 0);
  EXPECT_LE(with_cohorts, prior_only);
  EXPECT_LE(prior_only, without);
  EXPECT_LT(with_cohorts, without);
  EXPECT_LE(with_cohorts, 12);  // about one answer per campaign end user (20 without: two)
}

TEST(DetectionEngineTest, AnEnterpriseAccountRotatingItsEndUsersIsHeldToTheChurnBudget) {
  // An enterprise account (budgets of millions of tokens) asks one reasoning-harvest item after
  // another, each under a fresh `user`, every 5 minutes. Its end users mean nothing, its own
  // evidence is strong: it is held to policy.churn_budget (5,000 tokens), whatever its tier.
  const auto campaign = testing::SyntheticTexts(kHeadReasoning, 120, 8);
  auto with = [](const std::string& name, double value) {
    DetectionConfig c = Config();
    EXPECT_TRUE(ApplySetting(c, name, value).ok());
    return c;
  };
  auto first_restriction = [&](const DetectionConfig& c, int reuse_every, Verdict* out,
                               std::optional<AccountReport>* report) {
    DetectionEngine engine(c);
    for (int i = 0; i < 120; ++i) {
      // reuse_every > 0: one request in reuse_every brings an earlier end user back (the first
      // at the sixth request).
      const int user = reuse_every > 0 && i % reuse_every == 5 ? i - 1 : i;
      Verdict v = engine.Observe(Event("rotator", kT0 + i * 300 * kSec, campaign[i], "enterprise",
                                       "u" + std::to_string(user)));
      if (v.action != Action::kAllow) {
        *out = v;
        *report = engine.Account("rotator");
        return i;
      }
    }
    return -1;
  };
  Verdict v;
  std::optional<AccountReport> report;
  const int held = first_restriction(Config(), 0, &v, &report);
  // Churn is judged after two hours (24 requests); 5,000 tokens is about 17 answers.
  ASSERT_GE(held, 20);
  ASSERT_LE(held, 40);
  EXPECT_EQ(v.action, Action::kDegrade);  // the enterprise tier's action
  std::string all;
  for (const auto& r : v.reasons) all += r + " ";
  EXPECT_NE(all.find("rule:churn_budget"), std::string::npos) << all;
  EXPECT_NE(all.find("/5000"), std::string::npos) << all;
  ASSERT_TRUE(report.has_value());
  EXPECT_EQ(report->restricted_by, "churn_budget");
  EXPECT_EQ(report->budget, 5000);
  // Off, the enterprise budgets hold it for all 120 requests (36,000 tokens) ...
  EXPECT_EQ(first_restriction(with("policy.churn_budget", 0), 0, &v, &report), -1);
  // ... and so they do for an account whose end users come back (one request in ten): people,
  // judged one by one ...
  EXPECT_EQ(first_restriction(Config(), 10, &v, &report), -1);
  // ... or one in twenty-five: still churning for EndUserStage (fewer than 10 % of its end
  // users came back), but over policy.churn_budget_return_share (2 %) of its requests; at 5 %
  // it is held.
  EXPECT_EQ(first_restriction(Config(), 25, &v, &report), -1);
  EXPECT_NE(first_restriction(with("policy.churn_budget_return_share", 0.05), 25, &v, &report), -1);
}

TEST(DetectionEngineTest, ListsOverrideDetection) {
  DetectionEngine engine(Config());
  engine.SetListEntry("bad", ListEntry::kDeny);
  Verdict v = engine.Observe(Event("bad", kT0, "hello"));
  EXPECT_EQ(v.action, Action::kBlock);
  EXPECT_EQ(v.category, "account_policy");
  engine.SetListEntry("bad", ListEntry::kNone);
  EXPECT_EQ(engine.Observe(Event("bad", kT0 + kSec, "hello")).action, Action::kAllow);
  DetectionConfig c = Config();
  ASSERT_TRUE(ApplySetting(c, "tier.unverified.subject_budget", 100).ok());
  DetectionEngine strict(c);
  strict.SetListEntry("trusted", ListEntry::kAllow);
  const auto texts = testing::SyntheticTexts(kHeadReasoning, 50, 10);
  for (int i = 0; i < 50; ++i) {
    EXPECT_EQ(strict.Observe(Event("trusted", kT0 + i * kSec, texts[i])).action, Action::kAllow);
  }
}

TEST(DetectionEngineTest, TheContentReadingStagesCountOnceTogether) {
  // Three reasoning-harvest requests: the content model, corpus membership and the baseline all
  // read the same prompt; engine.content_llr_clip bounds what they add together per request.
  const auto texts = testing::SyntheticTexts(kHeadReasoning, 3, 5);
  auto score_after_three = [&](double clip) {
    DetectionConfig c = Config();
    EXPECT_TRUE(ApplySetting(c, "engine.content_llr_clip", clip).ok());
    DetectionEngine engine(c);
    for (int i = 0; i < 3; ++i) engine.Observe(Event("asker", kT0 + i * 600 * kSec, texts[i]));
    auto report = engine.Account("asker");
    return report.has_value() ? report->score : -1.0;
  };
  const double full = score_after_three(0);  // off, the default
  const double clipped = score_after_three(0.5);
  // Unclipped, three strongly campaign-like requests outweigh the unverified prior (-5) ...
  EXPECT_GT(full, 0.5);
  // ... while at most +0.5 a request they cannot: sigmoid(-5 + 3 x 0.5) = 0.03.
  EXPECT_GT(clipped, 0.0);
  EXPECT_LT(clipped, 0.05);
}

TEST(DetectionEngineTest, AnUnverifiedHarvesterIsHeldToItsEvidenceBudgetAtAnyPaceAVerifiedOneIsNot) {
  // One reasoning-harvest item after another, none organic: own evidence passes
  // policy.strong_evidence (9) within a few requests. Irregular, human gaps (2 to 13 minutes).
  const auto texts = testing::SyntheticTexts(kHeadReasoning, 40, 6);
  const int64_t human_gaps_s[] = {130, 420, 250, 780, 160, 600, 310, 200, 520, 140};
  std::optional<AccountReport> report;
  auto first_restriction = [&](const std::string& tier, bool human, Verdict* out, double human_gap_s = 0) {
    DetectionConfig c = Config();
    EXPECT_TRUE(ApplySetting(c, "policy.human_gap_s", human_gap_s).ok());
    DetectionEngine engine(c);
    int64_t t = kT0;
    for (int i = 0; i < 30; ++i) {
      t += (human ? human_gaps_s[i % 10] : 20) * kSec;  // a script sleeps 20 s between calls
      Verdict v = engine.Observe(Event("harvester-" + tier, t, texts[i], tier));
      if (v.action != Action::kAllow) {
        *out = v;
        report = engine.Account("harvester-" + tier);
        return i;
      }
    }
    return -1;
  };
  Verdict v;
  const int human = first_restriction("unverified", true, &v);
  // After about five answers (evidence budget 1,500 tokens, 300 an answer), far below the
  // unverified subject budget (30,000: a hundred answers).
  ASSERT_GE(human, 4);
  ASSERT_LE(human, 9);
  EXPECT_EQ(v.action, Action::kStepUp);
  EXPECT_EQ(v.category, "automated_extraction");
  std::string all;
  for (const auto& r : v.reasons) all += r + " ";
  EXPECT_NE(all.find("rule:evidence_budget"), std::string::npos) << all;
  EXPECT_NE(all.find("value:"), std::string::npos) << all;
  EXPECT_NE(all.find("/1500"), std::string::npos) << all;
  // The admin view names the rule and the budget that restricted it.
  ASSERT_TRUE(report.has_value());
  EXPECT_EQ(report->restricted_by, "evidence_budget");
  EXPECT_EQ(report->budget, 1500);
  // A script with a steady 20-second sleep is held alike: a closed-loop operator need not look
  // human ...
  const int script = first_restriction("unverified", false, &v);
  EXPECT_GE(script, 4);
  EXPECT_LE(script, 9);
  EXPECT_EQ(v.category, "automated_extraction");
  // ... unless the operator exempts machine-paced subjects (policy.human_gap_s above 20 s):
  // then its subject budget (30,000 tokens) holds for these 30 requests.
  EXPECT_EQ(first_restriction("unverified", false, &v, 30), -1);
  EXPECT_EQ(first_restriction("unverified", true, &v, 30), human);
  // A verified account is held to its own evidence budget (next test).
}

// The verified tier's evidence budget (3,000 tokens) holds a verified account that harvests at
// a script's pace, unless it looks like an evaluation harness running one benchmark: every
// prompt in one frame, or items of one known public set. Then its harness budget (2,000,000)
// holds, as the verified subject budget did for everyone before.
TEST(DetectionEngineTest, AVerifiedHarvesterIsHeldToItsEvidenceBudgetAHarnessIsNot) {
  // The synthetic model without its corpus index: the harvested items are no known set's.
  auto copy = DetectionModel::Parse(testing::SyntheticModel()->Serialize());
  ASSERT_TRUE(copy.ok());
  auto unindexed = std::make_shared<DetectionModel>(std::move(*copy));
  unindexed->corpus = CorpusIndex();
  auto first_restriction = [&](const std::vector<std::string>& prompts, Verdict* out,
                               std::optional<AccountReport>* report, bool indexed = false) {
    DetectionConfig c = Config();
    if (!indexed) c.model = unindexed;
    DetectionEngine engine(c);
    for (size_t i = 0; i < prompts.size(); ++i) {
      Verdict v = engine.Observe(Event("verified-client", kT0 + static_cast<int64_t>(i) * 3 * kSec,
                                       prompts[i], "verified"));
      if (v.action != Action::kAllow) {
        *out = v;
        *report = engine.Account("verified-client");
        return static_cast<int>(i);
      }
    }
    *report = engine.Account("verified-client");
    return -1;
  };
  const std::vector<std::string> raw = testing::SyntheticTexts(kHeadReasoning, 40, 6);
  Verdict v;
  std::optional<AccountReport> report;
  const int harvester = first_restriction(raw, &v, &report);
  // About ten answers of 300 tokens: past the harness test's first 8 requests.
  EXPECT_GE(harvester, 8);
  EXPECT_LE(harvester, 16);
  EXPECT_EQ(v.action, Action::kDegrade);
  std::string all;
  for (const auto& r : v.reasons) all += r + " ";
  EXPECT_NE(all.find("rule:evidence_budget"), std::string::npos) << all;
  EXPECT_NE(all.find("/3000"), std::string::npos) << all;
  ASSERT_TRUE(report.has_value());
  EXPECT_EQ(report->restricted_by, "evidence_budget");
  EXPECT_EQ(report->budget, 3000);

  // The same items through a harness's template: a fixed instruction before, a fixed answer
  // format after.
  std::vector<std::string> framed;
  for (const auto& item : raw) {
    framed.push_back("Solve the following problem carefully and show your work.\n\n" + item +
                     "\n\nGive the final answer on the last line as Answer: X");
  }
  EXPECT_EQ(first_restriction(framed, &v, &report), -1);
  ASSERT_TRUE(report.has_value());
  EXPECT_GT(report->score, 0.95);  // as suspicious as the raw items ...
  EXPECT_GT(report->value, 3000);  // ... and past the evidence budget, but a harness
  // "Question: ... Answer:" frames items of any length.
  std::vector<std::string> qa;
  for (const auto& item : raw) qa.push_back("Question: " + item + "\nAnswer:");
  EXPECT_EQ(first_restriction(qa, &v, &report), -1);
  // Items of one known public set (the synthetic model indexes these), sent as they are.
  const std::vector<std::string> known = testing::SyntheticTexts(kHeadBenchmark, 40, 1);
  EXPECT_EQ(first_restriction(known, &v, &report, /*indexed=*/true), -1);
  ASSERT_TRUE(report.has_value());
  EXPECT_GT(report->value, 3000);
  // With the harness test off, the framed items are held like the raw ones.
  // (policy.harness_template_share above 1: no subject follows a template that often.)
  DetectionConfig strict = Config();
  strict.model = unindexed;
  ASSERT_TRUE(ApplySetting(strict, "policy.harness_template_share", 1.1).ok());
  ASSERT_TRUE(ApplySetting(strict, "policy.harness_known_set_share", 1.1).ok());
  DetectionEngine engine(strict);
  int restricted_at = -1;
  for (size_t i = 0; i < framed.size() && restricted_at < 0; ++i) {
    if (engine
            .Observe(
                Event("framed", kT0 + static_cast<int64_t>(i) * 3 * kSec, framed[i], "verified"))
            .action != Action::kAllow) {
      restricted_at = static_cast<int>(i);
    }
  }
  EXPECT_GE(restricted_at, 8);
  EXPECT_LE(restricted_at, 16);
}

TEST(DetectionEngineTest, StagesCanBeSwitchedOff) {
  DetectionConfig c = Config();
  auto stages = StageSwitches::Parse("-cohort,-linkage");
  ASSERT_TRUE(stages.ok());
  c.stages = *stages;
  DetectionEngine engine(c);
  const auto names = engine.stage_names();
  EXPECT_EQ(std::count(names.begin(), names.end(), "cohort"), 0);
  EXPECT_EQ(std::count(names.begin(), names.end(), "content"), 1);
  EXPECT_TRUE(engine.Cohorts().empty());
  EXPECT_TRUE(engine.Campaigns().empty());
}

TEST(DetectionEngineTest, ConcurrentObserversAgreeWithTheStateTheyBuild) {
  DetectionEngine engine(Config());
  const auto texts = testing::SyntheticTexts(LabeledText::kOrganic, 100, 11);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 2000; ++i) {
        engine.Observe(Event("acct" + std::to_string(i % 50), kT0 + (t * 2000 + i) * kSec, texts[i % 100]));
      }
    });
  }
  for (auto& th : threads) th.join();
  uint64_t total = 0;
  for (int a = 0; a < 50; ++a) total += engine.Account("acct" + std::to_string(a))->requests;
  EXPECT_EQ(total, 8000u);
  EXPECT_EQ(engine.live_subjects(), 50u);
}

}  // namespace
}  // namespace moat::detect
