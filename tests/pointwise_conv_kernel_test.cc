// Channels-last 1x1 convolutions with SiLU or Sigmoid run on kiln's own kernel on AVX-512 (pointwise_conv.h),
// the activation applied in registers: their outputs against the reference kernels' over odd channel
// counts, 1-D to 3-D planes, two images, with and without a bias; KILN_POINTWISE=kiln's other activations;
// and which convolutions take the path (elsewhere, and on other CPUs, oneDNN's runs them).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "contrib_test_util.h"
#include "fast_kernel_check.h"
#include "kernels/cpu/cpu_features.h"
#include "test_util.h"

namespace kiln {
namespace {

using testing::ScopedEnv;
using testing::contrib::attr_floats;
using testing::contrib::attr_int;
using testing::contrib::attr_ints;
using testing::contrib::attr_string;
using testing::contrib::Random;
using testing::contrib::TestGraph;

// Whether this machine (at the ISA level kiln selected) runs kiln's pointwise kernel at all.
bool pointwise_kernel_runs() { return kernels::cpu::selected_isa() == kernels::cpu::Isa::kAvx512; }

struct PointwiseCase {
  std::vector<int64_t> x_shape;  // channels-last: [N, spatial..., C]
  int64_t m = 1;                 // output channels
  std::string activation;        // "" for none
  bool bias = true;
  bool with_z = false;
  std::vector<int64_t> strides = {};  // default 1 on every axis
  std::vector<int64_t> pads = {};     // default 0
  std::vector<int64_t> kernel = {};   // default 1 on every axis
  // A channel scale S [N, 1..., C] (a squeeze-and-excitation gate, values in [0, 1]): as FusedConv's fifth
  // input, or, with scale_by_mul, as a Mul of X before it (what the fused form must equal).
  bool scale = false;
  bool scale_by_mul = false;
};

TestGraph pointwise_graph(const PointwiseCase& c, uint32_t seed) {
  TestGraph g(17);
  g.import_opset("ai.kiln", 1);
  Random rng(seed);
  const size_t axes = c.x_shape.size() - 2;
  const int64_t channels = c.x_shape.back();
  g.input("x", rng.floats(c.x_shape, -3.0f, 3.0f));
  const std::vector<int64_t> kernel = c.kernel.empty() ? std::vector<int64_t>(axes, 1) : c.kernel;
  std::vector<int64_t> w_shape = {c.m, channels};
  w_shape.insert(w_shape.end(), kernel.begin(), kernel.end());
  g.constant("w", rng.floats(w_shape));
  std::vector<int64_t> s_shape(c.x_shape.size(), 1);
  s_shape.front() = c.x_shape.front();
  s_shape.back() = channels;
  const ir::Tensor gate = rng.floats(s_shape, 0.0f, 1.0f);
  std::string x = "x";
  if (c.scale && c.scale_by_mul) {
    g.node("Mul", {"x", g.input("s", gate)}, {"scaled"}, {}, "");
    x = "scaled";
  }
  std::vector<std::string> inputs = {x, "w"};
  if (c.bias) inputs.push_back(g.constant("b", rng.floats({c.m})));
  std::vector<ir::Attribute> attrs = {attr_ints("kernel_shape", kernel), attr_int("channels_last", 1)};
  if (!c.strides.empty()) attrs.push_back(attr_ints("strides", c.strides));
  if (!c.pads.empty()) attrs.push_back(attr_ints("pads", c.pads));
  if (!c.activation.empty()) attrs.push_back(attr_string("activation", c.activation));
  if (c.activation == "LeakyRelu") attrs.push_back(attr_floats("activation_params", {0.1f}));
  if (c.with_z) {
    if (!c.bias) inputs.push_back("");
    std::vector<int64_t> y_shape = c.x_shape;
    y_shape.back() = c.m;
    inputs.push_back(g.input("z", rng.floats(y_shape)));
  }
  if (c.scale && !c.scale_by_mul) {
    inputs.resize(4);
    inputs.push_back(g.input("s", gate));
  }
  g.node("FusedConv", inputs, {"y"}, attrs, "ai.kiln");
  g.output("y");
  return g;
}

// The fast and reference outputs, and the fast kernel of the graph's last node (the convolution).
struct Outcome {
  ir::Tensor fast, reference;
  std::string kernel;
};

Outcome run_fast_and_reference(const TestGraph& g) {
  testing::FastAndReference r = testing::run_fast_and_reference(g);
  return {std::move(r.fast), std::move(r.reference), r.kernels.empty() ? "" : r.kernels.back()};
}

void expect_pointwise_kernel(const std::string& kernel) {
  EXPECT_EQ(kernel, pointwise_kernel_runs() ? "FusedConv pointwise avx512" : "FusedConv onednn");
}

TEST(PointwiseConvKernel, SiluAndSigmoidConvolutionsMatchTheReference) {
  // Output channels around the vector (16) and block (64) edges; pixel counts around the block (6) and
  // task (96) edges; input channels from 1 up.
  const std::vector<PointwiseCase> cases = {
      {{1, 112, 112, 16}, 96, "Silu"},  // EfficientNet-B0's first expansion
      {{2, 7, 5, 24}, 144, "Silu"},    {{1, 13, 11, 1}, 5, "Silu"},    {{2, 3, 3, 37}, 17, "Silu", false},
      {{1, 50, 130}, 33, "Silu"},      {{2, 3, 4, 5, 20}, 31, "Silu"}, {{1, 9, 9, 300}, 1, "Silu"},
      {{1, 7, 7, 192}, 1152, "Silu"},  {{1, 97, 8}, 65, "Sigmoid"},    {{3, 1, 1, 40}, 64, "Sigmoid", false},
  };
  uint32_t seed = 1;
  for (const PointwiseCase& c : cases) {
    SCOPED_TRACE(ir::to_string(c.x_shape) + " -> " + std::to_string(c.m));
    const Outcome o = run_fast_and_reference(pointwise_graph(c, seed++));
    // The sums run in float32 (the reference's in double) over C terms of magnitude up to 3.
    EXPECT_LE(testing::contrib::max_abs_diff(o.fast, o.reference), 1e-5 + 2e-7 * c.x_shape.back());
    expect_pointwise_kernel(o.kernel);
  }
}

// KILN_POINTWISE=kiln takes none and Relu too, with a residual Z or without; the other activations stay on
// oneDNN.
TEST(PointwiseConvKernel, ForcedKilnTakesTheActivationsTheKernelHas) {
  ScopedEnv force("KILN_POINTWISE", "kiln");
  struct Expected {
    PointwiseCase c;
    bool kiln;
  };
  const std::vector<Expected> cases = {
      {{{2, 6, 7, 19}, 40, ""}, true},
      {{{1, 8, 9, 33}, 17, "Relu"}, true},
      {{{1, 8, 9, 33}, 17, "", true, true}, true},
      {{{1, 8, 9, 33}, 17, "Silu", false, true}, true},
      {{{1, 8, 9, 33}, 17, "LeakyRelu"}, false},
  };
  uint32_t seed = 11;
  for (const Expected& e : cases) {
    SCOPED_TRACE("'" + e.c.activation + "' z " + std::to_string(e.c.with_z));
    const Outcome o = run_fast_and_reference(pointwise_graph(e.c, seed++));
    EXPECT_LE(testing::contrib::max_abs_diff(o.fast, o.reference), 2e-5);
    if (e.kiln) {
      expect_pointwise_kernel(o.kernel);
    } else {
      EXPECT_EQ(o.kernel, "FusedConv onednn");
    }
  }
}

// Strides, pads, channels-first and KILN_POINTWISE=onednn keep oneDNN's convolution.
TEST(PointwiseConvKernel, OnlyDenseChannelsLastOneByOnes) {
  Random rng(3);
  std::vector<PointwiseCase> others = {
      {{1, 8, 8, 16}, 24, "Silu", true, false, {2, 2}},
      {{1, 8, 8, 16}, 24, "Silu", true, false, {}, {1, 1, 1, 1}},
  };
  for (const PointwiseCase& c : others) {
    const Outcome o = run_fast_and_reference(pointwise_graph(c, 7));
    EXPECT_LE(testing::contrib::max_abs_diff(o.fast, o.reference), 2e-5);
    EXPECT_EQ(o.kernel, "FusedConv onednn");
  }
  {
    ScopedEnv off("KILN_POINTWISE", "onednn");
    const Outcome o = run_fast_and_reference(pointwise_graph({{1, 8, 8, 16}, 24, "Silu"}, 8));
    EXPECT_LE(testing::contrib::max_abs_diff(o.fast, o.reference), 2e-5);
    EXPECT_EQ(o.kernel, "FusedConv onednn");
  }
  TestGraph g(17);
  g.import_opset("ai.kiln", 1);
  g.input("x", rng.floats({1, 16, 8, 8}));
  g.constant("w", rng.floats({24, 16, 1, 1}));
  g.node("FusedConv", {"x", "w"}, {"y"}, {attr_ints("kernel_shape", {1, 1}), attr_string("activation", "Silu")},
         "ai.kiln");
  g.output("y");
  const Outcome o = run_fast_and_reference(g);
  EXPECT_LE(testing::contrib::max_abs_diff(o.fast, o.reference), 2e-5);
  EXPECT_EQ(o.kernel, "FusedConv onednn");
}

// ai.kiln.FusedConv's channel scale S: the fused form against the reference's Mul then FusedConv, on kiln's
// pointwise kernel (S applied to its weights; with Z, every activation it takes, two images) and on oneDNN's
// path (X * S made first: a 3x3 convolution, KILN_POINTWISE=onednn); a bad S fails as the reference does.
TEST(PointwiseConvKernel, ChannelScaleMatchesAMulBeforeTheConvolution) {
  std::vector<PointwiseCase> cases = {
      {{2, 7, 9, 37}, 70, "", true, true},
      {{1, 12, 12, 24}, 144, "Silu", false, false},
      {{2, 5, 5, 16}, 24, "Relu", true, false},
      {{1, 112, 112, 32}, 16, "", true, false},
      {{1, 9, 8, 3}, 8, "Sigmoid", true, true, {}, {1, 1, 1, 1}, {3, 3}},
  };
  uint32_t seed = 41;
  auto check = [&](PointwiseCase c, bool pointwise) {
    SCOPED_TRACE(ir::to_string(c.x_shape) + " -> " + std::to_string(c.m) + " '" + c.activation + "'");
    c.scale = true;
    c.scale_by_mul = true;
    const TestGraph mul = pointwise_graph(c, seed);
    c.scale_by_mul = false;
    const TestGraph fused = pointwise_graph(c, seed++);
    const Outcome want = run_fast_and_reference(mul), got = run_fast_and_reference(fused);
    EXPECT_LE(testing::contrib::max_abs_diff(got.reference, want.reference), 0.0);
    EXPECT_LE(testing::contrib::max_abs_diff(got.fast, want.reference), 1e-5 + 2e-7 * c.x_shape.back());
    if (pointwise) {
      expect_pointwise_kernel(got.kernel);
    } else {
      EXPECT_EQ(got.kernel, "FusedConv onednn");
    }
  };
  for (size_t i = 0; i < cases.size(); ++i) check(cases[i], i + 1 < cases.size());
  ScopedEnv off("KILN_POINTWISE", "onednn");
  check(cases[0], false);
}

TEST(PointwiseConvKernel, ABadChannelScaleFailsAsTheReferenceDoes) {
  Random rng(9);
  for (bool last : {true, false}) {
    TestGraph g(17);
    g.import_opset("ai.kiln", 1);
    g.input("x", rng.floats(last ? std::vector<int64_t>{2, 4, 4, 8} : std::vector<int64_t>{2, 8, 4, 4}));
    g.input("s", rng.floats(last ? std::vector<int64_t>{2, 1, 4, 8} : std::vector<int64_t>{2, 8, 1, 1}));
    g.constant("w", rng.floats({6, 8, 1, 1}));
    g.node("FusedConv", {"x", "w", "", "", "s"}, {"y"},
           {attr_ints("kernel_shape", {1, 1}), attr_int("channels_last", last ? 1 : 0)}, "ai.kiln");
    g.output("y");
    const std::string messages[2] = {testing::run_kernels(g, false).error, testing::run_kernels(g, true).error};
    EXPECT_EQ(messages[1], messages[0]);
    EXPECT_NE(messages[0].find(last ? "S of shape [2,1,4,8] must be [N, 1..., C]" : "input S needs channels_last = 1"),
              std::string::npos)
        << messages[0];
  }
}

}  // namespace
}  // namespace kiln
