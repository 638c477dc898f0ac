// The peers of `kiln bench --vs`: ONNX Runtime and OpenVINO, run by benchmarks/peers/peer.py with the
// peers' venv (benchmarks/peers/.venv, installed from PyPI by `make peers`) in bench mode, one process
// per round, reading back each call's latency so that every engine's statistics are computed by the same
// code (latency_stats.h).
#pragma once

#include <string>
#include <vector>

namespace kiln::bench {

// One peer engine as peer.py names it (--engine) and as reports name it.
struct PeerEngine {
  std::string key;   // "ort", "openvino-f32" or "openvino"
  std::string name;  // "onnxruntime", "openvino-f32" or "openvino"
};

// `--vs` names, comma-separated: ort (onnxruntime), openvino (both OpenVINO runs: openvino-f32 with
// INFERENCE_PRECISION_HINT=f32, the fair fp32 peer, and openvino at its default precision, which is bf16
// on CPUs that have it), openvino-f32 or openvino-default for one of the two. The result is in that
// order, without repeats. Fails with one sentence naming an unknown entry.
std::vector<PeerEngine> parse_peer_engines(const std::string& list);

struct PeerScript {
  std::string python;  // the venv's python
  std::string script;  // peer.py
};

// Where peer.py is looked for, first match wins:
//   1. $KILN_PEERS: the peers folder (holding peer.py and .venv);
//   2. benchmarks/peers/ in the folder of the kiln executable or any folder above it (a build folder
//      inside the source tree), then in the current folder or any folder above it.
// Fails with one sentence naming what is missing and saying to run `make peers`.
PeerScript find_peer_script();

struct PeerRoundOptions {
  int threads = 1;
  int warmup = 0;
  int iterations = 1;             // timed calls, when duration_s is 0
  double duration_s = 0;          // else: timed calls until this much time has passed
  std::string opt_level = "all";  // ONNX Runtime's graph optimization level
};

struct PeerRound {
  double load_ms = 0;
  double first_ms = 0;
  double total_ms = 0;  // wall time of the timed calls
  double peak_rss_mb = 0;
  std::vector<double> latencies_ms;
  std::string version;
  std::string precision;  // the precision the engine computed in: f32, bf16, f16
};

// One round of `engine` in a fresh process; its stdout/stderr go to files in `scratch_dir`. Fails with
// the engine's own one-line error when the script fails.
PeerRound run_peer_round(const PeerScript& peer, const PeerEngine& engine, const std::string& model,
                         const std::string& input_dir, const std::string& scratch_dir, const PeerRoundOptions& options);

}  // namespace kiln::bench
