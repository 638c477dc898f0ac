#include "runtime/profiler.h"

#include <unistd.h>

#include <algorithm>

namespace kiln::runtime {

namespace {
// Named within: in the unity build, runtime/'s files share one anonymous namespace.
namespace profiler_recording {

constexpr int64_t kAbsentTag = -1, kSequenceTag = -2, kNoneTag = -3;

// Walks one value against a signature from `at`; advances `at` past it on a match.
bool matches(const std::vector<int64_t>& sig, size_t& at, const ir::Datum* d) {
  auto next = [&](int64_t v) { return at < sig.size() && sig[at++] == v; };
  if (!d) return next(kAbsentTag);
  if (d->is_none()) return next(kNoneTag);
  if (d->is_sequence())
    return next(kSequenceTag) && next(static_cast<int64_t>(d->sequence_dtype)) &&
           next(static_cast<int64_t>(d->sequence.size()));
  const ir::Tensor& t = d->tensor;
  if (!next(static_cast<int64_t>(t.dtype())) || !next(static_cast<int64_t>(t.rank()))) return false;
  for (int64_t v : t.shape())
    if (!next(v)) return false;
  return true;
}

void append(std::vector<int64_t>& sig, std::vector<ProfiledValue>& values, const ir::Datum* d) {
  ProfiledValue v;
  if (!d) {
    sig.push_back(kAbsentTag);
  } else if (d->is_none()) {
    sig.push_back(kNoneTag);
    v.kind = ProfiledValue::Kind::kNone;
  } else if (d->is_sequence()) {
    sig.insert(sig.end(),
               {kSequenceTag, static_cast<int64_t>(d->sequence_dtype), static_cast<int64_t>(d->sequence.size())});
    v.kind = ProfiledValue::Kind::kSequence;
    v.dtype = d->sequence_dtype;
    v.shape = {static_cast<int64_t>(d->sequence.size())};
  } else {
    const ir::Tensor& t = d->tensor;
    sig.push_back(static_cast<int64_t>(t.dtype()));
    sig.push_back(static_cast<int64_t>(t.rank()));
    sig.insert(sig.end(), t.shape().begin(), t.shape().end());
    v.kind = ProfiledValue::Kind::kTensor;
    v.dtype = t.dtype();
    v.shape.assign(t.shape().begin(), t.shape().end());
  }
  values.push_back(std::move(v));
}

}  // namespace profiler_recording
}  // namespace

Profiler::Profiler(size_t expected_runs, Clock::time_point origin)
    : expected_runs_(expected_runs ? expected_runs : 1), origin_(origin) {}

void Profiler::attach(std::vector<ProfiledNode> nodes, bool fast_kernels) {
  // Attached again to the same graph (runs profiled in stretches), the records go on; to another, they
  // start afresh, since they name nodes by index.
  const bool same = nodes.size() == nodes_.size() &&
                    std::equal(nodes.begin(), nodes.end(), nodes_.begin(), [](const auto& a, const auto& b) {
                      return a.name == b.name && a.op_type == b.op_type && a.fast_kernel == b.fast_kernel;
                    });
  nodes_ = std::move(nodes);
  fast_kernels_ = fast_kernels;
  if (!same || shapes_.size() != nodes_.size()) {
    shapes_.assign(nodes_.size(), NodeShapes());
    calls_.clear();
    runs_.clear();
  }
  calls_.reserve(calls_.size() + expected_runs_ * nodes_.size());
  runs_.reserve(runs_.size() + expected_runs_);
}

void Profiler::begin_run() {
  run_thread_ = static_cast<int64_t>(::gettid());
  run_start_ = Clock::now();
}

void Profiler::end_run() {
  const Clock::time_point end = Clock::now();
  runs_.push_back({since_origin(run_start_), since_origin(end) - since_origin(run_start_), run_thread_});
}

uint32_t Profiler::shape_set_of(size_t node, std::span<const ir::Datum* const> inputs,
                                std::span<const ir::Datum> outputs) {
  NodeShapes& s = shapes_[node];
  auto same = [&](const std::vector<int64_t>& sig) {
    size_t at = 0;
    for (const ir::Datum* d : inputs)
      if (!profiler_recording::matches(sig, at, d)) return false;
    for (const ir::Datum& d : outputs)
      if (!profiler_recording::matches(sig, at, &d)) return false;
    return at == sig.size();
  };
  if (s.last < s.signatures.size() && same(s.signatures[s.last])) return s.last;
  for (uint32_t k = 0; k < s.signatures.size(); ++k)
    if (same(s.signatures[k])) return s.last = k;
  // A shape set not seen before: the only place recording allocates (besides growing past the reserve).
  std::vector<int64_t> sig;
  ShapeSet set;
  for (const ir::Datum* d : inputs) profiler_recording::append(sig, set.inputs, d);
  for (const ir::Datum& d : outputs) profiler_recording::append(sig, set.outputs, &d);
  for (const auto& [input, value] : nodes_[node].held_inputs)
    if (input < set.inputs.size()) set.inputs[input] = value;
  s.signatures.push_back(std::move(sig));
  s.sets.push_back(std::move(set));
  return s.last = static_cast<uint32_t>(s.sets.size() - 1);
}

void Profiler::record(size_t node, Clock::time_point start, Clock::time_point end, bool fast,
                      std::span<const ir::Datum* const> inputs, std::span<const ir::Datum> outputs) {
  const uint32_t set = shape_set_of(node, inputs, outputs);
  const int64_t start_ns = since_origin(start);
  calls_.push_back({static_cast<uint32_t>(node), set, static_cast<uint32_t>(runs_.size()), fast, start_ns,
                    since_origin(end) - start_ns});
}

}  // namespace kiln::runtime
