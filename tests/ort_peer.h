// The peers in tests: runs benchmarks/peers/peer.py (ONNX Runtime or OpenVINO from PyPI, in the venv
// `make peers` installs) on a model, with inputs and outputs as .npy folders, the way run_kiln runs kiln.
#pragma once

#include <string>

namespace kiln::testing {

struct OrtRun {
  int exit_code = -1;  // the script's exit status (2 on any error); 128 + signal number when killed
  std::string err;     // its stderr: one "ort: error: ..." (or "openvino: error: ...") line on failure
};

// `peer.py run MODEL --engine ENGINE --input-dir INPUT_DIR --output-dir OUTPUT_DIR --opt-level OPT_LEVEL`
// (no shell). opt_level is ORT's graph optimization level: disabled, basic, extended or all; engine is
// ort, openvino or openvino-f32. Throws std::runtime_error when the venv's python cannot be started at
// all; check ort_available() first for a useful message.
OrtRun run_ort(const std::string& model, const std::string& input_dir, const std::string& output_dir,
               const std::string& opt_level = "all", int timeout_s = 300, const std::string& engine = "ort");

// Whether the peers' venv is installed (by `make peers`); if not, says why (and how to fix it) in *why.
bool ort_available(std::string* why);

}  // namespace kiln::testing
