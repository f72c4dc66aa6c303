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

// A set of contexts (runs of `width` tokens) that the texts a student could have learned our
// watermark from contain. With width = h these are exactly the watermark contexts (the tuples a
// KGW green list is seeded from); a wider filter (width > h) keeps only tokens whose longer
// history also occurs in those texts, i.e. where the student had most to copy from. It holds
// token tuples, not keyed seeds, so one filter serves every key. With width 0 the one empty
// context is present as soon as any token was added.
class ContextFilter {
 public:
  explicit ContextFilter(int width) : width_(width) {}
  // Adds every context that precedes a token of `tokens` (the windows at positions
  // i-width..i-1 for i >= width).
  void AddSequence(std::span<const int32_t> tokens);
  // True when `context` (size width()) was added.
  bool Contains(std::span<const int32_t> context) const;

  int width() const { return width_; }
  int64_t size() const { return static_cast<int64_t>(contexts_.size()); }

 private:
  int width_;
  std::unordered_set<std::string> contexts_;
};

// The distinct (h previous tokens, token) units of one or more token sequences, for a given h.
// Key-independent: prepare once, score against many keys.
//
// With a ContextFilter, only the tokens whose preceding filter.width() tokens are in the filter
// give units (the others are counted in filtered_out()); a unit is kept once if any of its
// occurrences passes. The filter looks at preceding tokens only, never at the scored token, so
// for a text that was not produced with a key (and a filter that does not depend on that key)
// each kept distinct unit is still green with probability gamma independently: the binomial
// test stays exact.
class ScoringUnits {
 public:
  explicit ScoringUnits(int h) : h_(h) {}
  // Adds the units of one text; its first h tokens have no full context and are not scored.
  void AddSequence(std::span<const int32_t> tokens);
  // Same, keeping only the tokens whose preceding filter.width() tokens are in `filter` (and at
  // least max(h, width) tokens into the text). filter.width() must be >= h().
  void AddSequence(std::span<const int32_t> tokens, const ContextFilter& filter);

  int h() const { return h_; }
  int64_t total_tokens() const { return total_tokens_; }
  // Tokens with a full context that were skipped because the filter lacks their context.
  int64_t filtered_out() const { return filtered_out_; }
  // Number of distinct units (the n of the test).
  int64_t size() const { return static_cast<int64_t>(flat_.size()) / (h_ + 1); }
  // Unit i as h context tokens followed by the scored token.
  std::span<const int32_t> unit(int64_t i) const {
    return {flat_.data() + i * (h_ + 1), static_cast<size_t>(h_ + 1)};
  }

 private:
  void Add(std::span<const int32_t> tokens, const ContextFilter* filter);

  int h_;
  int64_t total_tokens_ = 0;
  int64_t filtered_out_ = 0;
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
