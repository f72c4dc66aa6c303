#pragma once
// `moat-bench detect ...`: the detection engine's cost on real traffic (prompts from the
// dataset folder, shaped by a scenario), measured through DetectionEngine::Observe alone.

#include <CLI/CLI.hpp>

namespace moat::bench {

// Registers the `detect` subcommand tree on `app`. The callbacks set `exit_code`.
void AddDetectCommands(CLI::App& app, int& exit_code);

}  // namespace moat::bench
