// Helpers shared by the graph-pass tests (basic passes, canonicalization, the fusions, the optimizer end to
// end): running a model as given, random feeds, comparing two models' outputs, op counts and lookups,
// running passes directly, and ONNX Runtime as a second opinion. Each test passes its own seeds, dims and
// tolerances.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "contrib_test_util.h"
#include "ir/graph.h"
#include "passes/optimizer.h"
#include "passes/pass.h"

namespace kiln::testing {

using Feeds = std::unordered_map<std::string, ir::Datum>;

// A tolerance meaning: the same bits (NaN equal to NaN, +0 not equal to -0).
inline constexpr double kExact = 0;

// An empty model importing ai.onnx at `opset` (test_util.h's new_model is the onnx::ModelProto one).
ir::Model new_ir_model(int64_t opset = 17);

// Runs `m` in a Session as given (optimization none), optionally checking every output against the types
// inference gave.
std::vector<ir::Datum> run_unoptimized(const ir::Model& m, const Feeds& feeds, bool verify_inference = false);

// runtime::random_input for every graph input that is not an initializer, in input order, with seeds
// first_seed, first_seed + 1, ...; symbolic dims resolved from `dims` (unlisted ones: 1).
Feeds random_feeds(const ir::Model& m, const std::map<std::string, int64_t>& dims, uint64_t first_seed);

// Largest |a - b| over two tensors (infinity when dtype or shape differ, or where one side only is NaN):
// the contrib op tests' version.
using contrib::max_abs_diff;

// Runs both models unoptimized on `feeds` and expects the same outputs: as many, the same dtypes and shapes,
// and every value within `tol` (kExact: the same bits; NaN only where `want_model` has NaN; strings equal).
// A differing output is reported by name, with how many values differ and the worst of them.
void expect_same_outputs(const ir::Model& want_model, const ir::Model& got_model, const Feeds& feeds, double tol,
                         bool verify_inference = false);

// Number of nodes of `op` ("Conv", "com.microsoft.Attention") in `m`'s graph.
int64_t count_ops(const ir::Model& m, const std::string& op);

// The first node of type `op` (in any domain), or of `op` in `domain`; null when there is none.
const ir::Node* find_op(const ir::Model& m, const std::string& op);
const ir::Node* find_op(const ir::Model& m, const std::string& domain, const std::string& op);

// Count of one kind of change ("Attention", "Mul folded") in a pass's report, or over all passes.
int64_t changes(const passes::PassReport& report, const std::string& kind);
int64_t changes(const passes::OptimizationReport& report, const std::string& kind);

// A model after passes run directly, with what they reported (all of them into one report).
struct Fused {
  ir::Model model;
  passes::PassReport report;

  int64_t ops(const std::string& op) const { return count_ops(model, op); }
  int64_t changed(const std::string& kind) const { return changes(report, kind); }
  // The reasons given for candidates left alone, in order.
  std::vector<std::string> reasons() const;
  // The same, one per line as "pattern at node: reason".
  std::string rejections() const;
};

// A model after passes::optimize, with its report.
struct Optimized {
  ir::Model model;
  passes::OptimizationReport report;

  int64_t ops(const std::string& op) const { return count_ops(model, op); }
  int64_t changed(const std::string& kind) const { return changes(report, kind); }
  std::string text() const { return report.to_text(); }
  // Whether the report mentions `reason` (a candidate left alone, and why).
  bool rejected(const std::string& reason) const { return text().find(reason) != std::string::npos; }
  // The node that writes `value`, or null.
  const ir::Node* writer_of(const std::string& value) const;
};

// Runs `fns` in order on a copy of `m` as the optimizer does: each with its own PassContext, the graph
// checked and sorted after each that changed it.
Fused run_passes(const ir::Model& m, const std::vector<passes::PassFn>& fns,
                 const passes::OptimizeOptions& options = {});

// Dead code elimination (its report dropped), then the graph checked and sorted: removes the Constants
// fused nodes no longer read.
void drop_dead_code(ir::Model& m, const passes::OptimizeOptions& options = {});

// passes::optimize on a copy of `m`, then expect_same_outputs(m, optimized, feeds, tol).
Optimized optimize_and_compare(const ir::Model& m, const passes::OptimizeOptions& options, const Feeds& feeds,
                               double tol);

// Saves `model`, runs it in ONNX Runtime (ORT's optimizer disabled) on `feeds`, and expects every output (by
// name, in the model's output order) within `tol` of `want`. `what` starts the failure messages. When
// `diffs` is given, it receives each output's max |diff|.
void expect_ort_matches(const ir::Model& model, const Feeds& feeds, const std::vector<ir::Datum>& want, double tol,
                        const std::string& what = "", std::vector<double>* diffs = nullptr);

}  // namespace kiln::testing
