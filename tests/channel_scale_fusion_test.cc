// A squeeze-and-excitation gate (a Mul of X by a per-image, per-channel scale) moved into the channels-last
// 1x1 convolution after it as ai.kiln.FusedConv's fifth input S (passes/channel_scale_fusion.cc): the whole
// optimizer on an SE block in NCHW, outputs unchanged and the Mul gone; what it leaves alone (more than 256
// input channels, a 3x3 convolution, a Mul read twice, target ort).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "contrib_test_util.h"
#include "pass_test_util.h"
#include "passes/passes.h"

namespace kiln {
namespace {

using testing::contrib::attr_ints;
using testing::contrib::attr_string;
using testing::contrib::Random;
using testing::contrib::TestGraph;

constexpr double kTol = 1e-4;

struct SeBlock {
  int64_t channels = 16;
  int64_t kernel = 1;            // of the convolution after the gate
  bool gate_read_twice = false;  // the gated X is a graph output too
};

// x [2, C, 6, 5] -> Conv 3x3 -> Relu -> y; GlobalAveragePool(y) -> Conv 1x1 (Relu) -> Conv 1x1 -> Sigmoid
// = s; y * s -> Conv kxk (C -> 8) + z (a residual Add) -> out.
TestGraph se_block(const SeBlock& c, uint32_t seed) {
  Random rng(seed);
  TestGraph g(17);
  const int64_t ch = c.channels;
  g.input("x", rng.floats({2, ch, 6, 5}));
  g.constant("w0", rng.floats({ch, ch, 3, 3}, -0.3f, 0.3f));
  g.node("Conv", {"x", "w0"}, {"c0"}, {attr_ints("kernel_shape", {3, 3}), attr_ints("pads", {1, 1, 1, 1})});
  g.node("Relu", {"c0"}, {"y"});
  g.node("GlobalAveragePool", {"y"}, {"pooled"});
  g.constant("w1", rng.floats({4, ch, 1, 1}));
  g.node("Conv", {"pooled", "w1", g.constant("b1", rng.floats({4}))}, {"squeezed0"},
         {attr_ints("kernel_shape", {1, 1})});
  g.node("Relu", {"squeezed0"}, {"squeezed"});
  g.constant("w2", rng.floats({ch, 4, 1, 1}));
  g.node("Conv", {"squeezed", "w2"}, {"excited"}, {attr_ints("kernel_shape", {1, 1})});
  g.node("Sigmoid", {"excited"}, {"s"});
  g.node("Mul", {"y", "s"}, {"gated"});
  const int64_t k = c.kernel;
  g.constant("w3", rng.floats({8, ch, k, k}));
  g.node("Conv", {"gated", "w3", g.constant("b3", rng.floats({8}))}, {"projected"},
         {attr_ints("kernel_shape", {k, k}), attr_ints("pads", {k / 2, k / 2, k / 2, k / 2})});
  g.node("Add", {"projected", g.input("z", rng.floats({2, 8, 6, 5}))}, {"out"});
  g.output("out");
  if (c.gate_read_twice) g.output("gated");
  return g;
}

testing::Optimized optimize(const TestGraph& g, passes::Target target = passes::Target::kKiln) {
  passes::OptimizeOptions options;
  options.target = target;
  return testing::optimize_and_compare(g.model(), options, g.feeds(), kTol);
}

TEST(ChannelScaleFusion, MovesTheGateIntoTheConvolutionAfterIt) {
  const TestGraph g = se_block({}, 3);
  const testing::Optimized o = optimize(g);
  SCOPED_TRACE(o.text());
  EXPECT_EQ(o.ops("Mul"), 0);
  EXPECT_EQ(o.changed("FusedConv Mul+FusedConv"), 1);
  const ir::Node* conv = o.writer_of("out");
  ASSERT_NE(conv, nullptr);
  // The layout passes leave a Transpose after the convolution; the FusedConv writes what it reads.
  for (const ir::Node& n : o.model.graph.nodes) {
    if (n.op_type != "FusedConv" || n.inputs.size() != 5) continue;
    EXPECT_EQ(n.domain, "ai.kiln");
    EXPECT_FALSE(n.inputs[3].empty());  // Z, the residual Add's operand
    return;
  }
  ADD_FAILURE() << "no FusedConv with a channel scale";
}

TEST(ChannelScaleFusion, LeavesWhatItDoesNotSpeedUp) {
  struct Case {
    SeBlock block;
    passes::Target target;
  };
  const std::vector<Case> cases = {
      {{300, 1, false}, passes::Target::kKiln},  // more input channels than kiln's kernel runs well
      {{16, 3, false}, passes::Target::kKiln},   // not a 1x1 convolution
      {{16, 1, true}, passes::Target::kKiln},    // the gated X is read by another node too
      {{16, 1, false}, passes::Target::kOnnxRuntime},
  };
  uint32_t seed = 7;
  for (const Case& c : cases) {
    const testing::Optimized o = optimize(se_block(c.block, seed++), c.target);
    SCOPED_TRACE(o.text());
    EXPECT_EQ(o.ops("Mul"), 1);
    EXPECT_EQ(o.changed("FusedConv Mul+FusedConv"), 0);
  }
}

}  // namespace
}  // namespace kiln
