#include "detect/subject_evidence.h"

#include <algorithm>
#include <cmath>

#include "detect/sketches.h"

namespace moat::detect {
namespace {

double Logit(double p) { return std::log(p / (1 - p)); }

constexpr int kCohortShards = 16;
constexpr size_t kMaxEndUserCohorts = 1 << 16;  // all shards together: about 3 MiB at most

}  // namespace

double CampaignShare(double high_share, double baseline_share, double campaign_share, double cap) {
  if (campaign_share <= baseline_share) return 0;
  return std::clamp((high_share - baseline_share) / (campaign_share - baseline_share), 0.0, cap);
}

// ---- EndUserStage ---------------------------------------------------------------------------

EndUserStage::EndUserStage(EndUserStageConfig config, std::shared_ptr<const OrganicBaseline> baseline)
    : config_(config),
      baseline_(std::move(baseline)),
      // Hours beyond a few years are as good as forever (and would overflow nanoseconds).
      window_ns_(static_cast<int64_t>(std::clamp(config.window_hours, 0.0, 1e5) * 3.6e12)),
      memory_ns_(static_cast<int64_t>(std::clamp(config.window_memory_hours, 0.0, 1e5) * 3.6e12)),
      per_shard_(kMaxEndUserCohorts / kCohortShards) {
  for (int i = 0; i < kCohortShards; ++i) shards_.push_back(std::make_unique<Shard>());
}

double EndUserStage::CountInCohort(const RequestView& r, const SubjectState& end_user) {
  if (window_ns_ <= 0) return -1;
  const int64_t window = end_user.first_seen_ns / window_ns_;
  const int64_t window_start = window * window_ns_;
  if (r.now_ns - window_start > memory_ns_) return -1;  // an old cohort: its account's share
  const uint64_t key = HashCombine(r.account_hash, static_cast<uint64_t>(window));
  Shard& shard = *shards_[Mix64(key) % kCohortShards];
  CohortCounts c;
  {
    std::lock_guard<std::mutex> lock(shard.mu);
    auto it = shard.map.find(key);
    if (it == shard.map.end()) {
      if (shard.map.size() >= per_shard_) {
        // Full: forget the cohorts past their memory, at most once a minute (a sweep reads the
        // whole shard). Live cohorts are never evicted for new ones: while the shard is full of
        // them, a new cohort is not tracked and its end users keep their account's share.
        if (r.now_ns >= shard.next_sweep_ns) {
          boost::unordered::erase_if(shard.map, [&](const auto& e) {
            return r.now_ns - e.second.window_start_ns > memory_ns_;
          });
          shard.next_sweep_ns = r.now_ns + 60'000'000'000LL;
        }
        if (shard.map.size() >= per_shard_) return -1;
      }
      it = shard.map.emplace(key, CohortCounts{0, 0, 0, window_start}).first;
    }
    CohortCounts& counts = it->second;
    counts.requests += 1;
    if (r.features.content.combined >= baseline_->high_llr()) counts.campaign_like += 1;
    if (end_user.requests == 1) counts.members += 1;
    c = counts;
  }
  if (c.requests < config_.share_min_requests || c.members < config_.window_min_members) return -1;
  return ShareOf(static_cast<double>(c.campaign_like) / c.requests);
}

const std::vector<std::string_view>& EndUserStage::reason_names() const {
  static const std::vector<std::string_view> kNames = {"end_user_churn", "account_campaign_share",
                                                       "end_user_cohort_share"};
  return kNames;
}

double EndUserStage::ShareOf(double high_share) const {
  return CampaignShare(high_share, std::clamp<double>(baseline_->HighShare(), 0.005, 0.9),
                       baseline_->CampaignHighShare(), 0.99);
}

double EndUserStage::AccountShare(float llr_n, float llr_hi) const {
  if (llr_n < config_.share_min_requests) return 0;
  return ShareOf(llr_hi / llr_n);
}

bool EndUserStage::Churns(const SubjectState& s) const {
  const double users = s.end_users.Estimate();
  const double hours = static_cast<double>(s.last_seen_ns - s.first_seen_ns) / 3.6e12;
  return hours >= config_.churn_min_hours && users >= config_.churn_min_users &&
         s.returning_end_users < config_.churn_return_share * users;
}

void EndUserStage::OnSubject(const RequestView& r, SubjectRole role, SubjectState& s,
                             const AccountSummary* account, StageEvidence* out) {
  if (role == SubjectRole::kAccount) {
    if (r.end_user_hash == 0) return;
    s.end_users.Add(r.end_user_hash);
    if (Churns(s)) {
      // Its end users mean nothing: the account is judged (and pooled) as a whole.
      out->prior = static_cast<float>(config_.churn_weight);
      out->pool_value = s.value;
      out->reason = 0;
    }
    return;
  }
  if (account == nullptr) return;
  // Counted from the cohort's first request, whether or not the account's share is known yet.
  const double cohort_share = CountInCohort(r, s);
  if (account->llr_n < config_.share_min_requests) return;
  const double account_share = std::min(config_.share_cap, AccountShare(account->llr_n, account->llr_hi));
  const double share = std::max(account_share, std::min(config_.share_cap, cohort_share));
  if (share <= config_.base_share) return;
  // The account's verification does not vet its end users: an end user's prior is its account's
  // campaign share itself, not the share on top of the account's tier prior. A tier whose
  // accounts answer for their users (a contract) keeps its trust: the share is added to it.
  const double from = r.tier_vouches_for_end_users ? Logit(config_.base_share) : r.tier_prior_log_odds;
  out->prior = static_cast<float>(config_.share_weight * std::max(0.0, Logit(share) - from));
  // The account's end users as a pool: its traffic times the share estimated to be a campaign's.
  out->pool_value = static_cast<float>(account->requests * r.features.expected_answer_tokens * share);
  // The end user's cohort asks more like a campaign than the account as a whole: a campaign
  // started sending its end users through the account then. Its members need less evidence of
  // their own.
  if (cohort_share > account_share &&
      Logit(share) - Logit(std::max(account_share, config_.base_share)) >= config_.window_shift) {
    out->pool_min_evidence = static_cast<float>(config_.window_min_evidence);
    out->reason = 2;
  } else {
    out->reason = 1;
  }
}

// ---- BehaviourStage -------------------------------------------------------------------------

std::array<SignalWeight, kNumSignals> BehaviourStageConfig::DefaultSignalWeights() {
  std::array<SignalWeight, kNumSignals> w{};
  // Content rates are the content stages' business; here only how the API is used.
  w[kLogprobs] = {2.0, 0.05, 0.2, 2};
  w[kMultiSample] = {1.0, 0.2, 0.5, 3};
  w[kLongOutput] = {0.8, 0.3, 0.7, 3};
  w[kReasoningParam] = {1.2, 0.2, 0.5, 2};
  w[kGreedy] = {0.3, 0.5, 0.9, 5};
  return w;
}

const std::vector<std::string_view>& BehaviourStage::reason_names() const {
  static const std::vector<std::string_view> kNames = [] {
    std::vector<std::string_view> v;
    for (int k = 0; k < kNumSignals; ++k) v.push_back(SignalName(k));
    v.push_back("ip_rotation");
    v.push_back("volume");
    v.push_back("single_turn_diversity");
    return v;
  }();
  return kNames;
}

void BehaviourStage::OnSubject(const RequestView&, SubjectRole, SubjectState& s, const AccountSummary*,
                               StageEvidence* out) {
  const double n = s.n;
  double total = 0, best = 0;
  int best_item = -1;
  auto add = [&](double e, int item) {
    total += e;
    if (e > best) {
      best = e;
      best_item = item;
    }
  };
  for (int k = 0; k < kNumSignals; ++k) {
    const SignalWeight& w = config_.signals[k];
    if (w.weight == 0) continue;
    const double hits = s.signal[k];
    const double rate = hits / (n + 1.5);
    add(w.weight * Ramp(rate, w.rate_lo, w.rate_hi) * Ramp(hits, 0.5, w.hits_full), k);
  }
  add(config_.ip_rotation_weight * Ramp(s.DistinctIps(), 3, 6), kNumSignals);
  add(config_.volume_weight * Ramp(s.RatePerHour(), config_.volume_lo, config_.volume_hi), kNumSignals + 1);
  const double single_turn = s.signal[kSingleTurn] / std::max(1.0, n);
  const double novelty = s.DistinctSkeletons() / std::max<double>(1.0, std::min<double>(s.requests, 128));
  add(config_.diversity_weight * Ramp(single_turn, 0.85, 0.98) * Ramp(novelty, 0.6, 0.9) *
          Ramp(s.requests, 10, 30),
      kNumSignals + 2);
  out->prior = static_cast<float>(total);
  if (best >= 0.25) out->reason = best_item;
  if (total >= config_.conduct_min) {
    out->request_llr = static_cast<float>(config_.conduct_llr);
    out->pool_value = s.value;
  }
}

// ---- LinkageStage ---------------------------------------------------------------------------

const std::vector<std::string_view>& LinkageStage::reason_names() const {
  static const std::vector<std::string_view> kNames = [] {
    std::vector<std::string_view> v;
    for (int k = 0; k < kNumLinkKinds; ++k) v.push_back(LinkKindName(k));
    v.push_back("linked_campaign");
    return v;
  }();
  return kNames;
}

void LinkageStage::OnRequest(RequestView& r, StageEvidence*) {
  r.link_keys = MakeLinkKeys(r.event, r.features);
  r.link = linker_.Assess(r.link_keys, r.now_ns);
}

void LinkageStage::OnSubject(const RequestView& r, SubjectRole role, SubjectState&, const AccountSummary*,
                             StageEvidence* out) {
  // Linked through the finest subject: the end user when the request names one.
  if (role == SubjectRole::kAccount && r.end_user_hash != 0) return;
  double sum = 0, best = 0;
  int best_kind = -1;
  for (int k = 0; k < kNumLinkKinds; ++k) {
    const double e = config_.kind_weights[k] * r.link.risk[k];
    sum += e;
    if (e > best) {
      best = e;
      best_kind = k;
    }
  }
  sum = std::min(sum, config_.cap);
  if (r.link.risky_kinds >= 2) {
    sum += config_.campaign_weight * r.link.campaign_score;
    best_kind = kNumLinkKinds;
  }
  out->prior = static_cast<float>(sum);
  // A linked campaign is a pool only when independent kinds of keys link to it (a shared
  // answer format alone links researchers who never met).
  if (r.link.risky_kinds >= 2) {
    out->pool_value = static_cast<float>(std::max(r.link.campaign_value, r.link.key_value));
  }
  if (sum >= 0.25) out->reason = best_kind;
}

void LinkageStage::OnVerdict(RequestView& r, const VerdictFacts& facts) {
  const bool by_end_user = r.end_user_hash != 0;
  const bool restricted = by_end_user ? facts.end_user_restricted : facts.account_restricted;
  const float posterior = by_end_user ? facts.end_user_posterior : facts.account_posterior;
  std::string sid = r.event.account_id;
  if (by_end_user) sid.append("/").append(r.event.end_user);
  const uint64_t root =
      linker_.Record(r.link_keys, by_end_user ? r.end_user_hash : r.account_hash, sid, restricted, posterior,
                     facts.value, FeatureBin(r.features), r.now_ns);
  r.campaign_root = root != 0 ? root : r.link.campaign_root;
}

}  // namespace moat::detect
