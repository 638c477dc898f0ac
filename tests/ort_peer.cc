#include "ort_peer.h"

#include <unistd.h>

#include <filesystem>
#include <stdexcept>
#include <vector>

#include "test_util.h"

namespace kiln::testing {

namespace {

namespace fs = std::filesystem;

std::string peers_dir() { return source_path("benchmarks/peers"); }
std::string venv_python() { return (fs::path(peers_dir()) / ".venv/bin/python").string(); }

}  // namespace

OrtRun run_ort(const std::string& model, const std::string& input_dir, const std::string& output_dir,
               const std::string& opt_level, int timeout_s, const std::string& engine) {
  if (::access(venv_python().c_str(), X_OK) != 0) throw std::runtime_error(venv_python() + " is missing");
  RunResult r = run_program({venv_python(), (fs::path(peers_dir()) / "peer.py").string(), "run", model, "--engine",
                             engine, "--input-dir", input_dir, "--output-dir", output_dir, "--opt-level", opt_level},
                            timeout_s);
  return {r.exit_code, r.err};
}

bool ort_available(std::string* why) {
  std::string reason;
  // make peers touches .installed after pip has installed every pinned package.
  if (!fs::exists(fs::path(peers_dir()) / ".venv/.installed"))
    reason = "the peers (ONNX Runtime, OpenVINO) are not installed in " + peers_dir() + "/.venv: run `make peers`";
  if (why) *why = reason;
  return reason.empty();
}

}  // namespace kiln::testing
