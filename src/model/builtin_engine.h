#pragma once
// BuiltinEngine: the embedded default backend. It owns an immutable LanguageModel and turns a
// GenerationRequest into text with a fresh sampler chain per call:
//   logit_bias -> anti-distillation (when antidistill_kl > 0) -> watermark (when a key is
//   given) -> logprob capture -> temperature -> top-k ->
//   top-p -> dist(seed)      (temperature 0: ... -> logprob capture -> greedy)
// Stop sequences and max_tokens are handled here, not in the chain. Thread-safe: any number of
// Generate calls may run concurrently on one engine.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "model/language_model.h"
#include "moat/status.h"
#include "watermark/green_list.h"
#include "watermark/watermark_key.h"

namespace moat::model {

using watermark::WatermarkConfig;

struct GenerationRequest {
  std::string prompt;
  int max_tokens = 256;        // 0..1,000,000
  double temperature = 1.0;    // 0 = greedy; up to 10
  double top_p = 1.0;          // (0, 1]
  int top_k = 0;               // 0 = off
  std::optional<uint64_t> seed;  // absent: a random seed
  std::vector<std::string> stop;
  int top_logprobs = -1;  // -1: no logprobs; 0..20: logprob of the token plus that many top ones
  const watermark::WatermarkKey* key = nullptr;  // the account's key; nullptr: no watermark
  std::vector<std::pair<TokenId, float>> logit_bias;  // OpenAI logit_bias, already validated
  // Anti-distillation sampling (src/resistance): per-token KL budget in nats (0: off) and the
  // secret of its keyed direction.
  double antidistill_kl = 0;
  uint64_t antidistill_key = 0;
};

// One streamed piece. text may be empty (held back while it could start a stop sequence) and
// may carry held-back text of earlier tokens. A final flush piece (token = -1) carries held-back
// text when generation ends on max_tokens. logprob/top are filled only when top_logprobs >= 0.
struct GeneratedPiece {
  std::string text;
  int32_t token = -1;
  float logprob = 0;
  std::vector<std::pair<std::string, float>> top;
};

struct GenerationResult {
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  std::string finish_reason;  // "stop" | "length" | "cancelled" (on_piece returned false)
  std::string text;           // the completion without any stop sequence
  std::string watermark_key_id;  // the key used, "" when unwatermarked
};

class BuiltinEngine {
 public:
  // Loads a model file written by NGramModel::Save. kNotFound / kDataLoss on a bad file,
  // kInvalidArgument on a bad watermark config.
  static StatusOr<std::unique_ptr<BuiltinEngine>> Load(const std::string& model_path,
                                                       WatermarkConfig config);
  // Wraps an already-built model (tests, benchmarks, the distillation lab).
  static StatusOr<std::unique_ptr<BuiltinEngine>> FromModel(std::unique_ptr<LanguageModel> model,
                                                            WatermarkConfig config);

  // Generates a completion; calls on_piece for every sampled token (return false to cancel).
  // kInvalidArgument when a request field is out of range.
  StatusOr<GenerationResult> Generate(
      const GenerationRequest& request,
      const std::function<bool(const GeneratedPiece&)>& on_piece) const;

  const LanguageModel& model() const { return *model_; }
  const Tokenizer& tokenizer() const { return model_->tokenizer(); }
  const WatermarkConfig& watermark_config() const { return config_; }

 private:
  BuiltinEngine(std::unique_ptr<LanguageModel> model, WatermarkConfig config)
      : model_(std::move(model)), config_(config) {}

  std::unique_ptr<LanguageModel> model_;
  WatermarkConfig config_;
};

}  // namespace moat::model
