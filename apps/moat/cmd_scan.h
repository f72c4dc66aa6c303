#pragma once
// `moat audit scan`: the offline audit. Runs the detection engine over historical request logs
// (audit export JSONL, generic JSONL, or the audit database) and writes report.json/report.html.

#include <CLI/CLI.hpp>

namespace moat::cli {

// Registers `scan` under the `audit` subcommand.
void AddScanCommand(CLI::App& audit_subcommand);

}  // namespace moat::cli
