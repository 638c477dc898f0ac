#include "tools/commands.h"

namespace kiln::tools {

Command run_command() {
  auto opts = std::make_shared<int>(0);
  return {[opts](CLI::App& app) { return app.add_subcommand("run", "(not yet)"); }, [opts] { return 0; }};
}

}  // namespace kiln::tools
