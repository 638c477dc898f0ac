// Constant nodes become initializers when a model is prepared (analysis/constant_nodes.h), so that weights
// an exporter wrote as Constant nodes reach the fast kernels that pack constant weights, and `kiln inspect`
// counts them as parameters.
#include <gtest/gtest.h>

#include "analysis/constant_nodes.h"
#include "analysis/model_preparation.h"
#include "analysis/model_summary.h"
#include "contrib_test_util.h"
#include "runtime/profiler.h"
#include "runtime/session.h"

namespace kiln {
namespace {

using testing::contrib::attr_int;
using testing::contrib::max_abs_diff;
using testing::contrib::Random;
using testing::contrib::TestGraph;

ir::Attribute tensor_attr(const std::string& name, const ir::Tensor& t) {
  ir::Attribute a;
  a.name = name;
  a.kind = ir::Attribute::Kind::kTensor;
  a.t = t;
  return a;
}

// y = x . W + 1, W from a Constant node (value), the 1 from another (value_float), as paddle2onnx writes them.
TestGraph matmul_with_constant_node_weights(Random& rng) {
  TestGraph g;
  g.input("x", rng.floats({3, 5}));
  g.node("Constant", {}, {"w"}, {tensor_attr("value", rng.floats({5, 4}))});
  ir::Attribute one;
  one.name = "value_float";
  one.kind = ir::Attribute::Kind::kFloat;
  one.f = 1.0f;
  g.node("Constant", {}, {"one"}, {one});
  g.node("MatMul", {"x", "w"}, {"xw"});
  g.node("Add", {"xw", "one"}, {"y"});
  g.output("y");
  return g;
}

TEST(ConstantNodes, BecomeInitializersAndReachTheFastKernels) {
  Random rng(1);
  TestGraph g = matmul_with_constant_node_weights(rng);
  ir::Model m = g.model();
  analysis::prepare_model(m);
  ASSERT_EQ(m.graph.nodes.size(), 2u);  // MatMul, Add
  EXPECT_EQ(m.graph.nodes[0].op_type, "MatMul");
  ASSERT_TRUE(m.graph.initializers.count("w"));
  EXPECT_EQ(m.graph.initializers.at("w").shape(), (ir::Dims{5, 4}));
  ASSERT_TRUE(m.graph.initializers.count("one"));
  EXPECT_EQ(m.graph.initializers.at("one").data<float>()[0], 1.0f);

  runtime::SessionOptions as_given;
  as_given.optimization = passes::Level::kNone;
  runtime::Session fast(g.model(), as_given);
  EXPECT_EQ(fast.fast_kernel_count(), 2u);  // the MatMul and the Add
  // The MatMul's B is now a constant it packs (and holds, the graph's copy released).
  runtime::Profiler profiler;
  fast.set_profiler(&profiler);
  fast.run(g.feeds());
  fast.set_profiler(nullptr);
  bool packed = false;
  for (const runtime::ProfiledNode& n : profiler.nodes())
    if (n.op_type == "MatMul") packed = n.held_inputs.size() == 1 && n.held_inputs[0].first == 1;
  EXPECT_TRUE(packed);
  as_given.fast_kernels = false;
  runtime::Session ref(g.model(), as_given);
  EXPECT_LE(max_abs_diff(fast.run(g.feeds())[0].tensor, ref.run(g.feeds())[0].tensor), 1e-5);
}

TEST(ConstantNodes, InsideSubgraphsToo) {
  Random rng(2);
  auto branch = std::make_shared<ir::Graph>();
  ir::Node c;
  c.op_type = "Constant";
  c.outputs = {"k"};
  c.attributes = {tensor_attr("value", rng.floats({2}))};
  branch->nodes.push_back(c);
  branch->outputs.push_back({"k", ir::Type(), ""});
  ir::Graph main;
  ir::Node n;
  n.op_type = "If";
  n.inputs = {"cond"};
  n.outputs = {"y"};
  ir::Attribute then_branch;
  then_branch.name = "then_branch";
  then_branch.kind = ir::Attribute::Kind::kGraph;
  then_branch.g = branch;
  n.attributes.push_back(then_branch);
  main.nodes.push_back(n);
  EXPECT_EQ(analysis::constants_to_initializers(main), 1);
  EXPECT_TRUE(branch->nodes.empty());
  EXPECT_TRUE(branch->initializers.count("k"));
  EXPECT_EQ(main.nodes.size(), 1u);
}

TEST(ConstantNodes, StringConstantsStayNodes) {
  ir::Graph g;
  ir::Node strings;
  strings.op_type = "Constant";
  strings.outputs = {"s"};
  ir::Attribute a;
  a.name = "value_strings";
  a.kind = ir::Attribute::Kind::kStrings;
  a.strings = {"a"};
  strings.attributes = {a};
  g.nodes.push_back(strings);
  EXPECT_EQ(analysis::constants_to_initializers(g), 0);
  EXPECT_EQ(g.nodes.size(), 1u);
}

TEST(ConstantNodes, CountAsParametersInTheSummary) {
  Random rng(3);
  TestGraph g = matmul_with_constant_node_weights(rng);
  analysis::ModelSummary s = analysis::summarize(g.model(), {});
  EXPECT_EQ(s.parameter_count, 5 * 4 + 1);
  EXPECT_EQ(s.parameter_bytes, (5 * 4 + 1) * 4);
}

}  // namespace
}  // namespace kiln
