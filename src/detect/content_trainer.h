#pragma once
// Training and held-out evaluation of the ContentModel (content_model.h).
//
// Each head is a logistic regression over hashed features, trained one-vs-organic with
// class-balanced weights by AdaGrad SGD in a fixed, seeded order, so that the same examples
// and options always give the same model, bit for bit (single-threaded, no fast-math). The
// float weights are then quantised to int8 and each head is calibrated by Platt scaling on a
// separate calibration fold (balanced), which turns its output into a log-likelihood ratio.

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "detect/content_model.h"
#include "moat/status.h"

namespace moat::detect {

// One training or evaluation text. `head` is a ContentHead, or kOrganic for organic traffic
// (human-written prompts, and benign prompts that look risky).
struct LabeledText {
  static constexpr int kOrganic = -1;
  std::string text;
  int head = kOrganic;
  // How much the example counts in training, relative to the others of its class (the builder
  // evens out large and small source sets with it); calibration counts every example once.
  float weight = 1.0f;
};

struct ContentTrainOptions {
  uint32_t buckets_log2 = 17;   // 2^17 buckets x 4 heads x 1 byte = 512 KiB of weights
  int epochs = 4;
  double learning_rate = 0.4;   // AdaGrad base rate
  double l2 = 1e-5;             // per-update weight decay on touched weights
  uint64_t seed = 1;            // example order
};

// Trains a model on `train` and calibrates it on `calibration`. InvalidArgument when a head
// or the organic class has no example in either set.
StatusOr<ContentModel> TrainContentModel(const std::vector<LabeledText>& train,
                                         const std::vector<LabeledText>& calibration,
                                         const ContentTrainOptions& options);

// Held-out quality of one score against organic examples.
struct RocSummary {
  size_t positives = 0, negatives = 0;
  double auc = 0;
  // (false-positive rate target, true-positive rate reached at or below it), for
  // kRocTargets; the threshold is the score at that point.
  struct Point {
    double fpr = 0, tpr = 0, threshold = 0;
  };
  std::vector<Point> points;
};
inline constexpr std::array<double, 4> kRocTargets = {0.001, 0.01, 0.05, 0.10};

// Per-head quality (head's llr, its positives vs organic) and, in `combined`, the combined
// ratio for every campaign example vs organic.
struct ContentEvaluation {
  std::array<RocSummary, kNumHeads> heads;
  RocSummary combined;
};
ContentEvaluation EvaluateContentModel(const ContentModel& model,
                                       const std::vector<LabeledText>& examples);

// ROC summary of raw scores (exposed for tests).
RocSummary SummariseRoc(std::vector<float> positives, std::vector<float> negatives);

}  // namespace moat::detect
