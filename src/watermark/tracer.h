#pragma once
// Traitor tracing: scores a leaked corpus against every account key and reports the accounts
// whose evidence survives a family-wise error correction (Holm or Bonferroni) at level alpha.

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "watermark/detector.h"

namespace moat::watermark {

enum class Correction { kBonferroni, kHolm };

struct TraceOptions {
  double alpha = 0.01;
  Correction correction = Correction::kHolm;
  int threads = 0;     // 0: std::thread::hardware_concurrency()
  size_t top = 10;     // how many best-ranked keys to list besides the significant ones
};

struct TraceEntry {
  DetectionResult result;
  std::string account;
  uint32_t epoch = 0;
  int64_t rank = 0;          // 1 = strongest evidence
  double log_adjusted_p = 0; // natural log of the family-wise adjusted p-value (<= 0)
  bool significant = false;  // adjusted p-value <= alpha
};

struct TraceReport {
  int64_t keys = 0;
  int64_t tokens = 0;
  int64_t scored = 0;
  std::vector<TraceEntry> ranked;  // the significant keys and at least `top` keys, best first
  int64_t significant = 0;
  double seconds = 0;
};

// Ranks `keys` by the exact p-value of `units` (prepared with config.h()).
TraceReport Trace(const ScoringUnits& units, std::span<const WatermarkKey> keys,
                  const WatermarkConfig& config, const TraceOptions& options);

// Family-wise adjusted log p-values for `log_p` (natural logs, any order), same order.
std::vector<double> AdjustLogPValues(std::span<const double> log_p, Correction correction);

}  // namespace moat::watermark
