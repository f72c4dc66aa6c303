#pragma once
// Subcommands of issue 3: the built-in model (`moat model train|generate`) and the watermark
// forensics tools (`moat wm keys|detect|trace`).

#include <CLI/CLI.hpp>

namespace moat::cli {

// model train | generate
void AddModelCommands(CLI::App& app);
// wm keys | detect | trace
void AddWatermarkCommands(CLI::App& app);

}  // namespace moat::cli
