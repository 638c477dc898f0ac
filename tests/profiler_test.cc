// The profiler (runtime/profiler.h, runtime/profile_report.h): a graph with a fast MatMul (constant weights)
// and a Sin that runs its reference kernel, profiled over several runs: one row per node, the kernel that
// answered, percentages, the reference-kernel line and the Chrome trace; a subgraph's time counted in its
// If node; and the `kiln run --profile` / `kiln bench --profile-json` commands, bad trace paths included.
#include "runtime/profiler.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "contrib_test_util.h"
#include "runtime/profile_report.h"
#include "runtime/session.h"
#include "test_util.h"

// Named: in the unity build, test files share one anonymous namespace.
namespace kiln::profiler_test {
namespace {

using testing::contrib::Random;
using testing::contrib::TestGraph;

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// x[3,7] -> MatMul (constant B[7,5], a fast kernel) -> Sin (reference only) -> z[3,5].
TestGraph matmul_sin() {
  Random rng(7);
  TestGraph g;
  g.input("x", rng.floats({3, 7}));
  g.constant("b", rng.floats({7, 5}));
  g.node("MatMul", {"x", "b"}, {"y"});
  g.node("Sin", {"y"}, {"z"});
  g.output("z");
  return g;
}

runtime::SessionOptions unoptimized(bool fast = true) {
  runtime::SessionOptions o;
  o.optimization = passes::Level::kNone;  // the graph as built: nothing fused away
  o.fast_kernels = fast;
  return o;
}

const runtime::ProfileRow& row_of(const std::vector<runtime::ProfileRow>& rows, const std::string& op) {
  for (const auto& r : rows)
    if (r.op_type == op) return r;
  throw std::runtime_error("no row for " + op);
}

TEST(Profiler, OneRowPerNodeWithTheKernelThatRan) {
  TestGraph g = matmul_sin();
  runtime::Session session(g.model(), unoptimized());
  ASSERT_EQ(session.fast_kernel_count(), 1u);
  constexpr int kRuns = 4;
  runtime::Profiler profiler(kRuns);
  session.set_profiler(&profiler);
  std::vector<ir::Datum> outputs;
  for (int i = 0; i < kRuns; ++i) session.run(g.feeds(), outputs);
  session.set_profiler(nullptr);
  session.run(g.feeds(), outputs);  // detached: not recorded

  EXPECT_EQ(profiler.runs().size(), static_cast<size_t>(kRuns));
  EXPECT_EQ(profiler.calls().size(), static_cast<size_t>(2 * kRuns));
  runtime::ProfileSummary s = runtime::summarize(profiler);
  ASSERT_EQ(s.nodes.size(), 2u);
  ASSERT_EQ(s.op_types.size(), 2u);
  EXPECT_EQ(s.runs, static_cast<size_t>(kRuns));
  double percent = 0;
  for (const auto& r : s.nodes) {
    EXPECT_EQ(r.calls, kRuns) << r.name;
    EXPECT_GE(r.total_ms, 0) << r.name;
    percent += r.percent;
  }
  EXPECT_NEAR(percent, 100.0, 0.01);
  EXPECT_LE(s.node_ms, s.run_ms);

  const runtime::ProfileRow& matmul = row_of(s.nodes, "MatMul");
  EXPECT_EQ(matmul.name, "MatMul_0");
  EXPECT_EQ(matmul.kernel.rfind("MatMul ", 0), 0u) << matmul.kernel;  // the fast kernel's name, then how it runs
  EXPECT_GT(matmul.kernel.size(), std::string("MatMul ").size()) << matmul.kernel;
  EXPECT_EQ(matmul.reference_ms, 0);
  // The weight the kernel holds packed is shown with the shape it had.
  EXPECT_EQ(matmul.shapes, "float32[3,7], float32[7,5] -> float32[3,5]");
  const runtime::ProfileRow& sin_row = row_of(s.nodes, "Sin");
  EXPECT_EQ(sin_row.kernel, "reference");
  EXPECT_EQ(sin_row.shapes, "float32[3,5] -> float32[3,5]");
  EXPECT_DOUBLE_EQ(sin_row.reference_ms, sin_row.total_ms);

  EXPECT_EQ(s.reference_nodes, 1u);
  const std::string callout = runtime::reference_callout(s);
  EXPECT_TRUE(has(callout, "1 node, ")) << callout;
  EXPECT_TRUE(has(callout, "ran reference kernels: Sin (1 node, ")) << callout;
  EXPECT_FALSE(has(callout, "MatMul")) << callout;

  const std::string table = runtime::format_profile(s, 0);
  EXPECT_TRUE(has(table, "4 runs")) << table;
  EXPECT_TRUE(has(table, "MatMul_0")) << table;
  EXPECT_TRUE(has(table, "Sin_1")) << table;
  EXPECT_TRUE(has(table, "\n1 node, ")) << table;  // the closing line
}

TEST(Profiler, AttachedAgainTheRecordsGoOn) {
  TestGraph g = matmul_sin();
  runtime::Session session(g.model(), unoptimized());
  runtime::Profiler profiler;
  session.set_profiler(&profiler);
  session.run(g.feeds());
  session.set_profiler(nullptr);
  session.run(g.feeds());
  session.set_profiler(&profiler);
  session.run(g.feeds());
  runtime::ProfileSummary s = runtime::summarize(profiler);
  EXPECT_EQ(s.runs, 2u);
  for (const auto& r : s.nodes) EXPECT_EQ(r.calls, 2) << r.name;

  // Another graph: the records start afresh (they name nodes by index).
  Random rng(1);
  TestGraph other;
  other.input("x", rng.floats({2, 2}));
  other.node("Neg", {"x"}, {"y"});
  other.output("y");
  runtime::Session second(other.model(), unoptimized());
  second.set_profiler(&profiler);
  second.run(other.feeds());
  s = runtime::summarize(profiler);
  ASSERT_EQ(s.nodes.size(), 1u);
  EXPECT_EQ(s.nodes[0].op_type, "Neg");
  EXPECT_EQ(s.nodes[0].calls, 1);
}

TEST(Profiler, TablesCutToTopRowsSayWhatWasLeftOut) {
  TestGraph g = matmul_sin();
  runtime::Session session(g.model(), unoptimized());
  runtime::Profiler profiler;
  session.set_profiler(&profiler);
  session.run(g.feeds());
  runtime::ProfileSummary s = runtime::summarize(profiler);
  const std::string table = runtime::format_profile(s, 1);
  EXPECT_TRUE(has(table, "nodes (top 1 of 2, by total time)")) << table;
  EXPECT_TRUE(has(table, "... 1 more node, ")) << table;
  EXPECT_TRUE(has(table, "... 1 more op type, ")) << table;
  // The slower node is the one listed.
  EXPECT_TRUE(has(table, s.nodes[0].name)) << table;
  EXPECT_FALSE(has(table.substr(0, table.find("op types")), s.nodes[1].name)) << table;
}

TEST(Profiler, ReferenceOnlySessionSaysFastKernelsWereOff) {
  TestGraph g = matmul_sin();
  runtime::Session session(g.model(), unoptimized(false));
  runtime::Profiler profiler;
  session.set_profiler(&profiler);
  session.run(g.feeds());
  runtime::ProfileSummary s = runtime::summarize(profiler);
  EXPECT_EQ(row_of(s.nodes, "MatMul").kernel, "reference");
  EXPECT_TRUE(has(runtime::reference_callout(s), "fast kernels were off")) << runtime::reference_callout(s);
}

TEST(Profiler, NoReferenceKernelSaysSo) {
  Random rng(3);
  TestGraph g;
  g.input("x", rng.floats({2, 4}));
  g.constant("b", rng.floats({4, 3}));
  g.node("MatMul", {"x", "b"}, {"y"});
  g.output("y");
  runtime::Session session(g.model(), unoptimized());
  runtime::Profiler profiler;
  session.set_profiler(&profiler);
  session.run(g.feeds());
  runtime::ProfileSummary s = runtime::summarize(profiler);
  EXPECT_EQ(s.reference_nodes, 0u);
  EXPECT_TRUE(has(runtime::reference_callout(s), "no node ran a reference kernel")) << runtime::reference_callout(s);
}

TEST(Profiler, SubgraphNodesHaveRowsAndTheirIfItsOwnTime) {
  Random rng(5);
  TestGraph g;
  g.input("cond", ir::Tensor::scalar<bool>(true));
  g.input("x", rng.floats({4}));
  auto branch = [](const std::string& op, const std::string& out) {
    auto body = std::make_shared<ir::Graph>();
    ir::Node n;
    n.name = op + "_inside";
    n.op_type = op;
    n.inputs = {"x"};
    n.outputs = {out};
    body->nodes.push_back(std::move(n));
    body->outputs.push_back({out, ir::Type(), ""});
    return body;
  };
  ir::Attribute then_branch, else_branch;
  then_branch.name = "then_branch";
  then_branch.kind = ir::Attribute::Kind::kGraph;
  then_branch.g = branch("Sin", "t");
  else_branch.name = "else_branch";
  else_branch.kind = ir::Attribute::Kind::kGraph;
  else_branch.g = branch("Cos", "e");
  g.node("If", {"cond"}, {"y"}, {then_branch, else_branch});
  g.output("y");
  runtime::Session session(g.model(), unoptimized());
  runtime::Profiler profiler(2);
  session.set_profiler(&profiler);
  session.run(g.feeds());
  session.run(g.feeds());
  runtime::ProfileSummary s = runtime::summarize(profiler);
  // The If's own time, and the branch that ran as a row of its own (the other branch never ran: no row).
  ASSERT_EQ(s.nodes.size(), 2u);
  const runtime::ProfileRow* if_row = nullptr;
  const runtime::ProfileRow* sin_row = nullptr;
  for (const runtime::ProfileRow& r : s.nodes) (r.op_type == "If" ? if_row : sin_row) = &r;
  ASSERT_TRUE(if_row && sin_row);
  EXPECT_EQ(if_row->calls, 2);
  EXPECT_EQ(if_row->shapes, "bool[] -> float32[4]");
  EXPECT_EQ(sin_row->op_type, "Sin");
  EXPECT_EQ(sin_row->name, "If_0/then_branch/Sin_inside");
  EXPECT_EQ(sin_row->calls, 2);
  EXPECT_EQ(sin_row->shapes, "float32[4] -> float32[4]");
  // Percentages of the time in nodes still add up: the If's row holds its own time, not its branch's.
  EXPECT_NEAR(if_row->percent + sin_row->percent, 100.0, 1e-6);
  EXPECT_NEAR(if_row->total_ms + sin_row->total_ms, s.node_ms, 1e-9);
  EXPECT_LE(s.node_ms, s.run_ms);
  // The If computes nothing itself: control flow, not a reference kernel; its branch's Sin is one.
  EXPECT_EQ(if_row->kernel, "control flow");
  EXPECT_EQ(sin_row->kernel, "reference");
  EXPECT_EQ(s.reference_nodes, 1u);
  EXPECT_EQ(s.non_compute_nodes, 1u);
  const std::string callout = runtime::reference_callout(s);
  EXPECT_TRUE(has(callout, "ran reference kernels: Sin (1 node, ")) << callout;
  EXPECT_FALSE(has(callout, "If (")) << callout;
  EXPECT_TRUE(has(callout, "1 node, ")) << callout;
  EXPECT_TRUE(has(callout, "computed nothing (views, shape reads, control flow's own time)")) << callout;
}

TEST(Profiler, ViewsAndShapeReadsAreNotReferenceKernels) {
  Random rng(9);
  TestGraph g;
  g.input("x", rng.floats({2, 6}));
  g.constant("b", rng.floats({6, 4}));
  g.constant("to", testing::contrib::int64s({8}));
  g.node("MatMul", {"x", "b"}, {"y"});
  g.node("Reshape", {"y", "to"}, {"flat"});
  g.node("Shape", {"flat"}, {"dims"});
  g.output("flat");
  g.output("dims");
  runtime::Session session(g.model(), unoptimized());
  runtime::Profiler profiler;
  session.set_profiler(&profiler);
  session.run(g.feeds());
  runtime::ProfileSummary s = runtime::summarize(profiler);
  EXPECT_EQ(row_of(s.nodes, "Reshape").kernel, "view (no copy)");
  EXPECT_EQ(row_of(s.nodes, "Reshape").reference_ms, 0);
  EXPECT_EQ(row_of(s.nodes, "Shape").kernel, "shape read");
  EXPECT_EQ(s.reference_nodes, 0u);
  EXPECT_EQ(s.non_compute_nodes, 2u);
  const std::string callout = runtime::reference_callout(s);
  EXPECT_TRUE(has(callout, "no node ran a reference kernel")) << callout;
  EXPECT_TRUE(has(callout, "\n2 nodes, ")) << callout;
  EXPECT_EQ(runtime::non_compute_kind("Sin"), nullptr);
}

TEST(Profiler, TraceIsChromeTraceEvents) {
  TestGraph g = matmul_sin();
  runtime::Session session(g.model(), unoptimized());
  constexpr int kRuns = 3;
  runtime::Profiler profiler(kRuns);
  session.set_profiler(&profiler);
  for (int i = 0; i < kRuns; ++i) session.run(g.feeds());
  testing::TempDir dir;
  const std::string path = dir.file("trace.json");
  const runtime::TraceSection section{&profiler, "batch 3"};
  runtime::write_trace(path, std::span(&section, 1), "--profile-json");
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));

  const nlohmann::json trace = nlohmann::json::parse(testing::read_file(path));
  ASSERT_TRUE(trace.is_array());
  int nodes = 0, runs = 0;
  for (const auto& e : trace) {
    EXPECT_EQ(e.at("ph"), "X");
    EXPECT_GE(e.at("dur").get<double>(), 0);
    EXPECT_GE(e.at("ts").get<double>(), 0);
    EXPECT_TRUE(e.at("pid").is_number_integer());
    EXPECT_TRUE(e.at("tid").is_number_integer());
    if (e.at("cat") == "Session") {
      ++runs;
      EXPECT_EQ(e.at("name"), "run");
      EXPECT_EQ(e.at("args").at("config"), "batch 3");
      continue;
    }
    ASSERT_EQ(e.at("cat"), "Node");
    ++nodes;
    const auto& args = e.at("args");
    if (e.at("name") == "MatMul_0") {
      EXPECT_EQ(args.at("op_name"), "MatMul");
      EXPECT_NE(args.at("kernel"), "reference");
      EXPECT_EQ(args.at("input_type_shape"), nlohmann::json::parse(R"([{"float32":[3,7]},{"float32":[7,5]}])"));
      EXPECT_EQ(args.at("output_type_shape"), nlohmann::json::parse(R"([{"float32":[3,5]}])"));
    } else {
      EXPECT_EQ(e.at("name"), "Sin_1");
      EXPECT_EQ(args.at("op_name"), "Sin");
      EXPECT_EQ(args.at("kernel"), "reference");
    }
  }
  EXPECT_EQ(runs, kRuns);
  EXPECT_EQ(nodes, 2 * kRuns);
}

TEST(Profiler, UnwritableTracePathIsRefusedByName) {
  try {
    runtime::check_trace_path("/nonexistent/dir/x.json", "--profile-json");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_TRUE(has(e.what(), "--profile-json")) << e.what();
    EXPECT_TRUE(has(e.what(), "/nonexistent/dir/x.json")) << e.what();
  }
  testing::TempDir dir;
  try {
    runtime::check_trace_path(dir.path().string(), "--profile-json");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_TRUE(has(e.what(), "it is a folder")) << e.what();
  }
}

// ---- the kiln program ----

// The same graph as an .onnx file: x[2,7] -> MatMul (initializer B[7,5]) -> Sin -> z[2,5].
std::string write_matmul_sin(const testing::TempDir& dir) {
  onnx::ModelProto m = testing::new_model(17);
  onnx::GraphProto* g = m.mutable_graph();
  g->set_name("matmul_sin");
  testing::add_input(g, "x", onnx::TensorProto::FLOAT, {2, 7});
  std::vector<float> b(35);
  for (size_t i = 0; i < b.size(); ++i) b[i] = 0.01f * static_cast<float>(i);
  testing::add_float_initializer(g, "b", {7, 5}, b);
  testing::add_node(g, "MatMul", {"x", "b"}, {"y"}, "project");
  testing::add_node(g, "Sin", {"y"}, {"z"}, "squash");
  testing::add_output(g, "z", onnx::TensorProto::FLOAT, {2, 5});
  const std::string path = dir.file("matmul_sin.onnx");
  testing::save(m, path);
  return path;
}

TEST(ProfilerCli, RunPrintsTheTablesAndTheReferenceLine) {
  testing::TempDir dir;
  const std::string model = write_matmul_sin(dir);
  testing::RunResult r = testing::run_kiln({"run", model, "--random", "--profile", "--threads", "1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(has(r.out, "1 run, ")) << r.out;
  EXPECT_TRUE(has(r.out, "nodes (2, by total time)")) << r.out;
  EXPECT_TRUE(has(r.out, "op types (2, by total time)")) << r.out;
  EXPECT_TRUE(has(r.out, "project")) << r.out;
  EXPECT_TRUE(has(r.out, "squash")) << r.out;
  EXPECT_TRUE(has(r.out, "float32[2,7], float32[7,5] -> float32[2,5]")) << r.out;
  EXPECT_TRUE(has(r.out, "\n1 node, ")) << r.out;
  EXPECT_TRUE(has(r.out, "ran reference kernels: Sin (1 node, ")) << r.out;
}

TEST(ProfilerCli, RunRefusesAnUnwritableTraceBeforeRunning) {
  testing::TempDir dir;
  const std::string model = write_matmul_sin(dir);
  testing::RunResult r = testing::run_kiln({"run", model, "--random", "--profile-json", "/nonexistent/dir/x.json"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(has(r.err, "/nonexistent/dir/x.json")) << r.err;
  EXPECT_EQ(testing::count_lines(r.err), 1) << r.err;
  EXPECT_FALSE(has(r.out, "z ")) << r.out;  // no output was computed
}

TEST(ProfilerCli, BenchWritesOneTraceForEveryConfiguration) {
  testing::TempDir dir;
  const std::string trace_path = dir.file("trace.json");
  testing::RunResult r = testing::run_kiln({"bench", testing::source_path("tests/data/bert-tiny/model.onnx"), "--batch",
                                            "1,2", "--seq", "8", "--iterations", "3", "--warmup", "1", "--threads", "1",
                                            "-q", "--profile-json", trace_path, "--profile-top", "5"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(has(r.out, "profile of kiln, batch 1, seq 8: 3 more calls")) << r.out;
  EXPECT_TRUE(has(r.out, "profile of kiln, batch 2, seq 8: 3 more calls")) << r.out;
  EXPECT_TRUE(has(r.out, "not the benchmark's figures")) << r.out;
  EXPECT_TRUE(has(r.out, "nodes (top 5 of ")) << r.out;
  EXPECT_TRUE(has(r.out, "ran reference kernels: ")) << r.out;
  EXPECT_TRUE(has(r.out, "wrote the profile trace " + trace_path)) << r.out;

  const nlohmann::json trace = nlohmann::json::parse(testing::read_file(trace_path));
  ASSERT_TRUE(trace.is_array());
  std::map<std::string, int> runs_per_config;
  int node_events = 0;
  for (const auto& e : trace) {
    EXPECT_EQ(e.at("ph"), "X");
    EXPECT_GE(e.at("dur").get<double>(), 0);
    if (e.at("cat") == "Session")
      ++runs_per_config[e.at("args").at("config").get<std::string>()];
    else
      ++node_events;
  }
  EXPECT_EQ(runs_per_config, (std::map<std::string, int>{{"batch 1, seq 8", 3}, {"batch 2, seq 8", 3}}));
  EXPECT_GT(node_events, 0);
  EXPECT_EQ(node_events % 6, 0);  // every node of the (same) graph, three calls per configuration
}

TEST(ProfilerCli, BenchRefusesAnUnwritableTraceBeforeTheBenchmark) {
  testing::RunResult r =
      testing::run_kiln({"bench", testing::source_path("tests/data/bert-tiny/model.onnx"), "--seq", "8", "--iterations",
                         "2", "--warmup", "0", "-q", "--profile-json", "/nonexistent/dir/x.json"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(has(r.err, "--profile-json: cannot write /nonexistent/dir/x.json")) << r.err;
  EXPECT_EQ(r.out, "");  // nothing was measured
}

TEST(ProfilerCli, HelpNamesTheFlags) {
  for (const char* cmd : {"run", "bench"}) {
    testing::RunResult r = testing::run_kiln({cmd, "--help"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    for (const char* flag : {"--profile", "--profile-json", "--profile-top"})
      EXPECT_TRUE(has(r.out, flag)) << cmd << " --help lacks " << flag;
  }
}

}  // namespace
}  // namespace kiln::profiler_test
