#include "pass_test_util.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <limits>
#include <sstream>

#include "io/npy.h"
#include "ir/graph_check.h"
#include "onnx/model_io.h"
#include "ort_peer.h"
#include "passes/passes.h"
#include "runtime/random_inputs.h"
#include "runtime/session.h"
#include "test_util.h"

namespace kiln::testing {
namespace {

// Whether `got` passes for `want` within `tol` (kExact: the same bits).
bool same_value(double want, double got, double tol) {
  if (std::isnan(want) || std::isnan(got)) return std::isnan(want) && std::isnan(got);
  if (tol == kExact) return want == got && std::signbit(want) == std::signbit(got);
  return want == got || std::fabs(want - got) <= tol;
}

}  // namespace

ir::Model new_ir_model(int64_t opset) {
  ir::Model m;
  m.opset_imports[""] = opset;
  return m;
}

std::vector<ir::Datum> run_unoptimized(const ir::Model& m, const Feeds& feeds, bool verify_inference) {
  runtime::SessionOptions o;
  o.optimization = passes::Level::kNone;
  o.verify_inference = verify_inference;
  return runtime::Session(m, o).run(feeds);
}

Feeds random_feeds(const ir::Model& m, const std::map<std::string, int64_t>& dims, uint64_t first_seed) {
  Feeds feeds;
  uint64_t seed = first_seed;
  for (const auto& in : m.graph.inputs)
    if (!m.graph.initializers.count(in.name)) feeds[in.name] = runtime::random_input(in, dims, seed++);
  return feeds;
}

void expect_same_outputs(const ir::Model& want_model, const ir::Model& got_model, const Feeds& feeds, double tol,
                         bool verify_inference) {
  std::vector<ir::Datum> want = run_unoptimized(want_model, feeds, verify_inference);
  std::vector<ir::Datum> got = run_unoptimized(got_model, feeds, verify_inference);
  ASSERT_EQ(want.size(), got.size());
  for (size_t i = 0; i < want.size(); ++i) {
    const ir::Tensor &w = want[i].tensor, &g = got[i].tensor;
    const std::string label = "output " + std::to_string(i) + " (" + want_model.graph.outputs[i].name + ")";
    ASSERT_EQ(w.dtype(), g.dtype()) << label;
    ASSERT_EQ(w.shape(), g.shape()) << label;
    if (w.dtype() == ir::DType::kString) {
      for (int64_t k = 0; k < w.numel(); ++k)
        EXPECT_EQ(w.data<std::string>()[k], g.data<std::string>()[k]) << label << " at " << k;
      continue;
    }
    int64_t bad = 0, worst = -1;
    double worst_diff = 0;
    for (int64_t k = 0; k < w.numel(); ++k) {
      const double a = w.as_double(k), b = g.as_double(k);
      if (same_value(a, b, tol)) continue;
      const double d = std::isnan(a) || std::isnan(b) ? std::numeric_limits<double>::infinity() : std::fabs(a - b);
      if (bad++ == 0 || d > worst_diff) {
        worst = k;
        worst_diff = d;
      }
    }
    if (bad > 0) {
      std::ostringstream s;
      s.precision(9);
      s << label << ": " << bad << " of " << w.numel() << " values differ (tolerance " << tol << "); worst at index "
        << worst << ": " << w.as_double(worst) << " became " << g.as_double(worst) << " (|diff| " << worst_diff << ")";
      ADD_FAILURE() << s.str();
    }
  }
}

int64_t count_ops(const ir::Model& m, const std::string& op) {
  auto h = passes::op_histogram(m.graph);
  auto it = h.find(op);
  return it == h.end() ? 0 : it->second;
}

const ir::Node* find_op(const ir::Model& m, const std::string& op) {
  for (const auto& n : m.graph.nodes)
    if (n.op_type == op) return &n;
  return nullptr;
}

const ir::Node* find_op(const ir::Model& m, const std::string& domain, const std::string& op) {
  for (const auto& n : m.graph.nodes)
    if (n.domain == domain && n.op_type == op) return &n;
  return nullptr;
}

int64_t changes(const passes::PassReport& report, const std::string& kind) {
  auto it = report.changes.find(kind);
  return it == report.changes.end() ? 0 : it->second;
}

int64_t changes(const passes::OptimizationReport& report, const std::string& kind) { return report.count(kind); }

std::vector<std::string> Fused::reasons() const {
  std::vector<std::string> r;
  for (const auto& rej : report.rejections) r.push_back(rej.reason);
  return r;
}

std::string Fused::rejections() const {
  std::string s;
  for (const auto& r : report.rejections) s += r.pattern + " at " + r.node + ": " + r.reason + "\n";
  return s;
}

const ir::Node* Optimized::writer_of(const std::string& value) const {
  for (const auto& n : model.graph.nodes)
    for (const auto& o : n.outputs)
      if (o == value) return &n;
  return nullptr;
}

Fused run_passes(const ir::Model& m, const std::vector<passes::PassFn>& fns, const passes::OptimizeOptions& options) {
  Fused f{m, {}};
  for (passes::PassFn fn : fns) {
    passes::PassContext ctx(f.model, options, f.report);
    if (fn(f.model.graph, ctx)) ir::check_and_sort_graph(f.model.graph, {}, "after pass");
  }
  return f;
}

void drop_dead_code(ir::Model& m, const passes::OptimizeOptions& options) {
  passes::PassReport report;
  passes::PassContext ctx(m, options, report);
  passes::eliminate_dead_code(m.graph, ctx);
  ir::check_and_sort_graph(m.graph, {}, "after dead code elimination");
}

Optimized optimize_and_compare(const ir::Model& m, const passes::OptimizeOptions& options, const Feeds& feeds,
                               double tol) {
  Optimized o{m, {}};
  o.report = passes::optimize(o.model, options);
  expect_same_outputs(m, o.model, feeds, tol);
  return o;
}

void expect_ort_matches(const ir::Model& model, const Feeds& feeds, const std::vector<ir::Datum>& want, double tol,
                        const std::string& what, std::vector<double>* diffs) {
  const std::string prefix = what.empty() ? "" : what + ": ";
  std::string why;
  ASSERT_TRUE(ort_available(&why)) << why;
  TempDir dir("kiln_pass_ort");
  std::filesystem::create_directories(dir.path() / "in");
  onnx_io::save_model(model, dir.file("model.onnx"));
  for (const auto& [name, d] : feeds) io::write_npy(dir.file("in/" + name + ".npy"), d.tensor);
  OrtRun r = run_ort(dir.file("model.onnx"), dir.file("in"), dir.file("out"), "disabled");
  ASSERT_EQ(r.exit_code, 0) << prefix << r.err;
  ASSERT_EQ(want.size(), model.graph.outputs.size()) << prefix;
  for (size_t i = 0; i < want.size(); ++i) {
    const std::string& name = model.graph.outputs[i].name;
    ir::Tensor theirs = io::read_npy(dir.file("out/" + name + ".npy"));
    ASSERT_EQ(theirs.shape(), want[i].tensor.shape()) << prefix << "ORT output " << name;
    const double d = max_abs_diff(want[i].tensor, theirs);
    EXPECT_LE(d, tol) << prefix << "ORT output " << name;
    if (diffs) diffs->push_back(d);
  }
}

}  // namespace kiln::testing
