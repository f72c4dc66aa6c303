#pragma once
// DetectionEngine: moat's online behavioural detection engine. Per request it extracts cheap
// features, folds them into the subject's fixed-size state, asks the campaign linker how risky
// the request's link keys are, adds the evidence up as log-odds, and maps the resulting score
// through the policy to an action whose reasons name the features and linked accounts.

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "detect/account_state.h"
#include "detect/campaign_linker.h"
#include "detect/features.h"
#include "moat/detect_engine.h"

namespace moat::detect {

// How one per-subject signal rate turns into evidence: weight * Ramp(rate, rate_lo, rate_hi)
// * Ramp(hits, 0.5, hits_full), where rate is the subject's decayed share of requests with the
// signal and hits its decayed count. The rate gate keeps occasional hits (a benign prompt that
// looks risky) from adding up; the hit gate keeps one request from deciding alone.
struct SignalWeight {
  double weight = 0;
  double rate_lo = 0.2, rate_hi = 0.5;
  double hits_full = 3;
};

// The policy: scores to actions. The score is the subject's risk in [0, 1].
struct PolicyConfig {
  double throttle_score = 2.0;   // > 1: throttle not used by score alone
  double degrade_score = 0.5;    // strip reasoning, refuse logprobs, cap max_tokens
  double step_up_score = 0.97;   // with a linked campaign of >= step_up_campaign_members
  size_t step_up_campaign_members = 5;
  double block_score = 2.0;      // > 1: never block on score alone (deny lists still block)
  double release_score = 0.3;    // a restricted subject stays restricted above this
  bool silent_degrade = false;   // opt-in: no client-visible header for degrade
};

struct DetectionConfig {
  size_t max_subjects = 1 << 20;            // live subjects in memory
  std::shared_ptr<SubjectStore> store;       // evicted subjects; null: an InMemorySubjectStore
  DecayConfig decay;
  LinkerConfig linker;
  double prior_log_odds = -4.0;
  std::array<SignalWeight, kNumSignals> signals = DefaultSignalWeights();
  double ip_rotation_weight = 2.5;   // * Ramp(distinct client addresses, 3, 6)
  double volume_weight = 0.7;        // * Ramp(requests per hour, volume_lo, volume_hi)
  double volume_lo = 150, volume_hi = 500;
  double diversity_weight = 0.6;     // single-turn, every prompt a new skeleton, sustained
  std::array<double, kNumLinkKinds> link_weights = {1.2, 1.8, 1.5, 1.5, 1.0};
  double link_cap = 4.0;             // most evidence linkage alone can add
  double campaign_weight = 1.5;      // * campaign score, when >= 2 kinds of keys are risky
  double restricted_bonus = 1.0;     // hysteresis for subjects already restricted
  PolicyConfig policy;

  static std::array<SignalWeight, kNumSignals> DefaultSignalWeights();
};

// Manual list entries (admin API): allow overrides every detection, deny blocks.
enum class ListEntry { kNone, kAllow, kDeny };

struct AccountReport {
  std::string id;
  uint64_t requests = 0;
  double score = 0, peak_score = 0;
  bool restricted = false;
  ListEntry list = ListEntry::kNone;
  double rate_per_hour = 0;
  double distinct_ips = 0, distinct_prefixes = 0, distinct_skeletons = 0;
  std::array<double, kNumSignals> signal_rates{};  // share of requests with each signal
  std::vector<std::pair<int64_t, double>> history;  // (unix seconds, score), oldest first
  std::vector<std::string> reasons;                  // evidence at the last verdict
  std::string campaign_id;
  std::vector<std::string> linked_accounts;         // sample members of its campaign
  int64_t first_seen_ns = 0, last_seen_ns = 0;
};

// Thread-safe: subjects are sharded under their own locks and the linker locks per key shard.
class DetectionEngine final : public Engine {
 public:
  explicit DetectionEngine(DetectionConfig config = {});
  ~DetectionEngine() override;
  Verdict Observe(const RequestEvent& event) override;

  // Snapshots for the admin API.
  std::vector<CampaignInfo> Campaigns() const;
  // `id` is an account id, or "account/end_user" for a per-end-user subject.
  std::optional<AccountReport> Account(const std::string& id) const;
  void SetListEntry(const std::string& account, ListEntry entry);

  // Evicts subjects idle since before `cutoff_ns` to the store; returns how many.
  size_t EvictIdle(int64_t cutoff_ns) { return subjects_.EvictIdle(cutoff_ns); }
  size_t live_subjects() const { return subjects_.size(); }
  const DetectionConfig& config() const { return config_; }

  // Evidence items named in reasons (bits of SubjectState::reason_bits).
  enum Evidence : int {
    kEvSignalBase = 0,  // + Signal
    kEvIpRotation = kNumSignals,
    kEvVolume,
    kEvDiversity,
    kEvLinkBase,        // + LinkKind
    kEvCampaign = kEvLinkBase + kNumLinkKinds,
    kEvDenyList,
    kNumEvidence
  };
  static std::string_view EvidenceName(int evidence);

 private:
  // Evidence of one subject's own behaviour, as log-odds per item.
  std::array<double, kNumEvidence> OwnEvidence(const SubjectState& s) const;
  Action PolicyAction(double score, bool restricted, size_t campaign_members) const;
  static std::string SubjectId(const RequestEvent& event);

  DetectionConfig config_;
  SubjectTable subjects_;
  CampaignLinker linker_;
  struct ListTable;
  std::unique_ptr<ListTable> lists_;
};

}  // namespace moat::detect
