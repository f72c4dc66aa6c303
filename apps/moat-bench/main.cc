// moat-bench: the benchmarks every moat change is judged by. Thin wiring only.

#include <CLI/CLI.hpp>

#include "detect_commands.h"
#include "traffic_commands.h"

int main(int argc, char** argv) {
  CLI::App app{"moat-bench: benchmarks for the moat gateway"};
  app.require_subcommand(1);
  int exit_code = 0;
  moat::bench::AddTrafficCommands(app, exit_code);
  moat::bench::AddDetectCommands(app, exit_code);
  CLI11_PARSE(app, argc, argv);
  return exit_code;
}
