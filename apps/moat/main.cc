// moat: a security gateway for language-model APIs. See README.md.
#include <CLI/CLI.hpp>

#include "commands.h"

int main(int argc, char** argv) {
  CLI::App app{"moat: a security gateway that protects a language-model API from distillation"};
  app.require_subcommand(1);
  moat::cli::AddServeCommand(app);
  moat::cli::AddAccountCommands(app);
  moat::cli::AddCampaignCommands(app);
  moat::cli::AddIndicatorCommands(app);
  moat::cli::AddAuditCommands(app);
  moat::cli::AddDetectCommands(app);
  moat::cli::AddProvenanceCommands(app);
  moat::cli::AddModelCommands(app);
  moat::cli::AddWatermarkCommands(app);
  CLI11_PARSE(app, argc, argv);
  return 0;
}
