#include "ort_peer.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <vector>

#include "test_util.h"


namespace kiln::testing {

namespace {

namespace fs = std::filesystem;

std::string peer_dir() { return source_path("benchmarks/peers/ort"); }

// The first executable `node` on PATH, or "" (resolved here rather than by posix_spawnp so that
// ort_available can say precisely what is missing).
std::string find_node() {
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/local/bin:/usr/bin:/bin";
  size_t start = 0;
  for (;;) {
    size_t end = dirs.find(':', start);
    // An empty PATH entry means the current folder.
    fs::path dir = end == start
                       ? fs::path(".")
                       : fs::path(dirs.substr(start, end == std::string::npos ? std::string::npos : end - start));
    std::string candidate = (dir / "node").string();
    if (::access(candidate.c_str(), X_OK) == 0 && !fs::is_directory(candidate)) return candidate;
    if (end == std::string::npos) return "";
    start = end + 1;
  }
}

OrtRun run_process(std::vector<std::string> argv, int timeout_s) {
  RunResult r = run_program(std::move(argv), timeout_s);
  return {r.exit_code, r.err};
}

}  // namespace

OrtRun run_ort(const std::string& model, const std::string& input_dir, const std::string& output_dir,
               const std::string& opt_level, int timeout_s) {
  std::string node = find_node();
  if (node.empty()) throw std::runtime_error("node is not on PATH");
  return run_process({node, (fs::path(peer_dir()) / "run.mjs").string(), "run", model, "--input-dir", input_dir,
                      "--output-dir", output_dir, "--opt-level", opt_level},
                     timeout_s);
}

bool ort_available(std::string* why) {
  std::string reason;
  if (find_node().empty())
    reason = "node (Node.js 20 or later) is not on PATH: install it, then run `make peers`";
  else if (!fs::exists(fs::path(peer_dir()) / "node_modules/onnxruntime-node/package.json"))
    reason = "onnxruntime-node is not installed in " + peer_dir() + "/node_modules: run `make peers`";
  if (why) *why = reason;
  return reason.empty();
}

}  // namespace kiln::testing
