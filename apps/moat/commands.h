#pragma once
// The `moat` command-line tool's subcommands. Each Add*Commands registers its subcommands on
// the app; main.cc only wires them together.

#include <CLI/CLI.hpp>

namespace moat::cli {

// serve
void AddServeCommand(CLI::App& app);
// account, org, key
void AddAccountCommands(CLI::App& app);
// audit verify | export
void AddAuditCommands(CLI::App& app);
// detect train | info
void AddDetectCommands(CLI::App& app);
// provenance sign | verify
void AddProvenanceCommands(CLI::App& app);

}  // namespace moat::cli
