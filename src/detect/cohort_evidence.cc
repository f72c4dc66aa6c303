#include "detect/cohort_evidence.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "detect/binary_fields.h"
#include "detect/sketches.h"

namespace moat::detect {
namespace {

constexpr int64_t kHourNs = 3600LL * 1'000'000'000LL;

double Logit(double p) { return std::log(p / (1 - p)); }

}  // namespace

CohortStage::CohortStage(CohortStageConfig config, std::shared_ptr<const OrganicBaseline> baseline)
    : config_(config),
      baseline_(std::move(baseline)),
      window_ns_(static_cast<int64_t>(config.window_hours * kHourNs)),
      young_ns_(static_cast<int64_t>(config.young_hours * kHourNs)),
      half_life_ns_(static_cast<int64_t>(config.half_life_hours * kHourNs)) {}

const std::vector<std::string_view>& CohortStage::reason_names() const {
  static const std::vector<std::string_view> kNames = {"shifted_cohort", "like_restricted_traffic"};
  return kNames;
}

uint64_t CohortStage::KeyOf(int64_t first_seen_ns, Tier tier, int64_t now_ns) const {
  if (first_seen_ns <= 0 || now_ns - first_seen_ns > young_ns_ || window_ns_ <= 0) return 0;
  const uint64_t window = static_cast<uint64_t>(first_seen_ns / window_ns_);
  return (window << 3 | static_cast<uint64_t>(tier)) + 1;
}

void CohortStage::Decay(Stats& c, int64_t now_ns) const {
  if (c.last_ns != 0 && now_ns > c.last_ns) {
    const float d = DecayFactor(now_ns - c.last_ns, half_life_ns_);
    c.n *= d;
    c.hi *= d;
    c.value *= d;
    c.feature_n *= d;
    c.feature_sum *= d;
  }
  c.last_ns = std::max(c.last_ns, now_ns);
}

double CohortStage::FeatureShare(const Stats& c) const {
  if (config_.feature_shift <= 0 || c.members < config_.feature_min_members ||
      c.feature_n < std::max(1.0, config_.feature_min_requests)) {
    return 0;
  }
  const double mean = c.feature_sum / c.feature_n;
  if (mean < config_.feature_shift) return 0;
  return std::clamp(mean / config_.feature_full_shift, 0.0, config_.max_share);
}

CohortStage::Shift CohortStage::Test(const Stats& c) const {
  const auto [binomial, z] = BinomialTest(c);
  const double by_features = FeatureShare(c);
  return {std::max(binomial, by_features), z, by_features > binomial};
}

std::pair<double, double> CohortStage::BinomialTest(const Stats& c) const {
  if (c.members < config_.min_members || c.n < 1) return {0, 0};
  const double base = std::clamp(static_cast<double>(baseline_->HighShare()), 0.005, 0.9);
  const double share = c.hi / c.n;
  // Requests of one subject are not independent: count at most four per member.
  const double n_eff = std::min(c.n, 4 * c.members);
  const double z = (share - base) / std::sqrt(base * (1 - base) / n_eff);
  if (z < config_.z_threshold) return {0, z};
  // The campaign share of campaign-like requests is learned from restricted subjects' requests;
  // when most of those are campaigns the model does not know (restricted through the feature
  // test), it falls towards the baseline's and would inflate every estimate.
  const double campaign = std::max<double>(baseline_->CampaignHighShare(), base + config_.min_campaign_excess);
  if (campaign <= base) return {0, z};
  const double pi = std::clamp((share - base) / (campaign - base), 0.0, config_.max_share);
  return {pi, z};
}

void CohortStage::OnSubject(const RequestView& r, SubjectRole role, SubjectState& s,
                            const AccountSummary*, StageEvidence* out) {
  if (role != SubjectRole::kAccount) return;
  const uint64_t key = KeyOf(s.first_seen_ns, r.tier, r.now_ns);
  if (key == 0) return;
  const RequestFeatures& f = r.features;
  const bool high = f.content.combined >= baseline_->high_llr();
  double pi = 0, value = 0;
  bool by_features = false;  // the feature test, not the binomial one, estimated pi
  std::optional<double> cohort_loglik;
  // A member's first requests measure the feature test (it needs the baseline's model).
  std::optional<double> base_loglik;
  if (config_.feature_shift > 0 && s.requests <= config_.feature_requests_per_member && f.cohort_feature_count > 0) {
    base_loglik = baseline_->FeatureLogLikelihood(f);
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto [it, inserted] = cohorts_.try_emplace(key);
    Stats& c = it->second;
    if (inserted) {
      c.tier = r.tier;
      c.window = s.first_seen_ns / window_ns_;
      c.features = std::make_unique<FeatureCounts>();
      // Cohorts whose window is past the young age have no members any more; drop them, and
      // the idlest ones beyond max_cohorts.
      const int64_t oldest_window = (r.now_ns - young_ns_) / window_ns_ - 1;
      for (auto i = cohorts_.begin(); i != cohorts_.end();) {
        i = i != it && i->second.window < oldest_window ? cohorts_.erase(i) : std::next(i);
      }
      while (cohorts_.size() > config_.max_cohorts) {
        auto oldest = cohorts_.end();
        for (auto i = cohorts_.begin(); i != cohorts_.end(); ++i) {
          if (i != it && (oldest == cohorts_.end() || i->second.last_ns < oldest->second.last_ns)) oldest = i;
        }
        if (oldest == cohorts_.end()) break;
        cohorts_.erase(oldest);
      }
    }
    Decay(c, r.now_ns);
    c.n += 1;
    c.hi += high ? 1 : 0;
    if (s.requests == 1) c.members += 1;
    const Shift shift = Test(c);
    pi = shift.pi;
    by_features = shift.by_features;
    value = c.value;
    // The request is judged against the cohort as it was before it.
    if ((pi > config_.base_share || base_loglik) && f.cohort_feature_count > 0 &&
        c.features->total() >= config_.min_cohort_features) {
      cohort_loglik = c.features->LogLikelihood(f, static_cast<float>(config_.nb_alpha));
      if (base_loglik) {
        c.feature_n += 1;
        c.feature_sum += (*cohort_loglik - *base_loglik) / f.cohort_feature_count;
      }
    }
    c.features->Add(f, 4e6);
  }
  // A graduated member still counts in its cohort's statistics, but is judged on its own.
  if (s.graduated) return;
  // Machine-paced subjects of most tiers are judged on their own budget (see the header).
  if (r.tier_machines_judged_alone && s.MachinePaced(config_.machine_gap_s)) return;
  // What the deployment has restricted so far, against its established traffic.
  double restricted = 0;
  if (config_.restricted_weight > 0 && f.cohort_feature_count > 0) {
    if (std::optional<double> restricted_loglik = baseline_->RestrictedFeatureLogLikelihood(f)) {
      if (!base_loglik) base_loglik = baseline_->FeatureLogLikelihood(f);
      if (base_loglik) {
        const double ratio = (*restricted_loglik - *base_loglik) / config_.restricted_temper;
        restricted = config_.restricted_weight * std::clamp(ratio, -config_.restricted_clip, config_.restricted_clip);
      }
    }
  }
  if (pi <= config_.base_share || !cohort_loglik) {
    out->request_llr = static_cast<float>(restricted);
    if (restricted > 0) out->reason = 1;
    return;
  }
  // Without a model of established traffic, members cannot be told apart: no evidence yet.
  if (!base_loglik) base_loglik = baseline_->FeatureLogLikelihood(f);
  if (!base_loglik) return;
  const double prior_share = std::min(pi, config_.prior_max_share);
  out->prior = static_cast<float>(config_.weight * (Logit(prior_share) - Logit(config_.base_share)));
  out->pool_value = static_cast<float>(value);
  out->reason = 0;
  const double ratio = std::exp((*cohort_loglik - *base_loglik) / config_.nb_temper);
  const double share = std::max(pi, config_.attribution_min_share);
  const double campaign = (ratio - (1 - share)) / share;  // p_campaign / p_organic
  const double clip = by_features ? config_.feature_attribution_clip : config_.attribution_clip;
  const double llr = campaign > std::exp(-clip) ? std::min(clip, std::log(campaign)) : -clip;
  out->request_llr = static_cast<float>(config_.attribution_weight * llr + restricted);
}

void CohortStage::OnVerdict(RequestView& r, const VerdictFacts& facts) {
  const uint64_t key = KeyOf(facts.account_first_seen_ns, r.tier, r.now_ns);
  if (key == 0) return;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = cohorts_.find(key);
  if (it == cohorts_.end()) return;
  Decay(it->second, r.now_ns);
  it->second.value += r.features.expected_answer_tokens * facts.account_posterior;
}

void CohortStage::SaveTo(std::string* out) const {
  // Copied under the lock, written out after it: requests of young subjects wait for a copy of
  // the counts (up to max_cohorts x 64 KiB), not for their encoding.
  std::vector<std::pair<uint64_t, Stats>> copy;
  {
    std::lock_guard<std::mutex> lock(mu_);
    copy.reserve(cohorts_.size());
    for (const auto& [key, c] : cohorts_) {
      Stats& s = copy.emplace_back(key, Stats{}).second;
      s.n = c.n, s.hi = c.hi, s.members = c.members, s.value = c.value;
      s.feature_n = c.feature_n, s.feature_sum = c.feature_sum;
      s.last_ns = c.last_ns, s.tier = c.tier, s.window = c.window;
      if (c.features) s.features = std::make_unique<FeatureCounts>(*c.features);
    }
  }
  PutU64(out, static_cast<uint64_t>(window_ns_));
  PutU32(out, static_cast<uint32_t>(copy.size()));
  for (const auto& [key, c] : copy) {
    PutU64(out, key);
    for (double v : {c.n, c.hi, c.members, c.value}) PutF64(out, v);
    PutU64(out, static_cast<uint64_t>(c.last_ns));
    PutU64(out, static_cast<uint64_t>(c.window));
    PutU32(out, static_cast<uint32_t>(c.tier));
    PutU32(out, c.features ? 1 : 0);
    if (c.features) c.features->AppendTo(out);
  }
  // The feature test's counts, after the cohorts: a file written before the test ends above.
  PutU32(out, static_cast<uint32_t>(copy.size()));
  for (const auto& [key, c] : copy) {
    PutU64(out, key);
    PutF64(out, c.feature_n);
    PutF64(out, c.feature_sum);
  }
}

bool CohortStage::LoadFrom(std::string_view* in) {
  uint64_t window_ns = 0;
  uint32_t count = 0;
  if (!GetU64(in, &window_ns) || !GetU32(in, &count)) return false;
  std::unordered_map<uint64_t, Stats> loaded;
  for (uint32_t i = 0; i < count; ++i) {
    uint64_t key = 0, last_ns = 0, window = 0;
    uint32_t tier = 0, has_features = 0;
    Stats c;
    bool ok = GetU64(in, &key);
    for (double* v : {&c.n, &c.hi, &c.members, &c.value}) ok = ok && GetF64(in, v) && std::isfinite(*v) && *v >= 0;
    ok = ok && GetU64(in, &last_ns) && GetU64(in, &window) && GetU32(in, &tier) &&
         tier < static_cast<uint32_t>(Tier::kCount) && GetU32(in, &has_features) && has_features <= 1 && c.hi <= c.n;
    if (!ok) return false;
    c.last_ns = static_cast<int64_t>(last_ns);
    c.window = static_cast<int64_t>(window);
    c.tier = static_cast<Tier>(tier);
    c.features = std::make_unique<FeatureCounts>();
    if (has_features == 1 && !c.features->ReadFrom(in)) return false;
    if (loaded.size() < config_.max_cohorts) loaded[key] = std::move(c);
  }
  if (!in->empty()) {
    uint32_t measured = 0;
    if (!GetU32(in, &measured) || measured != count) return false;
    for (uint32_t i = 0; i < measured; ++i) {
      uint64_t key = 0;
      double n = 0, sum = 0;
      if (!GetU64(in, &key) || !GetF64(in, &n) || !GetF64(in, &sum) || !std::isfinite(n) || n < 0 ||
          !std::isfinite(sum)) {
        return false;
      }
      if (auto it = loaded.find(key); it != loaded.end()) it->second.feature_n = n, it->second.feature_sum = sum;
    }
  }
  if (static_cast<int64_t>(window_ns) != window_ns_) return true;  // keyed by other windows
  std::lock_guard<std::mutex> lock(mu_);
  cohorts_ = std::move(loaded);
  return true;
}

CohortInfo CohortStage::InfoOf(const Stats& c) const {
  CohortInfo info;
  info.window_start_s = c.window * window_ns_ / 1'000'000'000LL;
  info.tier = std::string(TierName(c.tier));
  char id[64];
  std::snprintf(id, sizeof(id), "cohort-%s-%lld", info.tier.c_str(), static_cast<long long>(info.window_start_s));
  info.id = id;
  info.members = c.members;
  info.requests = c.n;
  info.high_share = c.n > 0 ? c.hi / c.n : 0;
  info.baseline_share = baseline_->HighShare();
  info.campaign_high_share = baseline_->CampaignHighShare();
  const Shift shift = Test(c);
  info.z = shift.z;
  info.campaign_share = shift.pi;
  info.feature_shift = c.feature_n > 0 ? c.feature_sum / c.feature_n : 0;
  info.shifted = shift.pi > config_.base_share;
  info.value = c.value;
  return info;
}

std::vector<CohortInfo> CohortStage::Cohorts() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<CohortInfo> out;
  out.reserve(cohorts_.size());
  for (const auto& [key, c] : cohorts_) out.push_back(InfoOf(c));
  std::sort(out.begin(), out.end(), [](const CohortInfo& a, const CohortInfo& b) {
    return a.window_start_s != b.window_start_s ? a.window_start_s < b.window_start_s : a.tier < b.tier;
  });
  return out;
}

}  // namespace moat::detect
