#include "model/builtin_engine.h"

#include <algorithm>

#include "common/random.h"
#include "common/utf8.h"
#include "model/ngram_model.h"
#include "model/sampler.h"
#include "resistance/antidistill_sampler.h"
#include "watermark/watermark_sampler.h"

namespace moat::model {
namespace {

Status ValidateRequest(const GenerationRequest& r, int32_t vocab) {
  if (r.max_tokens < 0 || r.max_tokens > 1000000) return InvalidArgumentError("max_tokens out of range");
  if (!(r.temperature >= 0 && r.temperature <= 10)) return InvalidArgumentError("temperature out of range");
  if (!(r.top_p > 0 && r.top_p <= 1)) return InvalidArgumentError("top_p must be in (0, 1]");
  if (r.top_k < 0) return InvalidArgumentError("top_k must be >= 0");
  if (r.top_logprobs < -1 || r.top_logprobs > 20) return InvalidArgumentError("top_logprobs must be in [0, 20]");
  if (!(r.antidistill_kl >= 0 && r.antidistill_kl <= 5)) return InvalidArgumentError("antidistill_kl must be in [0, 5]");
  for (const auto& s : r.stop) {
    if (s.empty()) return InvalidArgumentError("empty stop sequence");
  }
  for (const auto& [t, b] : r.logit_bias) {
    if (t < 0 || t >= vocab) return InvalidArgumentError("logit_bias token id out of range");
  }
  return Status::Ok();
}

// Length of the longest suffix of `text` (starting at or after `from`) that is a proper prefix
// of some stop sequence: that much text must be held back.
size_t HoldBack(const std::string& text, size_t from, const std::vector<std::string>& stops) {
  size_t best = 0;
  for (const auto& s : stops) {
    const size_t max_len = std::min(s.size() - 1, text.size() - from);
    for (size_t len = max_len; len > best; --len) {
      if (text.compare(text.size() - len, len, s, 0, len) == 0) {
        best = len;
        break;
      }
    }
  }
  return best;
}

}  // namespace

StatusOr<std::unique_ptr<BuiltinEngine>> BuiltinEngine::Load(const std::string& model_path,
                                                             WatermarkConfig config) {
  MOAT_ASSIGN_OR_RETURN(std::unique_ptr<NGramModel> m, NGramModel::Load(model_path));
  return FromModel(std::move(m), config);
}

StatusOr<std::unique_ptr<BuiltinEngine>> BuiltinEngine::FromModel(
    std::unique_ptr<LanguageModel> model, WatermarkConfig config) {
  if (model == nullptr) return InvalidArgumentError("null model");
  if (config.enabled) MOAT_RETURN_IF_ERROR(config.Validate());
  return std::unique_ptr<BuiltinEngine>(new BuiltinEngine(std::move(model), config));
}

StatusOr<GenerationResult> BuiltinEngine::Generate(
    const GenerationRequest& req, const std::function<bool(const GeneratedPiece&)>& on_piece) const {
  const Tokenizer& tok = model_->tokenizer();
  MOAT_RETURN_IF_ERROR(ValidateRequest(req, tok.vocab_size()));

  SamplerChain chain;
  if (!req.logit_bias.empty()) chain.Add(std::make_unique<LogitBiasSampler>(req.logit_bias));
  GenerationResult result;
  if (req.antidistill_kl > 0) {
    chain.Add(std::make_unique<resistance::AntidistillSampler>(
        resistance::KeyedAntidistill(req.antidistill_kl, req.antidistill_key), model_.get()));
  }
  if (req.key != nullptr && config_.enabled) {
    chain.Add(std::make_unique<watermark::WatermarkSampler>(*req.key, config_));
    result.watermark_key_id = req.key->key_id;
  }
  LogprobCapture* capture = nullptr;
  if (req.top_logprobs >= 0) {
    auto c = std::make_unique<LogprobCapture>();
    capture = c.get();
    chain.Add(std::move(c));
  }
  if (req.temperature <= 0) {
    chain.Add(std::make_unique<GreedySampler>());
  } else {
    chain.Add(std::make_unique<TemperatureSampler>(req.temperature));
    chain.Add(std::make_unique<TopKSampler>(req.top_k));
    chain.Add(std::make_unique<TopPSampler>(req.top_p));
    const uint64_t seed = req.seed.has_value() ? *req.seed : SystemRandom::Get()->Next();
    chain.Add(std::make_unique<DistSampler>(seed));
  }

  std::vector<TokenId> context{tok.bos()};
  const std::vector<TokenId> prompt = tok.Encode(req.prompt);
  context.insert(context.end(), prompt.begin(), prompt.end());
  result.prompt_tokens = static_cast<int64_t>(prompt.size());
  for (TokenId t : context) chain.Accept(t);

  std::vector<float> logits;
  CandidateArray cands;
  std::string& text = result.text;
  size_t emitted = 0;
  result.finish_reason = "length";
  for (int i = 0; i < req.max_tokens; ++i) {
    model_->NextTokenLogits(context, &logits);
    cands.Assign(logits);
    chain.Apply(&cands);
    if (cands.selected < 0) return InternalError("sampler chain selected no token");
    const TokenId t = cands.selected_token();
    if (t == tok.eos()) {
      result.finish_reason = "stop";
      break;
    }
    chain.Accept(t);
    context.push_back(t);
    ++result.completion_tokens;
    const size_t old_size = text.size();
    text.append(tok.Piece(t));

    GeneratedPiece piece;
    piece.token = t;
    if (capture != nullptr) {
      piece.logprob = capture->LogprobOf(t);
      for (const auto& [id, lp] : capture->Top(req.top_logprobs)) {
        piece.top.emplace_back(std::string(tok.Piece(id)), lp);
      }
    }
    // A stop sequence can only newly appear ending inside the piece just appended.
    size_t stop_at = std::string::npos;
    for (const auto& s : req.stop) {
      const size_t from = old_size >= s.size() - 1 ? old_size - (s.size() - 1) : 0;
      stop_at = std::min(stop_at, text.find(s, std::max(from, emitted)));
    }
    if (stop_at != std::string::npos) {
      text.resize(stop_at);
      piece.text = text.substr(emitted);
      emitted = text.size();
      result.finish_reason = "stop";
      on_piece(piece);
      break;
    }
    // Held back: what may be the start of a stop sequence, and a character the token cut short
    // (a byte token), so that no piece splits a UTF-8 sequence.
    const size_t keep = std::max(HoldBack(text, emitted, req.stop),
                                 std::min(text.size() - emitted, IncompleteUtf8Tail(text)));
    piece.text = text.substr(emitted, text.size() - keep - emitted);
    emitted = text.size() - keep;
    if (!on_piece(piece)) {
      text.resize(emitted);
      result.finish_reason = "cancelled";
      return result;
    }
  }
  if (emitted < text.size()) {
    GeneratedPiece flush;
    flush.text = text.substr(emitted);
    on_piece(flush);
  }
  return result;
}

}  // namespace moat::model
