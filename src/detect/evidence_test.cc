// Unit tests of each evidence family (evidence.h) in isolation, on synthetic requests and the
// synthetic model (test_corpus.h): what each stage contributes, and when it stays silent.

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <numeric>
#include <random>
#include <sstream>

#include "detect/cohort_evidence.h"
#include "detect/content_evidence.h"
#include "detect/detection_settings.h"
#include "detect/sketches.h"
#include "detect/subject_evidence.h"
#include "detect/test_corpus.h"
#include "detect/workqueue_evidence.h"

namespace moat::detect {
namespace {

constexpr int64_t kSec = 1'000'000'000LL;
constexpr int64_t kHour = 3600 * kSec;
constexpr int64_t kT0 = 1'717'372'800LL * kSec;

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

// One request's event and features, kept together (RequestView points into both).
struct Req {
  RequestEvent event;
  RequestFeatures features;
  Req(const std::string& account, const std::string& prompt, int64_t t, const std::string& user = "") {
    event.time_ns = t;
    event.account_id = account;
    event.end_user = user;
    event.client_ip = "70.1.2.3";
    event.body_json = R"({"messages":[{"role":"user","content":")" + Escape(prompt) + R"("}]})";
    features = Extract(event, testing::SyntheticModel().get());
  }
  RequestView View() const {
    RequestView r(event, features);
    r.now_ns = event.time_ns;
    r.tier = Tier::kUnverified;
    r.account_hash = Hash64(event.account_id);
    r.end_user_hash = event.end_user.empty() ? 0 : Hash64(event.account_id + "/" + event.end_user);
    return r;
  }
};

TEST(ContentStageTest, ClippedRatioAndReason) {
  ContentStage stage({.weight = 1.0, .clip = 2.0, .clip_low = 1.0, .jailbreak_clip = 1.0});
  Req campaign("a", testing::SyntheticTexts(kHeadBenchmark, 1, 40)[0], kT0);
  RequestView r = campaign.View();
  StageEvidence out;
  stage.OnRequest(r, &out);
  EXPECT_FLOAT_EQ(out.request_llr, 2.0f);  // the model is far more confident than the clip
  EXPECT_EQ(out.reason, kHeadBenchmark);
  EXPECT_FLOAT_EQ(r.content_llr, 2.0f);
  Req organic("a", testing::SyntheticTexts(LabeledText::kOrganic, 1, 40)[0], kT0);
  RequestView o = organic.View();
  StageEvidence out2;
  stage.OnRequest(o, &out2);
  EXPECT_FLOAT_EQ(out2.request_llr, -1.0f);
  EXPECT_EQ(out2.reason, -1);
}

TEST(ContentStageTest, AJailbreakLookingRequestIsTrustedLess) {
  ContentStage stage({.weight = 1.0, .clip = 2.0, .clip_low = 1.0, .jailbreak_clip = 1.0});
  Req probe("a", testing::SyntheticTexts(kHeadJailbreak, 1, 41)[0], kT0);
  ASSERT_EQ(probe.features.content.top_head, kHeadJailbreak);
  ASSERT_GT(probe.features.content.combined, 2.0f);
  RequestView r = probe.View();
  StageEvidence out;
  stage.OnRequest(r, &out);
  EXPECT_FLOAT_EQ(out.request_llr, 1.0f);
  EXPECT_EQ(out.reason, kHeadJailbreak);  // still named: it is evidence, only weaker
  ContentStage trusting({.weight = 1.0, .clip = 2.0, .clip_low = 1.0, .jailbreak_clip = 2.0});
  StageEvidence out2;
  trusting.OnRequest(r, &out2);
  EXPECT_FLOAT_EQ(out2.request_llr, 2.0f);
}

TEST(CorpusStageTest, KnownPublicItem) {
  CorpusStage stage({.member_llr = 1.0});
  // The synthetic model indexes its training texts (seed 1).
  Req known("a", testing::SyntheticTexts(kHeadReasoning, 200, 1)[7], kT0);
  RequestView r = known.View();
  StageEvidence out;
  stage.OnRequest(r, &out);
  EXPECT_TRUE(known.features.corpus.found);
  EXPECT_FLOAT_EQ(out.request_llr, 1.0f);
  Req unknown("a", "Plan a weekend trip to the mountains with my two kids and our old dog please", kT0);
  RequestView u = unknown.View();
  StageEvidence none;
  stage.OnRequest(u, &none);
  EXPECT_EQ(none.request_llr, 0.0f);
}

TEST(BaselineStageTest, DiscountsWhatThisDeploymentsUsersSendOften) {
  // The model thinks organic prompts rarely score high; here, established users often do.
  std::array<float, kLlrBins> model{};
  for (int b = 0; b < kLlrBins / 2; ++b) model[b] = 1.0f / (kLlrBins / 2);
  OrganicBaseline::Config cfg;
  cfg.prior_requests = 10;
  auto baseline = std::make_shared<OrganicBaseline>(cfg, model, 0.6);
  Req high("u", testing::SyntheticTexts(kHeadInstruction, 1, 41)[0], kT0);
  for (int i = 0; i < 200; ++i) baseline->Record(high.features);
  BaselineStage stage({.max_correction = 0.5}, baseline);
  RequestView r = high.View();
  r.content_llr = 2.0f;
  StageEvidence out;
  stage.OnRequest(r, &out);
  EXPECT_FLOAT_EQ(out.request_llr, -0.5f);
  EXPECT_FLOAT_EQ(r.content_llr, 1.5f);
  EXPECT_GT(baseline->HighShare(), 0.9f);
}

// Feeds a cohort stage: `organic` established subjects define the baseline, then newcomers
// (first seen in one window), a share `campaign` of them sending campaign content.
struct CohortFixture {
  std::shared_ptr<OrganicBaseline> baseline;
  CohortStageConfig config;  // the stage's; change it, then Rebuild()
  std::unique_ptr<CohortStage> stage;
  void Rebuild() { stage = std::make_unique<CohortStage>(config, baseline); }
  std::unordered_map<std::string, SubjectState> subjects;
  explicit CohortFixture(double attribution_min_share = 0, double attribution_clip = 2,
                         double feature_shift = CohortStageConfig{}.feature_shift,
                         double feature_requests_per_member = CohortStageConfig{}.feature_requests_per_member) {
    OrganicBaseline::Config bc;
    bc.min_feature_requests = 100;
    // These tests feed the restricted-traffic model whatever the content model says of the
    // requests; what it leaves out by default has a test of its own.
    bc.restricted_min_llr = -1e9;
    auto model = testing::SyntheticModel();
    baseline = std::make_shared<OrganicBaseline>(bc, model->content.organic_distribution(), 0.9);
    CohortStageConfig cc;
    cc.min_members = 10;
    cc.min_cohort_features = 2000;
    cc.attribution_min_share = attribution_min_share;
    cc.attribution_clip = attribution_clip;
    cc.feature_attribution_clip = attribution_clip;
    cc.feature_shift = feature_shift;
    cc.feature_min_members = 50;
    cc.feature_min_requests = 100;
    cc.feature_requests_per_member = feature_requests_per_member;
    config = cc;
    stage = std::make_unique<CohortStage>(cc, baseline);
    for (const auto& t : testing::SyntheticTexts(LabeledText::kOrganic, 400, 50)) {
      Req r("old", t, kT0);
      baseline->Record(r.features);
    }
  }
  // `machines_judged_alone`: TierPolicy::machines_judged_alone of the account's tier.
  StageEvidence Send(const std::string& account, const std::string& prompt, int64_t t,
                     bool machines_judged_alone = true) {
    Req req(account, prompt, t);
    SubjectState& s = subjects[account];
    ObserveRequest(s, req.features, "70.1.2.3", t, DecayConfig{});
    StageEvidence out;
    RequestView view = req.View();
    view.tier_machines_judged_alone = machines_judged_alone;
    stage->OnSubject(view, SubjectRole::kAccount, s, nullptr, &out);
    return out;
  }
  // 100 newcomers of one window, 80 of them sending `campaign` prompts ("c0".."c79", the rest
  // "o80".."o99" `organic` ones), three requests each two minutes apart: a shifted cohort.
  void ShiftOneCohort(const std::vector<std::string>& campaign, const std::vector<std::string>& organic) {
    int k = 0;
    for (int round = 0; round < 3; ++round) {
      for (int a = 0; a < 100; ++a) {
        const bool bad = a < 80;
        Send((bad ? "c" : "o") + std::to_string(a), bad ? campaign[k % 400] : organic[k % 400],
             kT0 + 2 * kHour + (round * 100 + a) * 120 * kSec);
        ++k;
      }
    }
  }
};

TEST(CohortStageTest, AShiftedCohortRaisesItsMembersPriorAndAttributesTheirRequests) {
  CohortFixture fx;
  const auto campaign = testing::SyntheticTexts(kHeadReasoning, 400, 60);
  const auto organic = testing::SyntheticTexts(LabeledText::kOrganic, 400, 61);
  // 100 newcomers, 80 of them a campaign, each three requests, spaced minutes apart.
  StageEvidence last_campaign, last_organic;
  int k = 0;
  for (int round = 0; round < 3; ++round) {
    for (int a = 0; a < 100; ++a) {
      const bool bad = a < 80;
      const std::string account = (bad ? "c" : "o") + std::to_string(a);
      const int64_t t = kT0 + 2 * kHour + (round * 100 + a) * 120 * kSec;
      StageEvidence e = fx.Send(account, bad ? campaign[k % 400] : organic[k % 400], t);
      ++k;
      (bad ? last_campaign : last_organic) = e;
    }
  }
  const auto cohorts = fx.stage->Cohorts();
  ASSERT_EQ(cohorts.size(), 1u);
  EXPECT_TRUE(cohorts[0].shifted);
  EXPECT_GT(cohorts[0].campaign_share, 0.5);
  EXPECT_GT(cohorts[0].z, 5);
  // Every member's prior is raised; the campaign's requests look like the cohort's excess, the
  // organic newcomers' like the baseline.
  EXPECT_GT(last_campaign.prior, 3.0f);
  EXPECT_FLOAT_EQ(last_organic.prior, last_campaign.prior);
  EXPECT_GT(last_campaign.request_llr, 1.0f);
  EXPECT_LT(last_organic.request_llr, -1.0f);
}

// An account that graduated (the engine sets SubjectState::graduated once it is old and
// unsuspicious) is judged on its own: the same request of a member that did not gets the
// cohort's prior and attribution, the graduate none, and it still counts in the cohort.
TEST(CohortStageTest, AGraduatedMemberIsNoLongerJudgedByItsCohort) {
  CohortFixture fx;
  const auto campaign = testing::SyntheticTexts(kHeadReasoning, 400, 65);
  fx.ShiftOneCohort(campaign, testing::SyntheticTexts(LabeledText::kOrganic, 400, 66));
  const double requests_before = fx.stage->Cohorts().at(0).requests;
  const int64_t t = kT0 + 12 * kHour;
  const StageEvidence member = fx.Send("c1", campaign[7], t);
  fx.subjects["c2"].graduated = 1;
  const StageEvidence graduate = fx.Send("c2", campaign[7], t);
  EXPECT_GT(member.prior, 3.0f);
  EXPECT_GT(member.request_llr, 1.0f);
  EXPECT_EQ(member.reason, 0);
  EXPECT_EQ(graduate.prior, 0.0f);
  EXPECT_EQ(graduate.request_llr, 0.0f);
  EXPECT_EQ(graduate.pool_value, 0.0f);
  EXPECT_EQ(graduate.reason, -1);
  EXPECT_GT(fx.stage->Cohorts().at(0).requests, requests_before + 1.5);
}

// A member that asks at a script's pace (an evaluation harness, a batch job) is judged on its own
// budget, not through its cohort, unless its tier says otherwise (the unverified tier's default:
// a queue worker that does not bother to look human).
TEST(CohortStageTest, AMachinePacedMemberIsJudgedThroughItsCohortOnlyWhereItsTierSaysSo) {
  CohortFixture fx;
  const auto campaign = testing::SyntheticTexts(kHeadReasoning, 400, 67);
  fx.ShiftOneCohort(campaign, testing::SyntheticTexts(LabeledText::kOrganic, 400, 68));
  ASSERT_TRUE(fx.stage->Cohorts().at(0).shifted);
  // Two newcomers of the same window, each five requests two seconds apart.
  StageEvidence alone, through_cohort;
  for (int i = 0; i < 5; ++i) {
    const int64_t t = kT0 + 3 * kHour + i * 2 * kSec;
    alone = fx.Send("script-a", campaign[100 + i], t, true);
    through_cohort = fx.Send("script-b", campaign[100 + i], t, false);
  }
  EXPECT_EQ(alone.prior, 0.0f);
  EXPECT_EQ(alone.pool_value, 0.0f);
  EXPECT_EQ(alone.reason, -1);
  EXPECT_GT(through_cohort.prior, 3.0f);
  EXPECT_GT(through_cohort.request_llr, 1.0f);
  EXPECT_EQ(through_cohort.reason, 0);
}

// In a cohort that is mostly organic the attribution divides the noise of the cohort's ratio by a
// small campaign share. With a minimum share, the same requests get evidence closer to zero
// (either way), and the campaign's requests are still attributed to it.
TEST(CohortStageTest, AMostlyOrganicCohortAttributesWithTheMinimumShare) {
  const auto campaign = testing::SyntheticTexts(kHeadReasoning, 400, 63);
  const auto organic = testing::SyntheticTexts(LabeledText::kOrganic, 400, 64);
  struct Seen {
    double share = 0;
    std::vector<float> organic_llr;
    float campaign_llr = 0;  // mean over the last round
  };
  auto run = [&](double min_share) {
    // Unclipped (the synthetic texts are far apart), and the binomial test's share alone.
    CohortFixture fx(min_share, /*attribution_clip=*/20, /*feature_shift=*/0);
    Seen seen;
    int k = 0, n = 0;
    for (int round = 0; round < 4; ++round) {
      for (int a = 0; a < 100; ++a) {
        const bool bad = a % 5 == 0;
        const std::string account = (bad ? "c" : "o") + std::to_string(a);
        const int64_t t = kT0 + 2 * kHour + (round * 100 + a) * 120 * kSec;
        // A quarter of the organic newcomers also ask something the campaign asks.
        const std::string prompt = bad ? campaign[k % 400]
                                   : a % 5 == 1 ? organic[k % 400] + " " + campaign[(k + 7) % 400]
                                                : organic[k % 400];
        const StageEvidence e = fx.Send(account, prompt, t);
        ++k;
        if (!bad) seen.organic_llr.push_back(e.request_llr);
        if (bad && round == 3) seen.campaign_llr += e.request_llr, ++n;
      }
    }
    const auto cohorts = fx.stage->Cohorts();
    EXPECT_EQ(cohorts.size(), 1u);
    EXPECT_TRUE(cohorts[0].shifted);
    seen.share = cohorts[0].campaign_share;
    seen.campaign_llr /= n;
    return seen;
  };
  const Seen plain = run(0), floored = run(0.5);
  EXPECT_LT(plain.share, 0.5);
  EXPECT_DOUBLE_EQ(plain.share, floored.share);  // the floor changes the attribution, not the test
  ASSERT_EQ(plain.organic_llr.size(), floored.organic_llr.size());
  int closer = 0;
  for (size_t i = 0; i < plain.organic_llr.size(); ++i) {
    EXPECT_LE(std::abs(floored.organic_llr[i]), std::abs(plain.organic_llr[i]) + 1e-6f);
    closer += std::abs(floored.organic_llr[i]) < std::abs(plain.organic_llr[i]) - 0.1f ? 1 : 0;
  }
  EXPECT_GT(closer, 0);
  EXPECT_GT(floored.campaign_llr, 1.0f);
}

TEST(CohortStageTest, AnOrganicCohortIsNotShifted) {
  CohortFixture fx;
  const auto organic = testing::SyntheticTexts(LabeledText::kOrganic, 600, 62);
  StageEvidence e;
  for (int i = 0; i < 600; ++i) {
    e = fx.Send("o" + std::to_string(i % 150), organic[i], kT0 + 2 * kHour + i * 60 * kSec);
  }
  const auto cohorts = fx.stage->Cohorts();
  ASSERT_EQ(cohorts.size(), 1u);
  EXPECT_FALSE(cohorts[0].shifted);
  EXPECT_LT(cohorts[0].feature_shift, CohortStageConfig{}.feature_shift);
  EXPECT_EQ(e.prior, 0.0f);
  EXPECT_EQ(e.request_llr, 0.0f);
}

// Organic-sounding asks (the synthetic model's organic phrasing) about topics the baseline's users
// never raise: the model finds them unremarkable, as the shipped model finds an instruction set in
// a style it never saw.
std::vector<std::string> UnseenStyleTexts(int n, uint64_t seed) {
  static constexpr std::array<std::string_view, 4> kAsks = {
      "hey, any tips for {}? I'm kind of lost", "quick question about {} - where do I start",
      "what should I buy for {}?", "can you suggest a plan for {} tomorrow"};
  static constexpr std::array<std::string_view, 8> kTopics = {
      "glacier retreat in Patagonia", "medieval guild economics", "quantum dot displays",
      "urban beekeeping regulations", "Byzantine mosaic restoration", "desalination membranes",
      "Baroque counterpoint", "microfinance in rural Kenya"};
  std::vector<std::string> out;
  uint64_t x = seed;
  for (int i = 0; i < n; ++i) {
    x = Mix64(x + 0x9e3779b97f4a7c15ULL);
    std::string ask(kAsks[x % 4]);
    ask.replace(ask.find("{}"), 2, std::string(kTopics[(x >> 8) % 8]) + " " + std::to_string((x >> 16) % 97));
    out.push_back(std::move(ask));
  }
  return out;
}

// A cohort whose newcomers mostly ask what the model finds unremarkable, but what the deployment's
// established users never ask: the binomial test (content-model scores) sees nothing; the feature
// test (the cohort's own prompts against the baseline's) shifts it, and its attribution still
// tells the campaign's members from the organic ones.
TEST(CohortStageTest, ACohortThatAsksUnlikeTheBaselineIsShiftedByItsFeatures) {
  const auto unseen = UnseenStyleTexts(400, 80);
  const auto organic = testing::SyntheticTexts(LabeledText::kOrganic, 400, 81);
  CohortFixture without(0.5, 2, /*feature_shift=*/0);
  without.ShiftOneCohort(unseen, organic);
  ASSERT_EQ(without.stage->Cohorts().size(), 1u);
  EXPECT_FALSE(without.stage->Cohorts()[0].shifted);  // the content model sees nothing

  CohortFixture with(0.5, 2);
  with.ShiftOneCohort(unseen, organic);
  const auto cohorts = with.stage->Cohorts();
  ASSERT_EQ(cohorts.size(), 1u);
  EXPECT_TRUE(cohorts[0].shifted);
  EXPECT_GT(cohorts[0].feature_shift, CohortStageConfig{}.feature_shift);
  EXPECT_GT(cohorts[0].campaign_share, 0.5);
  const int64_t t = kT0 + 4 * kHour;
  const StageEvidence member = with.Send("c3", unseen[123], t);
  const StageEvidence newcomer = with.Send("o90", organic[123], t);
  EXPECT_GT(member.prior, 3.0f);
  EXPECT_GT(member.request_llr, 1.0f);
  EXPECT_LT(newcomer.request_llr, -1.0f);
}

// The binomial test's campaign share of campaign-like requests is learned from restricted
// subjects' requests. When those are mostly content the model does not know (campaigns the
// feature test found), it falls to the baseline's share and would inflate every estimate: the
// test takes it at least cohort.min_campaign_excess above the baseline's.
TEST(CohortStageTest, RestrictedTrafficTheModelDoesNotKnowDoesNotInflateTheBinomialEstimate) {
  auto share_with = [](double min_excess) {
    CohortFixture fx(0.5, 2, /*feature_shift=*/0);
    fx.config.min_campaign_excess = min_excess;
    fx.Rebuild();
    RequestFeatures organic_looking;
    organic_looking.content.combined = -3.0f;
    for (int i = 0; i < 20000; ++i) fx.baseline->RecordRestricted(organic_looking);
    // A cohort that is a tenth campaign-like requests.
    const auto campaign = testing::SyntheticTexts(kHeadReasoning, 400, 86);
    const auto organic = testing::SyntheticTexts(LabeledText::kOrganic, 400, 87);
    for (int i = 0; i < 600; ++i) {
      fx.Send("m" + std::to_string(i % 150), i % 10 == 0 ? campaign[i % 400] : organic[i % 400],
              kT0 + 2 * kHour + i * 30 * kSec);
    }
    const CohortInfo c = fx.stage->Cohorts().at(0);
    EXPECT_LT(c.campaign_high_share, c.baseline_share + 0.1);
    return c;
  };
  const CohortInfo floored = share_with(0.3), unfloored = share_with(0);
  ASSERT_TRUE(floored.shifted && unfloored.shifted);
  EXPECT_GT(unfloored.campaign_share, 0.9);
  EXPECT_LE(floored.campaign_share, (floored.high_share - floored.baseline_share) / 0.3 + 1e-9);
  EXPECT_LT(floored.campaign_share, 0.5);
}

// Only a member's first requests measure the feature test: one account (a tool, a heavy user)
// that sends hundreds of requests unlike the baseline does not shift its cohort of ordinary
// newcomers; without that limit it would.
TEST(CohortStageTest, OneHeavyMemberDoesNotShiftItsCohortByItsFeatures) {
  const auto unseen = UnseenStyleTexts(600, 82);
  const auto organic = testing::SyntheticTexts(LabeledText::kOrganic, 600, 83);
  auto run = [&](double per_member) {
    CohortFixture fx(0.5, 2, CohortStageConfig{}.feature_shift, per_member);
    for (int i = 0; i < 600; ++i) {
      const int64_t t = kT0 + 2 * kHour + i * 20 * kSec;
      fx.Send("o" + std::to_string(i % 100), organic[i], t);
      fx.Send("tool", unseen[i], t + kSec);
    }
    return fx.stage->Cohorts().at(0);
  };
  const CohortInfo limited = run(CohortStageConfig{}.feature_requests_per_member);
  EXPECT_FALSE(limited.shifted);
  EXPECT_LT(limited.feature_shift, CohortStageConfig{}.feature_shift);
  EXPECT_TRUE(run(1e9).shifted);
}

// The cohorts' bytes carry the feature test's counts after the cohorts; bytes written before the
// test (without them) still load, the test starting over.
TEST(CohortStageTest, FeatureCountsSurviveSavingAndOlderBytesStillLoad) {
  CohortFixture fx(0.5, 2);
  fx.ShiftOneCohort(UnseenStyleTexts(400, 84), testing::SyntheticTexts(LabeledText::kOrganic, 400, 85));
  const CohortInfo before = fx.stage->Cohorts().at(0);
  ASSERT_NE(before.feature_shift, 0.0);
  std::string bytes;
  fx.stage->SaveTo(&bytes);
  CohortStage again(CohortStageConfig{}, fx.baseline);
  std::string_view in = bytes;
  ASSERT_TRUE(again.LoadFrom(&in));
  EXPECT_TRUE(in.empty());
  EXPECT_DOUBLE_EQ(again.Cohorts().at(0).feature_shift, before.feature_shift);
  // One cohort: the trailer is a count and (key, n, sum).
  const std::string older = bytes.substr(0, bytes.size() - 4 - 24);
  CohortStage old(CohortStageConfig{}, fx.baseline);
  std::string_view old_in = older;
  ASSERT_TRUE(old.LoadFrom(&old_in));
  EXPECT_DOUBLE_EQ(old.Cohorts().at(0).members, before.members);
  EXPECT_EQ(old.Cohorts().at(0).feature_shift, 0.0);
}

// What the deployment has restricted is a model too. Once it holds enough requests, a young
// member whose request reads like restricted traffic gains evidence (at most
// cohort.restricted_clip) although no cohort is shifted, and one that reads like the established
// users' loses some; switched off (cohort.restricted_weight 0), neither.
TEST(CohortStageTest, AMemberAskingLikeRestrictedTrafficGainsEvidenceWithoutAShiftedCohort) {
  const auto unseen = UnseenStyleTexts(400, 90);
  const auto organic = testing::SyntheticTexts(LabeledText::kOrganic, 400, 91);
  CohortFixture fx(0.5, 2, /*feature_shift=*/0);
  const int64_t t = kT0 + 2 * kHour;
  EXPECT_EQ(fx.Send("n1", unseen[0], t).request_llr, 0.0f);  // nothing restricted yet
  for (int i = 0; i < 200; ++i) {
    Req r("restricted", unseen[100 + i], kT0);
    fx.baseline->RecordRestricted(r.features);
  }
  const StageEvidence like = fx.Send("n1", unseen[1], t + 60 * kSec);
  const StageEvidence unlike = fx.Send("n2", organic[1], t + 60 * kSec);
  EXPECT_FALSE(fx.stage->Cohorts().at(0).shifted);
  EXPECT_FLOAT_EQ(like.prior, 0.0f);
  EXPECT_FLOAT_EQ(like.request_llr, static_cast<float>(fx.config.restricted_clip));
  EXPECT_EQ(like.reason, 1);
  EXPECT_LT(unlike.request_llr, 0.0f);

  fx.config.restricted_weight = 0;
  fx.Rebuild();
  EXPECT_EQ(fx.Send("n3", unseen[2], t + 120 * kSec).request_llr, 0.0f);
}

// A restricted subject's requests that the content model calls organic (ratio at or below
// baseline.restricted_min_llr: the cover prompts a campaign sends between its own) do not teach
// the restricted-traffic model what this deployment restricts; its other requests do.
TEST(BaselineStageTest, ARestrictedSubjectsOrganicLookingRequestsDoNotTeachTheRestrictedModel) {
  OrganicBaseline::Config bc;
  bc.min_feature_requests = 10;
  auto model = testing::SyntheticModel();
  OrganicBaseline baseline(bc, model->content.organic_distribution(), 0.9);
  int cover = 0;
  for (const auto& text : testing::SyntheticTexts(LabeledText::kOrganic, 60, 93)) {
    const Req r("restricted", text, kT0);
    if (r.features.content.combined > bc.restricted_min_llr) continue;
    baseline.RecordRestricted(r.features);
    ++cover;
  }
  ASSERT_GE(cover, 20);
  const Req probe("p", testing::SyntheticTexts(kHeadReasoning, 1, 95)[0], kT0);
  EXPECT_FALSE(baseline.RestrictedFeatureLogLikelihood(probe.features).has_value());
  int own = 0;
  for (const auto& text : testing::SyntheticTexts(kHeadReasoning, 20, 94)) {
    const Req r("restricted", text, kT0);
    ASSERT_GT(r.features.content.combined, bc.restricted_min_llr);
    baseline.RecordRestricted(r.features);
    ++own;
  }
  ASSERT_GE(own, static_cast<int>(bc.min_feature_requests));
  EXPECT_TRUE(baseline.RestrictedFeatureLogLikelihood(probe.features).has_value());
}

// The baseline's bytes carry the restricted traffic's features after the rest; bytes written
// before them still load, the model starting empty.
TEST(BaselineStageTest, RestrictedFeaturesSurviveSavingAndOlderBytesStillLoad) {
  OrganicBaseline::Config bc;
  bc.min_feature_requests = 10;
  bc.restricted_min_llr = -1e9;  // the texts are of a style the model calls organic
  auto model = testing::SyntheticModel();
  OrganicBaseline baseline(bc, model->content.organic_distribution(), 0.9);
  const auto texts = UnseenStyleTexts(40, 92);
  for (const auto& text : texts) baseline.RecordRestricted(Req("r", text, kT0).features);
  const Req probe("p", texts[3], kT0);
  const std::optional<double> before = baseline.RestrictedFeatureLogLikelihood(probe.features);
  ASSERT_TRUE(before.has_value());
  std::string bytes;
  baseline.SaveTo(&bytes);
  OrganicBaseline again(bc, model->content.organic_distribution(), 0.9);
  std::string_view in = bytes;
  ASSERT_TRUE(again.LoadFrom(&in));
  EXPECT_TRUE(in.empty());
  ASSERT_TRUE(again.RestrictedFeatureLogLikelihood(probe.features).has_value());
  EXPECT_DOUBLE_EQ(*again.RestrictedFeatureLogLikelihood(probe.features), *before);
  // The trailer: the request count and the counts (bucket count, total, one float a bucket).
  const std::string older = bytes.substr(0, bytes.size() - 8 - (4 + 8 + 4 * FeatureCounts::kBuckets));
  OrganicBaseline old(bc, model->content.organic_distribution(), 0.9);
  std::string_view old_in = older;
  ASSERT_TRUE(old.LoadFrom(&old_in));
  EXPECT_FALSE(old.RestrictedFeatureLogLikelihood(probe.features).has_value());
  // A damaged trailer is refused.
  std::string damaged = older + std::string(8, '\xff');
  std::string_view damaged_in = damaged;
  EXPECT_FALSE(OrganicBaseline(bc, model->content.organic_distribution(), 0.9).LoadFrom(&damaged_in));
}

// Asks `stage` for one account's request and returns the stage's evidence.
auto Asker(WorkQueueStage& stage, std::unordered_map<std::string, SubjectState>& s) {
  return [&stage, &s](const std::string& who, const std::string& text, int64_t t) {
    Req r(who, text, t);
    StageEvidence out;
    stage.OnSubject(r.View(), SubjectRole::kAccount, s[who], nullptr, &out);
    return out;
  };
}

TEST(WorkQueueStageTest, DiffuseDenseAndPopularRepeats) {
  WorkQueueStage stage({});
  const auto items = testing::SyntheticTexts(kHeadReasoning, 40, 70);
  std::unordered_map<std::string, SubjectState> s;
  auto ask = Asker(stage, s);
  // A work queue: item i asked by account "q<i>", then hours later by "r<i>": unrelated
  // subjects, one item each, long apart: diffuse.
  for (int i = 0; i < 10; ++i) EXPECT_EQ(ask("q" + std::to_string(i), items[i], kT0 + i * kSec).request_llr, 0.0f);
  StageEvidence diffuse = ask("r0", items[0], kT0 + 5 * kHour);
  EXPECT_GT(diffuse.request_llr, 0.0f);
  EXPECT_EQ(diffuse.reason, 0);
  // A team: two researchers ask the same items in the same order: dense after the first.
  ask("alice", items[20], kT0 + 6 * kHour);
  ask("alice", items[21], kT0 + 6 * kHour + 10 * kSec);
  ask("bob", items[20], kT0 + 9 * kHour);
  StageEvidence dense = ask("bob", items[21], kT0 + 9 * kHour + 10 * kSec);
  EXPECT_LT(dense.request_llr, 0.0f);
  EXPECT_EQ(dense.reason, 1);
  // A class: many ask the same item within minutes: popular.
  for (int k = 0; k < 4; ++k) ask("student" + std::to_string(k), items[30], kT0 + 12 * kHour + k * 60 * kSec);
  StageEvidence popular = ask("student9", items[30], kT0 + 12 * kHour + 300 * kSec);
  EXPECT_LE(popular.request_llr, -3.0f);
}

// A table full of items makes room by forgetting the least recently asked first, an eighth of a
// shard at a time (a flood of new items must not cost a sweep of the shard each), and never
// grows past its bound.
TEST(WorkQueueStageTest, AFullTableForgetsTheLeastRecentlyAskedItemsFirst) {
  WorkQueueStageConfig config;
  config.max_entries = 64 * 64;  // 64 band entries a shard: about 500 items of 8 bands
  WorkQueueStage stage(config);
  std::unordered_map<std::string, SubjectState> s;
  auto ask = Asker(stage, s);
  uint64_t x = 0x9e3779b97f4a7c15ULL;
  auto distinct = [&x] {
    std::string text = "Explain step by step:";
    for (int k = 0; k < 24; ++k) {
      x = x * 6364136223846793005ULL + 1442695040888963407ULL;
      text += " w" + std::to_string(x >> 52);
    }
    return text;
  };
  // An hour of old items fills the table; then "q" asks the item to keep; then 400 new items,
  // more than the room the old ones leave unless they go first.
  for (int i = 0; i < 1000; ++i) ask("old", distinct(), kT0 + i * 3 * kSec);
  EXPECT_GE(stage.entries(), config.max_entries * 3 / 4);
  EXPECT_LE(stage.entries(), config.max_entries);
  const std::string kept = testing::SyntheticTexts(kHeadReasoning, 1, 71)[0];  // campaign-like
  ask("q", kept, kT0 + 2 * kHour);
  for (int i = 0; i < 400; ++i) ask("new", distinct(), kT0 + 3 * kHour + i * kSec);
  EXPECT_LE(stage.entries(), config.max_entries);
  // Hours later another account asks the kept item: a queue's repeat, so still remembered.
  EXPECT_GT(ask("r", kept, kT0 + 8 * kHour).request_llr, 0.0f);
}

TEST(WorkQueueStageTest, AnItemAnEstablishedSubjectAskedIsNoQueueEvidence) {
  const auto items = testing::SyntheticTexts(kHeadReasoning, 10, 73);
  std::unordered_map<std::string, SubjectState> s;
  auto ask = [&s](WorkQueueStage& stage, const std::string& who, const std::string& text, int64_t t,
                  bool established) {
    Req r(who, text, t);
    RequestView view = r.View();
    StageEvidence out;
    stage.OnSubject(view, SubjectRole::kAccount, s[who], nullptr, &out);
    VerdictFacts facts;
    facts.account_established = established;
    stage.OnVerdict(view, facts);
    return out;
  };
  WorkQueueStage stage({});
  // Item 0 is first asked by an established subject, item 1 by a young one; hours later two
  // newcomers ask one each: only the item nobody established asked is a queue's repeat.
  ask(stage, "old", items[0], kT0, true);
  ask(stage, "young", items[1], kT0, false);
  EXPECT_EQ(ask(stage, "new0", items[0], kT0 + 5 * kHour, false).request_llr, 0.0f);
  EXPECT_GT(ask(stage, "new1", items[1], kT0 + 5 * kHour + kSec, false).request_llr, 0.0f);
  // The mark survives the state file.
  std::string bytes;
  stage.SaveTo(&bytes);
  WorkQueueStage restored({});
  std::string_view in = bytes;
  ASSERT_TRUE(restored.LoadFrom(&in));
  EXPECT_EQ(ask(restored, "newer0", items[0], kT0 + 8 * kHour, false).request_llr, 0.0f);
  EXPECT_GT(ask(restored, "newer1", items[1], kT0 + 8 * kHour + kSec, false).request_llr, 0.0f);
  // With the weight at 1 an established asker vouches for nothing.
  WorkQueueStageConfig plain;
  plain.vouched_diffuse_weight = 1;
  WorkQueueStage unvouched(plain);
  ask(unvouched, "old2", items[2], kT0, true);
  EXPECT_GT(ask(unvouched, "new2", items[2], kT0 + 5 * kHour, false).request_llr, 0.0f);
}

TEST(WorkQueueStageTest, AnItemACrowdAskedThisAfternoonIsNoQueueEvidence) {
  const auto items = testing::SyntheticTexts(kHeadReasoning, 4, 74);
  for (const double crowd_minutes : {240.0, 0.0}) {
    WorkQueueStageConfig config;
    config.crowd_minutes = crowd_minutes;
    WorkQueueStage stage(config);
    std::unordered_map<std::string, SubjectState> s;
    auto ask = Asker(stage, s);
    // Three people asked item 0 between three and two hours ago; one asked item 1 as long ago.
    for (int k = 0; k < 3; ++k) ask("crowd" + std::to_string(k), items[0], kT0 + k * 30 * 60 * kSec);
    ask("one", items[1], kT0);
    const StageEvidence crowd = ask("late", items[0], kT0 + 3 * kHour);
    const StageEvidence queue = ask("next", items[1], kT0 + 3 * kHour);
    EXPECT_GT(queue.request_llr, 0.0f);
    if (crowd_minutes > 0) {
      EXPECT_EQ(crowd.request_llr, 0.0f);
    } else {
      EXPECT_GT(crowd.request_llr, 0.0f);
    }
  }
}

// Asks `stage` as the engine does: the subject's pacing is observed before the stages judge it.
auto PacedAsker(WorkQueueStage& stage, std::unordered_map<std::string, SubjectState>& s) {
  return [&stage, &s](const std::string& who, const std::string& text, int64_t t) {
    Req r(who, text, t);
    ObserveRequest(s[who], r.features, "70.1.2.3", t, DecayConfig{});
    StageEvidence out;
    stage.OnSubject(r.View(), SubjectRole::kAccount, s[who], nullptr, &out);
    return out;
  };
}

TEST(WorkQueueStageTest, MachinePacedSubjectsEarnNoCrowdCredit) {
  WorkQueueStage stage({});
  const auto items = testing::SyntheticTexts(kHeadReasoning, 20, 71);
  std::unordered_map<std::string, SubjectState> s;
  auto ask = PacedAsker(stage, s);
  // A crowd asks items 0..9 within minutes of each other.
  const int64_t t1 = kT0 + 2 * kHour;
  for (int k = 0; k < 4; ++k) {
    for (int i = 0; i < 10; ++i) ask("crowd" + std::to_string(k), items[i], t1 + k * 60 * kSec + i * kSec);
  }
  // A queue worker asks them again at machine pace (two seconds apart): after its first request
  // (one request has no pace yet) it earns no organic credit.
  StageEvidence bot;
  for (int i = 0; i < 10; ++i) bot = ask("worker", items[i], t1 + 400 * kSec + i * 2 * kSec);
  EXPECT_GE(bot.request_llr, 0.0f);
  EXPECT_EQ(s["worker"].items_dense, 1.0f);
  // A person asking the same items minutes apart is one of the crowd.
  StageEvidence person;
  for (int i = 0; i < 3; ++i) person = ask("student", items[i], t1 + 420 * kSec + i * 120 * kSec);
  EXPECT_LE(person.request_llr, -3.0f);
  EXPECT_GT(s["student"].items_dense, 0.0f);
}

TEST(WorkQueueStageTest, SharingWithinTheHourIsCountedBothWaysRound) {
  WorkQueueStage stage({});
  const auto items = testing::SyntheticTexts(kHeadReasoning, 20, 72);
  std::unordered_map<std::string, SubjectState> s;
  auto ask = PacedAsker(stage, s);
  // The first student asks item 0; a classmate asks it ten minutes later: the classmate asked
  // what someone had just asked, and the first student was followed (counted at its next
  // request).
  ask("first", items[0], kT0);
  ask("second", items[0], kT0 + 600 * kSec);
  EXPECT_EQ(s["second"].items_shared_fresh, 1);
  EXPECT_EQ(s["first"].items_shared_fresh, 0);
  ask("first", items[1], kT0 + 900 * kSec);
  EXPECT_EQ(s["first"].items_shared_fresh, 1);
  // A work queue hands item 5 out again hours later: not shared within the hour.
  ask("q1", items[5], kT0 + kHour);
  ask("q2", items[5], kT0 + 6 * kHour);
  ask("q1", items[6], kT0 + 7 * kHour);
  EXPECT_EQ(s["q1"].items_shared_fresh, 0);
  EXPECT_EQ(s["q2"].items_shared_fresh, 0);
}

TEST(WorkQueueStageTest, AClassMemberKeepsItsGroupCreditOnItsOtherRequests) {
  WorkQueueStage stage({});
  const auto homework = testing::SyntheticTexts(kHeadBenchmark, 6, 73);
  const auto other = testing::SyntheticTexts(kHeadReasoning, 2, 74);
  std::unordered_map<std::string, SubjectState> s;
  auto ask = PacedAsker(stage, s);
  // Two classmates work through the same set together, a few minutes apart.
  const int64_t t1 = kT0 + 2 * kHour;
  for (int i = 0; i < 5; ++i) {
    ask("ann", homework[i], t1 + i * 600 * kSec);
    ask("ben", homework[i], t1 + i * 600 * kSec + 120 * kSec);
  }
  ASSERT_GE(s["ben"].items_dense, 3.0f);
  // Ben's question of his own, no classmate's item: he is still a member of the class.
  StageEvidence own = ask("ben", other[0], t1 + 3600 * kSec);
  EXPECT_EQ(own.prior, -6.0f);
  // A subject that shared a few items but mostly asks its own is no group's member there.
  SubjectState lone = s["ben"];
  lone.requests = 100;
  Req r("ben", other[1], t1 + 4000 * kSec);
  StageEvidence out;
  stage.OnSubject(r.View(), SubjectRole::kAccount, lone, nullptr, &out);
  EXPECT_EQ(out.prior, 0.0f);
}

TEST(WorkQueueStageTest, AFewAccountsAskingEachItemTogetherAreNoClass) {
  const auto items = testing::SyntheticTexts(kHeadBenchmark, 10, 75);
  // Each item is asked by every member within minutes, one item every ten minutes, in an order
  // that changes from item to item.
  auto run = [&](WorkQueueStage& stage, int members, std::unordered_map<std::string, SubjectState>& s) {
    auto ask = PacedAsker(stage, s);
    StageEvidence last;
    last.request_llr = 99;  // none yet
    std::mt19937 shuffle(7);
    for (int i = 0; i < 10; ++i) {
      std::vector<int> order(members);
      std::iota(order.begin(), order.end(), 0);
      std::shuffle(order.begin(), order.end(), shuffle);
      for (int k = 0; k < members; ++k) {
        const int who = order[k];
        const StageEvidence e = ask("m" + std::to_string(who), items[i], kT0 + i * 600 * kSec + k * 20 * kSec);
        if (who == 0 && k >= 3) last = e;  // three others asked it minutes ago
      }
    }
    EXPECT_NE(last.request_llr, 99.0f) << "m0 never asked after three others";
    return last;
  };
  // Four accounts: after group_check_items shared items they have met three co-askers only,
  // so their shared items earn no organic credit and they are no group's members.
  {
    WorkQueueStage stage({});
    std::unordered_map<std::string, SubjectState> s;
    const StageEvidence member = run(stage, 4, s);
    EXPECT_LT(DistinctCoAskers(s["m0"].co_asker_sketch), 8.0);
    EXPECT_GE(s["m0"].items_dense, 5.0f);
    EXPECT_EQ(member.request_llr, 0.0f);
    EXPECT_EQ(member.prior, 0.0f);
  }
  // ... which they would have earned before this check (group_min_people 0).
  {
    WorkQueueStageConfig config;
    config.group_min_people = 0;
    WorkQueueStage stage(config);
    std::unordered_map<std::string, SubjectState> s;
    const StageEvidence member = run(stage, 4, s);
    EXPECT_LT(member.request_llr, 0.0f);
    EXPECT_EQ(member.prior, static_cast<float>(config.group_prior));
  }
  // A class of sixteen: its members meet many classmates and keep the credit.
  {
    WorkQueueStage stage({});
    std::unordered_map<std::string, SubjectState> s;
    const StageEvidence student = run(stage, 16, s);
    EXPECT_GE(DistinctCoAskers(s["m0"].co_asker_sketch), 8.0);
    EXPECT_LE(student.request_llr, -3.0f);
    EXPECT_EQ(student.prior, -6.0f);
  }
}

TEST(WorkQueueStageTest, DistinctCoAskersCountsASketch) {
  EXPECT_EQ(DistinctCoAskers(0), 0.0);
  EXPECT_NEAR(DistinctCoAskers(0b111), 3.0, 0.2);
  EXPECT_NEAR(DistinctCoAskers(0xffffffffULL), 44.4, 0.1);  // half full: 64 ln 2
  EXPECT_EQ(DistinctCoAskers(~uint64_t{0}), 300.0);
}

TEST(EndUserStageTest, ChurningEndUsersAreEvidenceAgainstTheAccount) {
  auto model = testing::SyntheticModel();
  auto baseline = std::make_shared<OrganicBaseline>(OrganicBaseline::Config{}, model->content.organic_distribution(), 0.9);
  EndUserStage stage({}, baseline);
  SubjectState account;
  StageEvidence out;
  for (int i = 0; i < 30; ++i) {
    Req r("reseller", testing::SyntheticTexts(LabeledText::kOrganic, 1, 80 + i)[0], kT0 + i * 600 * kSec,
          "user-" + std::to_string(i));  // a new end user every time, for five hours
    ObserveRequest(account, r.features, "70.1.2.3", r.event.time_ns, DecayConfig{});
    out = {};
    stage.OnSubject(r.View(), SubjectRole::kAccount, account, nullptr, &out);
  }
  EXPECT_GT(out.prior, 2.0f);
  EXPECT_EQ(out.reason, 0);
  // An account whose traffic is mostly campaign-like passes a prior to its end users: its share
  // (capped at share_cap, 0.5) is their prior whatever the account's own verification ...
  AccountSummary summary{false, 100, 90, 0, 100};
  Req eu("reseller", "hello", kT0, "new-user");
  RequestView view = eu.View();
  view.tier = Tier::kVerified;
  view.tier_prior_log_odds = -6;
  StageEvidence e;
  SubjectState end_user;
  stage.OnSubject(view, SubjectRole::kEndUser, end_user, &summary, &e);
  EXPECT_NEAR(view.tier_prior_log_odds + e.prior, 0.0, 1e-5);  // logit(0.5)
  EXPECT_EQ(e.reason, 1);
  // ... except under a contract (enterprise by default), whose end users keep part of their
  // account's trust.
  view.tier = Tier::kEnterprise;
  view.tier_prior_log_odds = -7;
  view.tier_vouches_for_end_users = true;
  StageEvidence ent;
  stage.OnSubject(view, SubjectRole::kEndUser, end_user, &summary, &ent);
  EXPECT_NEAR(ent.prior, -std::log(0.005 / 0.995), 1e-4);
  // An organic-looking account passes nothing.
  AccountSummary organic{false, 100, 0, 0, 100};
  StageEvidence none;
  stage.OnSubject(view, SubjectRole::kEndUser, end_user, &organic, &none);
  EXPECT_EQ(none.prior, 0.0f);
}

// A reseller's end users first seen in one window are a cohort of the account: when a
// campaign starts sending its end users through the account, the window it starts in asks more
// like a campaign than the account as a whole, and its end users get that cohort's share.
TEST(EndUserStageTest, EndUsersFirstSeenTogetherAreACohortOfTheirAccount) {
  auto model = testing::SyntheticModel();
  auto baseline = std::make_shared<OrganicBaseline>(OrganicBaseline::Config{}, model->content.organic_distribution(), 0.9);
  const auto campaign = testing::SyntheticTexts(kHeadReasoning, 12, 81);
  const auto organic = testing::SyntheticTexts(LabeledText::kOrganic, 12, 82);
  // The account as a whole: one request in ten campaign-like (a share under the cap).
  const AccountSummary account{false, 100, 10, 0, 400};
  const auto judge = [&](EndUserStage& stage, SubjectState& end_user, const std::string& user, const std::string& text,
                         int64_t t) {
    Req r("reseller", text, t, user);
    ObserveRequest(end_user, r.features, "70.1.2.3", t, DecayConfig{});
    RequestView view = r.View();
    view.tier = Tier::kVerified;
    view.tier_prior_log_odds = -6;
    StageEvidence e;
    stage.OnSubject(view, SubjectRole::kEndUser, end_user, &account, &e);
    return e;
  };
  const auto run = [&](EndUserStageConfig config, int newcomers = 4) {
    EndUserStage stage(config, baseline);
    // Customers first seen in the first window, asking like people.
    std::vector<SubjectState> customers(6);
    StageEvidence customer;
    for (int i = 0; i < 12; ++i) {
      customer = judge(stage, customers[i % 6], "c" + std::to_string(i % 6), organic[i], kT0 + i * 60 * kSec);
    }
    // Eight hours later a campaign's end users start: twelve requests of four new end users.
    std::vector<SubjectState> harvesters(newcomers);
    StageEvidence harvester;
    for (int i = 0; i < 12; ++i) {
      harvester = judge(stage, harvesters[i % newcomers], "h" + std::to_string(i % newcomers), campaign[i],
                        kT0 + 8 * 3600 * kSec + i * 60 * kSec);
    }
    // A customer of the first window asks again: its cohort is its own, not the campaign's.
    customer = judge(stage, customers[0], "c0", organic[0], kT0 + 8 * 3600 * kSec + 13 * 60 * kSec);
    return std::pair{customer, harvester};
  };
  const double account_share = std::min(0.5, EndUserStage({}, baseline).AccountShare(100, 10));
  ASSERT_GT(account_share, 0.005);
  ASSERT_LT(account_share, 0.5);
  const double account_prior = std::log(account_share / (1 - account_share)) + 6;
  const auto [customer, harvester] = run({});
  EXPECT_EQ(customer.reason, 1);
  EXPECT_EQ(customer.pool_min_evidence, 0.0f);
  EXPECT_NEAR(customer.prior, account_prior, 1e-4);
  EXPECT_EQ(harvester.reason, 2);  // end_user_cohort_share
  EXPECT_FLOAT_EQ(harvester.pool_min_evidence, 1.5f);
  EXPECT_NEAR(harvester.prior, 6.0, 1e-4);  // the cohort share, at share_cap: logit(0.5) = 0
  EXPECT_GT(harvester.pool_value, customer.pool_value);
  // One newcomer alone is not a cohort (window_min_members 3): its own requests are not its prior.
  const auto [customer_alone, newcomer_alone] = run({}, 1);
  EXPECT_EQ(newcomer_alone.reason, 1);
  EXPECT_EQ(newcomer_alone.pool_min_evidence, 0.0f);
  EXPECT_NEAR(newcomer_alone.prior, account_prior, 1e-4);
  // Without cohorts (window_hours 0) both get the account's share.
  EndUserStageConfig off;
  off.window_hours = 0;
  const auto [customer_off, harvester_off] = run(off);
  EXPECT_EQ(harvester_off.reason, 1);
  EXPECT_EQ(harvester_off.pool_min_evidence, 0.0f);
  EXPECT_NEAR(harvester_off.prior, account_prior, 1e-4);
  EXPECT_NEAR(customer_off.prior, account_prior, 1e-4);
}

TEST(BehaviourStageTest, RotatingAddressesAndLogprobs) {
  BehaviourStage stage({});
  SubjectState s;
  StageEvidence out;
  for (int i = 0; i < 40; ++i) {
    Req r("bot", "Generate a list of ten colors.", kT0 + i * 10 * kSec);
    r.features.signal[kLogprobs] = 1.0f;
    ObserveRequest(s, r.features, "34.1." + std::to_string(i) + ".9", r.event.time_ns, DecayConfig{});
    out = {};
    stage.OnSubject(r.View(), SubjectRole::kAccount, s, nullptr, &out);
  }
  EXPECT_GE(out.prior, 4.0f);          // rotation 2.5 + logprobs 2.0
  EXPECT_GT(out.request_llr, 0.0f);    // conduct: it behaves like a harvester
  EXPECT_EQ(out.pool_value, s.value);  // and is its own pool
  SubjectState calm;
  StageEvidence none;
  Req r("person", "hi", kT0);
  ObserveRequest(calm, r.features, "70.1.2.3", kT0, DecayConfig{});
  stage.OnSubject(r.View(), SubjectRole::kAccount, calm, nullptr, &none);
  EXPECT_LT(none.prior, 0.5f);
  EXPECT_EQ(none.request_llr, 0.0f);
}

TEST(DetectionSettingsTest, EveryWeightHasOneName) {
  DetectionConfig c;
  std::set<std::string> names;
  for (const SettingInfo& s : ListSettings(c)) {
    EXPECT_TRUE(names.insert(s.name).second) << s.name;
    EXPECT_FALSE(s.help.empty()) << s.name;
  }
  EXPECT_GT(names.size(), 60u);
  ASSERT_TRUE(ApplySetting(c, "cohort.z_threshold=7.5").ok());
  EXPECT_EQ(c.cohort.z_threshold, 7.5);
  ASSERT_TRUE(ApplySetting(c, "tier.verified.subject_budget", 1234).ok());
  EXPECT_EQ(c.policy.tiers[static_cast<size_t>(Tier::kVerified)].subject_budget, 1234);
  EXPECT_EQ(ApplySetting(c, "cohort.nope=1").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ApplySetting(c, "cohort.z_threshold=abc").code(), StatusCode::kInvalidArgument);
}

// docs/detection.md lists every setting by name (its Settings table is `moat detect settings`).
TEST(DetectionSettingsTest, EverySettingIsDocumented) {
  std::ifstream f(std::string(MOAT_SOURCE_DIR) + "/docs/detection.md");
  ASSERT_TRUE(f) << "docs/detection.md not found";
  std::stringstream doc;
  doc << f.rdbuf();
  DetectionConfig c;
  for (const SettingInfo& s : ListSettings(c)) {
    EXPECT_NE(doc.str().find("`" + s.name + "`"), std::string::npos) << s.name << " is not in docs/detection.md";
  }
}

TEST(StageSwitchesTest, ParsesKeepAndDropLists) {
  auto all = StageSwitches::Parse("");
  ASSERT_TRUE(all.ok());
  EXPECT_TRUE(all->cohort && all->content && all->linkage);
  auto drop = StageSwitches::Parse("-cohort,-baseline");
  ASSERT_TRUE(drop.ok());
  EXPECT_FALSE(drop->cohort);
  EXPECT_FALSE(drop->baseline);
  EXPECT_TRUE(drop->content);
  auto keep = StageSwitches::Parse("content,behaviour");
  ASSERT_TRUE(keep.ok());
  EXPECT_TRUE(keep->content && keep->behaviour);
  EXPECT_FALSE(keep->cohort || keep->linkage);
  EXPECT_EQ(StageSwitches::Parse("telepathy").status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace moat::detect
