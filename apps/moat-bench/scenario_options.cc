#include "scenario_options.h"

namespace moat::bench {

void AddScenarioOptions(CLI::App* cmd, ScenarioOptions& o) {
  cmd->add_option("--data", o.data, "dataset folder holding MANIFEST.json")->capture_default_str();
  cmd->add_option("--scenario", o.scenario, "scenario name (scenarios/NAME.toml) or TOML path")
      ->capture_default_str();
  cmd->add_option("--scenarios-dir", o.scenarios_dir, "where scenario names resolve")
      ->capture_default_str();
  cmd->add_option("--seed", o.seed, "random seed; the same seed gives the same traffic")
      ->capture_default_str();
  cmd->add_option("--prompt-split", o.split,
                  "which rows prompts come from: eval (never seen by the shipped detection "
                  "model), train or all")
      ->capture_default_str();
  cmd->add_option("--leave-out", o.leave_out,
                  "dataset of the folder's MANIFEST.json that no prompt comes from (repeatable, or "
                  "comma-separated): e.g. the sets a detection model was trained on")
      ->delimiter(',');
}

}  // namespace moat::bench
