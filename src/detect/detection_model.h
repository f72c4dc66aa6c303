#pragma once
// DetectionModel: everything the detection engine learns offline, in one file: the content
// model (content_model.h), the known-corpus index (corpus_index.h) and a JSON metadata block
// describing how it was trained (datasets, licences, options, held-out quality). The format is
// documented in docs/detection-model-format.md.
//
// moat ships a default model built from the redistributable sets of ../shared/datasets
// (models/detection-default.bin, reproduced bit for bit by `moat detect train`); a deployment
// may train its own from any folder in the same layout.

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "detect/content_model.h"
#include "detect/corpus_index.h"
#include "moat/status.h"

namespace moat::detect {

struct DetectionModel {
  ContentModel content;
  CorpusIndex corpus;
  std::string metadata_json;  // how the model was built; "{}" when unknown

  // The whole file.
  std::string Serialize() const;
  // Parses a whole file: DataLoss when it is truncated, corrupt or fails its checksum,
  // InvalidArgument when it is not a detection model at all.
  static StatusOr<DetectionModel> Parse(std::string_view bytes);
  // Reads and parses a file (NotFound when it does not exist).
  static StatusOr<DetectionModel> Load(const std::filesystem::path& path);
};

// The model the engine uses when nothing else is configured: the file named by the
// MOAT_DETECTION_MODEL environment variable, else models/detection-default.bin under the
// source tree this binary was built from (MOAT_DEFAULT_DETECTION_MODEL), loaded once.
// Returns null (and the engine runs on its other evidence only) when neither can be read.
std::shared_ptr<const DetectionModel> DefaultDetectionModel();

}  // namespace moat::detect
