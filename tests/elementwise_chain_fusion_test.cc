// fuse_elementwise_chains: runs of elementwise ops become one ai.kiln.ElementwiseChain that computes
// exactly what they did (fast and reference kernels); what is not a chain stays (a value read twice, a
// broadcast that grows the value, a non-constant exponent, target ort); and the op's own errors.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "contrib_test_util.h"
#include "pass_test_util.h"
#include "passes/optimizer.h"
#include "passes/passes.h"
#include "runtime/session.h"

namespace kiln {
namespace {

using testing::contrib::attr_floats;
using testing::contrib::attr_ints;
using testing::contrib::attr_strings;
using testing::contrib::Random;
using testing::contrib::scalar;
using testing::contrib::TestGraph;

constexpr const char* kChain = "ai.kiln.ElementwiseChain";

// ConvNeXt's layer-scale block, channels last: x + bias, * gamma, + residual.
TestGraph layer_scale() {
  TestGraph g(17);
  Random rng(3);
  g.input("x", rng.floats({2, 5, 7, 19}));
  g.input("residual", rng.floats({2, 5, 7, 19}));
  g.constant("bias", rng.floats({19}));
  g.constant("gamma", rng.floats({19}));
  g.node("Add", {"x", "bias"}, {"biased"});
  g.node("Mul", {"gamma", "biased"}, {"scaled"});
  g.node("Add", {"residual", "scaled"}, {"y"});
  g.output("y");
  return g;
}

testing::Optimized optimized(const TestGraph& g, passes::Target target = passes::Target::kKiln) {
  passes::OptimizeOptions options;
  options.level = passes::Level::kExtended;
  options.target = target;
  // The unfused results: every step computes as the op it replaced's reference kernel, while the unfused
  // graph runs the single-op fast kernels (unary_elementwise_kernel.cc), whose transcendental steps are
  // within a few ulp of it.
  return testing::optimize_and_compare(g.model(), options, g.feeds(), 1e-6);
}

const ir::Node& only_chain(const ir::Model& m) {
  for (const ir::Node& n : m.graph.nodes)
    if (n.op_type == "ElementwiseChain") return n;
  throw std::runtime_error("no ElementwiseChain");
}

TEST(ElementwiseChainFusion, LayerScaleBecomesOneChainWithTheSameOutputs) {
  testing::Optimized o = optimized(layer_scale());
  EXPECT_EQ(o.ops(kChain), 1);
  EXPECT_EQ(o.ops("Add"), 0);
  EXPECT_EQ(o.ops("Mul"), 0);
  EXPECT_EQ(o.changed("ElementwiseChain"), 1);
  EXPECT_EQ(o.changed("ops in elementwise chains"), 3);
  const ir::Node& n = only_chain(o.model);
  EXPECT_EQ(n.inputs, (std::vector<std::string>{"x", "bias", "gamma", "residual"}));
  EXPECT_EQ(n.find_attribute("ops")->strings, (std::vector<std::string>{"Add", "Mul", "Add"}));
  EXPECT_EQ(n.find_attribute("operands")->ints, (std::vector<int64_t>{1, 2, 3}));
  // The reference kernel gives the same (the fast one ran in optimize_and_compare).
  runtime::SessionOptions ref;
  ref.optimization = passes::Level::kNone;
  ref.fast_kernels = false;
  TestGraph g = layer_scale();
  runtime::Session fused_ref(o.model, ref), original(g.model(), ref);
  EXPECT_EQ(testing::contrib::max_abs_diff(fused_ref.run(g.feeds())[0].tensor, original.run(g.feeds())[0].tensor), 0.0);
}

TEST(ElementwiseChainFusion, RootMeanSquareStepsAndOperandOrder) {
  TestGraph g(17);
  Random rng(5);
  g.input("x", rng.floats({3, 64}, -2.0f, 2.0f));
  g.constant("two", scalar(2.0f));
  g.constant("eps", scalar(1e-3f));
  g.constant("one", scalar(1.0f));
  g.node("Pow", {"x", "two"}, {"squared"});
  g.node("Add", {"squared", "eps"}, {"shifted"});
  g.node("Sqrt", {"shifted"}, {"root"});
  g.node("Div", {"one", "root"}, {"inverse"});  // the chain's value second: DivInto
  g.node("Sub", {"one", "inverse"}, {"y"});       // SubFrom
  g.output("y");
  testing::Optimized o = optimized(g);
  ASSERT_EQ(o.ops(kChain), 1) << o.text();
  EXPECT_EQ(only_chain(o.model).find_attribute("ops")->strings,
            (std::vector<std::string>{"Pow", "Add", "Sqrt", "DivInto", "SubFrom"}));
}

TEST(ElementwiseChainFusion, ActivationsWithAttributesAndClipBounds) {
  for (int64_t opset : {10, 17}) {
    SCOPED_TRACE(::testing::Message() << "opset " << opset);
    TestGraph g(opset);
    Random rng(9);
    g.input("x", rng.floats({4, 33}, -4.0f, 4.0f));
    g.node("LeakyRelu", {"x"}, {"a"}, {testing::contrib::attr_float("alpha", 0.2f)});
    g.node("HardSigmoid", {"a"}, {"b"});
    if (opset < 11) {
      g.node("Clip", {"b"}, {"c"}, {testing::contrib::attr_float("min", 0.1f), testing::contrib::attr_float("max", 0.8f)});
    } else {
      g.constant("lo", scalar(0.1f));
      g.node("Clip", {"b", "lo"}, {"c"});  // no max
    }
    g.node("Sigmoid", {"c"}, {"d"});
    g.node("Tanh", {"d"}, {"y"});
    g.output("y");
    testing::Optimized o = optimized(g);
    EXPECT_EQ(o.ops(kChain), 1) << o.text();
    EXPECT_EQ(o.changed("ops in elementwise chains"), 5);
  }
}

TEST(ElementwiseChainFusion, RoundingLogarithmicAndSwishSteps) {
  TestGraph g(17);
  Random rng(11);
  g.input("x", rng.floats({3, 45}, -6.0f, 6.0f));
  g.node("Elu", {"x"}, {"a"}, {testing::contrib::attr_float("alpha", 0.7f)});
  g.node("HardSwish", {"a"}, {"b"});
  g.node("Softplus", {"b"}, {"c"});  // > 0, so Log is finite
  g.node("Log", {"c"}, {"d"});
  g.node("Floor", {"d"}, {"e"});
  g.node("Ceil", {"e"}, {"f"});
  g.node("Round", {"f"}, {"y"});
  g.output("y");
  testing::Optimized o = optimized(g);
  ASSERT_EQ(o.ops(kChain), 1) << o.text();
  EXPECT_EQ(only_chain(o.model).find_attribute("ops")->strings,
            (std::vector<std::string>{"Elu", "HardSwish", "Softplus", "Log", "Floor", "Ceil", "Round"}));
}

TEST(ElementwiseChainFusion, LeavesWhatIsNotAChain) {
  {  // The middle value read twice: the chain stops before it is needed elsewhere.
    TestGraph g = layer_scale();
    g.output("scaled");
    testing::Optimized o = optimized(g);
    EXPECT_EQ(o.ops(kChain), 1);
    EXPECT_EQ(o.changed("ops in elementwise chains"), 2);  // Add, Mul; the last Add stays
    EXPECT_EQ(o.ops("Add"), 1);
  }
  {  // A broadcast that grows the value is no step; a non-constant exponent neither.
    TestGraph g(17);
    Random rng(2);
    g.input("x", rng.floats({7}));
    g.input("wide", rng.floats({3, 7}));
    g.input("e", rng.floats({1}));
    g.node("Relu", {"x"}, {"r"});
    g.node("Add", {"r", "wide"}, {"grown"});
    g.node("Pow", {"grown", "e"}, {"y"});
    g.output("y");
    testing::Optimized o = optimized(g);
    EXPECT_EQ(o.ops(kChain), 0) << o.text();
  }
  {  // An operand from inside the chain (x * sigmoid(x) read from the chain's middle): not a chain step.
    TestGraph g(17);
    Random rng(4);
    g.input("x", rng.floats({5, 6}));
    g.node("Neg", {"x"}, {"n"});
    g.node("Sigmoid", {"n"}, {"s"});
    g.node("Mul", {"s", "n"}, {"y"});
    g.output("y");
    testing::Optimized o = optimized(g);
    // n has two readers, so Neg ends no chain; Sigmoid -> Mul(n) takes n from outside: one chain of 2.
    EXPECT_EQ(o.ops(kChain), 1) << o.text();
    EXPECT_EQ(o.ops("Neg"), 1);
  }
  // Target ort: ONNX Runtime cannot run kiln's op.
  EXPECT_EQ(optimized(layer_scale(), passes::Target::kOnnxRuntime).ops(kChain), 0);
}

TEST(ElementwiseChainFusion, TheOpSaysWhatIsWrongWithIt) {
  auto run = [](std::vector<std::string> ops, std::vector<int64_t> operands, std::vector<float> params,
                std::vector<int64_t> operand_shape) {
    TestGraph g(17);
    g.import_opset("ai.kiln", 1);
    Random rng(1);
    g.input("x", rng.floats({2, 3}));
    g.input("o", rng.floats(operand_shape));
    g.node("ElementwiseChain", {"x", "o"}, {"y"},
           {attr_strings("ops", ops), attr_ints("operands", operands), attr_floats("params", params)}, "ai.kiln");
    g.output("y");
    runtime::SessionOptions options;
    options.optimization = passes::Level::kNone;
    runtime::Session s(g.model(), options);
    s.run(g.feeds());
  };
  auto message = [&](auto&&... args) {
    try {
      run(args...);
    } catch (const std::exception& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message(std::vector<std::string>{"Add"}, std::vector<int64_t>{1, 0}, std::vector<float>{0, 0},
                    std::vector<int64_t>{3})
                .find("attribute \"operands\" must have one value per step (1), got 2"),
            std::string::npos);
  EXPECT_NE(message(std::vector<std::string>{"Frobnicate"}, std::vector<int64_t>{0}, std::vector<float>{0, 0},
                    std::vector<int64_t>{3})
                .find("step 0: unknown op \"Frobnicate\""),
            std::string::npos);
  EXPECT_NE(message(std::vector<std::string>{"Mul"}, std::vector<int64_t>{2}, std::vector<float>{0, 0},
                    std::vector<int64_t>{3})
                .find("operand 2 is not an input (1..1)"),
            std::string::npos);
  EXPECT_NE(message(std::vector<std::string>{"Mul"}, std::vector<int64_t>{1}, std::vector<float>{0, 0},
                    std::vector<int64_t>{4})
                .find("operand 1 of shape [4] does not broadcast to X's shape [2,3]"),
            std::string::npos)
      << message(std::vector<std::string>{"Mul"}, std::vector<int64_t>{1}, std::vector<float>{0, 0},
                 std::vector<int64_t>{4});
}

}  // namespace
}  // namespace kiln
