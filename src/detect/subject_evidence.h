#pragma once
// Evidence about a subject as a whole:
//   EndUserStage    the account is always a subject; its end users are subjects in addition.
//                   An account whose end-user set churns (a fresh `user` on every request) is
//                   evidence against the account; an account's estimated campaign share is the
//                   prior of each of its end users (a reseller is the cohort of its users),
//                   or the share of the end users it first saw in the same window, when that
//                   is higher (a campaign that starts sending its end users through a reseller
//                   fills the windows it starts in).
//   BehaviourStage  how the subject uses the API, as decayed rates: logprobs, n > 1, very
//                   long outputs, reasoning parameters, greedy decoding, single-turn novelty,
//                   client addresses rotating, sustained volume.
//   LinkageStage    cross-account linkage through shared infrastructure and templates
//                   (campaign_linker.h): keys used by restricted subjects pass suspicion on.

#include <array>
#include <memory>
#include <mutex>
#include <vector>

#include <boost/unordered/unordered_flat_map.hpp>

#include "detect/campaign_linker.h"
#include "detect/content_evidence.h"
#include "detect/evidence.h"

namespace moat::detect {

// The mixture estimate of a campaign share from a share of campaign-like requests (see
// cohort_evidence.h), clamped to [0, cap].
double CampaignShare(double high_share, double baseline_share, double campaign_share, double cap);

struct EndUserStageConfig {
  // An account churns when, among at least churn_min_users end users, fewer than
  // churn_return_share ever came back: every request a fresh `user`.
  double churn_weight = 3.0;       // prior of an account whose end users churn
  double churn_min_users = 8;      // (20 let a rotating-`user` account take ~10 answers more)
  double churn_return_share = 0.1;
  double churn_min_hours = 2;      // the account is seen this long before churn is judged
  double share_weight = 1.0;       // multiplies an end user's prior from its account
  double share_cap = 0.5;          // the account share used for that prior, at most
  double share_min_requests = 10;  // account requests before its share is used
  double base_share = 0.005;       // shares up to this pass no prior; the end users of a tier
                                   // that vouches for them get the share's excess over it
                                   // (TierPolicy::vouches_for_end_users, OnSubject)
  // End-user cohorts: the end users an account first saw within one window of window_hours,
  // whose requests are counted for window_memory_hours from the window's start. Such a cohort
  // with at least share_min_requests requests from at least window_min_members end users has a
  // campaign share of its own (one newcomer alone is not a cohort: its own requests would be
  // its prior); an end user's share is the higher of its account's and its cohort's, at most
  // share_cap (0 window_hours: the account's only).
  double window_hours = 6;
  double window_memory_hours = 72;
  double window_min_members = 3;
  // When the cohort's share is above its account's and raises an end user's prior by at least
  // window_shift (log-odds), the cohort is shifted: once its pool (the account's traffic times
  // the cohort's share) is over the pool budget, it restricts the end user at own evidence
  // window_min_evidence (policy.pool_min_evidence otherwise).
  double window_shift = 0.5;
  double window_min_evidence = 1.5;
};

class EndUserStage final : public EvidenceStage {
 public:
  EndUserStage(EndUserStageConfig config, std::shared_ptr<const OrganicBaseline> baseline);
  std::string_view name() const override { return "end_users"; }
  const std::vector<std::string_view>& reason_names() const override;
  void OnSubject(const RequestView& r, SubjectRole role, SubjectState& s, const AccountSummary* account,
                 StageEvidence* out) override;
  // The account's estimated campaign share, from its content counters.
  double AccountShare(float llr_n, float llr_hi) const;
  // True when the account's end users churn (see the config).
  bool Churns(const SubjectState& account) const;

 private:
  // Requests of one end-user cohort (an account's end users first seen in one window).
  struct CohortCounts {
    uint32_t requests = 0;
    uint32_t campaign_like = 0;  // at or above the baseline's high_llr
    uint32_t members = 0;        // end users counted at their first request
    int64_t window_start_ns = 0;
  };
  struct Shard {
    std::mutex mu;
    boost::unordered_flat_map<uint64_t, CohortCounts> map;  // GUARDED_BY(mu)
    int64_t next_sweep_ns = 0;                              // GUARDED_BY(mu)
  };
  // The campaign share of traffic with `high_share` campaign-like requests, against this
  // deployment's baseline (CampaignShare).
  double ShareOf(double high_share) const;
  // Counts this request into its end user's cohort and returns the cohort's campaign share,
  // or -1 while the cohort has too few requests or members, once its memory is over, when the
  // table is full of live cohorts (a new cohort is then not tracked), or when cohorts are off.
  double CountInCohort(const RequestView& r, const SubjectState& end_user);

  EndUserStageConfig config_;
  std::shared_ptr<const OrganicBaseline> baseline_;
  int64_t window_ns_ = 0, memory_ns_ = 0;
  size_t per_shard_ = 0;
  std::vector<std::unique_ptr<Shard>> shards_;
};

// How one per-subject rate turns into evidence: weight * Ramp(rate, rate_lo, rate_hi) *
// Ramp(hits, 0.5, hits_full); rate is the subject's decayed share of requests with the signal
// and hits its decayed count. The rate gate keeps occasional hits from adding up, the hit gate
// keeps one request from deciding alone.
struct SignalWeight {
  double weight = 0;
  double rate_lo = 0.2, rate_hi = 0.5;
  double hits_full = 3;
};

struct BehaviourStageConfig {
  std::array<SignalWeight, kNumSignals> signals = DefaultSignalWeights();
  double ip_rotation_weight = 2.5;  // * Ramp(distinct client addresses, 3, 6)
  double volume_weight = 0.7;       // * Ramp(requests per hour, volume_lo, volume_hi)
  double volume_lo = 150, volume_hi = 500;
  double diversity_weight = 0.6;    // single-turn, every prompt a new skeleton, sustained
  // Automation artefacts this strong (rotating proxies with logprobs, say) make the subject
  // its own pool ("automated extraction") and add conduct_llr to each of its requests: content
  // that looks organic does not acquit a client that behaves like a harvester.
  double conduct_min = 4.0;
  double conduct_llr = 1.5;
  static std::array<SignalWeight, kNumSignals> DefaultSignalWeights();
};

class BehaviourStage final : public EvidenceStage {
 public:
  explicit BehaviourStage(BehaviourStageConfig config) : config_(config) {}
  std::string_view name() const override { return "behaviour"; }
  const std::vector<std::string_view>& reason_names() const override;
  void OnSubject(const RequestView& r, SubjectRole role, SubjectState& s, const AccountSummary* account,
                 StageEvidence* out) override;

 private:
  BehaviourStageConfig config_;
};

struct LinkageStageConfig {
  LinkerConfig linker;
  std::array<double, kNumLinkKinds> kind_weights = {1.2, 1.8, 1.5, 1.5, 1.0};
  double cap = 4.0;              // most evidence linkage alone can add
  double campaign_weight = 1.5;  // * campaign score, when >= 2 kinds of keys are risky
};

class LinkageStage final : public EvidenceStage {
 public:
  explicit LinkageStage(LinkageStageConfig config) : config_(config), linker_(config.linker) {}
  std::string_view name() const override { return "linkage"; }
  const std::vector<std::string_view>& reason_names() const override;
  void OnRequest(RequestView& r, StageEvidence* out) override;
  void OnSubject(const RequestView& r, SubjectRole role, SubjectState& s, const AccountSummary* account,
                 StageEvidence* out) override;
  void OnVerdict(RequestView& r, const VerdictFacts& facts) override;

  const CampaignLinker& linker() const { return linker_; }

 private:
  LinkageStageConfig config_;
  CampaignLinker linker_;
};

}  // namespace moat::detect
