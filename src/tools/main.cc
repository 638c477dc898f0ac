// The kiln program: one subcommand per file (cmd_*.cc), each a thin layer over the library.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <exception>

#include "common/error.h"
#include "runtime/threads.h"
#include "tools/commands.h"

int main(int argc, char** argv) {
  // libgomp read its environment when it was loaded, before main(): the wait policy kiln wants (see
  // runtime/threads.h) takes a restart with it set. If the restart fails, kiln runs on libgomp's default.
  if (kiln::runtime::wants_default_spin_count()) {
    ::setenv("GOMP_SPINCOUNT", kiln::runtime::kDefaultSpinCount, 1);
    ::execv("/proc/self/exe", argv);
    ::unsetenv("GOMP_SPINCOUNT");
  }
  CLI::App app{"kiln: turn a trained model into a fast inference engine, and prove it with numbers"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "kiln 0.1.0");
  std::vector<kiln::tools::Command> commands = kiln::tools::all_commands();
  std::vector<CLI::App*> subs;
  for (auto& c : commands) subs.push_back(c.setup(app));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  try {
    for (size_t i = 0; i < commands.size(); ++i)
      if (subs[i]->parsed()) return commands[i].run();
  } catch (const kiln::Error& e) {
    std::fprintf(stderr, "kiln: error: %s\n", e.what());
    return 2;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "kiln: error: out of memory\n");
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kiln: internal error: %s\n", e.what());
    return 1;
  }
  return 0;
}
