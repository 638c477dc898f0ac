// Channels-last pooling: ai.kiln.MaxPool and ai.kiln.AveragePool with channels_last = 1
// (kernels/reference/contrib_pool.cc, kernels/cpu/pool_kernel.cc), and push_transposes turning a pool
// between two channels-last convolutions into one, so that no Transpose is left around it.
//
// Each kernel case runs three ways on the same NHWC input: ONNX's pool on the channels-first view
// (Transpose, MaxPool, Transpose back: what the op means), the ai.kiln op's reference kernel, and its fast
// kernel. MaxPool must match exactly, NaNs and infinities included; AveragePool within 1e-6 relative.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "contrib_test_util.h"
#include "pass_test_util.h"
#include "passes/optimizer.h"
#include "runtime/session.h"

namespace kiln {
namespace {

using testing::contrib::attr_int;
using testing::contrib::attr_ints;
using testing::contrib::attr_string;
using testing::contrib::Random;
using testing::contrib::TestGraph;

struct ClPoolCase {
  std::string label;
  std::vector<int64_t> x;  // [N, H, W, C]
  std::vector<ir::Attribute> attrs;
};

std::vector<ir::Datum> clpool_run(const TestGraph& g, bool fast, size_t* fast_count = nullptr) {
  runtime::SessionOptions o;
  o.optimization = passes::Level::kNone;
  o.fast_kernels = fast;
  o.verify_inference = true;
  runtime::Session s(g.model(), o);
  if (fast_count) *fast_count = s.fast_kernel_count();
  return s.run(g.feeds());
}

// Every element of got equals want's (NaN where want has NaN), or is within rel_tol of it.
void clpool_expect_equal(const ir::Tensor& got, const ir::Tensor& want, double rel_tol, const std::string& what) {
  ASSERT_EQ(got.shape(), want.shape()) << what;
  for (int64_t k = 0; k < want.numel(); ++k) {
    const double a = got.as_double(k), b = want.as_double(k);
    if (std::isnan(b)) {
      ASSERT_TRUE(std::isnan(a)) << what << ": element " << k << " is " << a << ", want NaN";
    } else {
      ASSERT_TRUE(a == b || std::fabs(a - b) <= rel_tol * std::fabs(b))
          << what << ": element " << k << ", " << a << " vs " << b;
    }
  }
}

// The pool `op` three ways (see the top of the file) on x.
void clpool_check(const std::string& op, const ClPoolCase& c, const ir::Tensor& x, double rel_tol) {
  SCOPED_TRACE(op + ": " + c.label + ", x " + ir::to_string(c.x));
  TestGraph onnx(19);
  onnx.input("x", x);
  onnx.node("Transpose", {"x"}, {"nchw"}, {attr_ints("perm", {0, 3, 1, 2})});
  onnx.node(op, {"nchw"}, {"pooled"}, c.attrs);
  onnx.node("Transpose", {"pooled"}, {"y"}, {attr_ints("perm", {0, 2, 3, 1})});
  onnx.output("y");
  const std::vector<ir::Datum> want = clpool_run(onnx, false);

  TestGraph kiln(19);
  kiln.import_opset("ai.kiln", 1);
  kiln.input("x", x);
  std::vector<ir::Attribute> attrs = c.attrs;
  attrs.push_back(attr_int("channels_last", 1));
  kiln.node(op, {"x"}, {"y"}, attrs, "ai.kiln");
  kiln.output("y");
  size_t fast_count = 0;
  const std::vector<ir::Datum> ref = clpool_run(kiln, false), fast = clpool_run(kiln, true, &fast_count);
  EXPECT_EQ(fast_count, 1u);
  clpool_expect_equal(ref[0].tensor, want[0].tensor, 0.0, "reference");
  clpool_expect_equal(fast[0].tensor, want[0].tensor, rel_tol, "fast");
}

std::vector<ClPoolCase> clpool_window_cases() {
  return {
      {"ResNet's stem pool", {1, 28, 28, 17},
       {attr_ints("kernel_shape", {3, 3}), attr_ints("strides", {2, 2}), attr_ints("pads", {1, 1, 1, 1})}},
      {"2x2 stride 1, odd sizes", {2, 7, 9, 7}, {attr_ints("kernel_shape", {2, 2})}},
      {"asymmetric pads and strides", {1, 11, 10, 33},
       {attr_ints("kernel_shape", {3, 2}), attr_ints("strides", {2, 3}), attr_ints("pads", {0, 1, 2, 1})}},
      {"ceil_mode", {2, 10, 10, 7},
       {attr_ints("kernel_shape", {3, 3}), attr_ints("strides", {2, 2}), attr_int("ceil_mode", 1),
        attr_ints("pads", {1, 1, 1, 1})}},
      {"ceil_mode, no pads", {1, 8, 11, 1},
       {attr_ints("kernel_shape", {2, 2}), attr_ints("strides", {2, 2}), attr_int("ceil_mode", 1)}},
      {"SAME_UPPER, batch 2", {2, 9, 8, 17},
       {attr_ints("kernel_shape", {3, 3}), attr_ints("strides", {2, 2}), attr_string("auto_pad", "SAME_UPPER")}},
      {"SAME_LOWER", {1, 9, 8, 7},
       {attr_ints("kernel_shape", {2, 3}), attr_ints("strides", {2, 1}), attr_string("auto_pad", "SAME_LOWER")}},
      {"VALID, kernel as large as the input", {1, 5, 6, 33},
       {attr_ints("kernel_shape", {5, 6}), attr_string("auto_pad", "VALID")}},
      {"windows over padding only", {1, 3, 3, 7},
       {attr_ints("kernel_shape", {2, 2}), attr_ints("strides", {3, 3}), attr_ints("pads", {2, 2, 2, 2})}},
      {"wide channels", {1, 6, 5, 130},
       {attr_ints("kernel_shape", {3, 3}), attr_ints("pads", {1, 0, 1, 2})}},
  };
}

TEST(ChannelsLastPool, MaxPoolMatchesOnnxMaxPoolExactly) {
  std::vector<ClPoolCase> cases = clpool_window_cases();
  cases.push_back({"dilations", {1, 12, 13, 7},
                   {attr_ints("kernel_shape", {3, 3}), attr_ints("dilations", {2, 3}), attr_ints("pads", {2, 2, 2, 2})}});
  cases.push_back({"dilations, strides and ceil_mode", {2, 11, 12, 17},
                   {attr_ints("kernel_shape", {2, 3}), attr_ints("dilations", {3, 2}), attr_ints("strides", {2, 3}),
                    attr_int("ceil_mode", 1), attr_ints("pads", {1, 0, 0, 1})}});
  uint32_t seed = 1;
  for (const ClPoolCase& c : cases) {
    Random rng(seed++);
    clpool_check("MaxPool", c, rng.floats(c.x, -3.0f, 3.0f), 0.0);
  }
}

TEST(ChannelsLastPool, MaxPoolKeepsTheReferencesNaNsAndInfinities) {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  for (int64_t c : {1, 7, 17, 33}) {
    Random rng(static_cast<uint32_t>(c));
    ir::Tensor x = rng.floats({2, 7, 8, c});
    float* p = x.data<float>();
    // NaNs where they are a window's first tap and where they come later; -inf planes and +inf spots.
    for (int64_t i = 0; i < x.numel(); ++i) {
      if (i % 11 == 0) p[i] = nan;
      if (i % 13 == 5) p[i] = -inf;
      if (i % 29 == 3) p[i] = inf;
    }
    for (int64_t i = 0; i < 8 * c; ++i) p[i] = -inf;  // image 0's first row: all -inf
    const ClPoolCase k3 = {"3x3 stride 2 pads 1", {2, 7, 8, c},
                           {attr_ints("kernel_shape", {3, 3}), attr_ints("strides", {2, 2}),
                            attr_ints("pads", {1, 1, 1, 1})}};
    const ClPoolCase k2 = {"2x2 over padding", {2, 7, 8, c},
                           {attr_ints("kernel_shape", {2, 2}), attr_ints("strides", {2, 2}),
                            attr_ints("pads", {1, 1, 1, 1}), attr_int("ceil_mode", 1)}};
    clpool_check("MaxPool", k3, x, 0.0);
    clpool_check("MaxPool", k2, x, 0.0);
  }
}

TEST(ChannelsLastPool, AveragePoolMatchesOnnxAveragePool) {
  uint32_t seed = 100;
  for (int64_t include_pad : {0, 1}) {
    for (ClPoolCase c : clpool_window_cases()) {
      c.attrs.push_back(attr_int("count_include_pad", include_pad));
      c.label += ", count_include_pad " + std::to_string(include_pad);
      Random rng(seed++);
      clpool_check("AveragePool", c, rng.floats(c.x, -3.0f, 3.0f), 1e-6);
    }
  }
  // Dilated averages (AveragePool 19).
  Random rng(7);
  clpool_check("AveragePool",
               {"dilations", {2, 12, 13, 17},
                {attr_ints("kernel_shape", {3, 2}), attr_ints("dilations", {2, 3}), attr_ints("pads", {1, 2, 2, 1}),
                 attr_int("count_include_pad", 1)}},
               rng.floats({2, 12, 13, 17}), 1e-6);
}

TEST(ChannelsLastPool, InferenceAndErrors) {
  // Shape inference is checked by every run above (verify_inference); an Indices output is refused.
  TestGraph g(17);
  g.import_opset("ai.kiln", 1);
  Random rng(3);
  g.input("x", rng.floats({1, 4, 4, 3}));
  g.node("MaxPool", {"x"}, {"y", "i"}, {attr_ints("kernel_shape", {2, 2}), attr_int("channels_last", 1)}, "ai.kiln");
  g.output("y");
  EXPECT_NE(testing::contrib::error_of(g).find("no Indices output"), std::string::npos) << testing::contrib::error_of(g);
  TestGraph h(17);
  h.import_opset("ai.kiln", 1);
  h.input("x", rng.floats({1, 4, 4, 3}));
  h.node("AveragePool", {"x"}, {"y"}, {attr_ints("kernel_shape", {2, 2}), attr_int("channels_last", 2)}, "ai.kiln");
  h.output("y");
  EXPECT_NE(testing::contrib::error_of(h).find("channels_last must be 0 or 1"), std::string::npos);
}

// ---- The pass ----------------------------------------------------------------------------------------

// Conv -> Relu -> pool -> Conv -> Relu -> pool2 (-> graph output): a stem, as in ResNet.
TestGraph clpool_conv_chain(const std::string& pool, const std::string& pool2, bool indices = false) {
  TestGraph g(17);
  Random rng(5);
  g.input("image", rng.floats({2, 3, 19, 17}));
  g.constant("w1", rng.floats({9, 3, 3, 3}, -0.5f, 0.5f));
  g.constant("b1", rng.floats({9}));
  g.node("Conv", {"image", "w1", "b1"}, {"c1"}, {attr_ints("pads", {1, 1, 1, 1}), attr_ints("strides", {2, 2})});
  g.node("Relu", {"c1"}, {"r1"});
  std::vector<std::string> outs = {"p1"};
  if (indices) outs.push_back("p1_indices");
  g.node(pool, {"r1"}, outs,
         {attr_ints("kernel_shape", {3, 3}), attr_ints("strides", {2, 2}), attr_ints("pads", {1, 1, 1, 1})});
  g.constant("w2", rng.floats({7, 9, 3, 3}, -0.5f, 0.5f));
  g.constant("b2", rng.floats({7}));
  g.node("Conv", {"p1", "w2", "b2"}, {"c2"}, {attr_ints("pads", {1, 1, 1, 1})});
  g.node("Relu", {"c2"}, {"r2"});
  g.node(pool2, {"r2"}, {"y"}, {attr_ints("kernel_shape", {2, 2}), attr_int("ceil_mode", 1)});
  g.output("y");
  if (indices) g.output("p1_indices");
  return g;
}

void clpool_expect_same_as_unoptimized(const TestGraph& g, const ir::Model& optimized) {
  for (bool fast : {false, true}) {
    runtime::SessionOptions o;
    o.optimization = passes::Level::kNone;
    o.fast_kernels = fast;
    runtime::Session want_s(g.model(), o), got_s(optimized, o);
    std::vector<ir::Datum> want = want_s.run(g.feeds()), got = got_s.run(g.feeds());
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < want.size(); ++i)
      EXPECT_LE(testing::max_abs_diff(got[i].tensor, want[i].tensor), 1e-4) << "output " << i << ", fast " << fast;
  }
}

TEST(ChannelsLastPoolPass, NoTransposeLeftBetweenConvsAroundAPool) {
  for (const std::string pool : {"MaxPool", "AveragePool"}) {
    SCOPED_TRACE(pool);
    TestGraph g = clpool_conv_chain(pool, pool);
    passes::OptimizeOptions options;
    options.target = passes::Target::kKiln;
    testing::Optimized o = testing::optimize_and_compare(g.model(), options, g.feeds(), 1e-4);
    SCOPED_TRACE(o.text());
    EXPECT_EQ(o.ops(pool), 0);
    EXPECT_EQ(o.ops("ai.kiln." + pool), 2);
    EXPECT_EQ(o.ops("ai.kiln.FusedConv"), 2);
    // Only the edges: the image into NHWC, the last pool's output back to NCHW.
    EXPECT_EQ(o.ops("Transpose"), 2);
    for (const ir::Node& n : o.model.graph.nodes)
      if (n.op_type == pool) {
        ASSERT_NE(n.find_attribute("channels_last"), nullptr);
        EXPECT_EQ(n.find_attribute("channels_last")->i, 1);
      }
    clpool_expect_same_as_unoptimized(g, o.model);
  }
}

TEST(ChannelsLastPoolPass, LeavesPoolsWithIndicesAndOtherTargets) {
  // A MaxPool whose Indices are read stays channels-first, with its Transposes.
  TestGraph g = clpool_conv_chain("MaxPool", "AveragePool", /*indices=*/true);
  passes::OptimizeOptions options;
  options.target = passes::Target::kKiln;
  testing::Optimized o = testing::optimize_and_compare(g.model(), options, g.feeds(), 1e-4);
  EXPECT_EQ(o.ops("MaxPool"), 1);
  EXPECT_EQ(o.ops("ai.kiln.MaxPool"), 0);
  EXPECT_EQ(o.ops("ai.kiln.AveragePool"), 1);
  EXPECT_EQ(o.ops("Transpose"), 4);  // image in; around the MaxPool (out, back in); the output
  clpool_expect_same_as_unoptimized(g, o.model);
  // For ONNX Runtime: no kiln op.
  TestGraph h = clpool_conv_chain("MaxPool", "MaxPool");
  options.target = passes::Target::kOnnxRuntime;
  testing::Optimized ort = testing::optimize_and_compare(h.model(), options, h.feeds(), 1e-4);
  EXPECT_EQ(ort.ops("MaxPool"), 2);
  EXPECT_EQ(ort.ops("ai.kiln.MaxPool"), 0);
}

}  // namespace
}  // namespace kiln
