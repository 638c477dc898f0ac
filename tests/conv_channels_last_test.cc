// Channels-last convolutions and the Transposes that carry the layout: convert_convs_to_channels_last
// puts each 2-D Conv on [N, H, W, C] between two Transposes, push_transposes moves those down through the
// ops that follow until consecutive ones cancel. Each test checks the structure (what is left of the
// Transposes) and that outputs did not change, against the unoptimized model; with fast kernels and
// without (the reference ai.kiln.FusedConv permutes around kiln's Conv).
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

using testing::Fused;
using testing::contrib::attr_float;
using testing::contrib::attr_int;
using testing::contrib::attr_ints;
using testing::contrib::attr_string;
using testing::contrib::max_abs_diff;
using testing::contrib::Random;
using testing::contrib::scalar;
using testing::contrib::TestGraph;

constexpr double kTol = 1e-4;

// A small CNN with the shapes of real ones: stem conv, a residual block, a depthwise conv, a
// squeeze-and-excitation gate, a concat of two branches, a split, a 2x nearest resize, and a head that
// leaves the region (GlobalAveragePool, Flatten, Gemm).
TestGraph small_cnn(int64_t opset) {
  TestGraph g(opset);
  Random rng(21);
  g.input("image", rng.floats({2, 3, 12, 10}));
  auto conv = [&](const std::string& in, const std::string& out, int64_t c_in, int64_t c_out, int64_t k,
                  int64_t group = 1, int64_t stride = 1) {
    g.constant(out + "_w", rng.floats({c_out, c_in / group, k, k}, -0.5f, 0.5f));
    g.constant(out + "_b", rng.floats({c_out}));
    g.node("Conv", {in, out + "_w", out + "_b"}, {out},
           {attr_ints("pads", {k / 2, k / 2, k / 2, k / 2}), attr_int("group", group),
            attr_ints("strides", {stride, stride})});
  };
  conv("image", "stem", 3, 8, 3, 1, 2);                   // [2, 8, 6, 5]
  g.node("Relu", {"stem"}, {"stem_act"});
  conv("stem_act", "dw", 8, 8, 3, 8);                      // depthwise
  g.constant("scale", rng.floats({8, 1, 1}));              // a per-channel constant
  g.node("Mul", {"dw", "scale"}, {"scaled"});
  g.node("Add", {"scaled", "stem_act"}, {"residual"});     // two region values
  g.node("GlobalAveragePool", {"residual"}, {"pooled"});   // SE: [2, 8, 1, 1]
  conv("pooled", "se", 8, 8, 1);
  g.node("Sigmoid", {"se"}, {"gate"});
  g.node("Mul", {"residual", "gate"}, {"gated"});          // broadcast over H, W
  conv("gated", "left", 8, 4, 1);
  conv("gated", "right", 8, 6, 3);
  g.node("Concat", {"left", "right"}, {"cat"}, {attr_int("axis", 1)});
  if (opset >= 18) {
    g.constant("split", testing::contrib::int64s({5, 5}));
    g.node("Split", {"cat", "split"}, {"top", "bottom"}, {attr_int("axis", 1)});
  } else {
    g.node("Split", {"cat"}, {"top", "bottom"}, {attr_int("axis", 1), attr_ints("split", {5, 5})});
  }
  g.node("Add", {"top", "bottom"}, {"sum"});
  g.constant("roi", ir::Tensor(ir::DType::kFloat32, {0}));
  g.constant("scales", ir::Tensor::from_vector<float>({1, 1, 2, 2}, {4}));
  g.node("Resize", {"sum", "roi", "scales"}, {"up"}, {attr_string("mode", "nearest")});
  conv("up", "last", 5, 4, 3);
  g.node("GlobalAveragePool", {"last"}, {"head_pool"});
  g.node("Flatten", {"head_pool"}, {"flat"});
  g.constant("fc_w", rng.floats({4, 3}));
  g.node("Gemm", {"flat", "fc_w"}, {"logits"});
  g.output("logits");
  g.output("up");  // a region value that is also a graph output
  return g;
}

std::vector<ir::Datum> run(const ir::Model& m, const TestGraph& g, bool fast) {
  runtime::SessionOptions options;
  options.optimization = passes::Level::kNone;
  options.fast_kernels = fast;
  runtime::Session s(m, options);
  return s.run(g.feeds());
}

TEST(ConvChannelsLast, ACnnStaysChannelsLastBetweenItsEdges) {
  for (int64_t opset : {13, 18}) {
    SCOPED_TRACE(::testing::Message() << "opset " << opset);
    TestGraph g = small_cnn(opset);
    passes::OptimizeOptions options;
    options.target = passes::Target::kKiln;
    testing::Optimized o = testing::optimize_and_compare(g.model(), options, g.feeds(), kTol);
    SCOPED_TRACE(o.text());
    EXPECT_EQ(o.ops("Conv"), 0);
    EXPECT_EQ(o.ops("ai.kiln.FusedConv"), 6);
    for (const ir::Node& n : o.model.graph.nodes)
      if (n.op_type == "FusedConv") {
        EXPECT_EQ(n.find_attribute("channels_last")->i, 1) << n.name;
      }
    // Left: the image into NHWC, and back to NCHW for the two graph outputs' readers (Flatten's pool, and
    // the resize that is a graph output).
    EXPECT_EQ(o.ops("Transpose"), 3);
    EXPECT_EQ(o.ops("GlobalAveragePool"), 0);
    EXPECT_EQ(o.ops("ReduceMean"), 2);
    // The same outputs with the fast kernels as with the reference ones.
    std::vector<ir::Datum> want = run(g.model(), g, false);
    for (bool fast : {false, true}) {
      std::vector<ir::Datum> got = run(o.model, g, fast);
      ASSERT_EQ(got.size(), want.size());
      for (size_t i = 0; i < want.size(); ++i) {
        ASSERT_EQ(got[i].tensor.shape(), want[i].tensor.shape());
        EXPECT_LE(max_abs_diff(got[i].tensor, want[i].tensor), kTol) << "output " << i << ", fast " << fast;
      }
    }
  }
}

TEST(ConvChannelsLast, OnlyForKilnsOwnTarget) {
  TestGraph g = small_cnn(17);
  passes::OptimizeOptions options;
  options.target = passes::Target::kOnnxRuntime;
  testing::Optimized o = testing::optimize_and_compare(g.model(), options, g.feeds(), kTol);
  EXPECT_EQ(o.ops("Transpose"), 0);
  EXPECT_EQ(o.ops("ai.kiln.FusedConv"), 0);
}

// push_transposes alone, on hand-made Transposes.
Fused push(const TestGraph& g) {
  Fused f = testing::run_passes(g.model(), {passes::push_transposes});
  testing::drop_dead_code(f.model);
  testing::expect_same_outputs(g.model(), f.model, g.feeds(), testing::kExact, /*verify_inference=*/true);
  return f;
}

TEST(TransposePushing, CancelsThroughElementwiseOpsAndConstants) {
  TestGraph g(17);
  Random rng(4);
  g.input("x", rng.floats({2, 5, 4, 3}));  // NHWC
  g.node("Transpose", {"x"}, {"nchw"}, {attr_ints("perm", {0, 3, 1, 2})});
  g.node("Relu", {"nchw"}, {"r"});
  g.constant("bias", rng.floats({3, 1, 1}));
  g.node("Add", {"r", "bias"}, {"b"});
  g.constant("lo", scalar(-0.5f));
  g.constant("hi", scalar(0.5f));
  g.node("Clip", {"b", "lo", "hi"}, {"c"});
  g.node("Transpose", {"c"}, {"y"}, {attr_ints("perm", {0, 2, 3, 1})});
  g.output("y");
  Fused f = push(g);
  EXPECT_EQ(f.ops("Transpose"), 0) << f.rejections();
  EXPECT_EQ(f.changed("Transpose pair cancelled"), 1);
}

TEST(TransposePushing, StopsWhereAReaderCannotTakeIt) {
  TestGraph g(17);
  Random rng(6);
  g.input("x", rng.floats({2, 5, 4}));
  g.input("w", rng.floats({5, 3}));
  g.node("Transpose", {"x"}, {"t"}, {attr_ints("perm", {0, 2, 1})});
  g.node("Relu", {"t"}, {"r"});
  g.node("MatMul", {"r", "w"}, {"m"});  // not layout-free: the Transpose stops before it
  g.node("Sigmoid", {"t"}, {"s"});
  g.output("m");
  g.output("s");
  Fused f = push(g);
  EXPECT_EQ(f.ops("Transpose"), 2);  // one before the MatMul, one before the graph output s
  // A non-constant operand not transposed the same way: nothing moves.
  TestGraph h(17);
  h.input("x", rng.floats({2, 5, 4}));
  h.input("z", rng.floats({2, 4, 5}));
  h.node("Transpose", {"x"}, {"t"}, {attr_ints("perm", {0, 2, 1})});
  h.node("Add", {"t", "z"}, {"y"});
  h.output("y");
  Fused f2 = push(h);
  EXPECT_EQ(f2.changed("Transpose pushed down"), 0);
}

// A Transpose meets a Resize that writes a graph output: through a downsampling one it moves (and stays on
// the smaller output); before an upsampling one it stays, on the smaller input.
TEST(TransposePushing, StaysBeforeAnUpsamplingResizeThatEndsTheGraph) {
  for (float scale : {0.5f, 4.0f}) {
    SCOPED_TRACE(::testing::Message() << "scale " << scale);
    TestGraph g(17);
    Random rng(8);
    g.input("x", rng.floats({1, 8, 8, 3}));  // NHWC
    g.node("Transpose", {"x"}, {"nchw"}, {attr_ints("perm", {0, 3, 1, 2})});
    g.constant("roi", ir::Tensor(ir::DType::kFloat32, {0}));
    g.constant("scales", ir::Tensor::from_vector<float>({1, 1, scale, scale}, {4}));
    g.node("Resize", {"nchw", "roi", "scales"}, {"y"}, {attr_string("mode", "linear")});
    g.output("y");
    Fused f = push(g);
    EXPECT_EQ(f.ops("Transpose"), 1);
    EXPECT_EQ(f.changed("Transpose pushed down"), scale < 1 ? 1 : 0);
  }
}

// A YOLO SPP block: three MaxPools of one value, concatenated with it. The Concat takes the Transpose once
// the pools have, so all stay channels-last; a pool whose output has another reader keeps the Transpose.
TEST(TransposePushing, PassesAnSppBlockOfPoolsAndTheirConcat) {
  for (bool extra_reader : {false, true}) {
    SCOPED_TRACE(extra_reader ? "a pool's output read elsewhere too" : "SPP");
    TestGraph g(17);
    Random rng(10);
    g.input("x", rng.floats({1, 9, 9, 6}));  // NHWC
    g.node("Transpose", {"x"}, {"nchw"}, {attr_ints("perm", {0, 3, 1, 2})});
    std::vector<std::string> cat = {"nchw"};
    for (int64_t k : {5, 9, 13}) {
      const std::string out = "pool" + std::to_string(k);
      g.node("MaxPool", {"nchw"}, {out},
             {attr_ints("kernel_shape", {k, k}), attr_ints("pads", {k / 2, k / 2, k / 2, k / 2})});
      cat.push_back(out);
    }
    g.node("Concat", cat, {"spp"}, {attr_int("axis", 1)});
    g.node("Transpose", {"spp"}, {"y"}, {attr_ints("perm", {0, 2, 3, 1})});
    g.output("y");
    if (extra_reader) {
      g.node("Relu", {"pool9"}, {"side"});
      g.output("side");
    }
    Fused f = push(g);
    if (extra_reader) {
      EXPECT_EQ(f.changed("Transpose pushed down"), 0);
    } else {
      EXPECT_EQ(f.ops("Transpose"), 0) << f.rejections();
      EXPECT_EQ(f.changed("Transpose pushed down"), 4);  // the three pools, then the Concat
    }
  }
}

// A Reshape that only splits axes takes the Transpose before it (the split moves to the Transpose's
// input): ssdlite's box heads, NHWC -> NCHW -> [N, anchors, classes, H, W] -> [N, H, W, anchors, classes],
// become one Reshape. Size-1 axes join or leave the splits; a Reshape that merges axes keeps its Transpose.
TEST(TransposePushing, PassesAReshapeThatOnlySplitsAxes) {
  Random rng(9);
  {
    TestGraph g(17);
    g.input("x", rng.floats({1, 4, 3, 12}));  // NHWC
    g.node("Transpose", {"x"}, {"nchw"}, {attr_ints("perm", {0, 3, 1, 2})});
    g.node("Relu", {"nchw"}, {"act"});  // the Transpose reaches the Reshape on a value the pass made
    g.constant("shape", ir::Tensor::from_vector<int64_t>({1, 3, 4, 4, 3}, {5}));
    g.node("Reshape", {"act", "shape"}, {"split"});
    g.node("Transpose", {"split"}, {"y"}, {attr_ints("perm", {0, 3, 4, 1, 2})});
    g.output("y");
    Fused f = push(g);
    EXPECT_EQ(f.ops("Transpose"), 0) << f.rejections();
    EXPECT_EQ(f.ops("Reshape"), 1);
  }
  {
    TestGraph g(17);
    g.input("x", rng.floats({2, 1, 6, 5}));
    g.node("Transpose", {"x"}, {"t"}, {attr_ints("perm", {0, 3, 1, 2})});            // [2, 5, 1, 6]
    g.constant("shape", ir::Tensor::from_vector<int64_t>({2, 1, 5, 2, 3, 1}, {6}));  // the 1 of t dropped
    g.node("Reshape", {"t", "shape"}, {"r"});
    g.node("Relu", {"r"}, {"y"});
    g.output("y");
    Fused f = push(g);
    EXPECT_EQ(f.ops("Transpose"), 1);
    EXPECT_EQ(f.changed("Transpose pushed down"), 2);  // past the Reshape, then the Relu
  }
  {
    TestGraph g(17);
    g.input("x", rng.floats({2, 3, 4, 5}));
    g.node("Transpose", {"x"}, {"t"}, {attr_ints("perm", {0, 2, 3, 1})});    // [2, 4, 5, 3]
    g.constant("shape", ir::Tensor::from_vector<int64_t>({2, 20, 3}, {3}));  // merges 4 and 5
    g.node("Reshape", {"t", "shape"}, {"r"});
    g.node("Relu", {"r"}, {"y"});
    g.output("y");
    Fused f = push(g);
    EXPECT_EQ(f.changed("Transpose pushed down"), 0);
  }
}

}  // namespace
}  // namespace kiln
