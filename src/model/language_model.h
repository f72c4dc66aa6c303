#pragma once
// LanguageModel: the interface every built-in generation engine implements (today the
// Kneser-Ney n-gram model; a transformer can be added later without touching the sampler).

#include <span>
#include <vector>

#include "model/tokenizer.h"

namespace moat::model {

class LanguageModel {
 public:
  virtual ~LanguageModel() = default;

  virtual const Tokenizer& tokenizer() const = 0;
  int32_t vocab_size() const { return tokenizer().vocab_size(); }

  // Fills `logits` (resized to vocab_size()) with the unnormalised log-probabilities of the
  // token that follows `context` (the whole history, oldest first; the model uses as much of it
  // as it can). Impossible tokens get -infinity. Thread-safe: the model is immutable.
  virtual void NextTokenLogits(std::span<const TokenId> context, std::vector<float>* logits) const = 0;
};

}  // namespace moat::model
