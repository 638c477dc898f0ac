// kiln's depthwise convolution (kernels/cpu/depthwise_conv.h), which the fast Conv kernel runs for
// channels-last ai.kiln.FusedConv with group == channels, against the reference FusedConv: channel counts
// around each vector width, kernels 1 to 7, strides, dilations, asymmetric pads and auto_pad, windows that
// cover padding only, every fused activation, with and without bias and Z, batch 2. Once through a session
// (the ISA KILN_CPU_ISA selects), and once per ISA this machine runs, on PackedDepthwiseConv directly.
// DISABLED_Timings is a micro-benchmark against oneDNN's kernel, not run by ctest:
//   ./build/kiln_tests --gtest_also_run_disabled_tests --gtest_filter='DepthwiseConvKernel.DISABLED_Timings'
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "contrib_test_util.h"
#include "fast_kernel_check.h"
#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/depthwise_conv.h"
#include "kernels/cpu/fast_kernels.h"
#include "kernels/cpu/onednn_conv.h"

namespace kiln {
namespace {

using kernels::cpu::ConvActivation;
using kernels::cpu::ConvSpec;
using kernels::cpu::Isa;
using kernels::cpu::PackedConv;
using kernels::cpu::PackedDepthwiseConv;
using testing::Answered;
using testing::expect_fast_matches_reference;
using testing::contrib::attr_floats;
using testing::contrib::attr_int;
using testing::contrib::attr_ints;
using testing::contrib::attr_string;
using testing::contrib::max_abs_diff;
using testing::contrib::Random;
using testing::contrib::TestGraph;

// Float32 sums of up to 49 taps in another order than the reference's, and sigmoid to a few ulp.
constexpr double kDepthwiseTol = 2e-5;

struct DwShape {
  int64_t channels, h, w, kh, kw;
  int64_t stride_h = 1, stride_w = 1, dilation_h = 1, dilation_w = 1;
  std::vector<int64_t> pads = {0, 0, 0, 0};  // top, left, bottom, right
  std::string auto_pad;
  std::string what() const {
    std::string s = std::to_string(channels) + " channels " + std::to_string(h) + "x" + std::to_string(w) + " kernel " +
                    std::to_string(kh) + "x" + std::to_string(kw) + " stride " + std::to_string(stride_h) + "," +
                    std::to_string(stride_w) + " dilation " + std::to_string(dilation_h) + "," +
                    std::to_string(dilation_w) + " pads";
    for (int64_t p : pads) s += " " + std::to_string(p);
    return auto_pad.empty() ? s : s + " " + auto_pad;
  }
};

struct DwActivation {
  const char* name;  // "" for none
  std::vector<float> params;
};

const std::vector<DwActivation>& dw_activations() {
  static const std::vector<DwActivation> kActs = {
      {"", {}},     {"Relu", {}}, {"LeakyRelu", {0.1f}}, {"Clip", {-0.3f, 0.4f}},       {"Sigmoid", {}},
      {"Tanh", {}}, {"Silu", {}}, {"HardSwish", {}},     {"HardSigmoid", {0.2f, 0.5f}},
  };
  return kActs;
}

int64_t dw_out(int64_t in, int64_t k, int64_t s, int64_t d, int64_t pad_sum) {
  return (in + pad_sum - ((k - 1) * d + 1)) / s + 1;
}

// A channels-last ai.kiln.FusedConv of `shape`, x [batch, h, w, C].
TestGraph dw_graph(const DwShape& shape, const DwActivation& act, bool bias, bool with_z, int64_t batch,
                   uint32_t seed) {
  Random rng(seed);
  TestGraph g;
  g.import_opset("ai.kiln", 1);
  const int64_t c = shape.channels;
  g.input("x", rng.floats({batch, shape.h, shape.w, c}));
  g.constant("w", rng.floats({c, 1, shape.kh, shape.kw}));
  std::vector<std::string> ins = {"x", "w"};
  if (bias) g.constant("b", rng.floats({c}));
  ins.push_back(bias ? "b" : "");
  std::vector<ir::Attribute> attrs = {attr_int("group", c), attr_ints("strides", {shape.stride_h, shape.stride_w}),
                                      attr_ints("dilations", {shape.dilation_h, shape.dilation_w}),
                                      attr_int("channels_last", 1)};
  if (shape.auto_pad.empty()) {
    attrs.push_back(attr_ints("pads", {shape.pads[0], shape.pads[1], shape.pads[2], shape.pads[3]}));
  } else {
    attrs.push_back(attr_string("auto_pad", shape.auto_pad));
  }
  if (*act.name) attrs.push_back(attr_string("activation", act.name));
  if (!act.params.empty()) attrs.push_back(attr_floats("activation_params", act.params));
  if (with_z) {
    int64_t oh, ow;
    if (shape.auto_pad == "VALID") {
      oh = dw_out(shape.h, shape.kh, shape.stride_h, shape.dilation_h, 0);
      ow = dw_out(shape.w, shape.kw, shape.stride_w, shape.dilation_w, 0);
    } else if (shape.auto_pad.empty()) {
      oh = dw_out(shape.h, shape.kh, shape.stride_h, shape.dilation_h, shape.pads[0] + shape.pads[2]);
      ow = dw_out(shape.w, shape.kw, shape.stride_w, shape.dilation_w, shape.pads[1] + shape.pads[3]);
    } else {  // SAME_*
      oh = (shape.h + shape.stride_h - 1) / shape.stride_h;
      ow = (shape.w + shape.stride_w - 1) / shape.stride_w;
    }
    g.input("z", rng.floats({batch, oh, ow, c}));
    ins.push_back("z");
  }
  g.node("FusedConv", ins, {"y"}, attrs, "ai.kiln");
  g.output("y");
  return g;
}

std::vector<DwShape> dw_shapes() {
  std::vector<DwShape> s;
  for (int64_t c : {1, 7, 8, 16, 17, 33, 240}) s.push_back({c, 9, 11, 3, 3, 1, 1, 1, 1, {1, 1, 1, 1}, ""});
  s.push_back({17, 10, 13, 3, 3, 2, 2, 1, 1, {1, 1, 1, 1}, ""});
  s.push_back({33, 12, 12, 5, 5, 1, 1, 1, 1, {2, 2, 2, 2}, ""});
  s.push_back({7, 13, 11, 5, 5, 2, 2, 1, 1, {1, 2, 2, 1}, ""});  // asymmetric, stride 2
  s.push_back({24, 15, 14, 7, 7, 1, 1, 1, 1, {3, 3, 3, 3}, ""});
  s.push_back({5, 9, 10, 7, 7, 2, 1, 1, 1, {0, 3, 2, 0}, ""});
  s.push_back({17, 12, 13, 3, 3, 1, 1, 2, 2, {2, 2, 2, 2}, ""});  // dilation 2
  s.push_back({33, 6, 45, 5, 5, 1, 1, 2, 2, {4, 4, 4, 4}, ""});   // dilated 5x5: tiles of pixels 2 apart
  s.push_back({17, 5, 50, 7, 7, 1, 1, 3, 3, {9, 9, 9, 9}, ""});   // and 7x7, 3 apart
  s.push_back({200, 6, 45, 5, 5, 1, 1, 2, 2, {4, 4, 4, 4}, ""});  // many channel vectors, the last masked
  s.push_back({9, 11, 14, 3, 5, 1, 2, 2, 1, {1, 0, 0, 3}, ""});   // non-square, mixed
  s.push_back({16, 6, 7, 3, 3, 1, 1, 1, 1, {0, 0, 0, 0}, ""});    // no pads
  s.push_back({3, 3, 2, 5, 5, 1, 1, 1, 1, {2, 2, 2, 2}, ""});     // kernel wider than the input
  s.push_back({4, 5, 5, 3, 3, 3, 3, 1, 1, {4, 4, 4, 4}, ""});     // windows over padding only
  s.push_back({7, 1, 37, 1, 3, 1, 1, 1, 1, {0, 1, 0, 1}, ""});    // one row, long
  s.push_back({19, 8, 9, 1, 1, 2, 2, 1, 1, {0, 0, 0, 0}, ""});    // 1x1
  s.push_back({18, 11, 10, 3, 3, 2, 2, 1, 1, {}, "SAME_UPPER"});
  s.push_back({18, 11, 10, 5, 5, 2, 2, 1, 1, {}, "SAME_LOWER"});
  s.push_back({10, 9, 9, 3, 3, 1, 1, 1, 1, {}, "VALID"});
  return s;
}

TEST(DepthwiseConvKernel, MatchesReferenceThroughSession) {
  // Small shapes would otherwise go to oneDNN's kernel (PackedDepthwiseConv::preferred).
  setenv("KILN_DEPTHWISE", "kiln", 1);
  uint32_t seed = 1;
  const std::vector<DwActivation>& acts = dw_activations();
  size_t a = 0;
  for (const DwShape& shape : dw_shapes()) {
    for (int variant = 0; variant < 4; ++variant) {
      const bool bias = variant & 1, with_z = variant & 2;
      // Every shape under several activations; every activation under every variant.
      for (size_t k = 0; k < 3; ++k, ++a) {
        const DwActivation& act = acts[a % acts.size()];
        const TestGraph g = dw_graph(shape, act, bias, with_z, 2, seed++);
        expect_fast_matches_reference(
            g, Answered::kFast,
            shape.what() + " act '" + act.name + "' bias " + std::to_string(bias) + " z " + std::to_string(with_z),
            kDepthwiseTol);
      }
    }
  }
}

// KILN_DEPTHWISE picks the kernel a depthwise Conv is made with: kiln's on every shape, oneDNN's on every
// shape, or by size (a 7x7 plane on one thread: oneDNN's); the implementation names the one made.
TEST(DepthwiseConvKernel, EnvironmentChoosesTheImplementation) {
  const TestGraph g = dw_graph({8, 7, 7, 3, 3, 1, 1, 1, 1, {1, 1, 1, 1}, ""}, dw_activations()[0], true, false, 1, 7);
  const ir::Model m = g.model();
  auto made_with = [&](const char* choice) {
    if (choice)
      setenv("KILN_DEPTHWISE", choice, 1);
    else
      unsetenv("KILN_DEPTHWISE");
    std::unique_ptr<kernels::cpu::FastKernel> k = kernels::cpu::make_fast_kernel(m.graph.nodes[0], m.graph, 17);
    return k ? k->implementation() : std::string("none");
  };
  EXPECT_EQ(made_with("onednn"), "onednn");
  EXPECT_EQ(made_with("kiln").rfind("depthwise ", 0), 0u) << made_with("kiln");
  // By size, a kernel of kiln's is made (and run or not per call).
  EXPECT_EQ(made_with(nullptr).rfind("depthwise ", 0), 0u);
  setenv("KILN_DEPTHWISE", "kiln", 1);  // what the other tests here expect
}

ConvSpec dw_spec(const DwShape& shape, const DwActivation& act, bool bias, bool with_z) {
  ConvSpec s;
  s.in_channels = s.out_channels = s.group = shape.channels;
  s.kernel = {shape.kh, shape.kw, 1};
  s.strides = {shape.stride_h, shape.stride_w, 1};
  s.dilations = {shape.dilation_h, shape.dilation_w, 1};
  s.pads_begin = {shape.pads[0], shape.pads[1], 0};
  s.pads_end = {shape.pads[2], shape.pads[3], 0};
  s.has_bias = bias;
  s.add_sum = with_z;
  s.channels_last = true;
  const std::string name = act.name;
  using A = ConvActivation;
  s.activation = name == "Relu"          ? A::kRelu
                 : name == "LeakyRelu"   ? A::kLeakyRelu
                 : name == "Clip"        ? A::kClip
                 : name == "Sigmoid"     ? A::kSigmoid
                 : name == "Tanh"        ? A::kTanh
                 : name == "Silu"        ? A::kSilu
                 : name == "HardSwish"   ? A::kHardSwish
                 : name == "HardSigmoid" ? A::kHardSigmoid
                                         : A::kNone;
  if (!act.params.empty()) s.alpha = act.params[0];
  if (act.params.size() > 1) s.beta = act.params[1];
  return s;
}

// Each ISA's build on its own (the session test above runs only the selected one), threads on and off.
TEST(DepthwiseConvKernel, EveryIsaMatchesReference) {
  uint32_t seed = 1000;
  size_t a = 0;
  for (const DwShape& shape : dw_shapes()) {
    if (!shape.auto_pad.empty()) continue;  // resolved by the caller; covered by the session test
    for (int variant = 0; variant < 4; ++variant, ++a) {
      const bool bias = variant & 1, with_z = variant & 2;
      const DwActivation& act = dw_activations()[a % dw_activations().size()];
      const TestGraph g = dw_graph(shape, act, bias, with_z, 2, seed++);
      const ir::Tensor want = g.run()[0];
      const ConvSpec spec = dw_spec(shape, act, bias, with_z);
      const ir::Tensor& w = *g.model().graph.find_initializer("w");
      const ir::Tensor* b = bias ? g.model().graph.find_initializer("b") : nullptr;
      const ir::Tensor& x = g.feed("x");
      const float* z = with_z ? g.feed("z").data<float>() : nullptr;
      for (Isa isa : {Isa::kAvx512, Isa::kAvx2, Isa::kScalar}) {
        if (!kernels::cpu::isa_supported(isa)) continue;
        for (bool threads : {false, true}) {
          SCOPED_TRACE(shape.what() + " act '" + act.name + "' bias " + std::to_string(bias) + " z " +
                       std::to_string(with_z) + " " + kernels::cpu::isa_name(isa) + (threads ? " threads" : ""));
          PackedDepthwiseConv conv(spec, w.data<float>(), b ? b->data<float>() : nullptr, isa);
          ASSERT_EQ(conv.isa(), isa);
          ir::Tensor y(ir::DType::kFloat32, want.shape());
          conv.run(2, shape.h, shape.w, want.dim(1), want.dim(2), shape.pads[0], shape.pads[1], x.data<float>(),
                   y.data<float>(), z, threads);
          EXPECT_LE(max_abs_diff(y, want), kDepthwiseTol);
        }
      }
    }
  }
}

TEST(DepthwiseConvKernel, RunsOnlyTwoDimensionalChannelsLastDepthwise) {
  ConvSpec s;
  s.in_channels = s.out_channels = s.group = 8;
  s.kernel = {3, 3, 1};
  s.channels_last = true;
  EXPECT_TRUE(kernels::cpu::is_depthwise_conv(s));
  ConvSpec first = s;
  first.channels_last = false;
  EXPECT_FALSE(kernels::cpu::is_depthwise_conv(first));
  ConvSpec multiplier = s;
  multiplier.out_channels = 16;
  EXPECT_FALSE(kernels::cpu::is_depthwise_conv(multiplier));
  ConvSpec grouped = s;
  grouped.group = 4;
  EXPECT_FALSE(kernels::cpu::is_depthwise_conv(grouped));
  ConvSpec three_d = s;
  three_d.spatial_dims = 3;
  EXPECT_FALSE(kernels::cpu::is_depthwise_conv(three_d));
}

// Milliseconds per call, the best of a few rounds.
template <class F>
double dw_time_ms(const F& f) {
  for (int i = 0; i < 5; ++i) f();
  double best = 1e30;
  for (int round = 0; round < 7; ++round) {
    const int reps = 30;
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < reps; ++i) f();
    const auto t1 = std::chrono::steady_clock::now();
    best = std::min(best, std::chrono::duration<double, std::milli>(t1 - t0).count() / reps);
  }
  return best;
}

TEST(DepthwiseConvKernel, DISABLED_Timings) {
  struct Bench {
    DwShape shape;
    DwActivation act;
  };
  const std::vector<Bench> benches = {
      {{32, 112, 112, 3, 3, 1, 1, 1, 1, {1, 1, 1, 1}, ""}, {"Silu", {}}},
      {{96, 112, 112, 3, 3, 2, 2, 1, 1, {0, 0, 1, 1}, ""}, {"Silu", {}}},
      {{144, 56, 56, 3, 3, 1, 1, 1, 1, {1, 1, 1, 1}, ""}, {"Silu", {}}},
      {{240, 28, 28, 5, 5, 1, 1, 1, 1, {2, 2, 2, 2}, ""}, {"Silu", {}}},
      {{672, 14, 14, 5, 5, 1, 1, 1, 1, {2, 2, 2, 2}, ""}, {"Silu", {}}},
      {{1152, 7, 7, 5, 5, 1, 1, 1, 1, {2, 2, 2, 2}, ""}, {"Silu", {}}},
      {{960, 7, 7, 5, 5, 1, 1, 1, 1, {2, 2, 2, 2}, ""}, {"HardSwish", {}}},
      {{16, 112, 112, 3, 3, 1, 1, 1, 1, {1, 1, 1, 1}, ""}, {"Relu", {}}},
      {{72, 56, 56, 3, 3, 2, 2, 1, 1, {1, 1, 1, 1}, ""}, {"Relu", {}}},
      {{120, 28, 28, 5, 5, 1, 1, 1, 1, {2, 2, 2, 2}, ""}, {"HardSwish", {}}},
      {{480, 14, 14, 3, 3, 1, 1, 1, 1, {1, 1, 1, 1}, ""}, {"HardSwish", {}}},
      {{96, 56, 56, 7, 7, 1, 1, 1, 1, {3, 3, 3, 3}, ""}, {"", {}}},  // ConvNeXt's
      {{384, 14, 14, 7, 7, 1, 1, 1, 1, {3, 3, 3, 3}, ""}, {"", {}}},
  };
  const int max_threads = omp_get_max_threads();
  for (const Bench& bench : benches) {
    const DwShape& sh = bench.shape;
    Random rng(7);
    const ir::Tensor x = rng.floats({1, sh.h, sh.w, sh.channels});
    const ir::Tensor w = rng.floats({sh.channels, 1, sh.kh, sh.kw});
    const ir::Tensor b = rng.floats({sh.channels});
    const ConvSpec spec = dw_spec(sh, bench.act, true, false);
    const int64_t oh = dw_out(sh.h, sh.kh, sh.stride_h, sh.dilation_h, sh.pads[0] + sh.pads[2]);
    const int64_t ow = dw_out(sh.w, sh.kw, sh.stride_w, sh.dilation_w, sh.pads[1] + sh.pads[3]);
    ir::Tensor y(ir::DType::kFloat32, {1, oh, ow, sh.channels});
    PackedConv onednn(spec, w.data<float>(), b.data<float>());
    PackedDepthwiseConv ours(spec, w.data<float>(), b.data<float>());
    for (int threads : {1, max_threads}) {
      if (threads == 1 && max_threads == 1) continue;
      omp_set_num_threads(threads);
      const double t_onednn = dw_time_ms([&] { onednn.run(1, {sh.h, sh.w, 1}, x.data<float>(), y.data<float>()); });
      const double t_ours = dw_time_ms(
          [&] { ours.run(1, sh.h, sh.w, oh, ow, sh.pads[0], sh.pads[1], x.data<float>(), y.data<float>(), nullptr); });
      std::printf("%-70s %-9s threads %d  onednn %.4f ms  ours %.4f ms  (%.2fx)\n", sh.what().c_str(), bench.act.name,
                  threads, t_onednn, t_ours, t_onednn / t_ours);
    }
    omp_set_num_threads(max_threads);
  }
}

}  // namespace
}  // namespace kiln
