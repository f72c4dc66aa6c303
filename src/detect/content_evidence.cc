#include "detect/content_evidence.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>

#include "detect/binary_fields.h"

namespace moat::detect {

// ---- ContentStage ---------------------------------------------------------------------------

const std::vector<std::string_view>& ContentStage::reason_names() const {
  static const std::vector<std::string_view> kNames = {"instruction_content", "reasoning_content",
                                                       "benchmark_content", "jailbreak_content"};
  return kNames;
}

void ContentStage::OnRequest(RequestView& r, StageEvidence* out) {
  const RequestFeatures& f = r.features;
  const double high = f.content.top_head == kHeadJailbreak ? config_.jailbreak_clip : config_.clip;
  const float llr = std::clamp(f.content.combined, static_cast<float>(-config_.clip_low), static_cast<float>(high));
  r.content_llr = llr;
  out->request_llr = static_cast<float>(config_.weight) * llr;
  if (llr >= 1.0f) out->reason = f.content.top_head;
}

// ---- CorpusStage ----------------------------------------------------------------------------

const std::vector<std::string_view>& CorpusStage::reason_names() const {
  static const std::vector<std::string_view> kNames = {"known_public_item"};
  return kNames;
}

void CorpusStage::OnRequest(RequestView& r, StageEvidence* out) {
  if (!r.features.corpus.found) return;
  out->request_llr = static_cast<float>(config_.member_llr);
  out->reason = 0;
}

// ---- FeatureCounts --------------------------------------------------------------------------

namespace {

// log(x) to within 1e-3 (absolute, in log2 units): the naive-Bayes sums need hundreds per
// request and do not need more.
float FastLog(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, 4);
  const float e = static_cast<float>(static_cast<int>((bits >> 23) & 255) - 127);
  bits = (bits & 0x007FFFFF) | 0x3F800000;
  float m;
  std::memcpy(&m, &bits, 4);
  // log2(m) for m in [1, 2): the least-squares cubic (max error 1.3e-3).
  const float log2m = ((0.15392465f * m - 1.02955839f) * m + 3.01085099f) * m - 2.13388663f;
  return (e + log2m) * 0.69314718f;
}

}  // namespace

void FeatureCounts::Add(const RequestFeatures& f, double max_total) {
  for (int i = 0; i < f.cohort_feature_count; ++i) counts_[f.cohort_features[i]] += 1.0f;
  total_ += f.cohort_feature_count;
  if (total_ > max_total) {
    for (float& c : counts_) c *= 0.5f;
    total_ *= 0.5;
  }
}

double FeatureCounts::LogLikelihood(const RequestFeatures& f, float alpha) const {
  const float denom = FastLog(static_cast<float>(total_) + alpha * kBuckets);
  double sum = 0;
  for (int i = 0; i < f.cohort_feature_count; ++i) sum += FastLog(counts_[f.cohort_features[i]] + alpha) - denom;
  return sum;
}

void FeatureCounts::AppendTo(std::string* out) const {
  PutU32(out, kBuckets);
  PutF64(out, total_);
  for (float c : counts_) PutU32(out, std::bit_cast<uint32_t>(c));
}

bool FeatureCounts::ReadFrom(std::string_view* in) {
  uint32_t buckets = 0;
  double total = 0;
  if (!GetU32(in, &buckets) || buckets != kBuckets || !GetF64(in, &total) || !std::isfinite(total) || total < 0 ||
      in->size() < 4ull * kBuckets) {
    return false;
  }
  std::vector<float> counts(kBuckets);
  for (float& c : counts) {
    uint32_t bits = 0;
    (void)GetU32(in, &bits);  // the size was checked above
    c = std::bit_cast<float>(bits);
    if (!std::isfinite(c) || c < 0) return false;
  }
  counts_ = std::move(counts);
  total_ = total;
  return true;
}

// ---- OrganicBaseline ------------------------------------------------------------------------

OrganicBaseline::OrganicBaseline(Config config, const std::array<float, kLlrBins>& model_organic,
                                 double model_campaign_high_share)
    : config_(config), model_campaign_high_(model_campaign_high_share) {
  campaign_high_share_.store(static_cast<float>(model_campaign_high_share), std::memory_order_relaxed);
  double sum = 0;
  for (float v : model_organic) sum += v;
  for (int b = 0; b < kLlrBins; ++b) {
    // A model without a stored distribution: a flat prior (the correction then only follows
    // what the deployment itself shows).
    model_[b] = sum > 0 ? model_organic[b] / sum : 1.0 / kLlrBins;
  }
  std::lock_guard<std::mutex> lock(mu_);
  Refresh();
}

void OrganicBaseline::Record(const RequestFeatures& f) {
  std::lock_guard<std::mutex> lock(mu_);
  if (f.cohort_feature_count > 0) {
    features_.Add(f, config_.feature_max_total);
    feature_requests_ = std::min(feature_requests_ + 1, 1e12);
  }
  if (f.content.combined == 0) return;  // no model, or an empty prompt
  counts_[LlrBin(f.content.combined)] += 1;
  total_ += 1;
  if (total_ > config_.half_life_requests) {
    for (double& c : counts_) c *= 0.5;
    total_ *= 0.5;
  }
  // Re-derive the published numbers every so often (they move slowly).
  if (++since_refresh_ >= 64) Refresh();
}

void OrganicBaseline::SaveTo(std::string* out) const {
  std::unique_lock<std::mutex> lock(mu_);
  const std::array<double, kLlrBins> counts = counts_;
  const std::array<double, 4> scalars = {total_, feature_requests_, campaign_n_, campaign_hi_};
  const FeatureCounts features = features_;  // encoded after the lock
  const FeatureCounts restricted = restricted_features_;
  const double restricted_requests = restricted_feature_requests_;
  lock.unlock();
  PutU32(out, kLlrBins);
  for (double c : counts) PutF64(out, c);
  for (double v : scalars) PutF64(out, v);
  features.AppendTo(out);
  // The restricted traffic's features, after the rest: a file written before them ends above.
  PutF64(out, restricted_requests);
  restricted.AppendTo(out);
}

bool OrganicBaseline::LoadFrom(std::string_view* in) {
  uint32_t bins = 0;
  if (!GetU32(in, &bins) || bins != kLlrBins) return false;
  std::array<double, kLlrBins> counts{};
  double total = 0, feature_requests = 0, campaign_n = 0, campaign_hi = 0;
  bool ok = true;
  for (double& c : counts) ok = ok && GetF64(in, &c) && std::isfinite(c) && c >= 0;
  for (double* v : {&total, &feature_requests, &campaign_n, &campaign_hi}) ok = ok && GetF64(in, v) && std::isfinite(*v) && *v >= 0;
  FeatureCounts features;
  if (!ok || campaign_hi > campaign_n || !features.ReadFrom(in)) return false;
  double restricted_requests = 0;
  FeatureCounts restricted;
  if (!in->empty() && (!GetF64(in, &restricted_requests) || !std::isfinite(restricted_requests) ||
                       restricted_requests < 0 || !restricted.ReadFrom(in))) {
    return false;
  }
  std::lock_guard<std::mutex> lock(mu_);
  restricted_feature_requests_ = restricted_requests;
  restricted_features_ = std::move(restricted);
  counts_ = counts;
  total_ = total;
  feature_requests_ = feature_requests;
  campaign_n_ = campaign_n;
  campaign_hi_ = campaign_hi;
  features_ = std::move(features);
  const double a = config_.prior_requests;
  campaign_high_share_.store(static_cast<float>((campaign_hi_ + a * model_campaign_high_) / (campaign_n_ + a)),
                             std::memory_order_relaxed);
  Refresh();
  return true;
}

void OrganicBaseline::Refresh() {
  since_refresh_ = 0;
  const double a = config_.prior_requests;
  double high = 0;
  for (int b = 0; b < kLlrBins; ++b) {
    const double local = (counts_[b] + a * model_[b]) / (total_ + a);
    const double model = std::max(model_[b], 1e-4);
    log_excess_[b].store(static_cast<float>(std::log(std::max(local, 1e-4) / model)),
                         std::memory_order_relaxed);
    if (LlrBinFloor(b) >= config_.high_llr - 1e-6) high += local;
  }
  high_share_.store(static_cast<float>(high), std::memory_order_relaxed);
}

std::optional<double> OrganicBaseline::FeatureLogLikelihood(const RequestFeatures& f) const {
  std::lock_guard<std::mutex> lock(mu_);
  if (feature_requests_ < config_.min_feature_requests) return std::nullopt;
  return features_.LogLikelihood(f, static_cast<float>(config_.feature_alpha));
}

void OrganicBaseline::RecordRestricted(const RequestFeatures& f) {
  std::lock_guard<std::mutex> lock(mu_);
  campaign_n_ += 1;
  campaign_hi_ += f.content.combined >= config_.high_llr ? 1 : 0;
  if (campaign_n_ > config_.half_life_requests) {
    campaign_n_ *= 0.5;
    campaign_hi_ *= 0.5;
  }
  const double a = config_.prior_requests;
  campaign_high_share_.store(static_cast<float>((campaign_hi_ + a * model_campaign_high_) / (campaign_n_ + a)),
                             std::memory_order_relaxed);
  if (f.cohort_feature_count == 0 || f.content.combined <= config_.restricted_min_llr) return;
  restricted_features_.Add(f, config_.feature_max_total);
  restricted_feature_requests_ = std::min(restricted_feature_requests_ + 1, 1e12);
}

std::optional<double> OrganicBaseline::RestrictedFeatureLogLikelihood(const RequestFeatures& f) const {
  std::lock_guard<std::mutex> lock(mu_);
  if (restricted_feature_requests_ < config_.min_feature_requests) return std::nullopt;
  return restricted_features_.LogLikelihood(f, static_cast<float>(config_.feature_alpha));
}

float OrganicBaseline::CampaignHighShare() const {
  return campaign_high_share_.load(std::memory_order_relaxed);
}

float OrganicBaseline::LogExcess(int bin) const { return log_excess_[bin].load(std::memory_order_relaxed); }
float OrganicBaseline::HighShare() const { return high_share_.load(std::memory_order_relaxed); }
double OrganicBaseline::requests() const {
  std::lock_guard<std::mutex> lock(mu_);
  return total_;
}

// ---- BaselineStage --------------------------------------------------------------------------

const std::vector<std::string_view>& BaselineStage::reason_names() const {
  static const std::vector<std::string_view> kNames = {"unusual_for_this_deployment"};
  return kNames;
}

void BaselineStage::OnRequest(RequestView& r, StageEvidence* out) {
  // A ratio the local organic traffic produces more often than the model's organic data did is
  // weaker evidence here (and stronger where it is rarer).
  const float excess = baseline_->LogExcess(LlrBin(r.features.content.combined));
  const float m = static_cast<float>(config_.max_correction);
  const float correction = std::clamp(-excess, -m, m);
  out->request_llr = correction;
  r.content_llr += correction;
  if (correction >= 0.5f && r.content_llr >= 1.0f) out->reason = 0;
}

}  // namespace moat::detect
