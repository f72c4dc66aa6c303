// Fuzzes the detection engine's state file reader (DetectionEngine::LoadState, engine_state.cc):
// the input follows a valid header of this build (magic, version, subject layout) and is
// followed by a valid checksum, so that the section parsers (baseline, cohorts, work-queue
// items, subjects) see it; the raw input is also loaded as a whole file (magic and checksum
// checks). A load must fail cleanly or leave an engine that still judges a request.
#include <unistd.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "common/file_contents.h"
#include "detect/binary_fields.h"
#include "detect/engine.h"
#include "detect/sketches.h"

namespace {

using moat::detect::DetectionConfig;
using moat::detect::DetectionEngine;

DetectionConfig SmallConfig() {
  DetectionConfig c;
  c.use_default_model = false;
  c.max_subjects = 1024;
  c.max_evicted_subjects = 1024;
  return c;
}

std::string Path(const char* what) {
  return "/tmp/moat_detection_state_fuzzer_" + std::to_string(::getpid()) + "_" + what;
}

// magic + version + subject layout of this build: the first 20 bytes of any file it saves.
const std::string& Header() {
  static const std::string header = [] {
    DetectionEngine empty(SmallConfig());
    const std::string path = Path("header");
    (void)empty.SaveState(path, 0);
    auto bytes = moat::ReadFileContents(path);
    ::unlink(path.c_str());
    return bytes.ok() ? bytes->substr(0, 20) : std::string();
  }();
  return header;
}

void Load(const std::string& contents) {
  const std::string path = Path("input");
  if (!moat::ReplaceFileContents(path, contents).ok()) return;
  DetectionEngine engine(SmallConfig());
  auto loaded = engine.LoadState(path);
  ::unlink(path.c_str());
  if (!loaded.ok()) return;
  moat::detect::RequestEvent e;
  e.time_ns = 1'717'372'800LL * 1'000'000'000LL;
  e.account_id = "acct_fuzz";
  e.tier = "unverified";
  e.endpoint = "/v1/chat/completions";
  e.body_json = R"({"model":"m","messages":[{"role":"user","content":"hello there"}]})";
  (void)engine.Observe(e);
  (void)engine.Cohorts();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  Load(std::string(input));
  std::string framed = Header();
  framed.append(input);
  moat::detect::PutU64(&framed, moat::detect::Hash64(framed));
  Load(framed);
  return 0;
}
