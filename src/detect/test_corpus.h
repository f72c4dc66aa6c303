#pragma once
// A synthetic, labelled corpus for the detection tests (no dataset folder needed): organic
// questions people ask, and the four kinds of content a campaign harvests, generated from small
// grammars with a seeded generator, plus a detection model trained on it once per process.

#include <memory>
#include <string>
#include <vector>

#include "detect/content_trainer.h"
#include "detect/detection_model.h"

namespace moat::detect::testing {

// `n` texts of one class (LabeledText::kOrganic or a ContentHead), deterministic in `seed`.
std::vector<std::string> SyntheticTexts(int head, int n, uint64_t seed);

// Labelled examples of every class, `per_class` each.
std::vector<LabeledText> SyntheticExamples(int per_class, uint64_t seed);

// A model trained on SyntheticExamples (content model and a corpus index of the campaign
// classes' texts from seed 1), built once and shared.
std::shared_ptr<const DetectionModel> SyntheticModel();

}  // namespace moat::detect::testing
