#pragma once
// Builds a DetectionModel (detect/detection_model.h) from a dataset folder in the shared
// MANIFEST layout: `moat detect train --data DIR --out FILE`.
//
// Roles map to what the model learns: organic and contrast rows are the organic class;
// distill, cot, benchmark and jailbreak rows are the positives of the instruction, reasoning,
// benchmark and jailbreak heads. Only rows of the `train` split (datasets/prompt_corpus.h)
// are learned from; a fixed eighth of them calibrates the heads, and quality is reported on
// the untouched `eval` split. The known-corpus index holds the train-split items of the
// distill, cot and benchmark sets.
//
// Deterministic: the same folder and options give the same bytes.

#include <string>
#include <vector>

#include "detect/content_trainer.h"
#include "detect/detection_model.h"
#include "moat/status.h"

namespace moat::detect {

struct ModelBuildOptions {
  std::string data_dir = "../shared/datasets";
  // Learn only from sets whose licence allows redistributing what is derived from them (the
  // shipped default model); false: every set in the folder.
  bool redistributable_only = true;
  ContentTrainOptions content;
  // Share of reasoning / benchmark positives that are also learned wrapped in a request for a
  // reasoning trace / an answer format (from the trainer's own phrase grammar), so that a
  // wrapper does not hide the item.
  double reasoning_wrap_share = 0.5;
  double benchmark_wrap_share = 0.3;
  // Evens out the source sets within each class: a set of n training examples weighs n^-this
  // per example (the class's total weight unchanged). 0: every example alike, so the largest
  // set defines its class; 1: every set alike.
  double source_balance = 0;
  bool build_corpus_index = true;
};

struct DatasetUse {
  std::string name, role, licence;
  bool used = false;     // false: left out by the licence policy
  size_t train = 0, calibration = 0, eval = 0;  // examples (organic: prompts and user turns)
  size_t index_items = 0;
};

struct ModelBuildReport {
  std::vector<DatasetUse> datasets;
  ContentEvaluation eval;       // on the eval split
  size_t index_items = 0;
  double seconds = 0;
  std::string ToText() const;   // a human-readable table
};

StatusOr<DetectionModel> BuildDetectionModel(const ModelBuildOptions& options, ModelBuildReport* report);

// How a model scores each dataset of a folder (every set, whatever its licence), on one split:
// what share of each set's rows the combined ratio puts above 0 and above 2, and the ROC of
// all campaign rows against all organic rows. For judging a model on sets it was not trained
// on (the default model never sees the non-redistributable ones).
struct DatasetScore {
  std::string name, role;
  size_t rows = 0;
  double mean_llr = 0;
  double above0 = 0, above2 = 0;  // shares of rows with combined llr > 0 and > 2
};
struct FolderEvaluation {
  std::vector<DatasetScore> datasets;
  RocSummary combined;
  std::string ToText() const;
};
StatusOr<FolderEvaluation> EvaluateModelOnFolder(const DetectionModel& model, const std::string& data_dir,
                                                 bool eval_split_only);

// True for licences that allow redistribution of derived artefacts: MIT, Apache-2.0, BSD,
// CC0, CC BY and CC BY-SA; false for non-commercial (NC), no-derivatives (ND) and unclear ones.
bool IsRedistributableLicence(std::string_view licence);

}  // namespace moat::detect
