#include "tools/commands.h"

namespace kiln::tools {

Command conformance_command() {
  auto opts = std::make_shared<int>(0);
  return {[opts](CLI::App& app) { return app.add_subcommand("conformance", "(not yet)"); }, [opts] { return 0; }};
}

}  // namespace kiln::tools
