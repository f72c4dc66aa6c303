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
// detect train | eval | info | settings
void AddDetectCommands(CLI::App& app);
// provenance sign | verify
void AddProvenanceCommands(CLI::App& app);
// campaigns (from a running gateway's admin API)
void AddCampaignCommands(CLI::App& app);
// moat indicators export|import|list|salt (cmd_indicators.cc).
void AddIndicatorCommands(CLI::App& app);
// model train | generate: the built-in n-gram model
void AddModelCommands(CLI::App& app);
// wm keys | detect | trace | radioactive: watermark keys and forensics
void AddWatermarkCommands(CLI::App& app);

}  // namespace moat::cli
