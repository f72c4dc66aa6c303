#pragma once
// Watermark detection: scoring token sequences against one key with an exact binomial test.
// Under H0 (text not produced with the key) every distinct (context, token) unit is green with
// probability gamma independently, so the green count of n distinct units is Binomial(n, gamma);
// repeated units are scored once because repetition would break independence.

#include <cstdint>
#include <span>
#include <string>
#include <unordered_set>
#include <vector>

#include "watermark/green_list.h"

namespace moat::watermark {

// Natural log of P(X >= k) for X ~ Binomial(n, p), exact to double precision in log space
// (never underflows: p-values like 1e-4000 come back as about -9210).
double LogBinomialUpperTail(int64_t n, int64_t k, double p);

// The distinct (h previous tokens, token) units of one or more token sequences, for a given h.
// Key-independent: prepare once, score against many keys.
class ScoringUnits {
 public:
  explicit ScoringUnits(int h) : h_(h) {}
  // Adds the units of one text; its first h tokens have no full context and are not scored.
  void AddSequence(std::span<const int32_t> tokens);

  int h() const { return h_; }
  int64_t total_tokens() const { return total_tokens_; }
  // Number of distinct units (the n of the test).
  int64_t size() const { return static_cast<int64_t>(flat_.size()) / (h_ + 1); }
  // Unit i as h context tokens followed by the scored token.
  std::span<const int32_t> unit(int64_t i) const {
    return {flat_.data() + i * (h_ + 1), static_cast<size_t>(h_ + 1)};
  }

 private:
  int h_;
  int64_t total_tokens_ = 0;
  std::vector<int32_t> flat_;
  std::unordered_set<std::string> seen_;
};

struct DetectionResult {
  std::string key_id;
  int64_t tokens = 0;  // tokens read
  int64_t scored = 0;  // distinct units scored (n)
  int64_t green = 0;   // green units (k)
  double green_fraction = 0;
  double z = 0;       // (k - gamma n) / sqrt(n gamma (1 - gamma))
  double log_p = 0;   // natural log of the exact one-sided p-value
  double p_value = 1; // exp(log_p) (0 when it underflows; use log_p)
};

// Counts the green units of `units` under `green`.
int64_t CountGreen(const ScoringUnits& units, const GreenList& green);

// Builds the statistics for n units with k green at green fraction gamma.
DetectionResult MakeResult(std::string key_id, int64_t tokens, int64_t n, int64_t k, double gamma);

// Scores `units` (prepared with config.h()) against `key`.
DetectionResult Detect(const ScoringUnits& units, const WatermarkKey& key,
                       const WatermarkConfig& config);

}  // namespace moat::watermark
