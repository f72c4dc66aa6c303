#include "detect/detection_model.h"

#include "common/file_contents.h"
#include "detect/binary_fields.h"

#include <xxhash.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <sstream>

namespace moat::detect {
namespace {

constexpr std::string_view kMagic("MOATDM\x01\n", 8);
constexpr uint32_t kFormatVersion = 1;

}  // namespace

std::string DetectionModel::Serialize() const {
  std::string out(kMagic);
  PutU32(&out, kFormatVersion);
  PutU32(&out, static_cast<uint32_t>(metadata_json.size()));
  out += metadata_json;
  content.AppendTo(&out);
  corpus.AppendTo(&out);
  PutU64(&out, static_cast<uint64_t>(XXH64(out.data(), out.size(), 0)));
  return out;
}

StatusOr<DetectionModel> DetectionModel::Parse(std::string_view bytes) {
  if (bytes.size() < kMagic.size() || bytes.substr(0, kMagic.size()) != kMagic) {
    return InvalidArgumentError("not a moat detection model (bad magic)");
  }
  if (bytes.size() < kMagic.size() + 16) return DataLossError("detection model truncated");
  const std::string_view body = bytes.substr(0, bytes.size() - 8);
  std::string_view trailer = bytes.substr(bytes.size() - 8);
  uint64_t checksum = 0;
  (void)GetU64(&trailer, &checksum);  // 8 bytes are there
  if (XXH64(body.data(), body.size(), 0) != checksum) {
    return DataLossError("detection model checksum mismatch (corrupt or truncated file)");
  }
  std::string_view in = body.substr(kMagic.size());
  uint32_t version = 0, meta_len = 0;
  GetU32(&in, &version);
  if (version != kFormatVersion) {
    return FailedPreconditionError("detection model format " + std::to_string(version) +
                                   " is not supported by this build (expects " +
                                   std::to_string(kFormatVersion) + ")");
  }
  if (!GetU32(&in, &meta_len) || in.size() < meta_len) return DataLossError("metadata truncated");
  DetectionModel m;
  m.metadata_json.assign(in.data(), meta_len);
  in.remove_prefix(meta_len);
  MOAT_ASSIGN_OR_RETURN(m.content, ContentModel::ParseFrom(&in));
  MOAT_ASSIGN_OR_RETURN(m.corpus, CorpusIndex::ParseFrom(&in));
  if (!in.empty()) return DataLossError("trailing bytes after the corpus index");
  return m;
}

StatusOr<DetectionModel> DetectionModel::Load(const std::filesystem::path& path) {
  MOAT_ASSIGN_OR_RETURN(std::string bytes, ReadFileContents(path.string(), "detection model"));
  auto m = Parse(bytes);
  if (!m.ok()) return Status(m.status().code(), path.string() + ": " + m.status().message());
  return m;
}

std::shared_ptr<const DetectionModel> DefaultDetectionModel() {
  static std::once_flag once;
  static std::shared_ptr<const DetectionModel> model;
  std::call_once(once, [] {
    std::filesystem::path path;
    if (const char* env = std::getenv("MOAT_DETECTION_MODEL"); env != nullptr && *env != '\0') {
      path = env;
    } else {
#ifdef MOAT_DEFAULT_DETECTION_MODEL
      path = MOAT_DEFAULT_DETECTION_MODEL;
#endif
    }
    if (path.empty()) return;
    auto m = DetectionModel::Load(path);
    if (m.ok()) {
      model = std::make_shared<const DetectionModel>(std::move(*m));
    } else {
      std::fprintf(stderr, "moat: default detection model unavailable (%s); content evidence off\n",
                   m.status().ToString().c_str());
    }
  });
  return model;
}

}  // namespace moat::detect
