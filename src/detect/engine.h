#pragma once
// DetectionEngine: moat's online detection engine. Per request it extracts the request's
// features once (features.h: the learned content scores among them), runs the evidence stages
// (evidence.h) for the account and, when the request names one, its end user, and for each of
// these subjects:
//   1. sums the stages' per-request log-likelihood ratios into two decayed sequential
//      statistics (every request campaign-like; a share `mixed_share` of them, the rest cover
//      traffic) and averages their likelihoods: the subject's own evidence E;
//   2. adds the tier's prior log-odds and the stages' standing evidence (cohort shift,
//      linkage, account share, behaviour), capped: the prior P;
//   3. posterior p = sigmoid(P + E); the subject's suspected distillation value grows by the
//      request's expected answer tokens x p (decayed: a rolling budget);
//   4. the policy restricts a subject whose posterior reached `restrict_posterior` once its own
//      value exceeds its tier's subject budget, or the value of a pool it belongs to (shifted
//      cohort, linked campaign, a reseller's end users) exceeds the tier's pool budget, or,
//      when its own evidence alone is strong and its pace a person's, once its value exceeds
//      the tier's (small) evidence budget (PolicyConfig::strong_evidence). A
//      restricted subject stays restricted while p >= `release_posterior` and its tier is the
//      same; a tier change (a step-up verification, or its expiry) ends that hold and the
//      subject is judged afresh under the new tier's budgets (its value is kept).
// The request gets the end user's verdict; the account's verdict applies too unless the
// account serves many end users and most of its traffic is not a campaign's (a reseller's
// real customers are not cut off for its campaign end users).
//
// What a client sees of a restriction is its action, a coarse category and a reference id
// (Verdict::category, ::reference); the evidence stays in Verdict::reasons for the audit
// record and admin views, shown to clients only for tiers with show_evidence.

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "detect/account_state.h"
#include "detect/cohort_evidence.h"
#include "detect/content_evidence.h"
#include "detect/detection_model.h"
#include "detect/evidence.h"
#include "detect/indicator_evidence.h"
#include "detect/recent_prompts.h"
#include "detect/subject_evidence.h"
#include "detect/workqueue_evidence.h"
#include "moat/detect_engine.h"
#include "moat/status.h"

namespace moat::detect {

// Policy of one account tier.
struct TierPolicy {
  double prior_log_odds = -5.0;     // log-odds that a subject of this tier is a campaign's
  double subject_budget = 20000;    // suspected distillation value (answer tokens, rolling)
                                    // a subject may take before it is restricted
  double pool_budget = 20000;       // ... a pool may take before its suspicious members are
  // ... a subject whose own evidence alone reached policy.strong_evidence may take
  // (one campaign-like request after another, none organic: no pool needed to judge it).
  double evidence_budget = 1500;
  Action action = Action::kStepUp;  // what a restriction is for this tier
  bool show_evidence = false;       // clients of this tier see the evidence of a restriction
  // The account answers for its end users (a contract): an end user starts from the account's
  // prior plus the account's campaign share, not from that share alone (EndUserStage).
  bool vouches_for_end_users = false;
  // A machine-paced subject of this tier (mean gap under cohort.machine_gap_s: an evaluation
  // harness, a batch job) is judged on its own budget, not through its first-seen cohort. Off
  // for the unverified tier: an unverified account that asks at a script's pace what a shifted
  // cohort asks is a campaign's queue worker as likely as anyone's.
  bool machines_judged_alone = true;
  // The evidence budget of a subject that looks like an evaluation harness running one benchmark
  // (policy.harness_template_share, harness_known_set_share), or the evidence budget if that is
  // larger: a harness is never held tighter than anyone else. A verified researcher renders every
  // item through its harness's template, or sends the items of one public set as they are; a
  // verified account working a queue at a script's pace, in a voice of its own, does neither, and
  // is held to evidence_budget (docs/detection.md, "The evidence budget").
  double harness_evidence_budget = 1500;
};

struct PolicyConfig {
  // Indexed by Tier: unknown (no tier given), unverified, verified, enterprise.
  std::array<TierPolicy, static_cast<size_t>(Tier::kCount)> tiers = DefaultTiers();
  double restrict_posterior = 0.95;  // a subject over budget is restricted at this posterior
  double release_posterior = 0.5;    // a restricted subject stays restricted above this
  double value_half_life_hours = 24; // the rolling window of the budgets
  // Pooled evidence alone never restricts a subject before its n-th request: one request says
  // too little about whom a newcomer is (a researcher, a student, a drip account).
  double min_requests_for_pool = 2;
  // ... and only once its own evidence reaches this (log-odds): a pool's prior alone, with a
  // request or two that look only a little campaign-like, is not enough.
  double pool_min_evidence = 3;
  // Own evidence E from which a subject is held to its tier's evidence_budget (only the
  // unverified tier's is below its subject budget). Measured (docs/detection.md, "The evidence
  // budget"): organic users' own evidence stays below 9, while a stealth sybil's passes 16
  // within its first dozen requests. With human_gap_s above 0 only human-paced subjects are
  // held: gaps between requests long (mean at least human_gap_s) and irregular (standard
  // deviation of log10 of the gap at least human_gap_spread). Off by default: a closed-loop
  // operator that asks at a script's pace was then held by nothing but its subject budget
  // (365 full answers per burned account), and an unverified researcher is asked to verify
  // whatever its pace.
  double strong_evidence = 9;
  double human_gap_s = 0;
  double human_gap_spread = 0;
  // ... unless it shares items with others within the hour (SubjectState::items_shared_fresh,
  // the work-queue stage): this many times marks a class or a team, judged by the pools as
  // before. (A work queue re-issuing one lost item to a fresh account makes one.)
  double shared_items_exempt = 3;
  // A subject is an evaluation harness (its tier's harness_evidence_budget applies) when at
  // least harness_template_share of its recent requests follow one template
  // (SubjectState::TemplateShare), or at least harness_known_set_share are items of one known
  // public set (SubjectState::KnownSetShare); judged once harness_min_requests of its requests
  // have voted (SubjectState::harness_requests), before which it is given the harness budget.
  double harness_template_share = 0.8;
  double harness_known_set_share = 0.3;
  double harness_min_requests = 8;
  // Accounts naming at least this many end users are restricted as a whole only when their end
  // users churn (a fresh `user` on most requests: EndUserStageConfig); otherwise per end
  // user, so that a reseller's real customers are not cut off for its campaign end users.
  double multi_user_accounts = 10;
  // An account whose end users churn (EndUserStage::Churns: a fresh `user` on most requests, so
  // that its end users mean nothing) and whose own evidence reached strong_evidence may take
  // this much suspected value, whatever its tier (rule `churn_budget`). Rotating the `user`
  // field is how a harvest hides behind a trusted account: the enterprise tier's budgets
  // (docs/detection.md, Tiers) let such an account take about a hundred answers. An app that
  // names a fresh `user` per request but asks like its tier's users never reaches the evidence.
  // 0: off.
  double churn_budget = 5000;
  // ... and only while at most this share of its requests brought an end user back (a rotating
  // `user` field: none; the churn test of EndUserStage allows 10 % of its end users, which an
  // IDE plugin's 400 users stay under for their first hundred requests: 6 % of them, measured
  // on `stealth`'s coding tool).
  double churn_budget_return_share = 0.02;
  // A jailbreak probe is worth more to its sender than its tokens (it maps the safety
  // boundary; a refusal is information too): its value counts this many times.
  double jailbreak_value_weight = 20;
  static std::array<TierPolicy, static_cast<size_t>(Tier::kCount)> DefaultTiers();
};

// Which evidence stages run (all by default; switched off for ablations).
struct StageSwitches {
  bool content = true, corpus = true, baseline = true, cohort = true, workqueue = true,
       end_users = true, behaviour = true, linkage = true;
  // Parses "content,cohort,..." (the names of the stages to keep) or "-cohort,-baseline" (to
  // drop); InvalidArgument on an unknown name.
  static StatusOr<StageSwitches> Parse(std::string_view spec);
};

struct DetectionConfig {
  size_t max_subjects = 1 << 20;        // live subjects in memory
  std::shared_ptr<SubjectStore> store;  // evicted subjects; null: an InMemorySubjectStore
  size_t max_evicted_subjects = 4'000'000;  // cap of the default InMemorySubjectStore
  DecayConfig decay;
  // The detection model; null: DefaultDetectionModel() (or none if use_default_model = false).
  std::shared_ptr<const DetectionModel> model;
  bool use_default_model = true;
  StageSwitches stages;
  ContentStageConfig content;
  CorpusStageConfig corpus;
  OrganicBaseline::Config baseline_data;
  BaselineStageConfig baseline;
  CohortStageConfig cohort;
  WorkQueueStageConfig workqueue;
  EndUserStageConfig end_users;
  BehaviourStageConfig behaviour;
  LinkageStageConfig linkage;
  // Indicators shared by other providers (indicator_evidence.h); null: none, no stage. A
  // gateway passes a set (empty if need be) so that SetIndicators can replace it later.
  std::shared_ptr<const IndicatorMatcher> indicators;
  double request_llr_clip = 4.0;         // one request's summed evidence is clipped to +-this
  // When above 0, the part of it that reads the prompt's content (EvidenceStage::reads_content:
  // the content model, corpus membership, the baseline correction, the cohort attribution)
  // counts at most this: a prompt that looks like a campaign's to the model also looks like its
  // cohort's excess, so adding both counts one observation twice. Off (0) by default: 3 trades
  // organic false positives for campaign leakage (measured, docs/detection.md, "Engine").
  double content_llr_clip = 0;
  double mixed_share = 0.3;              // campaign share of the mixed sequential alternative
  double evidence_half_life_hours = 24;  // the sequential statistics decay
  double evidence_cap = 20.0;            // ... and are capped to +-this (they can recover)
  double pool_min_prior = 1.0;           // a stage's pool counts when its prior is at least this
  double prior_cap = 8.0;                // standing evidence is capped to +-this
  double typical_answer_tokens = 300;    // expected answer length (capped by max_tokens)
  double content_half_life_requests = 500;  // a subject's content counters forget at this pace
  double established_max_high_share = 0.6;  // subjects mostly campaign-like never feed the baseline
  double established_hours = 12;         // a subject this old, unrestricted and unsuspicious,
  double established_max_posterior = 0.2;  // feeds the organic baseline, each subject with at
  double established_hourly_requests = 10;  // most about this many requests an hour
  // Evidence of a request that continues a conversation (it has assistant turns) is weighed by
  // this: the turns of one conversation are not independent evidence.
  double continuation_weight = 0.5;
  // ... when it is a short follow-up (features.h, kFollowUpWords) or shares at least this many
  // content words with the user turn or the answer before it: a long prompt on another topic
  // is asked anew.
  double continuation_min_shared_words = 1;
  PolicyConfig policy;
  double explain_posterior = 0.5;  // allowed verdicts carry reasons from this posterior on
};

// Manual list entries (admin API): allow overrides every detection, deny blocks.
enum class ListEntry { kNone, kAllow, kDeny };

// Why a subject was restricted (SubjectState::restricted_by).
enum class RestrictionRule : uint8_t {
  kNone = 0,
  kSubjectBudget,
  kPoolBudget,
  kDenyList,
  kHeld,
  kEvidenceBudget,
  kChurnBudget,
};
std::string_view RestrictionRuleName(RestrictionRule rule);

struct AccountReport {
  std::string id;
  std::string tier;
  uint64_t requests = 0;
  double score = 0, peak_score = 0;  // posterior, last and highest
  bool restricted = false;
  std::string restricted_by;         // the rule ("subject_budget", "pool_budget", ...), "" none
  ListEntry list = ListEntry::kNone;
  double rate_per_hour = 0;
  double distinct_ips = 0, distinct_prefixes = 0, distinct_skeletons = 0, distinct_end_users = 0;
  double evidence = 0;               // its own sequential evidence E (log-odds)
  double value = 0, budget = 0;      // suspected distillation value taken, its subject budget
                                     // (its evidence budget when that restricted it)
  double items_spread = 0, items_shared = 0;  // work-queue repeats: diffuse, dense
  bool cohort_graduated = false;  // judged on its own, no longer through its first-seen cohort
  std::array<double, kNumSignals> signal_rates{};  // share of requests with each signal
  std::vector<std::pair<int64_t, double>> history;  // (unix seconds, score), oldest first
  std::vector<std::string> reasons;                  // evidence stages active at the last verdict
  std::string campaign_id;
  std::string indicator;                             // shared indicator it matched, "" none
  std::vector<std::string> linked_accounts;         // sample members of its campaign
  int64_t first_seen_ns = 0, last_seen_ns = 0;
};

// Thread-safe: subjects are sharded under their own locks; stages lock their own state.
class DetectionEngine final : public Engine {
 public:
  explicit DetectionEngine(DetectionConfig config = {});
  ~DetectionEngine() override;
  Verdict Observe(const RequestEvent& event) override;

  // Snapshots for the admin API.
  std::vector<CampaignInfo> Campaigns() const;
  std::vector<CohortInfo> Cohorts() const;
  // `id` is an account id, or "account/end_user" for an end user.
  std::optional<AccountReport> Account(const std::string& id) const;
  void SetListEntry(const std::string& account, ListEntry entry);
  // Replaces the shared-indicator set (thread-safe). False, and nothing changes, when the
  // engine was built without one (config.indicators null: no indicator stage).
  bool SetIndicators(std::shared_ptr<const IndicatorMatcher> indicators);

  // Evicts subjects idle since before `cutoff_ns` to the store; returns how many.
  size_t EvictIdle(int64_t cutoff_ns) { return subjects_.EvictIdle(cutoff_ns); }
  // The latest event time Observe has seen, to within a second (0 before any): the engine's
  // clock, which is not the wall clock when recorded traffic is replayed with its own times.
  int64_t latest_event_ns() const { return latest_event_ns_.load(std::memory_order_relaxed); }

  // The state file (engine_state.cc, docs/detection.md "State across restarts"): what the engine
  // learned that a restart would otherwise forget — every subject (its first sighting, evidence,
  // value and restriction), the organic baseline, the cohorts and the work-queue item table. The
  // campaign linker is not saved: it fills again from traffic within hours.
  struct StateCounts {
    size_t live_subjects = 0, evicted_subjects = 0, cohorts = 0;
    int64_t saved_at_ns = 0;
  };
  // Writes the file (replacing it whole: ReplaceFileContents) while requests go on; each
  // subject shard, the baseline and the cohorts are copied under their own locks.
  StatusOr<StateCounts> SaveState(const std::string& path, int64_t now_ns) const;
  // Reads a file SaveState wrote, into an engine that has seen no traffic yet. NotFound when
  // there is none; DataLoss when it is damaged (checksum) and FailedPrecondition when another
  // build of SubjectState wrote it: nothing is loaded then, and the engine starts afresh.
  StatusOr<StateCounts> LoadState(const std::string& path);
  // The fingerprint of SubjectState's layout that a state file carries. with_harness false: the
  // layout before the harness votes at the end of SubjectState (SubjectState::harness_requests),
  // whose subjects are kSubjectBytesBeforeHarness long; with_system_tag false too: before
  // SubjectState::system_tag; with_graduated false too: before SubjectState::graduated. Such
  // files still load, the later fields cleared (no harness votes yet, no subject graduated, no
  // system message remembered).
  static uint64_t StateSubjectLayout(bool with_graduated = true, bool with_system_tag = true,
                                     bool with_harness = true);
  static constexpr size_t kSubjectBytesBeforeHarness = 616;
  size_t live_subjects() const { return subjects_.size(); }
  const DetectionConfig& config() const { return config_; }
  const DetectionModel* model() const { return model_.get(); }
  // Names of the stages that run, in chain order.
  std::vector<std::string_view> stage_names() const;

 private:
  struct Judgement;
  // Judges one subject under its lock (see the file comment).
  Judgement Judge(RequestView& r, SubjectRole role, const std::string& id, uint64_t hash,
                  const std::array<StageEvidence, kMaxStages>& request_evidence,
                  ListEntry list, const AccountSummary* account);
  ListEntry ListOf(const std::string& account) const;
  // What an established subject (the baseline's) and a graduated account (cohorts) must be at a
  // verdict, besides old enough: unrestricted, posterior at most established_max_posterior, and
  // not mostly campaign-like (of its decayed content counters llr_n, llr_hi of SubjectState,
  // less than established_max_high_share campaign-like once there are four).
  bool Unsuspicious(bool restricted, double posterior, float llr_n, float llr_hi) const {
    return !restricted && posterior <= config_.established_max_posterior &&
           !(llr_n >= 4 && llr_hi >= config_.established_max_high_share * llr_n);
  }
  static std::string Reference(const RequestEvent& event, uint64_t subject_hash);

  DetectionConfig config_;
  std::shared_ptr<const DetectionModel> model_;
  std::shared_ptr<OrganicBaseline> baseline_;
  SubjectTable subjects_;
  std::vector<std::unique_ptr<EvidenceStage>> stages_;
  CohortStage* cohort_ = nullptr;     // owned by stages_, when enabled
  WorkQueueStage* workqueue_ = nullptr;  // owned by stages_, when enabled
  LinkageStage* linkage_ = nullptr;   // owned by stages_, when enabled
  IndicatorStage* indicators_ = nullptr;  // owned by stages_, when config_.indicators was set
  EndUserStage* end_users_ = nullptr; // owned by stages_, when enabled
  struct ListTable;
  std::unique_ptr<ListTable> lists_;
  std::atomic<int64_t> latest_event_ns_{0};  // written when it moves by a second or more
  RecentPrompts recent_prompts_;  // which prompts each subject sent lately (agents' steps)
};

}  // namespace moat::detect
