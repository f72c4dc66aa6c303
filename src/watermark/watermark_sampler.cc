#include "watermark/watermark_sampler.h"

namespace moat::watermark {

void WatermarkSampler::Apply(model::CandidateArray* candidates) {
  if (static_cast<int>(recent_.size()) < green_.h()) return;
  const uint64_t seed = green_.ContextSeed(recent_);
  if (green_.h() == 0) {
    // Unigram: one fixed list, so hash each token once per generation instead of every step.
    for (auto& c : candidates->data) {
      if (c.id < 0) continue;
      if (static_cast<size_t>(c.id) >= unigram_green_.size()) {
        const size_t old = unigram_green_.size();
        unigram_green_.resize(static_cast<size_t>(c.id) + 1);
        for (size_t t = old; t < unigram_green_.size(); ++t) {
          unigram_green_[t] = green_.IsGreen(seed, static_cast<int32_t>(t));
        }
      }
      if (unigram_green_[static_cast<size_t>(c.id)]) c.logit += delta_;
    }
    ++watermarked_steps_;
    return;
  }
  for (auto& c : candidates->data) {
    if (green_.IsGreen(seed, c.id)) c.logit += delta_;
  }
  ++watermarked_steps_;
}

void WatermarkSampler::Accept(model::TokenId token) {
  const int h = green_.h();
  if (h == 0) return;
  if (static_cast<int>(recent_.size()) == h) recent_.erase(recent_.begin());
  recent_.push_back(token);
}

}  // namespace moat::watermark
