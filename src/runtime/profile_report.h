// What a profile (runtime/profiler.h) shows: tables per node and per op type, sorted by total time, with
// the kernel that ran and the shapes; a closing line on the time spent in reference kernels; and a trace
// in Chrome's trace-event format, as ONNX Runtime's profiler writes it, for chrome://tracing and Perfetto.
//
// Percentages are of the time spent inside nodes (the sum over every node call), so that they add up to
// 100; the time between nodes (binding inputs, releasing values, copying outputs out) is shown apart.
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <vector>

#include "runtime/profiler.h"

namespace kiln::runtime {

struct ProfileRow {
  std::string name;  // the node's (op#index when it has none); in the op-type table the op type
  std::string op_type;
  // The fast kernel that answered ("MatMul onednn"), "reference", or a mix; for ops that compute nothing
  // (non_compute_kind), what they are instead: "view (no copy)", "shape read", "control flow".
  std::string kernel;
  std::string shapes;  // per node: inputs -> outputs of its first shape set (and how many others)
  size_t nodes = 1;
  int64_t calls = 0;
  double total_ms = 0, mean_ms = 0, percent = 0;
  double reference_ms = 0;  // of total_ms, in calls a reference kernel answered
};

struct ProfileSummary {
  size_t runs = 0;
  double run_ms = 0;   // whole runs, summed
  double node_ms = 0;  // node calls, summed: what the percentages are of
  bool fast_kernels = false;
  std::vector<ProfileRow> nodes;     // by total time, descending
  std::vector<ProfileRow> op_types;  // by total time, descending
  // Nodes where a reference kernel answered (some call of theirs), their reference time, and the same per
  // op type (nodes, total_ms and percent of that time), by time, descending.
  size_t reference_nodes = 0;
  double reference_ms = 0;
  std::vector<ProfileRow> reference_op_types;
  // Nodes of ops that compute nothing (views, shape reads, If/Loop/Scan's own time), which no fast kernel
  // could do better: apart from the reference line, with their time.
  size_t non_compute_nodes = 0;
  double non_compute_ms = 0;
};

// What an op that computes nothing is, or nullptr for one that computes: Reshape, Flatten, Squeeze,
// Unsqueeze and Identity return their input's storage ("view (no copy)"); Shape and Size read its shape
// ("shape read"); If, Loop and Scan run subgraphs whose nodes have rows of their own ("control flow").
const char* non_compute_kind(const std::string& op_type);

ProfileSummary summarize(const Profiler& profiler);

// Both tables and the reference-kernel line; each table cut to its `top` rows (0: all), with a line saying
// what was left out.
std::string format_profile(const ProfileSummary& summary, size_t top);
// One line: "3 nodes, 41.2 % of the time, ran reference kernels: Conv (2 nodes, 38.0 %), ...", or that none did;
// then, when there are any, a line on the nodes that compute nothing (non_compute_kind) and their share.
std::string reference_callout(const ProfileSummary& summary);

// Profiles written into one trace: each run's events carry the label in their args ("batch 1, seq 128").
struct TraceSection {
  const Profiler* profiler = nullptr;
  std::string label;
};

// Fails with one sentence naming `option` and `path` when the trace could not be written there (a missing
// folder, a folder in its place, no permission): call it before the work, so that it fails at once.
void check_trace_path(const std::string& path, const std::string& option);
// Writes the sections' runs and node calls as a JSON array of complete ("ph": "X") events, ts and dur in µs
// since the profilers' origin, through a temporary file renamed when complete (never a partial file).
void write_trace(const std::string& path, std::span<const TraceSection> sections, const std::string& option);

}  // namespace kiln::runtime
