// A 1x1 convolution fed by a global pool (a squeeze-and-excitation block's two) runs, on a 1x1 plane, as
// kiln's matrix-vector product (conv_kernel.cc, run_pointwise_rows; dot_rows_f32 in vector_kernels.h):
// its outputs against the reference kernels' in both layouts, with every activation, a bias or none, a
// residual Z and two images; and which convolutions get that path.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "contrib_test_util.h"
#include "fast_kernel_check.h"
#include "runtime/profiler.h"
#include "runtime/session.h"

namespace kiln {
namespace {

using testing::contrib::attr_floats;
using testing::contrib::attr_int;
using testing::contrib::attr_ints;
using testing::contrib::attr_string;
using testing::contrib::Random;
using testing::contrib::TestGraph;

struct SeActivation {
  const char* name;
  std::vector<float> params;
};

// x -> global pool -> conv (C -> M, act) -> conv (M -> C, HardSigmoid) -> y, channels-last (ai.kiln
// FusedConv after ReduceMean over H, W) or channels-first (Conv after GlobalAveragePool).
TestGraph squeeze_excitation_graph(bool channels_last, const SeActivation& act, bool bias, bool with_z, uint32_t seed) {
  const int64_t c = 37, m = 21, batch = 2;
  TestGraph g(17);
  g.import_opset("ai.kiln", 1);
  Random rng(seed);
  g.input("x", rng.floats(channels_last ? std::vector<int64_t>{batch, 5, 6, c} : std::vector<int64_t>{batch, c, 5, 6}));
  if (channels_last) {
    g.node("ReduceMean", {"x"}, {"pooled"}, {attr_ints("axes", {1, 2}), attr_int("keepdims", 1)});
  } else {
    g.node("GlobalAveragePool", {"x"}, {"pooled"});
  }
  g.constant("w1", rng.floats({m, c, 1, 1}));
  g.constant("w2", rng.floats({c, m, 1, 1}));
  std::vector<std::string> in1 = {"pooled", "w1"};
  if (bias) in1.push_back(g.constant("b1", rng.floats({m})));
  std::vector<ir::Attribute> attrs1 = {attr_ints("kernel_shape", {1, 1})};
  if (channels_last) {
    if (with_z) {
      if (!bias) in1.push_back("");
      in1.push_back(g.input("z", rng.floats({batch, 1, 1, m})));
    }
    attrs1.push_back(attr_int("channels_last", 1));
    if (*act.name) attrs1.push_back(attr_string("activation", act.name));
    if (!act.params.empty()) attrs1.push_back(attr_floats("activation_params", act.params));
    g.node("FusedConv", in1, {"squeezed"}, attrs1, "ai.kiln");
    g.node("FusedConv", {"squeezed", "w2", g.constant("b2", rng.floats({c}))}, {"y"},
           {attr_ints("kernel_shape", {1, 1}), attr_int("channels_last", 1), attr_string("activation", "HardSigmoid"),
            attr_floats("activation_params", {0.2f, 0.5f})},
           "ai.kiln");
  } else {
    g.node("Conv", in1, {"squeezed"}, attrs1);
    g.node("Conv", {"squeezed", "w2"}, {"y"}, {attr_ints("kernel_shape", {1, 1})});
  }
  g.output("y");
  return g;
}

TEST(ConvPointwiseRows, SqueezeExcitationConvolutionsMatchTheReference) {
  const std::vector<SeActivation> acts = {{"", {}},
                                        {"Relu", {}},
                                        {"LeakyRelu", {0.1f}},
                                        {"Clip", {-0.5f, 0.5f}},
                                        {"Sigmoid", {}},
                                        {"Tanh", {}},
                                        {"HardSigmoid", {0.2f, 0.5f}},
                                        {"HardSwish", {}}};
  uint32_t seed = 1;
  for (const SeActivation& act : acts) {
    for (int variant = 0; variant < 4; ++variant) {
      const bool bias = variant & 1, with_z = variant & 2;
      const std::string what =
          std::string("act '") + act.name + "' bias " + std::to_string(bias) + " z " + std::to_string(with_z);
      SCOPED_TRACE(what);
      const testing::FastAndReference o =
          testing::run_fast_and_reference(squeeze_excitation_graph(true, act, bias, with_z, seed++));
      EXPECT_LE(testing::contrib::max_abs_diff(o.fast, o.reference), 1e-5);
      ASSERT_EQ(o.kernels.size(), 3u);
      EXPECT_NE(o.kernels[1].find("pointwise rows"), std::string::npos) << o.kernels[1];
      EXPECT_NE(o.kernels[2].find("pointwise rows"), std::string::npos) << o.kernels[2];
    }
  }
  const testing::FastAndReference o =
      testing::run_fast_and_reference(squeeze_excitation_graph(false, {"", {}}, true, false, 99));
  EXPECT_LE(testing::contrib::max_abs_diff(o.fast, o.reference), 1e-5);
  ASSERT_EQ(o.kernels.size(), 3u);
  EXPECT_NE(o.kernels[1].find("pointwise rows"), std::string::npos) << o.kernels[1];
  EXPECT_NE(o.kernels[2].find("pointwise rows"), std::string::npos) << o.kernels[2];
}

// A 1x1 convolution on the image itself keeps oneDNN's kernel; one fed by a pool that is not global still
// gets the rows, but its calls on a plane larger than 1x1 run oneDNN's, with the same results.
TEST(ConvPointwiseRows, OnlyConvolutionsAfterAGlobalPoolAndOnlyOnAOnePixelPlane) {
  Random rng(5);
  TestGraph g(17);
  g.input("x", rng.floats({1, 8, 4, 4}));
  g.constant("w", rng.floats({6, 8, 1, 1}));
  g.node("Conv", {"x", "w"}, {"y"}, {attr_ints("kernel_shape", {1, 1})});
  g.output("y");
  testing::FastAndReference o = testing::run_fast_and_reference(g);
  EXPECT_NE(o.kernels[0].find("onednn"), std::string::npos) << o.kernels[0];
  EXPECT_LE(testing::contrib::max_abs_diff(o.fast, o.reference), 1e-5);

  TestGraph h(17);
  h.import_opset("ai.kiln", 1);
  h.input("x", rng.floats({1, 3, 5, 8}));
  h.node("ReduceMean", {"x"}, {"pooled"}, {attr_ints("axes", {1}), attr_int("keepdims", 1)});  // [1, 1, 5, 8]
  h.constant("w", rng.floats({6, 8, 1, 1}));
  h.node("FusedConv", {"pooled", "w"}, {"y"}, {attr_ints("kernel_shape", {1, 1}), attr_int("channels_last", 1)},
         "ai.kiln");
  h.output("y");
  o = testing::run_fast_and_reference(h);
  EXPECT_NE(o.kernels[1].find("pointwise rows"), std::string::npos) << o.kernels[1];
  EXPECT_LE(testing::contrib::max_abs_diff(o.fast, o.reference), 1e-5);
}

}  // namespace
}  // namespace kiln
