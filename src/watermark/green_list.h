#pragma once
// The watermark schemes' configuration and green lists. KGW (Kirchenbauer et al. 2023): the
// green list of each step is seeded by a keyed hash of the previous h tokens; Unigram (Zhao et
// al. 2023): one fixed green list per key (h = 0). A token is green when
//   xxh3_64(u32le(token), seed = context_seed) < gamma * 2^64,
// where context_seed = key.seed for Unigram and xxh3_64(u32le(t_{i-h}..t_{i-1}), seed = key.seed)
// for KGW. The same functions serve the sampler stage, the upstream logit_bias map, detection and
// tracing, so all of them agree by construction.

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "moat/status.h"
#include "watermark/watermark_key.h"

namespace moat::watermark {

enum class Scheme { kKgw, kUnigram };

std::string_view SchemeName(Scheme s);
StatusOr<Scheme> ParseScheme(std::string_view name);  // "kgw" | "unigram"

struct WatermarkConfig {
  bool enabled = true;
  Scheme scheme = Scheme::kKgw;
  double gamma = 0.25;    // green fraction of the vocabulary, in (0, 1)
  double delta = 2.0;     // logit boost of green tokens
  int context_width = 1;  // h for KGW (1..8); Unigram always uses 0

  // The h actually used by the scheme.
  int h() const { return scheme == Scheme::kUnigram ? 0 : context_width; }
  // kInvalidArgument when a field is out of range.
  Status Validate() const;
};

// The green-list test of one (key, config) pair; cheap to copy.
class GreenList {
 public:
  GreenList(uint64_t key_seed, double gamma, int h);
  GreenList(const WatermarkKey& key, const WatermarkConfig& config)
      : GreenList(key.seed, config.gamma, config.h()) {}

  int h() const { return h_; }
  // The seed of the step whose h previous tokens are `previous` (size must be h()).
  uint64_t ContextSeed(std::span<const int32_t> previous) const;
  bool IsGreen(uint64_t context_seed, int32_t token) const;

 private:
  uint64_t key_seed_;
  uint64_t threshold_;
  int h_;
};

}  // namespace moat::watermark
