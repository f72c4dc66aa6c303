#pragma once
// NGramModel: an interpolated Kneser-Ney n-gram language model (orders 2..4) over the
// WordTokenizer vocabulary, with its trainer and its on-disk format.
//
// Model file format ("MOATLM01", all integers little-endian, see docs/model-format.md):
//   char[8]  magic "MOATLM01"
//   u32      format version (1)
//   u32      order N (2..4)
//   u32      number of learned pieces P (vocab size V = 258 + P)
//   P times: u16 length, bytes           -- tokenizer pieces, ids 258..V-1
//   f64[N]   absolute discounts D_1..D_N (informational)
//   f32[V]   order-1 probabilities p_1(w) (interpolated with the uniform 1/V)
//   for k = 2..N:
//     u64    number of contexts C_k
//     u64    number of entries E_k
//     C_k times: u32[k-1] context tokens (oldest first), u32 first entry, u32 entry count,
//                f32 backoff weight gamma(h)
//     E_k times: u32 token, f32 discounted probability max(c(hw) - D_k, 0) / c(h)
// With these tables p_k(w | h) = alpha_k(w | h) + gamma_k(h) * p_{k-1}(w | h'), where h' drops
// the oldest token of h; contexts that were never seen use p_{k-1} directly. Pruned n-grams have
// their mass moved into gamma, so every distribution sums to 1.

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "model/language_model.h"
#include "model/tokenizer.h"
#include "moat/status.h"

namespace moat::model {

struct NGramTrainOptions {
  int order = 4;                 // 2..4
  int32_t max_vocab = 12000;     // tokenizer size including the 258 fixed tokens
  int64_t min_piece_count = 2;   // pieces rarer than this fall back to bytes
  int64_t min_count_high = 2;    // highest-order n-grams (if order >= 3) seen fewer times are pruned
};

class NGramModel final : public LanguageModel {
 public:
  // Trains a model on `documents` (each a separate text; padded with <s> and ended with </s>).
  static StatusOr<std::unique_ptr<NGramModel>> Train(std::span<const std::string> documents,
                                                     const NGramTrainOptions& options);
  // Reads a model file; returns kNotFound / kDataLoss on a missing or malformed file.
  static StatusOr<std::unique_ptr<NGramModel>> Load(const std::string& path);
  // Writes the model file atomically (temp file + rename).
  Status Save(const std::string& path) const;

  const Tokenizer& tokenizer() const override { return tokenizer_; }
  void NextTokenLogits(std::span<const TokenId> context, std::vector<float>* logits) const override;

  // Natural-log probability of `token` after `context` (sparse; no dense vector).
  double LogProb(std::span<const TokenId> context, TokenId token) const;

  int order() const { return order_; }
  // Number of stored n-gram entries of order k (2..N).
  size_t num_entries(int k) const { return tables_[k].entries.size(); }

  struct Context {
    uint32_t first = 0;
    uint32_t count = 0;
    float gamma = 1;
  };
  struct Entry {
    uint32_t token = 0;
    float prob = 0;
  };

 private:
  struct Table {
    std::vector<uint32_t> context_tokens;  // (k-1) per context
    std::vector<Context> contexts;
    std::vector<Entry> entries;  // grouped by context, sorted by token within a context
    std::unordered_map<uint64_t, uint32_t> index;  // packed context -> index in contexts
  };

  explicit NGramModel(WordTokenizer tokenizer) : tokenizer_(std::move(tokenizer)) {}
  void BuildIndex();
  // Returns the context of order k (k-1 tokens taken from the end of `context`, padded with
  // <s>), or nullptr when it was never seen.
  const Context* FindContext(int k, std::span<const TokenId> context) const;

  WordTokenizer tokenizer_;
  int order_ = 0;
  std::vector<double> discounts_;
  std::vector<float> unigram_;
  std::vector<Table> tables_;  // index k = order; [0] and [1] unused
};

}  // namespace moat::model
