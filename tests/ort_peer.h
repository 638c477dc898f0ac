// ONNX Runtime as a peer in tests: runs benchmarks/peers/ort/run.mjs (onnxruntime-node from npm, installed
// by `make peers`) on a model, with inputs and outputs as .npy folders, the way run_kiln runs kiln.
#pragma once

#include <string>

namespace kiln::testing {

struct OrtRun {
  int exit_code = -1;  // the script's exit status (2 on any error); 128 + signal number when killed
  std::string err;     // its stderr: one "ort: error: ..." line on failure
};

// `node run.mjs run MODEL --input-dir INPUT_DIR --output-dir OUTPUT_DIR --opt-level OPT_LEVEL` (no shell).
// opt_level is ORT's graph optimization level: disabled, basic, extended or all. Throws std::runtime_error
// when node cannot be started at all; check ort_available() first for a useful message.
OrtRun run_ort(const std::string& model, const std::string& input_dir, const std::string& output_dir,
               const std::string& opt_level = "all", int timeout_s = 300);

// Whether node is on PATH and onnxruntime-node is installed next to run.mjs; if not, says why (and how
// to fix it) in *why.
bool ort_available(std::string* why);

}  // namespace kiln::testing
