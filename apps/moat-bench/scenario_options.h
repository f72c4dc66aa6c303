#pragma once
// ScenarioOptions: which traffic a benchmark generates (dataset folder, scenario, seed and the
// dataset rows its prompts come from), as `moat-bench traffic` and `moat-bench detect` take it.

#include <cstdint>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace moat::bench {

struct ScenarioOptions {
  std::string data = "../shared/datasets";
  std::string scenario = "smoke";
  std::string scenarios_dir = MOAT_SCENARIOS_DIR;
  uint64_t seed = 1;
  std::string split = "eval";
  std::vector<std::string> leave_out;  // dataset names whose rows no prompt comes from
};

// Registers --data, --scenario, --scenarios-dir, --seed, --prompt-split and --leave-out on `cmd`; they set `o`,
// which must outlive `cmd`.
void AddScenarioOptions(CLI::App* cmd, ScenarioOptions& o);

}  // namespace moat::bench
