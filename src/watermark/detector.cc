#include "watermark/detector.h"

#include <cmath>
#include <limits>

namespace moat::watermark {
namespace {

double LogPmf(int64_t n, int64_t j, double lp, double lq) {
  return std::lgamma(n + 1.0) - std::lgamma(j + 1.0) - std::lgamma(n - j + 1.0) + j * lp +
         (n - j) * lq;
}

}  // namespace

double LogBinomialUpperTail(int64_t n, int64_t k, double p) {
  if (k <= 0) return 0.0;
  if (k > n) return -std::numeric_limits<double>::infinity();
  if (p <= 0) return -std::numeric_limits<double>::infinity();
  if (p >= 1) return 0.0;
  const double lp = std::log(p), lq = std::log1p(-p);
  const double odds = p / (1 - p);
  constexpr double kEps = 1e-17;
  if (k > n * p) {
    // Sum pmf(j)/pmf(k) for j = k..n; the ratios shrink geometrically past the mean.
    double term = 1, sum = 1;
    for (int64_t j = k; j < n; ++j) {
      term *= static_cast<double>(n - j) / static_cast<double>(j + 1) * odds;
      sum += term;
      if (term < kEps * sum) break;
    }
    return LogPmf(n, k, lp, lq) + std::log(sum);
  }
  // P(X >= k) = 1 - P(X <= k - 1); sum pmf(j)/pmf(k-1) for j = k-1 down to 0.
  const int64_t m = k - 1;
  double term = 1, sum = 1;
  for (int64_t j = m; j > 0; --j) {
    term *= static_cast<double>(j) / static_cast<double>(n - j + 1) / odds;
    sum += term;
    if (term < kEps * sum) break;
  }
  const double log_lower = LogPmf(n, m, lp, lq) + std::log(sum);
  if (log_lower >= 0) return -std::numeric_limits<double>::infinity();  // rounding guard
  return std::log1p(-std::exp(log_lower));
}

namespace {

std::string BytesOf(std::span<const int32_t> tokens) {
  return std::string(reinterpret_cast<const char*>(tokens.data()), tokens.size() * sizeof(int32_t));
}

}  // namespace

void ContextFilter::AddSequence(std::span<const int32_t> tokens) {
  const size_t w = static_cast<size_t>(width_);
  for (size_t i = w; i < tokens.size(); ++i) contexts_.insert(BytesOf(tokens.subspan(i - w, w)));
}

bool ContextFilter::Contains(std::span<const int32_t> context) const {
  return contexts_.contains(BytesOf(context));
}

void ScoringUnits::AddSequence(std::span<const int32_t> tokens) { Add(tokens, nullptr); }

void ScoringUnits::AddSequence(std::span<const int32_t> tokens, const ContextFilter& filter) {
  Add(tokens, &filter);
}

void ScoringUnits::Add(std::span<const int32_t> tokens, const ContextFilter* filter) {
  total_tokens_ += static_cast<int64_t>(tokens.size());
  const size_t w = static_cast<size_t>(h_) + 1;
  for (size_t i = static_cast<size_t>(h_); i < tokens.size(); ++i) {
    std::span<const int32_t> u = tokens.subspan(i - h_, w);
    if (filter != nullptr) {
      const size_t fw = static_cast<size_t>(filter->width());
      if (i < fw || !filter->Contains(tokens.subspan(i - fw, fw))) {
        ++filtered_out_;
        continue;
      }
    }
    std::string key(reinterpret_cast<const char*>(u.data()), w * sizeof(int32_t));
    if (!seen_.insert(std::move(key)).second) continue;
    flat_.insert(flat_.end(), u.begin(), u.end());
  }
}

int64_t CountGreen(const ScoringUnits& units, const GreenList& green) {
  const int h = units.h();
  int64_t k = 0;
  const int64_t n = units.size();
  for (int64_t i = 0; i < n; ++i) {
    std::span<const int32_t> u = units.unit(i);
    k += green.IsGreen(green.ContextSeed(u.first(h)), u[h]) ? 1 : 0;
  }
  return k;
}

DetectionResult MakeResult(std::string key_id, int64_t tokens, int64_t n, int64_t k, double gamma) {
  DetectionResult r;
  r.key_id = std::move(key_id);
  r.tokens = tokens;
  r.scored = n;
  r.green = k;
  if (n == 0) return r;
  r.green_fraction = static_cast<double>(k) / n;
  r.z = (k - gamma * n) / std::sqrt(n * gamma * (1 - gamma));
  r.log_p = LogBinomialUpperTail(n, k, gamma);
  r.p_value = std::exp(r.log_p);
  return r;
}

DetectionResult Detect(const ScoringUnits& units, const WatermarkKey& key,
                       const WatermarkConfig& config) {
  const GreenList green(key, config);
  return MakeResult(key.key_id, units.total_tokens(), units.size(), CountGreen(units, green),
                    config.gamma);
}

}  // namespace moat::watermark
