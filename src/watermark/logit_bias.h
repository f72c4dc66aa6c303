#pragma once
// Upstream-mode watermarking: the account's Unigram green list as an OpenAI-style `logit_bias`
// map, for upstreams that accept a full map (vLLM, llama.cpp server). Token ids are the
// UPSTREAM tokenizer's; detection must then tokenise with the same tokenizer.
//
// Size: the map holds about gamma * vocab_size entries (e.g. 32,000 for a 128k vocabulary at
// gamma = 0.25). OpenAI's hosted API caps logit_bias at a few hundred entries and bias values
// at [-100, 100], so upstream mode cannot work there; vLLM and llama.cpp accept large maps.
// When gamma > 0.5 the complement (red tokens biased by -delta) is smaller and equivalent
// after softmax normalisation; UnigramLogitBias picks the smaller form.

#include <cstdint>
#include <utility>
#include <vector>

#include "moat/status.h"
#include "watermark/green_list.h"

namespace moat::watermark {

// Returns (token id, bias) pairs for token ids in [0, vocab_size), ascending. Requires
// config.scheme == kUnigram (a context-seeded list cannot be expressed as one static map);
// kInvalidArgument otherwise. When max_entries > 0 and the map would exceed it, returns
// kFailedPrecondition instead of a truncated (weaker, detectable-by-nobody) map.
StatusOr<std::vector<std::pair<int32_t, float>>> UnigramLogitBias(const WatermarkKey& key,
                                                                  const WatermarkConfig& config,
                                                                  int32_t vocab_size,
                                                                  size_t max_entries = 0);

}  // namespace moat::watermark
