// ONNX Runtime as the peer of `kiln bench --vs ort`: runs benchmarks/peers/ort/run.mjs (onnxruntime-node
// from npm, installed by `make peers`) in bench mode, one process per round, and reads back its per-call
// latencies so that both engines' statistics are computed by the same code (latency_stats.h).
#pragma once

#include <string>
#include <vector>

namespace kiln::bench {

struct OrtPeer {
  std::string node;    // the node executable
  std::string script;  // run.mjs
};

// Where run.mjs is looked for, first match wins:
//   1. $KILN_ORT_PEER: the peer folder, or run.mjs itself;
//   2. the compile definition KILN_ORT_PEER_DIR, when the build sets it;
//   3. benchmarks/peers/ort/ in the folder of the kiln executable or any folder above it (a build folder
//      inside the source tree), then in the current folder or any folder above it.
// node is the first executable `node` on PATH. Fails with one sentence naming what is missing and
// saying to run `make peers`.
OrtPeer find_ort_peer();

struct OrtRoundOptions {
  int threads = 1;
  int warmup = 0;
  int iterations = 1;     // timed calls, when duration_s is 0
  double duration_s = 0;  // else: timed calls until this much time has passed
  std::string opt_level = "all";
};

struct OrtRound {
  double load_ms = 0;
  double first_ms = 0;
  double total_ms = 0;  // wall time of the timed calls
  double peak_rss_mb = 0;
  std::vector<double> latencies_ms;
  std::string version;
};

// One round in a fresh node process; its stdout/stderr go to files in `scratch_dir`. Fails with
// ORT's own one-line error when the script fails.
OrtRound run_ort_round(const OrtPeer& peer, const std::string& model, const std::string& input_dir,
                       const std::string& scratch_dir, const OrtRoundOptions& options);

}  // namespace kiln::bench
