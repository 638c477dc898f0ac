// The basic passes (dead code, identities, constant folding) and the optimizer around them: each test
// builds a small graph, optimizes it, checks the structure changed as claimed (op counts) and that the
// outputs did not (against the unoptimized graph on the same inputs), and includes a case that must not
// change.
#include <gtest/gtest.h>

#include <cmath>

#include "export/graph_builder.h"
#include "pass_test_util.h"
#include "passes/optimizer.h"
#include "passes/passes.h"
#include "runtime/session.h"

namespace kiln {
namespace {

using exporter::GraphBuilder;
using exporter::int_attr;
using exporter::ints_attr;
using exporter::tensor_value;

using testing::count_ops;
using testing::new_ir_model;

// Optimizes a copy of `m` at `level`, checks outputs against the original on random inputs (n = 3, seeds
// from 1) within 1e-6, returns the optimized model and its report.
testing::Optimized optimize_and_compare(const ir::Model& m, passes::Level level,
                                        passes::Target target = passes::Target::kKiln) {
  passes::OptimizeOptions options;
  options.level = level;
  options.target = target;
  return testing::optimize_and_compare(m, options, testing::random_feeds(m, {{"n", 3}}, 1), 1e-6);
}

TEST(DeadCodeElimination, RemovesUnreadNodesAndInitializers) {
  ir::Model m = new_ir_model();
  GraphBuilder b(m.graph);
  m.graph.inputs.push_back(tensor_value("x", ir::DType::kFloat32, {ir::Dim::symbolic("n"), ir::Dim(4)}));
  std::string w = b.initializer("w", ir::Tensor::from_vector<float>({1, 2, 3, 4}, {4}));
  b.initializer("unused_weight", ir::Tensor::from_vector<float>({1, 2}, {2}));
  std::string dead = b.add("Mul", {"x", w});
  b.add("Relu", {dead});  // a chain nobody reads
  b.add_named("Add", {"x", w}, "y");
  m.graph.outputs.push_back(tensor_value("y", ir::DType::kFloat32, {ir::Dim::symbolic("n"), ir::Dim(4)}));
  auto [opt, report] = optimize_and_compare(m, passes::Level::kBasic);
  EXPECT_EQ(opt.graph.nodes.size(), 1u);
  EXPECT_EQ(count_ops(opt, "Add"), 1);
  EXPECT_FALSE(opt.graph.initializers.count("unused_weight"));
  EXPECT_TRUE(opt.graph.initializers.count("w"));
  EXPECT_EQ(report.count("nodes removed"), 2);
}

TEST(IdentityElimination, RemovesPassThroughsIncludingBeforeAGraphOutput) {
  ir::Model m = new_ir_model(14);
  GraphBuilder b(m.graph);
  m.graph.inputs.push_back(tensor_value("x", ir::DType::kFloat32, {ir::Dim::symbolic("n"), ir::Dim(4)}));
  std::string a = b.add("Identity", {"x"});
  std::string r = b.add("Relu", {a});
  std::string d = b.add("Dropout", {r});
  std::string c = b.add("Cast", {d}, {int_attr("to", 1)});  // float -> float: no-op
  std::string shape = b.constant_ints({0, 4});
  std::string s = b.add("Reshape", {c, shape});  // [n,4] -> [n,4]
  std::string e = b.add("Exp", {s});
  b.add_named("Identity", {e}, "y");  // a graph output: Exp must take its name
  m.graph.outputs.push_back(tensor_value("y", ir::DType::kFloat32, {ir::Dim::symbolic("n"), ir::Dim(4)}));
  auto [opt, report] = optimize_and_compare(m, passes::Level::kBasic);
  EXPECT_EQ(count_ops(opt, "Identity"), 0);
  EXPECT_EQ(count_ops(opt, "Dropout"), 0);
  EXPECT_EQ(count_ops(opt, "Cast"), 0);
  EXPECT_EQ(count_ops(opt, "Reshape"), 0);
  EXPECT_EQ(opt.graph.nodes.size(), 2u);  // Relu, Exp
  EXPECT_EQ(opt.graph.nodes.back().op_type, "Exp");
  EXPECT_EQ(opt.graph.nodes.back().outputs[0], "y");
}

TEST(IdentityElimination, KeepsCastsAndReshapesThatChangeSomething) {
  ir::Model m = new_ir_model(14);
  GraphBuilder b(m.graph);
  m.graph.inputs.push_back(tensor_value("x", ir::DType::kFloat32, {ir::Dim::symbolic("n"), ir::Dim(4)}));
  std::string c = b.add("Cast", {"x"}, {int_attr("to", static_cast<int64_t>(ir::DType::kFloat64))});
  std::string s = b.add("Reshape", {c, b.constant_ints({-1, 2, 2})});
  std::string d = b.add("Dropout", {s, b.constant_float(0.5f), b.constant(ir::Tensor::scalar<bool>(true))});
  b.add_named("Identity", {d}, "y");
  b.add_named("Identity", {"x"}, "z");  // reads a graph input and writes a graph output: must stay
  m.graph.outputs.push_back(tensor_value("y", ir::DType::kFloat64, {ir::Dim::symbolic("n"), ir::Dim(2), ir::Dim(2)}));
  m.graph.outputs.push_back(tensor_value("z", ir::DType::kFloat32, {ir::Dim::symbolic("n"), ir::Dim(4)}));
  ir::Model opt = m;
  passes::OptimizationReport report = passes::optimize(opt, {});
  EXPECT_EQ(count_ops(opt, "Cast"), 1);
  EXPECT_EQ(count_ops(opt, "Reshape"), 1);
  EXPECT_EQ(count_ops(opt, "Dropout"), 1);  // training mode: a random mask
  // y = Identity(Dropout(...)): Dropout now writes y. z = Identity(x) stays: x is a graph input.
  EXPECT_EQ(count_ops(opt, "Identity"), 1);
  EXPECT_EQ(opt.graph.nodes.back().outputs[0], "z");
  EXPECT_NE(report.to_text().find("its output is a graph output"), std::string::npos) << report.to_text();
}

// Pads that are all zero (any mode) go, including one before a graph output; pads that are not, or not
// constant, stay.
TEST(IdentityElimination, RemovesAllZeroPads) {
  ir::Model m = new_ir_model(18);
  GraphBuilder b(m.graph);
  m.graph.inputs.push_back(tensor_value("x", ir::DType::kFloat32, {ir::Dim::symbolic("n"), ir::Dim(4)}));
  m.graph.inputs.push_back(tensor_value("p", ir::DType::kInt64, {ir::Dim(4)}));
  std::string z = b.add("Pad", {"x", b.constant_ints({0, 0, 0, 0})});
  std::string r = b.add("Relu", {z});
  ir::Attribute reflect;
  reflect.name = "mode";
  reflect.kind = ir::Attribute::Kind::kString;
  reflect.s = "reflect";
  std::string e = b.add("Pad", {r, b.constant_ints({0, 0, 0, 0})}, {reflect});
  std::string kept = b.add("Pad", {e, b.constant_ints({0, 1, 0, 2})});
  std::string computed = b.add("Pad", {kept, "p"});  // not constant: stays
  b.add_named("Pad", {b.add("Exp", {computed}), b.constant_ints({0, 0})}, "y");  // only the axes it names
  ir::Node& last = m.graph.nodes.back();
  last.inputs.push_back("");
  last.inputs.push_back(b.constant_ints({1}));
  m.graph.outputs.push_back(tensor_value("y", ir::DType::kFloat32, {}));
  passes::OptimizeOptions options;
  options.level = passes::Level::kBasic;
  testing::Feeds feeds = {{"x", ir::Tensor::from_vector<float>({1, -2, 3, -4, 5, -6, 7, -8}, {2, 4})},
                          {"p", ir::Tensor::from_vector<int64_t>({1, 0, 0, 1}, {4})}};
  auto [opt, report] = testing::optimize_and_compare(m, options, feeds, 1e-6);
  EXPECT_EQ(count_ops(opt, "Pad"), 2);  // the one with pads, the computed one
  EXPECT_EQ(opt.graph.nodes.back().op_type, "Exp");
  EXPECT_EQ(opt.graph.nodes.back().outputs[0], "y");
}

TEST(ConstantFolding, FoldsWeightTransposesAndShapeArithmetic) {
  ir::Model m = new_ir_model();
  GraphBuilder b(m.graph);
  m.graph.inputs.push_back(tensor_value("x", ir::DType::kFloat32, {ir::Dim::symbolic("n"), ir::Dim(3)}));
  std::string w = b.initializer("w", ir::Tensor::from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3}));
  std::string wt = b.add("Transpose", {w}, {ints_attr("perm", {1, 0})});
  std::string xw = b.add("MatMul", {"x", wt});
  // Shape arithmetic on constants: Concat([1], [2]) -> [1, 2] as Reshape's target... of a batch of n.
  std::string target = b.add("Concat", {b.constant_ints({-1}), b.constant_ints({2})}, {int_attr("axis", 0)});
  b.add_named("Reshape", {xw, target}, "y");
  m.graph.outputs.push_back(tensor_value("y", ir::DType::kFloat32, {ir::Dim::symbolic("n"), ir::Dim(2)}));
  auto [opt, report] = optimize_and_compare(m, passes::Level::kBasic);
  EXPECT_EQ(count_ops(opt, "Transpose"), 0);
  EXPECT_EQ(count_ops(opt, "Concat"), 0);
  EXPECT_EQ(count_ops(opt, "Constant"), 0);  // read only by folded nodes, then dead
  EXPECT_EQ(report.count("Transpose folded"), 1);
  EXPECT_EQ(report.count("Concat folded"), 1);
  ASSERT_TRUE(opt.graph.initializers.count(wt));
  EXPECT_EQ(opt.graph.initializers.at(wt).shape(), (std::vector<int64_t>{3, 2}));
  EXPECT_FALSE(opt.graph.initializers.count("w"));  // nothing reads the original any more
}

// An If whose branches compute their weights from Constant nodes (as silero-vad's do, one model per sample
// rate): folded inside each branch, so that the branch's MatMul reads an initializer of its own graph.
TEST(ConstantFolding, FoldsInsideSubgraphs) {
  ir::Model m = new_ir_model();
  GraphBuilder b(m.graph);
  m.graph.inputs.push_back(tensor_value("cond", ir::DType::kBool, {}));
  m.graph.inputs.push_back(tensor_value("x", ir::DType::kFloat32, {ir::Dim::symbolic("n"), ir::Dim(3)}));
  // The then-branch reads its weights from the enclosing graph's initializer, the else-branch from a
  // Constant of its own.
  b.initializer("w_outer", ir::Tensor::from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3}));
  auto branch = [](float scale, const std::string& out) {
    auto body = std::make_shared<ir::Graph>();
    body->name = out + "_body";
    GraphBuilder bb(*body);
    std::string w = out == "t" ? std::string("w_outer")
                               : bb.constant(ir::Tensor::from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3}));
    std::string ws = bb.add("Mul", {w, bb.constant_float(scale)});
    std::string wt = bb.add("Transpose", {ws}, {ints_attr("perm", {1, 0})});
    bb.add_named("MatMul", {"x", wt}, out);  // x from the enclosing graph
    body->outputs.push_back(tensor_value(out, ir::DType::kFloat32, {ir::Dim::symbolic("n"), ir::Dim(2)}));
    return body;
  };
  ir::Attribute then_branch, else_branch;
  then_branch.name = "then_branch";
  then_branch.kind = ir::Attribute::Kind::kGraph;
  then_branch.g = branch(2.0f, "t");
  else_branch.name = "else_branch";
  else_branch.kind = ir::Attribute::Kind::kGraph;
  else_branch.g = branch(-1.0f, "e");
  ir::Node n;
  n.name = "if";
  n.op_type = "If";
  n.inputs = {"cond"};
  n.outputs = {"y"};
  n.attributes = {then_branch, else_branch};
  m.graph.nodes.push_back(std::move(n));
  m.graph.outputs.push_back(tensor_value("y", ir::DType::kFloat32, {ir::Dim::symbolic("n"), ir::Dim(2)}));
  for (bool cond : {true, false}) {
    testing::Feeds feeds = testing::random_feeds(m, {{"n", 3}}, 1);
    feeds["cond"] = ir::Datum(ir::Tensor::scalar<bool>(cond));
    passes::OptimizeOptions options;
    options.level = passes::Level::kBasic;
    testing::Optimized o = testing::optimize_and_compare(m, options, feeds, 1e-6);
    ASSERT_EQ(o.model.graph.nodes.size(), 1u);
    for (const ir::Attribute& a : o.model.graph.nodes[0].attributes) {
      const ir::Graph& body = *a.g;
      ASSERT_EQ(body.nodes.size(), 1u) << a.name;  // the MatMul alone
      EXPECT_EQ(body.nodes[0].op_type, "MatMul");
      ASSERT_TRUE(body.initializers.count(body.nodes[0].inputs[1])) << a.name;
      EXPECT_EQ(body.initializers.at(body.nodes[0].inputs[1]).shape(), (std::vector<int64_t>{3, 2}));
      EXPECT_EQ(body.initializers.size(), 1u) << a.name;  // the unfolded weights are gone
    }
    EXPECT_FALSE(o.model.graph.initializers.count("w_outer"));  // no body reads it any more
  }
}

TEST(ConstantFolding, LeavesRandomOpsBigOutputsAndInputs) {
  ir::Model m = new_ir_model();
  GraphBuilder b(m.graph);
  m.graph.inputs.push_back(tensor_value("x", ir::DType::kFloat32, {ir::Dim(2)}));
  std::string r = b.add("RandomUniform", {}, {ints_attr("shape", {2})});
  // 2^20 floats (4 MiB) from a scalar: over a 1 MiB budget.
  std::string big = b.add("Expand", {b.constant_float(1.0f), b.constant_ints({1 << 20})});
  std::string sum = b.add("ReduceSum", {big}, {int_attr("keepdims", 0)});
  std::string xr = b.add("Add", {"x", r});
  b.add_named("Add", {xr, sum}, "y");
  m.graph.outputs.push_back(tensor_value("y", ir::DType::kFloat32, {ir::Dim(2)}));
  ir::Model opt = m;
  passes::OptimizeOptions options;
  options.fold_budget_bytes = 1 << 20;
  options.target = passes::Target::kOnnxRuntime;  // the two Adds stay Adds (no elementwise chain)
  passes::OptimizationReport report = passes::optimize(opt, options);
  EXPECT_EQ(count_ops(opt, "RandomUniform"), 1);
  EXPECT_EQ(count_ops(opt, "Expand"), 1);
  EXPECT_EQ(count_ops(opt, "Add"), 2);
  EXPECT_NE(report.to_text().find("memory budget of 1048576 bytes"), std::string::npos) << report.to_text();
}

TEST(Optimizer, ReportNamesEveryPassAndHistograms) {
  ir::Model m = new_ir_model();
  GraphBuilder b(m.graph);
  m.graph.inputs.push_back(tensor_value("x", ir::DType::kFloat32, {ir::Dim(2)}));
  b.add_named("Identity", {b.add("Relu", {"x"})}, "y");
  m.graph.outputs.push_back(tensor_value("y", ir::DType::kFloat32, {ir::Dim(2)}));
  passes::OptimizationReport report = passes::optimize(m, {});
  std::string text = report.to_text();
  for (const auto& p : passes::pipeline()) EXPECT_NE(text.find(p.name), std::string::npos) << p.name;
  for (const auto& p : passes::finishing_passes()) EXPECT_NE(text.find(p.name), std::string::npos) << p.name;
  EXPECT_NE(text.find("2 nodes -> 1 nodes"), std::string::npos) << text;
  EXPECT_NE(text.find("ops before: Identity 1, Relu 1"), std::string::npos) << text;
  EXPECT_NE(text.find("ops after: Relu 1"), std::string::npos) << text;
  EXPECT_NE(report.to_json().find("\"nodes_after\": 1"), std::string::npos) << report.to_json();
  EXPECT_THROW(passes::parse_level("max"), Error);
}

// The bundled torch export and kiln's own export stay numerically the same after the basic passes.
TEST(Optimizer, BertTinyOutputsUnchangedByBasicPasses) {
  ir::Model m = runtime::Session::load(KILN_SOURCE_DIR "/tests/data/bert-tiny/model.onnx",
                                       [] {
                                         runtime::SessionOptions o;
                                         o.optimization = passes::Level::kNone;
                                         o.fast_kernels = false;
                                         return o;
                                       }())
                    .model();
  auto [opt, report] = optimize_and_compare(m, passes::Level::kBasic);
  EXPECT_LE(opt.graph.nodes.size(), m.graph.nodes.size());
}

TEST(CommonSubexpressionElimination, MergesEqualNodesAndConstants) {
  ir::Model m = new_ir_model();
  GraphBuilder b(m.graph);
  m.graph.inputs.push_back(tensor_value("x", ir::DType::kFloat32, {ir::Dim::symbolic("n"), ir::Dim(4)}));
  std::string s1 = b.add("Shape", {"x"}), s2 = b.add("Shape", {"x"});
  std::string c1 = b.constant_ints({0}), c2 = b.constant_ints({0}), c3 = b.constant_ints({1});
  std::string g1 = b.add("Gather", {s1, c1}), g2 = b.add("Gather", {s2, c2}), g3 = b.add("Gather", {s2, c3});
  std::string e1 = b.add("Exp", {"x"}), e2 = b.add("Exp", {"x"});
  std::string r1 = b.add("RandomUniformLike", {"x"}), r2 = b.add("RandomUniformLike", {"x"});
  std::string sum = b.add("Add", {b.add("Add", {e1, e2}), b.add("Sub", {r1, r2})});
  std::string dims = b.add("Concat", {g1, g2, g3}, {int_attr("axis", 0)});
  b.add_named("Identity", {sum}, "y");
  b.add_named("Cast", {dims}, "d", {int_attr("to", 1)});
  m.graph.outputs.push_back(tensor_value("y", ir::DType::kFloat32, {ir::Dim::symbolic("n"), ir::Dim(4)}));
  m.graph.outputs.push_back(tensor_value("d", ir::DType::kFloat32, {ir::Dim(3)}));
  ir::Model opt = m;
  passes::OptimizationReport report = passes::optimize(opt, {});
  EXPECT_EQ(count_ops(opt, "Shape"), 1);
  EXPECT_EQ(count_ops(opt, "Exp"), 1);
  EXPECT_EQ(count_ops(opt, "Gather"), 1);             // the two dim-0 Gathers merged; dim 1 (static 4) folded
  EXPECT_EQ(count_ops(opt, "RandomUniformLike"), 2);  // two draws are not one draw
  EXPECT_EQ(report.count("Shape merged"), 1);
  EXPECT_EQ(report.count("Constant merged"), 1);
}

TEST(TransposeReshapeChains, CollapseAndCancel) {
  ir::Model m = new_ir_model();
  GraphBuilder b(m.graph);
  m.graph.inputs.push_back(tensor_value("x", ir::DType::kFloat32, {ir::Dim(2), ir::Dim(3), ir::Dim(4)}));
  std::string t1 = b.add("Transpose", {"x"}, {ints_attr("perm", {1, 0, 2})});
  std::string t2 = b.add("Transpose", {t1}, {ints_attr("perm", {2, 0, 1})});  // -> x perm [2,1,0]
  std::string r1 = b.add("Reshape", {t2, b.constant_ints({4, 6})});
  std::string r2 = b.add("Reshape", {r1, b.constant_ints({24})});
  std::string u = b.add("Unsqueeze", {r2, b.constant_ints({0})});
  std::string sq = b.add("Squeeze", {u, b.constant_ints({0})});
  std::string back1 = b.add("Transpose", {"x"}, {ints_attr("perm", {0, 2, 1})});
  std::string back2 = b.add("Transpose", {back1}, {ints_attr("perm", {0, 2, 1})});  // identity overall
  b.add_named("Relu", {sq}, "y");
  b.add_named("Relu", {back2}, "z");
  m.graph.outputs.push_back(tensor_value("y", ir::DType::kFloat32, {ir::Dim(24)}));
  m.graph.outputs.push_back(tensor_value("z", ir::DType::kFloat32, {ir::Dim(2), ir::Dim(3), ir::Dim(4)}));
  auto [opt, report] = optimize_and_compare(m, passes::Level::kBasic);
  EXPECT_EQ(count_ops(opt, "Transpose"), 1);
  EXPECT_EQ(count_ops(opt, "Reshape"), 1);
  EXPECT_EQ(count_ops(opt, "Unsqueeze"), 0);
  EXPECT_EQ(count_ops(opt, "Squeeze"), 0);
  EXPECT_EQ(opt.graph.nodes.size() - count_ops(opt, "Constant"), 4u);  // Transpose, Reshape, Relu, Relu
}

TEST(TransposeReshapeChains, KeepsSharedInnerNodesAndCopyDims) {
  ir::Model m = new_ir_model();
  GraphBuilder b(m.graph);
  m.graph.inputs.push_back(tensor_value("x", ir::DType::kFloat32, {ir::Dim(2), ir::Dim(3), ir::Dim(4)}));
  std::string t1 = b.add("Transpose", {"x"}, {ints_attr("perm", {1, 0, 2})});
  std::string t2 = b.add("Transpose", {t1}, {ints_attr("perm", {2, 0, 1})});
  std::string r1 = b.add("Reshape", {"x", b.constant_ints({6, 4})});
  std::string r2 = b.add("Reshape", {r1, b.constant_ints({0, 2, 2})});  // 0 copies r1's dim: must stay
  b.add_named("Relu", {t2}, "y");
  b.add_named("Relu", {t1}, "z");  // t1 has a second reader
  b.add_named("Relu", {r2}, "w");
  m.graph.outputs.push_back(tensor_value("y", ir::DType::kFloat32, {ir::Dim(4), ir::Dim(3), ir::Dim(2)}));
  m.graph.outputs.push_back(tensor_value("z", ir::DType::kFloat32, {ir::Dim(3), ir::Dim(2), ir::Dim(4)}));
  m.graph.outputs.push_back(tensor_value("w", ir::DType::kFloat32, {ir::Dim(6), ir::Dim(2), ir::Dim(2)}));
  auto [opt, report] = optimize_and_compare(m, passes::Level::kBasic);
  EXPECT_EQ(count_ops(opt, "Transpose"), 2);
  EXPECT_EQ(count_ops(opt, "Reshape"), 2);
}

ir::Tensor ramp(std::vector<int64_t> shape, float scale, float offset) {
  ir::Tensor t(ir::DType::kFloat32, shape);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = offset + scale * std::sin(1.3f * i + 0.2f);
  return t;
}

TEST(ConvFolding, BatchNormMulAndAddFoldIntoConvWeights) {
  for (const char* follower : {"BatchNormalization", "Mul", "Add"}) {
    ir::Model m = new_ir_model();
    GraphBuilder b(m.graph);
    m.graph.inputs.push_back(tensor_value("x", ir::DType::kFloat32, {ir::Dim(1), ir::Dim(2), ir::Dim(5), ir::Dim(5)}));
    std::string w = b.initializer("w", ramp({3, 2, 3, 3}, 0.5f, 0.0f));
    std::string bias = b.initializer("b", ramp({3}, 0.1f, 0.05f));
    std::string conv =
        b.add("Conv", {"x", w, bias}, {ints_attr("kernel_shape", {3, 3}), ints_attr("pads", {1, 1, 1, 1})});
    if (std::string(follower) == "BatchNormalization")
      b.add_named("BatchNormalization",
                  {conv, b.initializer("s", ramp({3}, 0.3f, 1.0f)), b.initializer("o", ramp({3}, 0.2f, 0.0f)),
                   b.initializer("mean", ramp({3}, 0.1f, 0.0f)), b.initializer("var", ramp({3}, 0.1f, 0.5f))},
                  "y", {exporter::float_attr("epsilon", 1e-3f)});
    else
      b.add_named(follower, {conv, b.initializer("c", ramp({3, 1, 1}, 0.4f, 1.0f))}, "y");
    m.graph.outputs.push_back(tensor_value("y", ir::DType::kFloat32, {ir::Dim(1), ir::Dim(3), ir::Dim(5), ir::Dim(5)}));
    auto [opt, report] = optimize_and_compare(m, passes::Level::kBasic);
    EXPECT_EQ(opt.graph.nodes.size(), 1u) << follower;
    EXPECT_EQ(count_ops(opt, "Conv"), 1) << follower;
    EXPECT_EQ(report.count(std::string(follower) + " folded into Conv"), 1) << report.to_text();
  }
}

// ConvTranspose weights are [C_in, C_out/group, k...]: with two groups, output channel c of group g scales
// rows g*C_in/2 .. of dim 0 at column c - g*C_out/2 of dim 1.
TEST(ConvFolding, BatchNormMulAndAddFoldIntoGroupedConvTransposeWeights) {
  for (const char* follower : {"BatchNormalization", "Mul", "Add"}) {
    ir::Model m = new_ir_model();
    GraphBuilder b(m.graph);
    m.graph.inputs.push_back(tensor_value("x", ir::DType::kFloat32, {ir::Dim(1), ir::Dim(4), ir::Dim(3), ir::Dim(3)}));
    std::string w = b.initializer("w", ramp({4, 3, 2, 2}, 0.5f, 0.0f));  // C_out = 3 * 2 groups
    std::string conv = b.add("ConvTranspose", {"x", w},
                             {ints_attr("kernel_shape", {2, 2}), ints_attr("strides", {2, 2}), int_attr("group", 2)});
    if (std::string(follower) == "BatchNormalization")
      b.add_named("BatchNormalization",
                  {conv, b.initializer("s", ramp({6}, 0.3f, 1.0f)), b.initializer("o", ramp({6}, 0.2f, 0.0f)),
                   b.initializer("mean", ramp({6}, 0.1f, 0.0f)), b.initializer("var", ramp({6}, 0.1f, 0.5f))},
                  "y", {exporter::float_attr("epsilon", 1e-3f)});
    else
      b.add_named(follower, {conv, b.initializer("c", ramp({6, 1, 1}, 0.4f, 1.0f))}, "y");
    m.graph.outputs.push_back(tensor_value("y", ir::DType::kFloat32, {ir::Dim(1), ir::Dim(6), ir::Dim(6), ir::Dim(6)}));
    auto [opt, report] = optimize_and_compare(m, passes::Level::kBasic);
    EXPECT_EQ(opt.graph.nodes.size(), 1u) << follower;
    EXPECT_EQ(count_ops(opt, "ConvTranspose"), 1) << follower;
    EXPECT_EQ(report.count(std::string(follower) + " folded into ConvTranspose"), 1) << report.to_text();
  }
}

TEST(ConvFolding, LeavesNonChannelScalesAlone) {
  ir::Model m = new_ir_model();
  GraphBuilder b(m.graph);
  m.graph.inputs.push_back(tensor_value("x", ir::DType::kFloat32, {ir::Dim(1), ir::Dim(2), ir::Dim(4), ir::Dim(4)}));
  std::string w = b.initializer("w", ramp({3, 2, 1, 1}, 0.5f, 0.0f));
  std::string conv = b.add("Conv", {"x", w}, {ints_attr("kernel_shape", {1, 1})});
  b.add_named("Mul", {conv, b.initializer("c", ramp({1, 1, 4, 1}, 0.4f, 1.0f))}, "y");  // varies along H
  m.graph.outputs.push_back(tensor_value("y", ir::DType::kFloat32, {ir::Dim(1), ir::Dim(3), ir::Dim(4), ir::Dim(4)}));
  auto [opt, report] = optimize_and_compare(m, passes::Level::kBasic);
  EXPECT_EQ(opt.graph.nodes.size(), 2u);
}

TEST(MatMulAddFusion, TwoDimensionalBecomesGemm) {
  ir::Model m = new_ir_model();
  GraphBuilder b(m.graph);
  m.graph.inputs.push_back(tensor_value("x", ir::DType::kFloat32, {ir::Dim::symbolic("n"), ir::Dim(4)}));
  m.graph.inputs.push_back(tensor_value("x3", ir::DType::kFloat32, {ir::Dim(2), ir::Dim::symbolic("n"), ir::Dim(4)}));
  std::string w = b.initializer("w", ramp({4, 3}, 0.5f, 0.0f));
  std::string bias = b.initializer("bias", ramp({3}, 0.5f, 0.1f));
  b.add_named("Add", {bias, b.add("MatMul", {"x", w})}, "y");
  b.add_named("Add", {b.add("MatMul", {"x3", w}), bias}, "y3");  // 3-D: stays MatMul + Add
  m.graph.outputs.push_back(tensor_value("y", ir::DType::kFloat32, {ir::Dim::symbolic("n"), ir::Dim(3)}));
  m.graph.outputs.push_back(tensor_value("y3", ir::DType::kFloat32, {ir::Dim(2), ir::Dim::symbolic("n"), ir::Dim(3)}));
  auto [opt, report] = optimize_and_compare(m, passes::Level::kBasic);
  EXPECT_EQ(count_ops(opt, "Gemm"), 1);
  EXPECT_EQ(count_ops(opt, "MatMul"), 1);
  EXPECT_EQ(count_ops(opt, "Add"), 1);
}

TEST(ConvActivationFusion, ActivationsOrtSupportsBecomeFusedConv) {
  for (const char* act : {"Relu", "Sigmoid", "Tanh", "LeakyRelu", "HardSigmoid", "Clip", "HardSwish"}) {
    ir::Model m = new_ir_model();
    GraphBuilder b(m.graph);
    m.graph.inputs.push_back(tensor_value("x", ir::DType::kFloat32, {ir::Dim(1), ir::Dim(2), ir::Dim(5), ir::Dim(5)}));
    std::string w = b.initializer("w", ramp({3, 2, 3, 3}, 0.5f, 0.0f));
    std::string conv = b.add("Conv", {"x", w}, {ints_attr("kernel_shape", {3, 3})});
    if (std::string(act) == "Clip")
      b.add_named("Clip", {conv, b.constant_float(-0.5f), b.constant_float(0.7f)}, "y");
    else if (std::string(act) == "LeakyRelu")
      b.add_named("LeakyRelu", {conv}, "y", {exporter::float_attr("alpha", 0.3f)});
    else
      b.add_named(act, {conv}, "y");
    m.graph.outputs.push_back(tensor_value("y", ir::DType::kFloat32, {ir::Dim(1), ir::Dim(3), ir::Dim(3), ir::Dim(3)}));
    auto [opt, report] = optimize_and_compare(m, passes::Level::kAll, passes::Target::kOnnxRuntime);
    const bool supported = std::string(act) != "HardSwish";
    EXPECT_EQ(count_ops(opt, "com.microsoft.FusedConv"), supported ? 1 : 0) << act;
    EXPECT_EQ(count_ops(opt, "Conv"), supported ? 0 : 1) << act;
    if (supported) {
      EXPECT_EQ(report.count(std::string("FusedConv ") + act), 1) << act;
      EXPECT_EQ(opt.opset("com.microsoft"), 1);
    } else {
      EXPECT_NE(report.to_text().find("HardSwish is not an activation"), std::string::npos) << report.to_text();
    }
  }
}

TEST(ShapeFolding, StaticDimsOfShapesBecomeConstants) {
  ir::Model m = new_ir_model();
  GraphBuilder b(m.graph);
  m.graph.inputs.push_back(tensor_value("x", ir::DType::kFloat32, {ir::Dim::symbolic("n"), ir::Dim(4)}));
  // An overridable initializer (also a graph input): what is computed from its value must stay.
  m.graph.inputs.push_back(tensor_value("k", ir::DType::kInt64, {ir::Dim(1)}));
  b.initializer("k", ir::Tensor::from_vector<int64_t>({2}, {1}));
  std::string shape = b.add("Shape", {"x"});
  std::string four = b.add("Gather", {shape, b.constant_int(1)}, {int_attr("axis", 0)});  // static: 4
  std::string n = b.add("Gather", {shape, b.constant_int(0)}, {int_attr("axis", 0)});     // symbolic: stays
  std::string target = b.add("Concat",
                             {b.add("Unsqueeze", {n, b.constant_ints({0})}), b.constant_ints({2}),
                              b.add("Div", {b.add("Unsqueeze", {four, b.constant_ints({0})}), "k"})},
                             {int_attr("axis", 0)});
  b.add_named("Reshape", {"x", target}, "y");
  m.graph.outputs.push_back(tensor_value("y", ir::DType::kFloat32, {ir::Dim::symbolic("n"), ir::Dim(2), ir::Dim(2)}));
  auto [opt, report] = optimize_and_compare(m, passes::Level::kBasic);
  EXPECT_EQ(count_ops(opt, "Gather"), 1);     // the static one folded
  EXPECT_EQ(count_ops(opt, "Unsqueeze"), 1);  // Unsqueeze(4) folded; Unsqueeze(n) stays
  EXPECT_EQ(count_ops(opt, "Div"), 1);        // reads the overridable k
  EXPECT_GE(report.count("Gather folded from static shapes"), 1);
}

}  // namespace
}  // namespace kiln
