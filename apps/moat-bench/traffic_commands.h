#pragma once
// `moat-bench traffic ...`: generate labelled traffic, replay it into a detector (in-process or
// a running gateway) and score it.

#include <CLI/CLI.hpp>

namespace moat::bench {

// Registers the `traffic` subcommand tree on `app`. The returned callbacks set `exit_code`.
void AddTrafficCommands(CLI::App& app, int& exit_code);

}  // namespace moat::bench
