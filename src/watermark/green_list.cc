#include "watermark/green_list.h"

#include <xxhash.h>

#include <cmath>

namespace moat::watermark {

std::string_view SchemeName(Scheme s) { return s == Scheme::kUnigram ? "unigram" : "kgw"; }

StatusOr<Scheme> ParseScheme(std::string_view name) {
  if (name == "kgw") return Scheme::kKgw;
  if (name == "unigram") return Scheme::kUnigram;
  return InvalidArgumentError("unknown watermark scheme '" + std::string(name) +
                              "' (expected kgw or unigram)");
}

Status WatermarkConfig::Validate() const {
  if (!(gamma > 0 && gamma < 1)) return InvalidArgumentError("watermark gamma must be in (0, 1)");
  if (!(delta >= 0 && delta <= 100)) return InvalidArgumentError("watermark delta must be in [0, 100]");
  if (scheme == Scheme::kKgw && (context_width < 1 || context_width > 8)) {
    return InvalidArgumentError("KGW context width h must be in [1, 8]");
  }
  return Status::Ok();
}

GreenList::GreenList(uint64_t key_seed, double gamma, int h) : key_seed_(key_seed), h_(h) {
  // gamma * 2^64 without overflow; gamma in (0, 1).
  threshold_ = static_cast<uint64_t>(std::ldexp(gamma, 64) >= 18446744073709551615.0
                                         ? 18446744073709551615.0
                                         : std::ldexp(gamma, 64));
}

uint64_t GreenList::ContextSeed(std::span<const int32_t> previous) const {
  if (h_ == 0) return key_seed_;
  uint32_t buf[8];
  for (int i = 0; i < h_; ++i) buf[i] = static_cast<uint32_t>(previous[i]);
  return XXH3_64bits_withSeed(buf, sizeof(uint32_t) * static_cast<size_t>(h_), key_seed_);
}

bool GreenList::IsGreen(uint64_t context_seed, int32_t token) const {
  const uint32_t t = static_cast<uint32_t>(token);
  return XXH3_64bits_withSeed(&t, sizeof(t), context_seed) < threshold_;
}

}  // namespace moat::watermark
