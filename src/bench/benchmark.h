// `kiln bench` as a library: for each (batch, seq) configuration, load a Session once, time its first
// call, then rounds of W warmup + N timed calls (or timed calls for S seconds); with peers (ONNX Runtime,
// OpenVINO), their rounds alternate with kiln's (kiln, ORT, OpenVINO, kiln, ORT, OpenVINO, ...) on the
// same model file, the same inputs (written once per configuration as .npy) and the same thread count.
//
// With a profile asked for, kiln's timed rounds are followed by that many profiled calls (not timed rounds:
// a profile's overhead never reaches the figures).
//
// Figures: latencies are per Session::run call (wall clock); throughput is calls / wall time of the
// timed phase (items/s = batch x that); a summary over rounds is the median of each per-round figure.
// Peak RSS is VmHWM of /proc/self/status, reset before each configuration's load where the kernel allows
// (/proc/self/clear_refs); for a peer it is its own process's VmHWM. MB are 2^20 bytes.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "bench/latency_stats.h"
#include "bench/peer_bench.h"
#include "passes/pass.h"
#include "runtime/profiler.h"
#include "runtime/session.h"

namespace kiln::bench {

struct BenchOptions {
  std::string model;
  std::vector<int64_t> batches = {1};
  std::vector<int64_t> seqs = {128};
  int threads = 1;
  int warmup = 3;
  int iterations = 20;    // timed calls per round, when duration_s is 0
  double duration_s = 0;  // else: timed calls until this much time has passed, per round
  int concurrency = 1;    // callers running Session::run at once on the one session
  int rounds = 1;
  std::string inputs_npz;  // user inputs instead of generated ones (one configuration, their shapes)
  std::string input_dir;
  passes::Level level = passes::Level::kAll;
  runtime::Precision precision = runtime::Precision::kModel;  // kiln's matrix products (--precision)
  std::vector<PeerEngine> peers;  // --vs (parse_peer_engines)
  uint64_t seed = 0;
  // --profile: after each configuration's rounds, this many more calls of kiln by one caller, profiled
  // (runtime/profiler.h); 0: none. Profiling adds overhead, so these calls are in no other figure.
  int profile_runs = 0;
};

struct RoundResult {
  std::vector<double> latencies_ms;
  LatencyStats stats;
  double wall_ms = 0;  // the timed phase
  double inferences_per_s = 0;
  // A peer loads in each round's process; kiln's load and first call are per configuration.
  double load_ms = 0, first_ms = 0, peak_rss_mb = 0;
};

struct EngineResult {
  std::string engine;     // "kiln", or a peer's PeerEngine::name
  std::string version;    // a peer's version; empty for kiln
  std::string precision;  // what the engine's matrix products computed in: f32, bf16, ...
  int64_t batch = 1;
  std::optional<int64_t> seq;  // none for models without a sequence dim
  int threads = 1;
  int concurrency = 1;
  double load_ms = 0, first_ms = 0, peak_rss_mb = 0, model_size_mb = 0;
  std::vector<RoundResult> rounds;

  // Medians across rounds (load and first call too, for a peer); peak RSS is the maximum.
  LatencyStats summary;
  double iterations = 0;  // timed calls per round (median)
  double inferences_per_s = 0, items_per_s = 0;
  void summarize();
};

struct ConfigResult {
  int64_t batch = 1;
  std::optional<int64_t> seq;
  EngineResult kiln;
  std::vector<EngineResult> peers;  // in BenchOptions::peers' order
  // With BenchOptions::profile_runs: kiln's profiled calls. The profilers of all configurations share one
  // time origin (the benchmark's start), so their traces can go into one file.
  std::shared_ptr<const runtime::Profiler> profile;
  // kiln / peer of the medians: > 1 means kiln takes longer (p50, p99) or does more (throughput).
  double p50_ratio(const EngineResult& peer) const { return kiln.summary.p50_ms / peer.summary.p50_ms; }
  double p99_ratio(const EngineResult& peer) const { return kiln.summary.p99_ms / peer.summary.p99_ms; }
  double throughput_ratio(const EngineResult& peer) const { return kiln.inferences_per_s / peer.inferences_per_s; }
};

struct BenchReport {
  BenchOptions options;
  double model_size_mb = 0;
  std::vector<std::string> notes;  // what was ignored or guessed (--seq on a model without one, vocab size)
  std::vector<ConfigResult> configs;
};

// Progress lines: `transient` ones (per call) are worth showing only where they can be redrawn in place.
using Progress = std::function<void(const std::string& text, bool transient)>;

// Validates the options (one clear sentence on error), then runs every configuration.
BenchReport run_benchmark(const BenchOptions& options, const Progress& progress = {});

// Peak resident set size of this process so far (VmHWM), in MB; 0 where /proc is unavailable.
double peak_rss_mb();
// Resets the peak to the current RSS; false where the kernel does not allow it.
bool reset_peak_rss();

}  // namespace kiln::bench
