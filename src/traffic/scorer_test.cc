#include "traffic/scorer.h"

#include <gtest/gtest.h>

namespace moat::traffic {
namespace {

using detect::Action;
constexpr int64_t kS = 1'000'000'000LL;

SubjectLabel Organic(std::string account, std::string user = "") {
  return {std::move(account), std::move(user), false, "", "", "user", 0};
}
SubjectLabel Camp(std::string account, std::string variant, std::string id, std::string user = "") {
  return {std::move(account), std::move(user), true, std::move(variant), std::move(id), "sybil", 0};
}
const VariantScore* Find(const Report& r, std::string_view v) {
  for (const auto& s : r.variants) {
    if (s.variant == v) return &s;
  }
  return nullptr;
}

// Hand-computed: two organic accounts, one two-account bulk campaign.
TEST(ScorerTest, HandComputedAccounts) {
  Scorer s;
  s.AddLabel(Organic("A"));
  s.AddLabel(Organic("B"));
  s.AddLabel(Organic("idle"));  // never sends: not counted
  s.AddLabel(Camp("X", "bulk", "c1"));
  s.AddLabel(Camp("Y", "bulk", "c1"));
  for (int i = 0; i < 3; ++i) s.Record("A", "", 10 * kS + i, Action::kAllow);
  s.Record("B", "", 11 * kS, Action::kAllow);
  s.Record("B", "", 12 * kS, Action::kThrottle);
  s.Record("X", "", 1 * kS, Action::kAllow);
  s.Record("Y", "", 2 * kS, Action::kAllow);
  s.Record("X", "", 3 * kS, Action::kAllow);
  s.Record("X", "", 4 * kS, Action::kBlock);
  s.Record("Y", "", 5 * kS, Action::kAllow);
  s.Record("X", "", 6 * kS, Action::kBlock);
  Report r = s.Finish(4);

  EXPECT_EQ(r.events, 11);
  EXPECT_EQ(r.unlabelled_events, 0);
  EXPECT_EQ(r.organic.subjects, 2);
  EXPECT_EQ(r.organic.restricted_subjects, 1);
  EXPECT_DOUBLE_EQ(r.organic.false_positive_rate, 0.5);
  EXPECT_EQ(r.organic.requests, 5);
  EXPECT_DOUBLE_EQ(r.organic.collateral, 0.2);

  const VariantScore* bulk = Find(r, "bulk");
  ASSERT_NE(bulk, nullptr);
  EXPECT_EQ(bulk->subjects, 2);
  EXPECT_EQ(bulk->flagged, 1);
  EXPECT_DOUBLE_EQ(bulk->recall, 0.5);
  EXPECT_EQ(bulk->requests, 6);
  EXPECT_EQ(bulk->leaked, 4);
  EXPECT_DOUBLE_EQ(bulk->leakage, 4.0 / 6.0);
  EXPECT_DOUBLE_EQ(bulk->answers_per_flagged, 4.0);      // 4 full answers, 1 subject restricted
  EXPECT_DOUBLE_EQ(bulk->own_answers_per_flagged, 2.0);  // X got 2 itself; Y (never restricted) 2
  EXPECT_DOUBLE_EQ(bulk->requests_to_detection, 3);  // X1, Y1, X2 served before X3 was blocked
  EXPECT_DOUBLE_EQ(bulk->seconds_to_detection, 3);   // first request t=1 s, first flag t=4 s
  ASSERT_EQ(bulk->detection_curve.size(), 5u);       // horizon 5 s, 4 steps of 1.25 s
  EXPECT_DOUBLE_EQ(bulk->detection_curve[0].second, 0.0);
  EXPECT_DOUBLE_EQ(bulk->detection_curve[2].second, 0.0);  // 2.5 s < 3 s
  EXPECT_DOUBLE_EQ(bulk->detection_curve[3].second, 0.5);  // 3.75 s >= 3 s
  EXPECT_DOUBLE_EQ(bulk->detection_curve[4].second, 0.5);
  EXPECT_EQ(r.actions.at("allow"), 8);
  EXPECT_EQ(r.actions.at("block"), 2);
  EXPECT_EQ(r.actions.at("throttle"), 1);
}

// Hydra: a reseller account is scored per end user; blocking it hurts its real customers.
TEST(ScorerTest, HydraIsScoredPerEndUser) {
  Scorer s;
  s.AddLabel(Camp("H", "hydra", "h1"));
  s.AddLabel(Organic("H", "u1"));
  s.AddLabel(Camp("H", "hydra", "h1", "u2"));
  s.AddLabel(Camp("H", "hydra", "h1", "u3"));
  s.Record("H", "u1", 1 * kS, Action::kAllow);
  s.Record("H", "u2", 2 * kS, Action::kAllow);
  s.Record("H", "u3", 3 * kS, Action::kAllow);
  s.Record("H", "u2", 4 * kS, Action::kDegrade);
  s.Record("H", "u1", 5 * kS, Action::kDegrade);
  Report r = s.Finish();
  EXPECT_EQ(r.organic.subjects, 1);
  EXPECT_DOUBLE_EQ(r.organic.false_positive_rate, 1.0);
  EXPECT_DOUBLE_EQ(r.organic.collateral, 0.5);
  const VariantScore* h = Find(r, "hydra");
  ASSERT_NE(h, nullptr);
  EXPECT_EQ(h->subjects, 2);
  EXPECT_EQ(h->flagged, 1);
  EXPECT_DOUBLE_EQ(h->recall, 0.5);
  EXPECT_DOUBLE_EQ(h->leakage, 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(h->requests_to_detection, 2);
  EXPECT_EQ(r.unlabelled_events, 0);
}

// An undetected campaign: all of its requests count toward detection, time is "never".
TEST(ScorerTest, UndetectedCampaignAndUnlabelledEvents) {
  Scorer s;
  s.AddLabel(Camp("S1", "sybil-spread", "c"));
  s.AddLabel(Camp("S2", "sybil-spread", "c"));
  for (int i = 0; i < 7; ++i) s.Record(i % 2 ? "S1" : "S2", "", i * kS, Action::kAllow);
  s.Record("stranger", "", 8 * kS, Action::kBlock);
  Report r = s.Finish();
  const VariantScore* v = Find(r, "sybil-spread");
  ASSERT_NE(v, nullptr);
  EXPECT_DOUBLE_EQ(v->recall, 0);
  EXPECT_DOUBLE_EQ(v->leakage, 1);
  EXPECT_EQ(v->campaigns_detected, 0);
  EXPECT_DOUBLE_EQ(v->requests_to_detection, 7);
  EXPECT_DOUBLE_EQ(v->seconds_to_detection, -1);
  EXPECT_EQ(r.unlabelled_events, 1);
  EXPECT_EQ(r.organic.subjects, 0);
  EXPECT_DOUBLE_EQ(r.organic.false_positive_rate, 0);
}

// Two campaigns of one variant: requests to detection is their mean.
TEST(ScorerTest, RequestsToDetectionAveragesCampaigns) {
  Scorer s;
  s.AddLabel(Camp("a", "mimic", "m1"));
  s.AddLabel(Camp("b", "mimic", "m2"));
  s.Record("a", "", 1, Action::kAllow);
  s.Record("a", "", 2, Action::kStepUp);  // m1: 1 request before detection
  for (int i = 0; i < 5; ++i) s.Record("b", "", 3 + i, Action::kAllow);  // m2: never, 5
  Report r = s.Finish();
  const VariantScore* v = Find(r, "mimic");
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(v->campaigns, 2);
  EXPECT_EQ(v->campaigns_detected, 1);
  EXPECT_DOUBLE_EQ(v->requests_to_detection, 3.0);
  EXPECT_DOUBLE_EQ(v->recall, 0.5);
  EXPECT_DOUBLE_EQ(v->leakage, 6.0 / 7.0);
}

}  // namespace
}  // namespace moat::traffic
