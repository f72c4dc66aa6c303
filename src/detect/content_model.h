#pragma once
// ContentModel: a learned, per-request answer to "does this prompt look like what a
// distillation campaign asks for, rather than what this deployment's users ask?". No phrase
// lists: prompts are turned into hashed features (word unigrams and bigrams, character 4-grams
// of words, position and shape features), and one logistic-regression head per campaign
// content type scores them against organic prompts:
//   instruction  machine-generated instruction sets (self-instruct / Alpaca / Evol style)
//   reasoning    questions whose value is a reasoning trace (math word problems, CoT sets)
//   benchmark    exam and benchmark items (MMLU, GSM8K, HumanEval style)
//   jailbreak    jailbreak templates, harmful requests, prompt injections
// Each head's output is calibrated (Platt scaling on a calibration fold) into a log-likelihood
// ratio log p(x | head) / p(x | organic); the combined ratio is their equal-weight mixture.
//
// The model is trained by TrainContentModel (content_trainer.h) from a dataset folder and
// stored in the detection model file (docs/detection-model-format.md). Immutable after load;
// Score() is thread-safe, allocation-free and reads at most kContentScanChars of the text.

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "moat/status.h"

namespace moat::detect {

enum ContentHead : int { kHeadInstruction = 0, kHeadReasoning, kHeadBenchmark, kHeadJailbreak, kNumHeads };

// "instruction", "reasoning", "benchmark", "jailbreak".
std::string_view ContentHeadName(int head);

// The prompt text a model reads: the first kContentHeadChars and the last kContentTailChars
// bytes of longer texts (long documents pasted into a prompt say little more).
inline constexpr size_t kContentHeadChars = 1536;
inline constexpr size_t kContentTailChars = 512;
inline constexpr size_t kContentScanChars = kContentHeadChars + kContentTailChars;
// The most features one text yields (further tokens are ignored).
inline constexpr int kMaxContentFeatures = 1536;

// The hashed features of one text: 64-bit feature hashes, in extraction order (duplicates
// kept: a feature that occurs twice counts twice).
struct ContentFeatures {
  std::array<uint64_t, kMaxContentFeatures> hash;
  int count = 0;
};

// The hashes of a text's lower-cased word and number tokens (XXH3 of the token's bytes), in
// order, from the same pass: the known-corpus and work-queue sketches are made from them.
struct WordHashes {
  static constexpr int kMax = 512;
  std::array<uint64_t, kMax> hash;
  int count = 0;
};

// Extracts the features of `text` (and, when `words` is not null, its word hashes).
// Deterministic and identical in training and scoring: the feature set is part of the model
// file's version (kContentFeatureVersion).
void ExtractContentFeatures(std::string_view text, ContentFeatures* out, WordHashes* words = nullptr);
// The word hashes alone, as ExtractContentFeatures gives them, without the cost of the features.
void ExtractWordHashes(std::string_view text, WordHashes* out);
inline constexpr uint32_t kContentFeatureVersion = 1;

// Bins of the combined log-likelihood ratio over [-kLlrRange, kLlrRange] (the ends catch the
// rest), for the distributions the model stores and the online baseline learns.
inline constexpr int kLlrBins = 16;
inline constexpr float kLlrRange = 4.0f;
int LlrBin(float llr);
// The lowest ratio of a bin.
float LlrBinFloor(int bin);

// Per-request output of the model.
struct ContentScores {
  std::array<float, kNumHeads> llr{};  // calibrated log-likelihood ratio of each head vs organic
  float combined = 0;                  // log of the equal-weight mixture of the heads' ratios
  int top_head = 0;                    // the head with the largest ratio
};

// Calibration and held-out quality of one head, as stored in the model file.
struct HeadInfo {
  float scale = 1;    // int8 weight -> float
  float bias = 0;     // raw logit bias
  float calib_a = 1;  // llr = calib_a * raw + calib_b
  float calib_b = 0;
};

class ContentModel {
 public:
  // An empty model (every score 0): what the engine uses when no model is configured.
  ContentModel() = default;

  // Builds a model from trained float weights (buckets_log2 in [10, 24]; weights is
  // bucket-major, 2^buckets_log2 * kNumHeads values). Weights are quantised to int8 per head.
  static ContentModel FromWeights(uint32_t buckets_log2, const std::vector<float>& weights,
                                  const std::array<HeadInfo, kNumHeads>& heads);

  bool empty() const { return weights_.empty(); }
  uint32_t buckets_log2() const { return buckets_log2_; }
  const std::array<HeadInfo, kNumHeads>& heads() const { return heads_; }
  void set_calibration(int head, float a, float b) {
    heads_[head].calib_a = a;
    heads_[head].calib_b = b;
  }
  // Distributions of the combined ratio over kLlrBins on held-out organic and campaign
  // examples (each sums to 1; all zero in a model that has none).
  const std::array<float, kLlrBins>& organic_distribution() const { return organic_dist_; }
  const std::array<float, kLlrBins>& campaign_distribution() const { return campaign_dist_; }
  void set_distributions(const std::array<float, kLlrBins>& organic, const std::array<float, kLlrBins>& campaign) {
    organic_dist_ = organic;
    campaign_dist_ = campaign;
  }

  // Raw (uncalibrated) logits of each head for already extracted features.
  std::array<float, kNumHeads> RawLogits(const ContentFeatures& f) const;
  // Calibrated scores of `text` (an empty model or empty text scores 0 everywhere).
  ContentScores Score(std::string_view text) const;
  // Calibrated scores from raw logits.
  ContentScores FromRaw(const std::array<float, kNumHeads>& raw) const;

  // The model's section of the detection model file, and its parser (DataLoss on a corrupt or
  // truncated section, FailedPrecondition on an unknown feature version).
  void AppendTo(std::string* out) const;
  static StatusOr<ContentModel> ParseFrom(std::string_view* in);

 private:
  uint32_t buckets_log2_ = 0;
  std::vector<int8_t> weights_;  // [bucket * kNumHeads + head]
  std::array<HeadInfo, kNumHeads> heads_{};
  std::array<float, kLlrBins> organic_dist_{}, campaign_dist_{};
};

}  // namespace moat::detect
