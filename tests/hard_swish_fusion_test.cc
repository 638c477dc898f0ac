// fuse_hard_swish: x * Clip(x + 3, 0, 6) / 6 in its spellings becomes HardSwish (opset 14 on) or
// x * HardSigmoid(x, 1/6, 1/2) (below), with the same outputs; what is not a hard-swish stays; and after a
// Conv the whole optimizer ends in one ai.kiln.FusedConv with HardSwish.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "contrib_test_util.h"
#include "pass_test_util.h"
#include "passes/optimizer.h"
#include "passes/passes.h"

namespace kiln {
namespace {

using testing::Fused;
using testing::contrib::attr_float;
using testing::contrib::Random;
using testing::contrib::scalar;
using testing::contrib::TestGraph;

constexpr double kTol = 1e-5;

enum class Spelling {
  kDivLast,      // Div(Mul(x, clip), 6)
  kMulSixthLast, // Mul(1/6, Mul(clip, x))
  kDivFirst,     // Mul(x, Div(clip, 6))
};

// x [2, 3, 5] (values across every region of the function) -> the hard-swish spelled out -> y.
TestGraph spelled_hard_swish(int64_t opset, Spelling spelling, float three = 3.0f, float six = 6.0f) {
  TestGraph g(opset);
  Random rng(7);
  g.input("x", rng.floats({2, 3, 5}, -5.0f, 5.0f));
  g.constant("three", scalar(three));
  g.node("Add", {"three", "x"}, {"shifted"});
  if (opset < 11) {
    g.node("Clip", {"shifted"}, {"clipped"}, {attr_float("min", 0.0f), attr_float("max", six)});
  } else {
    g.constant("lo", scalar(0.0f));
    g.constant("hi", scalar(six));
    g.node("Clip", {"shifted", "lo", "hi"}, {"clipped"});
  }
  g.constant("six", scalar(6.0f));
  g.constant("sixth", scalar(1.0f / 6.0f));
  switch (spelling) {
    case Spelling::kDivLast:
      g.node("Mul", {"x", "clipped"}, {"product"});
      g.node("Div", {"product", "six"}, {"y"});
      break;
    case Spelling::kMulSixthLast:
      g.node("Mul", {"clipped", "x"}, {"product"});
      g.node("Mul", {"sixth", "product"}, {"y"});
      break;
    case Spelling::kDivFirst:
      g.node("Div", {"clipped", "six"}, {"gate"});
      g.node("Mul", {"x", "gate"}, {"y"});
      break;
  }
  g.output("y");
  return g;
}

Fused fuse(const TestGraph& g) {
  Fused f = testing::run_passes(g.model(), {passes::fuse_hard_swish});
  testing::drop_dead_code(f.model);
  testing::expect_same_outputs(g.model(), f.model, g.feeds(), kTol, /*verify_inference=*/true);
  return f;
}

TEST(HardSwishFusion, EverySpellingAtEveryOpset) {
  for (int64_t opset : {10, 13, 14, 18}) {
    for (Spelling spelling : {Spelling::kDivLast, Spelling::kMulSixthLast, Spelling::kDivFirst}) {
      SCOPED_TRACE(::testing::Message() << "opset " << opset << ", spelling " << static_cast<int>(spelling));
      Fused f = fuse(spelled_hard_swish(opset, spelling));
      EXPECT_EQ(f.ops("Clip"), 0);
      EXPECT_EQ(f.ops("Add"), 0);
      EXPECT_EQ(f.ops("Div"), 0);
      if (opset >= 14) {
        EXPECT_EQ(f.ops("HardSwish"), 1);
        EXPECT_EQ(f.ops("Mul"), 0);
        EXPECT_EQ(f.changed("HardSwish"), 1);
      } else {
        EXPECT_EQ(f.ops("HardSigmoid"), 1);
        EXPECT_EQ(f.ops("Mul"), 1);
        EXPECT_EQ(f.changed("HardSwish as x * HardSigmoid(x)"), 1);
      }
    }
  }
}

TEST(HardSwishFusion, HardSigmoidGateBecomesHardSwishFromOpset14) {
  for (int64_t opset : {13, 14}) {
    TestGraph g(opset);
    Random rng(3);
    g.input("x", rng.floats({4, 9}, -5.0f, 5.0f));
    g.node("HardSigmoid", {"x"}, {"gate"}, {attr_float("alpha", 1.0f / 6.0f), attr_float("beta", 0.5f)});
    g.node("Mul", {"gate", "x"}, {"y"});
    g.output("y");
    Fused f = fuse(g);
    EXPECT_EQ(f.ops("HardSwish"), opset >= 14 ? 1 : 0) << "opset " << opset;
    EXPECT_EQ(f.ops("HardSigmoid"), opset >= 14 ? 0 : 1) << "opset " << opset;
  }
}

TEST(HardSwishFusion, LeavesWhatIsNotAHardSwish) {
  // Other constants: a shifted ReLU6 is not a hard-swish.
  for (auto [three, six] : {std::pair{2.0f, 6.0f}, std::pair{3.0f, 5.0f}}) {
    Fused f = fuse(spelled_hard_swish(17, Spelling::kDivLast, three, six));
    EXPECT_EQ(f.ops("HardSwish"), 0);
    EXPECT_EQ(f.ops("Clip"), 1);
  }
  // The clipped value read elsewhere too: fusing would still need it.
  TestGraph g = spelled_hard_swish(17, Spelling::kDivLast);
  g.output("clipped");
  Fused f = fuse(g);
  EXPECT_EQ(f.ops("HardSwish"), 0);
  EXPECT_EQ(f.ops("Clip"), 1);
  // Mul by a value other than x.
  TestGraph other(17);
  Random rng(5);
  other.input("x", rng.floats({6}, -5.0f, 5.0f));
  other.input("z", rng.floats({6}));
  other.constant("three", scalar(3.0f));
  other.constant("lo", scalar(0.0f));
  other.constant("hi", scalar(6.0f));
  other.constant("six", scalar(6.0f));
  other.node("Add", {"x", "three"}, {"shifted"});
  other.node("Clip", {"shifted", "lo", "hi"}, {"clipped"});
  other.node("Mul", {"z", "clipped"}, {"product"});
  other.node("Div", {"product", "six"}, {"y"});
  other.output("y");
  EXPECT_EQ(fuse(other).ops("HardSwish"), 0);
}

TEST(HardSwishFusion, AfterAConvTheOptimizerWritesOneFusedConv) {
  for (int64_t opset : {12, 17}) {
    TestGraph g(opset);
    Random rng(11);
    g.input("image", rng.floats({1, 3, 8, 7}));
    g.constant("w", rng.floats({5, 3, 3, 3}, -2.0f, 2.0f));
    g.constant("b", rng.floats({5}));
    g.node("Conv", {"image", "w", "b"}, {"x"}, {testing::contrib::attr_ints("pads", {1, 1, 1, 1})});
    g.constant("three", scalar(3.0f));
    g.constant("lo", scalar(0.0f));
    g.constant("hi", scalar(6.0f));
    g.constant("six", scalar(6.0f));
    g.node("Add", {"x", "three"}, {"shifted"});
    g.node("Clip", {"shifted", "lo", "hi"}, {"clipped"});
    g.node("Mul", {"x", "clipped"}, {"product"});
    g.node("Div", {"product", "six"}, {"y"});
    g.output("y");
    passes::OptimizeOptions options;
    options.target = passes::Target::kKiln;
    options.level = passes::Level::kExtended;  // all would then add the channels-last Transposes
    testing::Optimized o = testing::optimize_and_compare(g.model(), options, g.feeds(), kTol);
    SCOPED_TRACE(::testing::Message() << "opset " << opset << "\n" << o.text());
    EXPECT_EQ(o.model.graph.nodes.size(), 1u);
    const ir::Node* fused = testing::find_op(o.model, "ai.kiln", "FusedConv");
    ASSERT_NE(fused, nullptr);
    const ir::Attribute* act = fused->find_attribute("activation");
    ASSERT_NE(act, nullptr);
    EXPECT_EQ(act->s, "HardSwish");
  }
}

}  // namespace
}  // namespace kiln
