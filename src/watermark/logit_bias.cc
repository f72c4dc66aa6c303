#include "watermark/logit_bias.h"

namespace moat::watermark {

StatusOr<std::vector<std::pair<int32_t, float>>> UnigramLogitBias(const WatermarkKey& key,
                                                                  const WatermarkConfig& config,
                                                                  int32_t vocab_size,
                                                                  size_t max_entries) {
  if (config.scheme != Scheme::kUnigram) {
    return InvalidArgumentError("upstream logit_bias watermarking needs the unigram scheme");
  }
  MOAT_RETURN_IF_ERROR(config.Validate());
  if (vocab_size <= 0) return InvalidArgumentError("vocab_size must be positive");
  const GreenList green(key, config);
  const uint64_t seed = green.ContextSeed({});
  const bool use_red = config.gamma > 0.5;
  const float bias = static_cast<float>(use_red ? -config.delta : config.delta);
  std::vector<std::pair<int32_t, float>> out;
  out.reserve(static_cast<size_t>(vocab_size * (use_red ? 1 - config.gamma : config.gamma) * 1.1));
  for (int32_t t = 0; t < vocab_size; ++t) {
    if (green.IsGreen(seed, t) != use_red) out.emplace_back(t, bias);
  }
  if (max_entries > 0 && out.size() > max_entries) {
    return FailedPreconditionError("unigram logit_bias needs " + std::to_string(out.size()) +
                                   " entries but the upstream accepts at most " +
                                   std::to_string(max_entries));
  }
  return out;
}

}  // namespace moat::watermark
