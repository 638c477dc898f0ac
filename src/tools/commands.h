// Each subcommand contributes a setup function (adds its options to the CLI app) and a run function.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <vector>

namespace kiln::tools {

struct Command {
  std::function<CLI::App*(CLI::App&)> setup;
  std::function<int()> run;
};

Command inspect_command();
Command run_command();
Command conformance_command();
Command export_command();
Command optimize_command();
Command quantize_command();
Command bench_command();
Command validate_command();
Command pipeline_command();
Command serve_command();

inline std::vector<Command> all_commands() {
  return {inspect_command(), run_command(),      export_command(),   optimize_command(),   quantize_command(),
          bench_command(),   validate_command(), pipeline_command(), serve_command(),     conformance_command()};
}

}  // namespace kiln::tools
