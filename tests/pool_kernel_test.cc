// The fast MaxPool and GlobalAveragePool kernels (kernels/cpu/pool_kernel.cc) against the reference ones:
// odd sizes, strides, pads, dilations, ceil_mode, auto_pad, windows over padding only, NaNs, batch > 1,
// and the calls they leave to the reference (Indices, other ranks and types).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "contrib_test_util.h"
#include "runtime/session.h"

namespace kiln {
namespace {

using testing::contrib::attr_int;
using testing::contrib::attr_ints;
using testing::contrib::attr_string;
using testing::contrib::Random;
using testing::contrib::TestGraph;

// MaxPool gives the reference's results exactly (max is exact); GlobalAveragePool sums in double in
// another order, which may move the float result by an ulp: `rel_tol` 1e-6 for it.
void expect_fast_equals_reference(const TestGraph& g, size_t expect_fast, const std::string& what,
                                  double rel_tol = 0.0) {
  std::vector<ir::Datum> out[2];
  size_t fast_count = 0;
  for (bool fast : {false, true}) {
    runtime::SessionOptions o;
    o.optimization = passes::Level::kNone;
    o.fast_kernels = fast;
    runtime::Session s(g.model(), o);
    if (fast) fast_count = s.fast_kernel_count();
    out[fast] = s.run(g.feeds());
  }
  EXPECT_EQ(fast_count, expect_fast) << what;
  ASSERT_EQ(out[0].size(), out[1].size()) << what;
  for (size_t i = 0; i < out[0].size(); ++i) {
    const ir::Tensor &ref = out[0][i].tensor, &fast = out[1][i].tensor;
    ASSERT_EQ(fast.shape(), ref.shape()) << what;
    ASSERT_EQ(fast.dtype(), ref.dtype()) << what;
    for (int64_t k = 0; k < ref.numel(); ++k) {
      const double a = fast.as_double(k), b = ref.as_double(k);
      if (std::isnan(b)) {
        EXPECT_TRUE(std::isnan(a)) << what << ": element " << k;
      } else {
        ASSERT_TRUE(a == b || std::fabs(a - b) <= rel_tol * std::fabs(b))  // a == b for infinities
            << what << ": element " << k << ", " << a << " vs " << b;
      }
    }
  }
}

struct PoolCase {
  std::vector<int64_t> x;  // [N, C, H, W]
  std::vector<ir::Attribute> attrs;
  std::string label;
};

TEST(PoolKernels, MaxPoolMatchesReference) {
  const std::vector<PoolCase> cases = {
      {{1, 64, 112, 112},
       {attr_ints("kernel_shape", {3, 3}), attr_ints("strides", {2, 2}), attr_ints("pads", {1, 1, 1, 1})},
       "ResNet's stem pool"},
      {{2, 3, 7, 9}, {attr_ints("kernel_shape", {2, 2})}, "2x2 stride 1, odd sizes"},
      {{1, 5, 11, 10},
       {attr_ints("kernel_shape", {3, 2}), attr_ints("strides", {2, 3}), attr_ints("pads", {0, 1, 2, 1})},
       "asymmetric pads and strides"},
      {{1, 4, 10, 10},
       {attr_ints("kernel_shape", {3, 3}), attr_ints("strides", {2, 2}), attr_int("ceil_mode", 1),
        attr_ints("pads", {1, 1, 1, 1})},
       "ceil_mode"},
      {{1, 4, 12, 13},
       {attr_ints("kernel_shape", {3, 3}), attr_ints("dilations", {2, 3}), attr_ints("pads", {2, 2, 2, 2})},
       "dilations"},
      {{3, 2, 9, 8},
       {attr_ints("kernel_shape", {3, 3}), attr_ints("strides", {2, 2}), attr_string("auto_pad", "SAME_UPPER")},
       "SAME_UPPER, batch 3"},
      {{1, 2, 9, 8},
       {attr_ints("kernel_shape", {4, 4}), attr_ints("strides", {3, 3}), attr_string("auto_pad", "SAME_LOWER")},
       "SAME_LOWER"},
      {{1, 2, 9, 8}, {attr_ints("kernel_shape", {3, 3}), attr_string("auto_pad", "VALID")}, "VALID"},
      {{1, 2, 4, 4}, {attr_ints("kernel_shape", {2, 2}), attr_ints("pads", {2, 2, 2, 2})}, "windows over padding only"},
      {{1, 3, 1, 1}, {attr_ints("kernel_shape", {1, 1})}, "1x1"},
      // Large windows, which run separably: a YOLO SPP block's, stride 2, dilations, windows wider than
      // the input, and padding that leaves whole output rows and columns over padding only.
      {{1, 6, 13, 13}, {attr_ints("kernel_shape", {13, 13}), attr_ints("pads", {6, 6, 6, 6})}, "13x13 SPP"},
      {{2, 3, 13, 11}, {attr_ints("kernel_shape", {5, 5}), attr_ints("pads", {2, 2, 2, 2})}, "5x5 SPP"},
      {{1, 4, 40, 37},
       {attr_ints("kernel_shape", {9, 9}), attr_ints("pads", {4, 4, 4, 4}), attr_ints("strides", {1, 1})},
       "9x9 with interior columns"},
      {{1, 3, 17, 19},
       {attr_ints("kernel_shape", {7, 5}), attr_ints("strides", {2, 2}), attr_ints("pads", {3, 2, 3, 2})},
       "7x5 stride 2"},
      {{1, 2, 20, 18},
       {attr_ints("kernel_shape", {5, 5}), attr_ints("dilations", {2, 3}), attr_ints("pads", {4, 6, 4, 6})},
       "5x5 dilated"},
      {{1, 2, 4, 3},
       {attr_ints("kernel_shape", {6, 6}), attr_ints("pads", {7, 7, 7, 7})},
       "6x6 with outputs over padding only"},
  };
  uint32_t seed = 1;
  for (const PoolCase& c : cases) {
    Random rng(seed++);
    TestGraph g;
    g.input("x", rng.floats(c.x, -3.0f, 3.0f));
    g.node("MaxPool", {"x"}, {"y"}, c.attrs);
    g.output("y");
    expect_fast_equals_reference(g, 1, c.label);
  }
}

TEST(PoolKernels, MaxPoolNaNsAsTheReference) {
  // A NaN wins where the reference's first tap is NaN and loses elsewhere.
  Random rng(20);
  ir::Tensor x = rng.floats({1, 2, 6, 6});
  for (int64_t i : {0, 7, 14, 15, 40, 71}) x.data<float>()[i] = std::numeric_limits<float>::quiet_NaN();
  TestGraph g;
  g.input("x", x);
  g.node("MaxPool", {"x"}, {"y"}, {attr_ints("kernel_shape", {3, 3}), attr_ints("pads", {1, 1, 1, 1})});
  g.node("MaxPool", {"x"}, {"y5"}, {attr_ints("kernel_shape", {5, 5}), attr_ints("pads", {2, 2, 2, 2})});  // separable
  g.output("y");
  g.output("y5");
  expect_fast_equals_reference(g, 2, "NaNs");
}

TEST(PoolKernels, GlobalAveragePoolMatchesReference) {
  uint32_t seed = 30;
  for (std::vector<int64_t> shape :
       {std::vector<int64_t>{1, 2048, 7, 7}, {2, 5, 3, 9}, {1, 3, 1, 1}, {2, 4, 5}, {1, 2, 3, 4, 5}}) {
    Random rng(seed++);
    TestGraph g;
    g.input("x", rng.floats(shape));
    g.node("GlobalAveragePool", {"x"}, {"y"});
    g.output("y");
    expect_fast_equals_reference(g, 1, "shape " + ir::to_string(shape), 1e-6);
  }
}

TEST(PoolKernels, LeavesWhatTheyDoNotCoverToTheReference) {
  Random rng(40);
  // MaxPool's Indices output: prepared, declined per call.
  {
    TestGraph g;
    g.input("x", rng.floats({1, 2, 5, 5}));
    g.node("MaxPool", {"x"}, {"y", "i"}, {attr_ints("kernel_shape", {2, 2})});
    g.output("y");
    g.output("i");
    expect_fast_equals_reference(g, 1, "Indices");
  }
  // 1-D MaxPool: no fast kernel.
  {
    TestGraph g;
    g.input("x", rng.floats({1, 2, 9}));
    g.node("MaxPool", {"x"}, {"y"}, {attr_ints("kernel_shape", {3})});
    g.output("y");
    expect_fast_equals_reference(g, 0, "1-D");
  }
  // float64: declined per call.
  {
    TestGraph g;
    ir::Tensor x(ir::DType::kFloat64, {1, 2, 4, 4});
    for (int64_t i = 0; i < x.numel(); ++i) x.data<double>()[i] = std::sin(static_cast<double>(i));
    g.input("x", x);
    g.node("MaxPool", {"x"}, {"y"}, {attr_ints("kernel_shape", {2, 2})});
    g.node("GlobalAveragePool", {"x"}, {"z"});
    g.output("y");
    g.output("z");
    expect_fast_equals_reference(g, 2, "float64", 1e-6);
  }
}

}  // namespace
}  // namespace kiln
