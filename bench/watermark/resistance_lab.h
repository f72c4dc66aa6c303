#pragma once
// watermark_bench --resistance: the distillation-resistance lab (see resistance_lab.cc).

#include <cstdint>
#include <string>

namespace moat::bench {

struct ResistanceLabOptions {
  std::string corpus;  // text for the text part ("" or missing: that part is skipped)
  uint64_t seed = 1;
  bool quick = false;  // smaller harvests (the ctest)
  bool check = false;  // exit 1 unless the effects go the expected way
};

// Runs the lab and prints its tables; returns the process exit code.
int RunResistanceLab(const ResistanceLabOptions& options);

}  // namespace moat::bench
