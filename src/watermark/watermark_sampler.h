#pragma once
// WatermarkSampler: the sampler-chain stage that embeds an account's watermark by adding delta
// to the logits of the green tokens of each step. It learns the context through Accept (prompt
// tokens first, then every sampled token); steps with fewer than h known previous tokens are
// left untouched, exactly as the detector skips them.

#include <cstdint>
#include <vector>

#include "model/sampler.h"
#include "watermark/green_list.h"

namespace moat::watermark {

class WatermarkSampler final : public model::Sampler {
 public:
  WatermarkSampler(const WatermarkKey& key, const WatermarkConfig& config)
      : green_(key, config), delta_(static_cast<float>(config.delta)) {}

  std::string_view name() const override { return "watermark"; }
  void Apply(model::CandidateArray* candidates) override;
  void Accept(model::TokenId token) override;

  // Steps whose logits were biased so far.
  int64_t watermarked_steps() const { return watermarked_steps_; }

 private:
  GreenList green_;
  float delta_;
  std::vector<int32_t> recent_;  // the last h accepted tokens, oldest first
  std::vector<bool> unigram_green_;  // h == 0: the fixed green list, computed on first use
  int64_t watermarked_steps_ = 0;
};

}  // namespace moat::watermark
