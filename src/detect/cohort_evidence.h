#pragma once
// Cohort evidence (family 5 of docs/detection.md): young subjects are grouped into cohorts by
// when they were first seen (a window of `window_hours`) and their tier, and each cohort's
// recent content is tested against the organic baseline. The test is a one-sided binomial
// test of the share of the cohort's requests whose content ratio is "campaign-like" (at or
// above the baseline's high_llr) against the share among established subjects; its effect is a
// mixture estimate of the cohort's campaign share
//     pi = (share_cohort - share_baseline) / (share_campaign - share_baseline),
// with share_campaign learned from restricted subjects' requests (the model's held-out
// campaign distribution as its prior). A significantly shifted
// cohort raises every member's prior to logit(pi) (relative to the tier prior), so that 20,000
// accounts of five requests each are judged as one campaign although none is alone. The
// cohort is also a pool: it accrues the suspected distillation value its members take.
//
// Within a shifted cohort, each member's requests are attributed: an online naive-Bayes model of
// the cohort's prompts against one of established traffic (OrganicBaseline) says how much more
// likely the prompt is under the cohort than under organic traffic, R (tempered by
// `nb_temper`, since features are not independent); with the cohort a mixture
//     p_cohort = pi p_campaign + (1 - pi) p_organic,
// the request's evidence is log((e^R - (1 - pi)) / pi), clipped. A newcomer whose prompts look
// like the deployment's own users gets negative evidence although its cohort is shifted; one
// whose prompts look like what the cohort has in excess gets positive evidence, whatever the
// static content model thinks of them.
//
// The binomial test sees only what the content model calls campaign-like, so a campaign whose
// prompts the model finds organic (an instruction style it was never trained on) shifts no
// cohort by it. A second test reads the prompts themselves: for a member's first
// `feature_requests_per_member` requests, the per-feature log ratio of the cohort's own
// naive-Bayes model (before the request) to the baseline's. Drawn from the baseline's
// distribution, a request is predicted worse by the cohort's smaller, smoother model (the mean
// is at or below 0); a cohort that asks for something in excess predicts its own requests
// better. A cohort whose mean reaches `feature_shift` counts as shifted with campaign share
// min(max_share, mean / feature_full_shift), whichever test says more; in such a cohort the
// attribution is clipped at feature_attribution_clip. The test has no direction: a new segment
// of organic users that asks unlike the established ones shifts a cohort as well
// (docs/detection.md, "Where it fails").
//
// A campaign too small to shift its cohort is seen by neither test, but the deployment has often
// restricted others like it by then: every member's request (shifted cohort or not) also gets the
// naive-Bayes log ratio of what the deployment has restricted to its established traffic
// (OrganicBaseline's two feature models), tempered and clipped to +-restricted_clip. It learns
// from the engine's own verdicts; the clip keeps a false positive's lesson small.
//
// Subjects whose own pacing is a machine's (an evaluation harness, a batch job) are judged on
// their own budget, not through a cohort of people, where their tier says so
// (TierPolicy::machines_judged_alone, RequestView::tier_machines_judged_alone: every tier but
// unverified by default).

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "detect/content_evidence.h"
#include "detect/evidence.h"

namespace moat::detect {

struct CohortStageConfig {
  double window_hours = 6;        // first-seen window of a cohort
  double young_hours = 72;        // subjects older than this belong to no cohort
  // An account this old that was unsuspicious at a verdict has a history of its own and leaves
  // its cohort's judgement (SubjectState::graduated, set by the engine); 0: never.
  double graduate_hours = 24;
  double half_life_hours = 12;    // a cohort's counts decay
  double min_members = 20;        // distinct subjects before a cohort is tested
  double z_threshold = 5.0;       // one-sided z of the binomial test (see docs: null runs)
  double max_share = 0.99;        // the mixture estimate is capped here
  // share_campaign is taken at least share_baseline + this (see BinomialTest)
  double min_campaign_excess = 0.3;
  double base_share = 0.005;      // the campaign share the tier priors assume (logit -5.3)
  double weight = 1.0;            // multiplies the prior it raises
  double machine_gap_s = 15;      // mean gap below which a subject is machine-paced
  double prior_max_share = 0.8;   // the prior uses at most this campaign share
  double nb_temper = 10.0;        // divides the naive-Bayes log ratio
  double attribution_weight = 1.0;
  double attribution_clip = 2.0;
  // The attribution divides the excess of the cohort's ratio by the cohort's campaign share, so
  // in a cohort that is mostly organic it amplifies the noise of the ratio (estimated from
  // counts) by 1/share. It uses at least this share: a request's evidence then moves at most
  // twice as much as the ratio does (docs/detection.md, "Cohorts").
  double attribution_min_share = 0.5;
  double min_cohort_features = 20000;  // feature counts before a cohort's prompts are modelled
  double nb_alpha = 0.5;
  // The feature test (see above): 0 turns it off.
  double feature_shift = 0.1;               // mean per-feature log ratio that shifts a cohort
  double feature_full_shift = 0.5;          // ... the mean at which its share estimate reaches 1
  double feature_min_members = 200;         // distinct subjects before it is applied
  double feature_min_requests = 500;        // measured requests before it is applied
  double feature_requests_per_member = 8;   // a member's first requests only: no heavy member,
                                            // class or tool shifts a cohort alone
  // attribution_clip in a cohort the feature test shifted (the content model there says nothing
  // of what the cohort has in excess, and its organic verdicts are the campaign's cover)
  double feature_attribution_clip = 3.0;
  // Every member's request, shifted cohort or not: the naive-Bayes log ratio of what this
  // deployment has restricted (OrganicBaseline's restricted-traffic model) to its established
  // traffic, divided by restricted_temper, clipped to +-restricted_clip, times
  // restricted_weight (0: off). It adds to the attribution.
  double restricted_weight = 1.0;
  double restricted_temper = 10.0;
  double restricted_clip = 0.5;
  size_t max_cohorts = 256;
};

// A snapshot of one cohort, for the admin API and reports.
struct CohortInfo {
  std::string id;                 // "cohort-<tier>-<window start, unix s>"
  std::string tier;
  int64_t window_start_s = 0;
  double members = 0, requests = 0;
  double high_share = 0, baseline_share = 0;
  double campaign_high_share = 0;  // the binomial test's share of campaign-like requests among
                                   // a campaign's (learned from restricted subjects' requests)
  double z = 0, campaign_share = 0;
  double feature_shift = 0;       // the feature test's mean log ratio (0 before it is measured)
  double value = 0;               // suspected distillation value its members took
  bool shifted = false;
};

class CohortStage final : public EvidenceStage {
 public:
  CohortStage(CohortStageConfig config, std::shared_ptr<const OrganicBaseline> baseline);
  std::string_view name() const override { return "cohort"; }
  bool reads_content() const override { return true; }
  const std::vector<std::string_view>& reason_names() const override;
  void OnSubject(const RequestView& r, SubjectRole role, SubjectState& s, const AccountSummary* account,
                 StageEvidence* out) override;
  void OnVerdict(RequestView& r, const VerdictFacts& facts) override;

  std::vector<CohortInfo> Cohorts() const;
  // The cohorts' counts as bytes (the engine's state file), and back. LoadFrom replaces the
  // cohorts; it returns false on bytes that do not hold cohorts, leaving them unchanged, and
  // loads none (returning true) when they were saved with another cohort.window_hours.
  void SaveTo(std::string* out) const;
  bool LoadFrom(std::string_view* in);

 private:
  struct Stats {
    double n = 0, hi = 0, members = 0, value = 0;
    // The feature test: measured requests and the sum of their per-feature log ratios
    // (decayed as n).
    double feature_n = 0, feature_sum = 0;
    int64_t last_ns = 0;
    Tier tier = Tier::kUnknown;
    int64_t window = 0;
    std::unique_ptr<FeatureCounts> features;  // the members' prompts
  };
  // The cohort of a subject first seen at `first_seen_ns`, 0 when it is too old for one.
  uint64_t KeyOf(int64_t first_seen_ns, Tier tier, int64_t now_ns) const;
  void Decay(Stats& c, int64_t now_ns) const;
  // Mixture estimate and z of a cohort (pi 0 when not significant), from the binomial test
  // and the feature test, whichever estimates more; by_features when it was the feature test.
  struct Shift {
    double pi = 0, z = 0;
    bool by_features = false;
  };
  Shift Test(const Stats& c) const;
  // The binomial test alone, and the feature test alone (its share estimate; 0 when it does
  // not apply or shift).
  std::pair<double, double> BinomialTest(const Stats& c) const;
  double FeatureShare(const Stats& c) const;
  CohortInfo InfoOf(const Stats& c) const;

  CohortStageConfig config_;
  std::shared_ptr<const OrganicBaseline> baseline_;
  int64_t window_ns_, young_ns_, half_life_ns_;
  mutable std::mutex mu_;
  std::unordered_map<uint64_t, Stats> cohorts_;  // GUARDED_BY(mu_)
};

}  // namespace moat::detect
