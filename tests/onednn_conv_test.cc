// PackedConv (oneDNN convolution, weights packed once) and the fast Conv / FusedConv kernel against kiln's
// reference Conv and FusedConv kernels: odd sizes, strides, asymmetric pads, auto_pad, dilations,
// groups, depthwise, no bias, batch > 1, every activation, the residual Z, channels-first and
// channels-last activations (ai.kiln.FusedConv channels_last), both activation layouts (plain as given and
// oneDNN's blocked one), the per-shape primitive cache, concurrent calls, the nodes the fast kernel must
// leave to the reference, and invalid calls failing with the reference's messages.
#include "kernels/cpu/onednn_conv.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "common/error.h"
#include "contrib_test_util.h"
#include "kernels/cpu/onednn_engine.h"
#include "runtime/session.h"

namespace kiln {
namespace {

using kernels::cpu::ConvActivation;
using kernels::cpu::ConvDims;
using kernels::cpu::ConvLayout;
using kernels::cpu::ConvPadding;
using kernels::cpu::ConvSpec;
using kernels::cpu::PackedConv;
using testing::contrib::attr_floats;
using testing::contrib::attr_int;
using testing::contrib::attr_ints;
using testing::contrib::attr_string;
using testing::contrib::max_abs_diff;
using testing::contrib::Random;
using testing::contrib::TestGraph;
using Feeds = std::unordered_map<std::string, ir::Datum>;

// Float32 accumulation in another order than the reference's double sums, and oneDNN's polynomial
// tanh / sigmoid: 1e-4 relative to the output's largest magnitude.
constexpr double kRelTol = 1e-4;

double max_abs(const ir::Tensor& t) {
  double m = 0;
  for (int64_t i = 0; i < t.numel(); ++i) m = std::max(m, std::fabs(t.as_double(i)));
  return m;
}

void expect_close(const ir::Tensor& got, const ir::Tensor& want, const std::string& what) {
  ASSERT_EQ(got.shape(), want.shape()) << what;
  EXPECT_LE(max_abs_diff(got, want), kRelTol * std::max(1.0, max_abs(want))) << what;
}

ConvPadding padding_of(const std::string& auto_pad) {
  return auto_pad == "SAME_UPPER"   ? ConvPadding::kSameUpper
         : auto_pad == "SAME_LOWER" ? ConvPadding::kSameLower
         : auto_pad == "VALID"      ? ConvPadding::kValid
                                    : ConvPadding::kExplicit;
}

// One 2-D convolution: shapes and attributes as ONNX writes them.
struct ConvCase {
  int64_t n, c, h, w, m, kh, kw;
  int64_t stride_h = 1, stride_w = 1;
  std::vector<int64_t> pads = {0, 0, 0, 0};  // top, left, bottom, right
  int64_t dilation_h = 1, dilation_w = 1;
  int64_t group = 1;
  bool bias = true;
  std::string auto_pad = "NOTSET";

  std::string label() const {
    return str("x[", n, ",", c, ",", h, ",", w, "] w[", m, ",", c / group, ",", kh, ",", kw, "] strides ", stride_h,
               ",", stride_w, " pads ", ir::to_string(pads), " dilations ", dilation_h, ",", dilation_w, " group ",
               group, bias ? "" : " no bias", " auto_pad ", auto_pad);
  }

  std::vector<ir::Attribute> attributes() const {
    std::vector<ir::Attribute> a = {attr_ints("strides", {stride_h, stride_w}),
                                    attr_ints("dilations", {dilation_h, dilation_w}), attr_int("group", group),
                                    attr_ints("kernel_shape", {kh, kw})};
    if (auto_pad == "NOTSET")
      a.push_back(attr_ints("pads", pads));
    else
      a.push_back(attr_string("auto_pad", auto_pad));
    return a;
  }

  ConvSpec spec() const {
    ConvSpec s;
    s.in_channels = c;
    s.out_channels = m;
    s.group = group;
    s.spatial_dims = 2;
    s.kernel = {kh, kw, 0};
    s.strides = {stride_h, stride_w, 0};
    s.dilations = {dilation_h, dilation_w, 0};
    s.padding = padding_of(auto_pad);
    s.pads_begin = {pads[0], pads[1], 0};
    s.pads_end = {pads[2], pads[3], 0};
    s.has_bias = bias;
    return s;
  }
};

std::vector<ConvCase> conv_cases() {
  std::vector<ConvCase> v;
  v.push_back({1, 16, 7, 7, 32, 1, 1});                                         // 1x1
  v.push_back({2, 3, 5, 9, 5, 1, 1});                                           // 1x1, odd, batch 2
  v.push_back({1, 8, 13, 11, 16, 3, 3, 1, 1, {1, 1, 1, 1}});                    // 3x3 same size
  v.push_back({2, 5, 10, 9, 7, 3, 3, 2, 2, {0, 1, 1, 0}});                      // asymmetric pads, stride 2
  v.push_back({1, 3, 33, 31, 8, 7, 7, 2, 2, {3, 3, 3, 3}});                     // a first conv
  v.push_back({1, 4, 12, 12, 6, 3, 3, 1, 1, {2, 2, 2, 2}, 2, 2});               // dilation 2
  v.push_back({1, 4, 11, 13, 6, 3, 3, 1, 1, {1, 2, 1, 2}, 1, 2});               // dilation 1 x 2
  v.push_back({1, 8, 9, 9, 12, 3, 3, 1, 1, {1, 1, 1, 1}, 1, 1, 2});             // 2 groups
  v.push_back({1, 32, 10, 10, 64, 3, 3, 1, 1, {1, 1, 1, 1}, 1, 1, 4});          // 4 groups of 8
  v.push_back({1, 16, 15, 15, 16, 3, 3, 1, 1, {1, 1, 1, 1}, 1, 1, 16});         // depthwise
  v.push_back({2, 24, 14, 14, 24, 5, 5, 2, 2, {2, 2, 2, 2}, 1, 1, 24});         // depthwise 5x5 / 2
  v.push_back({1, 7, 9, 9, 7, 3, 3, 1, 1, {1, 1, 1, 1}, 1, 1, 7});              // depthwise, odd channels
  v.push_back({1, 8, 9, 8, 16, 3, 3, 1, 1, {1, 1, 1, 1}, 1, 1, 8});             // depthwise x 2 multiplier
  v.push_back({1, 6, 8, 10, 9, 1, 3, 1, 1, {0, 1, 0, 1}});                      // 1x3
  v.push_back({1, 6, 10, 8, 9, 3, 1, 1, 1, {1, 0, 1, 0}});                      // 3x1
  v.push_back({1, 2, 3, 3, 4, 5, 5, 1, 1, {2, 2, 2, 2}});                       // kernel > input
  v.push_back({3, 5, 11, 11, 4, 3, 3, 3, 3});                                   // stride 3, batch 3
  v.push_back({1, 9, 17, 17, 13, 3, 3, 1, 1, {1, 1, 1, 1}, 1, 1, 1, false});    // no bias
  v.push_back({1, 4, 10, 11, 8, 3, 3, 2, 2, {}, 1, 1, 1, true, "SAME_UPPER"});  // auto_pad
  v.push_back({1, 4, 10, 11, 8, 4, 4, 2, 2, {}, 1, 1, 1, true, "SAME_LOWER"});
  v.push_back({1, 4, 10, 11, 8, 3, 3, 2, 1, {}, 1, 1, 1, true, "VALID"});
  v.push_back({1, 64, 14, 14, 32, 1, 1, 2, 2});  // strided 1x1
  v.push_back({1, 96, 1, 1, 24, 1, 1});          // squeeze-excite 1x1 on 1x1
  for (ConvCase& c : v)
    if (c.pads.empty()) c.pads = {0, 0, 0, 0};
  return v;
}

std::vector<ir::Datum> run_session(const ir::Model& m, const Feeds& feeds, bool fast, size_t* fast_count = nullptr) {
  runtime::SessionOptions o;
  o.optimization = passes::Level::kNone;
  o.fast_kernels = fast;
  runtime::Session s(m, o);
  if (fast_count) *fast_count = s.fast_kernel_count();
  return s.run(feeds);
}

// `m` run with fast kernels and with the reference only: outputs must agree and `expect_fast` nodes must
// have a fast kernel prepared.
void expect_fast_matches_reference(const ir::Model& m, const Feeds& feeds, size_t expect_fast,
                                   const std::string& what) {
  size_t fast_count = 0;
  std::vector<ir::Datum> fast = run_session(m, feeds, true, &fast_count);
  std::vector<ir::Datum> ref = run_session(m, feeds, false);
  EXPECT_EQ(fast_count, expect_fast) << what;
  ASSERT_EQ(fast.size(), ref.size()) << what;
  for (size_t i = 0; i < ref.size(); ++i) expect_close(fast[i].tensor, ref[i].tensor, what);
}

// The error message of running `m`, or "" when it runs.
std::string error_of(const ir::Model& m, const Feeds& feeds, bool fast) {
  try {
    run_session(m, feeds, fast);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// Conv(x, W [, B]) as a one-node graph with random inputs.
TestGraph conv_graph(const ConvCase& c, uint32_t seed) {
  Random rng(seed);
  TestGraph g;
  g.input("x", rng.floats({c.n, c.c, c.h, c.w}));
  std::vector<std::string> inputs = {"x", g.constant("w", rng.floats({c.m, c.c / c.group, c.kh, c.kw}))};
  if (c.bias) inputs.push_back(g.constant("b", rng.floats({c.m})));
  g.node("Conv", inputs, {"y"}, c.attributes());
  g.output("y");
  return g;
}

// [N, C, spatial...] as [N, spatial..., C].
ir::Tensor to_channels_last(const ir::Tensor& t) {
  const int64_t n = t.dim(0), c = t.dim(1);
  const int64_t plane = n * c == 0 ? 0 : t.numel() / (n * c);
  std::vector<int64_t> shape = {n};
  shape.insert(shape.end(), t.shape().begin() + 2, t.shape().end());
  shape.push_back(c);
  ir::Tensor r(ir::DType::kFloat32, shape);
  const float* from = t.data<float>();
  float* to = r.data<float>();
  for (int64_t ni = 0; ni < n; ++ni)
    for (int64_t ci = 0; ci < c; ++ci)
      for (int64_t p = 0; p < plane; ++p) to[(ni * plane + p) * c + ci] = from[(ni * c + ci) * plane + p];
  return r;
}

TEST(PackedConv, MatchesReferenceConvInBothLayouts) {
  uint32_t seed = 1;
  for (const ConvCase& c : conv_cases()) {
    SCOPED_TRACE(c.label());
    TestGraph g = conv_graph(c, seed++);
    const ir::Tensor want = g.run()[0];
    const ir::Tensor& x = g.feed("x");
    const ir::Tensor* w = g.model().graph.find_initializer("w");
    const ir::Tensor* b = g.model().graph.find_initializer("b");
    for (ConvLayout layout : {ConvLayout::kPlain, ConvLayout::kBlocked, ConvLayout::kAuto}) {
      ConvSpec spec = c.spec();
      spec.layout = layout;
      PackedConv conv(spec, w->data<float>(), b ? b->data<float>() : nullptr);
      ConvDims out;
      ASSERT_TRUE(conv.output_size({c.h, c.w}, &out));
      ASSERT_EQ((std::vector<int64_t>{c.n, c.m, out[0], out[1]}), want.shape());
      const std::string impl = conv.prepare(c.n, {c.h, c.w});
      EXPECT_EQ(impl.find("ref"), std::string::npos) << "oneDNN fell back to its reference convolution: " << impl;
      ir::Tensor y(ir::DType::kFloat32, want.shape());
      conv.run(c.n, {c.h, c.w}, x.data<float>(), y.data<float>());
      expect_close(y, want, "layout " + std::to_string(static_cast<int>(layout)) + " (" + impl + ")");
    }
  }
}

// channels_last: x, y [N, H, W, C], the reference's output transposed to compare. kAuto runs oneDNN on
// NHWC as given (no reorders) unless it has nothing but gemm there.
TEST(PackedConv, ChannelsLastMatchesReferenceConv) {
  uint32_t seed = 1;
  for (const ConvCase& c : conv_cases()) {
    SCOPED_TRACE(c.label());
    TestGraph g = conv_graph(c, seed++);
    const ir::Tensor want = to_channels_last(g.run()[0]);
    const ir::Tensor x = to_channels_last(g.feed("x"));
    const ir::Tensor* w = g.model().graph.find_initializer("w");
    const ir::Tensor* b = g.model().graph.find_initializer("b");
    std::string plain_impl;
    for (ConvLayout layout : {ConvLayout::kPlain, ConvLayout::kBlocked, ConvLayout::kAuto}) {
      ConvSpec spec = c.spec();
      spec.channels_last = true;
      spec.layout = layout;
      PackedConv conv(spec, w->data<float>(), b ? b->data<float>() : nullptr);
      const std::string impl = conv.prepare(c.n, {c.h, c.w});
      EXPECT_EQ(impl.find("ref"), std::string::npos) << "oneDNN fell back to its reference convolution: " << impl;
      if (layout == ConvLayout::kPlain) plain_impl = impl;
      if (layout == ConvLayout::kAuto && impl.find("(blocked)") != std::string::npos) {
        EXPECT_NE(plain_impl.find("gemm"), std::string::npos) << impl << " reorders where NHWC runs " << plain_impl;
      }
      ir::Tensor y(ir::DType::kFloat32, want.shape());
      conv.run(c.n, {c.h, c.w}, x.data<float>(), y.data<float>());
      expect_close(y, want, "channels-last layout " + std::to_string(static_cast<int>(layout)) + " (" + impl + ")");
    }
  }
}

TEST(ConvKernel, FastConvMatchesReference) {
  uint32_t seed = 100;
  for (const ConvCase& c : conv_cases()) {
    TestGraph g = conv_graph(c, seed++);
    expect_fast_matches_reference(g.model(), g.feeds(), 1, c.label());
  }
}

// Every activation each FusedConv domain takes, with and without Z, in both layouts.
TEST(ConvKernel, FusedConvEveryActivationWithAndWithoutZ) {
  struct Act {
    std::string name;
    std::vector<float> params;
    bool kiln_only;
    ConvActivation kind;
  };
  const std::vector<Act> acts = {{"", {}, false, ConvActivation::kNone},
                                 {"Relu", {}, false, ConvActivation::kRelu},
                                 {"Tanh", {}, false, ConvActivation::kTanh},
                                 {"Sigmoid", {}, false, ConvActivation::kSigmoid},
                                 {"LeakyRelu", {0.07f}, false, ConvActivation::kLeakyRelu},
                                 {"Clip", {-0.5f, 1.5f}, false, ConvActivation::kClip},
                                 {"HardSigmoid", {0.2f, 0.4f}, false, ConvActivation::kHardSigmoid},
                                 {"HardSwish", {}, true, ConvActivation::kHardSwish},
                                 {"Silu", {}, true, ConvActivation::kSilu}};
  // A 3x3 (blocked JIT by default), a depthwise and a batch-2 1x1 with stride.
  const std::vector<ConvCase> convs = {{1, 8, 10, 10, 16, 3, 3, 1, 1, {1, 1, 1, 1}},
                                       {1, 16, 9, 9, 16, 3, 3, 1, 1, {1, 1, 1, 1}, 1, 1, 16},
                                       {2, 12, 9, 8, 20, 1, 1, 2, 2}};
  uint32_t seed = 200;
  for (const ConvCase& c : convs) {
    for (const Act& act : acts) {
      for (bool z : {false, true}) {
        const std::string what = c.label() + " activation " + act.name + (z ? " with Z" : "");
        Random rng(seed++);
        TestGraph g;
        // Inputs over [-2, 2]: every activation's bends (Clip's bounds, HardSigmoid's, HardSwish's) are crossed.
        g.input("x", rng.floats({c.n, c.c, c.h, c.w}, -2.0f, 2.0f));
        std::vector<std::string> inputs = {"x",
                                           g.constant("w", rng.floats({c.m, c.c / c.group, c.kh, c.kw}, -0.3f, 0.3f)),
                                           g.constant("b", rng.floats({c.m}))};
        int64_t oh = (c.h + c.pads[0] + c.pads[2] - c.kh) / c.stride_h + 1;
        int64_t ow = (c.w + c.pads[1] + c.pads[3] - c.kw) / c.stride_w + 1;
        if (z) inputs.push_back(g.input("z", rng.floats({c.n, c.m, oh, ow}, -2.0f, 2.0f)));
        std::vector<ir::Attribute> attrs = c.attributes();
        if (!act.name.empty()) attrs.push_back(attr_string("activation", act.name));
        if (!act.params.empty()) attrs.push_back(attr_floats("activation_params", act.params));
        g.node("FusedConv", inputs, {"y"}, attrs, act.kiln_only ? "ai.kiln" : "com.microsoft");
        g.output("y");
        ir::Model m = g.model();
        m.opset_imports["ai.kiln"] = 1;
        expect_fast_matches_reference(m, g.feeds(), 1, what);

        // PackedConv itself in both layouts against the same reference answer.
        runtime::SessionOptions ro;
        ro.optimization = passes::Level::kNone;
        ro.fast_kernels = false;
        const ir::Tensor want = runtime::Session(m, ro).run(g.feeds())[0].tensor;
        for (ConvLayout layout : {ConvLayout::kPlain, ConvLayout::kBlocked}) {
          ConvSpec spec = c.spec();
          spec.activation = act.kind;
          if (!act.params.empty()) spec.alpha = act.params[0];
          if (act.params.size() > 1) spec.beta = act.params[1];
          spec.add_sum = z;
          spec.layout = layout;
          PackedConv conv(spec, m.graph.find_initializer("w")->data<float>(),
                          m.graph.find_initializer("b")->data<float>());
          ir::Tensor y(ir::DType::kFloat32, want.shape());
          conv.run(c.n, {c.h, c.w}, g.feed("x").data<float>(), y.data<float>(),
                   z ? g.feed("z").data<float>() : nullptr);
          expect_close(y, want, what + " layout " + std::to_string(static_cast<int>(layout)));
        }
      }
    }
  }
}

// A convolution over 1, 2 or 3 spatial axes, per-axis attributes as ONNX writes them.
struct NdCase {
  int64_t n, c, m;
  std::vector<int64_t> in, kernel, strides, dilations, pads;  // pads: every begin, then every end
  int64_t group = 1;
  bool bias = true;
  std::string auto_pad = "NOTSET";

  size_t axes() const { return in.size(); }
  std::string label() const {
    return str("x[", n, ",", c, " ", ir::to_string(in), "] w[", m, ",", c / group, " ", ir::to_string(kernel),
               "] strides ", ir::to_string(strides), " pads ", ir::to_string(pads), " dilations ",
               ir::to_string(dilations), " group ", group, bias ? "" : " no bias", " auto_pad ", auto_pad);
  }
  std::vector<ir::Attribute> attributes() const {
    std::vector<ir::Attribute> a = {attr_ints("strides", strides), attr_ints("dilations", dilations),
                                    attr_int("group", group), attr_ints("kernel_shape", kernel)};
    if (auto_pad == "NOTSET")
      a.push_back(attr_ints("pads", pads));
    else
      a.push_back(attr_string("auto_pad", auto_pad));
    return a;
  }
  ConvSpec spec() const {
    ConvSpec s;
    s.in_channels = c;
    s.out_channels = m;
    s.group = group;
    s.spatial_dims = static_cast<int>(axes());
    for (size_t i = 0; i < axes(); ++i) {
      s.kernel[i] = kernel[i];
      s.strides[i] = strides[i];
      s.dilations[i] = dilations[i];
      s.pads_begin[i] = pads[i];
      s.pads_end[i] = pads[i + axes()];
    }
    s.padding = padding_of(auto_pad);
    s.has_bias = bias;
    return s;
  }
  ConvDims in_dims() const {
    ConvDims d = {0, 0, 0};
    for (size_t i = 0; i < axes(); ++i) d[i] = in[i];
    return d;
  }
  std::vector<int64_t> x_shape() const {
    std::vector<int64_t> s = {n, c};
    s.insert(s.end(), in.begin(), in.end());
    return s;
  }
  std::vector<int64_t> w_shape() const {
    std::vector<int64_t> s = {m, c / group};
    s.insert(s.end(), kernel.begin(), kernel.end());
    return s;
  }
};

// 1-D (audio: long inputs, wide kernels, strides) and 3-D (video, volumes) convolutions, and a few 2-D
// ones written per axis: odd sizes, strides, dilations, asymmetric pads, auto_pad, groups, depthwise.
std::vector<NdCase> nd_cases() {
  std::vector<NdCase> v;
  // 1-D
  v.push_back({1, 16, 32, {100}, {3}, {1}, {1}, {1, 1}});
  v.push_back({2, 1, 8, {257}, {7}, {2}, {1}, {3, 3}});           // one channel in, stride 2
  v.push_back({1, 129, 128, {33}, {3}, {1}, {1}, {1, 1}});        // silero-vad's encoder widths
  v.push_back({1, 64, 64, {31}, {5}, {1}, {3}, {6, 6}});          // dilation 3
  v.push_back({1, 12, 18, {29}, {4}, {3}, {1}, {2, 0}});          // asymmetric pads, stride 3
  v.push_back({1, 24, 24, {40}, {5}, {1}, {1}, {2, 2}, 24});      // depthwise
  v.push_back({2, 32, 16, {19}, {3}, {2}, {1}, {1, 1}, 4});       // 4 groups, stride 2
  v.push_back({1, 7, 5, {11}, {1}, {1}, {1}, {0, 0}, 1, false});  // 1-wide, no bias
  v.push_back({1, 6, 9, {17}, {4}, {2}, {1}, {}, 1, true, "SAME_UPPER"});
  v.push_back({1, 6, 9, {17}, {4}, {3}, {2}, {}, 1, true, "SAME_LOWER"});
  v.push_back({3, 5, 4, {13}, {3}, {2}, {1}, {}, 1, true, "VALID"});
  v.push_back({1, 3, 4, {2}, {5}, {1}, {1}, {2, 2}});  // kernel > input
  // 2-D, per axis
  v.push_back({1, 8, 12, {9, 14}, {3, 5}, {1, 2}, {2, 1}, {2, 1, 0, 3}});
  v.push_back({2, 6, 6, {7, 5}, {3, 3}, {2, 1}, {1, 1}, {}, 6, true, "SAME_UPPER"});
  // 3-D
  v.push_back({1, 3, 8, {6, 7, 8}, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}, {1, 1, 1, 1, 1, 1}});
  v.push_back({2, 16, 16, {5, 9, 9}, {1, 3, 3}, {1, 2, 2}, {1, 1, 1}, {0, 1, 1, 0, 1, 1}});
  v.push_back({1, 8, 12, {7, 6, 5}, {2, 2, 2}, {2, 2, 2}, {1, 1, 1}, {0, 0, 0, 1, 1, 0}});       // asymmetric
  v.push_back({1, 4, 6, {9, 9, 9}, {3, 3, 3}, {1, 1, 1}, {2, 1, 2}, {2, 1, 2, 2, 1, 2}});        // dilations
  v.push_back({1, 16, 16, {6, 6, 6}, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}, {1, 1, 1, 1, 1, 1}, 16});  // depthwise
  v.push_back({1, 8, 12, {5, 6, 7}, {3, 1, 3}, {1, 1, 2}, {1, 1, 1}, {1, 0, 1, 1, 0, 1}, 4});    // grouped
  v.push_back({1, 32, 8, {4, 4, 4}, {1, 1, 1}, {1, 1, 1}, {1, 1, 1}, {0, 0, 0, 0, 0, 0}, 1, false});
  v.push_back({1, 5, 7, {6, 5, 9}, {3, 2, 4}, {2, 1, 3}, {1, 1, 1}, {}, 1, true, "SAME_LOWER"});
  v.push_back({2, 3, 4, {5, 6, 7}, {2, 3, 2}, {1, 2, 2}, {1, 1, 1}, {}, 1, true, "VALID"});
  for (NdCase& c : v)
    if (c.pads.empty()) c.pads.assign(2 * c.axes(), 0);
  return v;
}

TestGraph nd_conv_graph(const NdCase& c, uint32_t seed) {
  Random rng(seed);
  TestGraph g;
  g.input("x", rng.floats(c.x_shape()));
  std::vector<std::string> inputs = {"x", g.constant("w", rng.floats(c.w_shape(), -0.5f, 0.5f))};
  if (c.bias) inputs.push_back(g.constant("b", rng.floats({c.m})));
  g.node("Conv", inputs, {"y"}, c.attributes());
  g.output("y");
  return g;
}

TEST(PackedConv, OneTwoAndThreeSpatialDimsMatchReference) {
  uint32_t seed = 700;
  for (const NdCase& c : nd_cases()) {
    SCOPED_TRACE(c.label());
    TestGraph g = nd_conv_graph(c, seed++);
    const ir::Tensor want = g.run()[0];
    const ir::Tensor* w = g.model().graph.find_initializer("w");
    const ir::Tensor* b = g.model().graph.find_initializer("b");
    for (bool last : {false, true}) {
      const ir::Tensor x = last ? to_channels_last(g.feed("x")) : g.feed("x");
      const ir::Tensor want_here = last ? to_channels_last(want) : want;
      for (ConvLayout layout : {ConvLayout::kPlain, ConvLayout::kBlocked, ConvLayout::kAuto}) {
        ConvSpec spec = c.spec();
        spec.channels_last = last;
        spec.layout = layout;
        PackedConv conv(spec, w->data<float>(), b ? b->data<float>() : nullptr);
        ConvDims out;
        ASSERT_TRUE(conv.output_size(c.in_dims(), &out));
        for (size_t i = 0; i < c.axes(); ++i) EXPECT_EQ(out[i], want.dim(i + 2));
        const std::string impl = conv.prepare(c.n, c.in_dims());
        EXPECT_EQ(impl.find("ref"), std::string::npos) << "oneDNN fell back to its reference convolution: " << impl;
        ir::Tensor y(ir::DType::kFloat32, want_here.shape());
        conv.run(c.n, c.in_dims(), x.data<float>(), y.data<float>());
        expect_close(
            y, want_here,
            str(last ? "channels-last" : "channels-first", " layout ", static_cast<int>(layout), " (", impl, ")"));
      }
    }
  }
}

// The fast kernel on every shape of nd_cases(): as Conv, and as ai.kiln.FusedConv channels_last = 1 with
// an activation (and Z on every other one).
TEST(ConvKernel, OneTwoAndThreeSpatialDimsMatchReference) {
  uint32_t seed = 800;
  size_t i = 0;
  for (const NdCase& c : nd_cases()) {
    TestGraph g = nd_conv_graph(c, seed++);
    expect_fast_matches_reference(g.model(), g.feeds(), 1, c.label());

    const bool z = i++ % 2 == 0;
    const ir::Tensor y = g.run()[0];
    Random rng(seed++);
    TestGraph f;
    f.import_opset("ai.kiln", 1);
    std::vector<std::string> inputs = {f.input("x", to_channels_last(g.feed("x"))),
                                       f.constant("w", *g.model().graph.find_initializer("w")),
                                       c.bias ? f.constant("b", *g.model().graph.find_initializer("b")) : ""};
    if (z) inputs.push_back(f.input("z", to_channels_last(rng.floats(y.shape()))));
    std::vector<ir::Attribute> attrs = c.attributes();
    attrs.push_back(attr_int("channels_last", 1));
    attrs.push_back(attr_string("activation", "HardSwish"));
    f.node("FusedConv", inputs, {"y"}, attrs, "ai.kiln");
    f.output("y");
    expect_fast_matches_reference(f.model(), f.feeds(), 1, c.label() + " channels-last" + (z ? " with Z" : ""));
  }
}

// ai.kiln.FusedConv channels_last = 1 (X, Z, Y channels-last) on every shape of conv_cases(), each with
// an activation and every other one with Z, against the reference FusedConv (which permutes around the
// reference Conv) and against the reference Conv on the channels-first input.
TEST(ConvKernel, ChannelsLastFusedConvMatchesReference) {
  const std::vector<std::pair<std::string, std::vector<float>>> acts = {{"Relu", {}},
                                                                        {"", {}},
                                                                        {"HardSwish", {}},
                                                                        {"Clip", {-0.5f, 1.5f}},
                                                                        {"Silu", {}},
                                                                        {"LeakyRelu", {0.1f}},
                                                                        {"HardSigmoid", {0.2f, 0.4f}},
                                                                        {"Sigmoid", {}},
                                                                        {"Tanh", {}}};
  uint32_t seed = 600;
  size_t i = 0;
  for (const ConvCase& c : conv_cases()) {
    const auto& [act, params] = acts[i % acts.size()];
    const bool z = i++ % 2 == 1;
    const std::string what = c.label() + " channels-last, activation " + act + (z ? " with Z" : "");
    TestGraph nchw = conv_graph(c, seed++);
    const ir::Tensor conv_y = nchw.run()[0];
    Random rng(seed++);
    TestGraph g;
    g.import_opset("ai.kiln", 1);
    std::vector<std::string> inputs = {g.input("x", to_channels_last(nchw.feed("x"))),
                                       g.constant("w", *nchw.model().graph.find_initializer("w")),
                                       c.bias ? g.constant("b", *nchw.model().graph.find_initializer("b")) : ""};
    ir::Tensor zt = rng.floats({conv_y.dim(0), conv_y.dim(2), conv_y.dim(3), conv_y.dim(1)});
    if (z) inputs.push_back(g.input("z", zt));
    std::vector<ir::Attribute> attrs = c.attributes();
    attrs.push_back(attr_int("channels_last", 1));
    if (!act.empty()) attrs.push_back(attr_string("activation", act));
    if (!params.empty()) attrs.push_back(attr_floats("activation_params", params));
    g.node("FusedConv", inputs, {"y"}, attrs, "ai.kiln");
    g.output("y");
    expect_fast_matches_reference(g.model(), g.feeds(), 1, what);
    if (act.empty() && !z) {
      size_t fast_count = 0;
      expect_close(run_session(g.model(), g.feeds(), true, &fast_count)[0].tensor, to_channels_last(conv_y),
                   what + " vs Conv");
    }
  }
}

// No fast kernel where the weights are not float32 initializers of a 1-D to 3-D convolution, or the attributes
// are refused by the reference: it then answers, as it would without fast kernels.
TEST(ConvKernel, LeavesWhatItDoesNotCoverToTheReference) {
  Random rng(300);
  // W fed at run time: nothing to pack, no fast kernel.
  {
    TestGraph g;
    g.input("x", rng.floats({1, 3, 6, 6}));
    g.input("w", rng.floats({4, 3, 3, 3}));
    g.node("Conv", {"x", "w"}, {"y"});
    g.output("y");
    expect_fast_matches_reference(g.model(), g.feeds(), 0, "W fed at run time");
  }
  // A bias fed at run time.
  {
    TestGraph g;
    g.input("x", rng.floats({1, 3, 6, 6}));
    g.constant("w", rng.floats({4, 3, 3, 3}));
    g.input("b", rng.floats({4}));
    g.node("Conv", {"x", "w", "b"}, {"y"});
    g.output("y");
    expect_fast_matches_reference(g.model(), g.feeds(), 0, "B fed at run time");
  }
  // 4 spatial dims (oneDNN has 1 to 3).
  {
    TestGraph g;
    g.input("x", rng.floats({1, 2, 3, 4, 3, 4}));
    g.constant("w", rng.floats({3, 2, 2, 2, 2, 2}));
    g.node("Conv", {"x", "w"}, {"y"});
    g.output("y");
    expect_fast_matches_reference(g.model(), g.feeds(), 0, "4-D spatial");
  }
  // float64 weights.
  {
    TestGraph g;
    ir::Tensor x(ir::DType::kFloat64, {1, 2, 5, 5}), w(ir::DType::kFloat64, {3, 2, 3, 3});
    for (int64_t i = 0; i < x.numel(); ++i) x.data<double>()[i] = std::sin(static_cast<double>(i));
    for (int64_t i = 0; i < w.numel(); ++i) w.data<double>()[i] = std::cos(static_cast<double>(i));
    g.input("x", x);
    g.constant("w", w);
    g.node("Conv", {"x", "w"}, {"y"});
    g.output("y");
    expect_fast_matches_reference(g.model(), g.feeds(), 0, "float64");
  }
  // HardSwish is ai.kiln's only: com.microsoft.FusedConv refuses it, with or without fast kernels.
  {
    TestGraph g;
    g.input("x", rng.floats({1, 2, 5, 5}));
    g.constant("w", rng.floats({3, 2, 3, 3}));
    g.contrib("FusedConv", {"x", "w"}, {"y"}, {attr_string("activation", "HardSwish")});
    g.output("y");
    const std::string ref = error_of(g.model(), g.feeds(), false);
    EXPECT_NE(ref.find("unsupported activation"), std::string::npos) << ref;
    EXPECT_EQ(error_of(g.model(), g.feeds(), true), ref);
  }
}

// The fast kernel holds W and B packed and the session releases them, so it answers every call itself:
// invalid ones fail with the reference kernel's message, an empty batch gives the reference's empty output.
TEST(ConvKernel, AnswersEveryCallAsTheReferenceDoes) {
  Random rng(310);
  auto expect_same_answer = [&](const std::string& op, const ir::Tensor& x, const std::vector<int64_t>& z_shape,
                                bool fails, const char* what) {
    SCOPED_TRACE(op + ": " + what);
    TestGraph g;
    g.input("x", x);
    g.constant("w", rng.floats({3, 2, 3, 3}));
    g.constant("b", rng.floats({3}));
    std::vector<std::string> inputs = {"x", "w", "b"};
    if (!z_shape.empty()) inputs.push_back(g.input("z", rng.floats(z_shape)));
    if (op == "Conv") {
      g.node("Conv", inputs, {"y"});
    } else if (op == "FusedConv") {
      g.contrib("FusedConv", inputs, {"y"}, {attr_string("activation", "Relu")});
    } else {  // channels-last
      g.import_opset("ai.kiln", 1);
      g.node("FusedConv", inputs, {"y"}, {attr_string("activation", "Relu"), attr_int("channels_last", 1)}, "ai.kiln");
    }
    g.output("y");
    // Inputs of unknown shape and type, so that the session is made and the call reaches the kernels.
    ir::Model m = g.model();
    for (ir::ValueInfo& v : m.graph.inputs) v.type = ir::Type::tensor(ir::DType::kUndefined, std::nullopt);
    size_t fast_count = 0;
    std::string fast_error, ref_error;
    std::vector<ir::Datum> fast, ref;
    try {
      fast = run_session(m, g.feeds(), true, &fast_count);
    } catch (const Error& e) {
      fast_error = e.what();
    }
    EXPECT_EQ(fast_count, 1u);
    try {
      ref = run_session(m, g.feeds(), false);
    } catch (const Error& e) {
      ref_error = e.what();
    }
    EXPECT_EQ(fast_error, ref_error);
    EXPECT_EQ(!ref_error.empty(), fails) << ref_error;
    if (ref_error.empty()) {
      ASSERT_EQ(fast.size(), 1u);
      expect_close(fast[0].tensor, ref[0].tensor, what);
    }
  };
  ir::Tensor x64(ir::DType::kFloat64, {1, 2, 5, 5}), x16(ir::DType::kFloat16, {1, 2, 5, 5});
  ir::Tensor xi(ir::DType::kInt32, {1, 2, 5, 5});
  for (const std::string op : {"Conv", "FusedConv"}) {
    expect_same_answer(op, rng.floats({1, 4, 5, 5}), {}, true, "4 input channels for a weight of 2");
    expect_same_answer(op, rng.floats({1, 2, 2, 2}), {}, true, "kernel larger than the input");
    expect_same_answer(op, rng.floats({1, 2, 9}), {}, true, "a 1-D input");
    expect_same_answer(op, rng.floats({1, 2, 4, 5, 6}), {}, true, "a 3-D input");
    expect_same_answer(op, rng.floats({1, 2}), {}, true, "a 2-D input");
    expect_same_answer(op, x64, {}, true, "float64 X");
    expect_same_answer(op, x16, {}, true, "float16 X");
    expect_same_answer(op, xi, {}, true, "int32 X");
    expect_same_answer(op, rng.floats({0, 2, 5, 5}), {}, false, "empty batch");
    expect_same_answer(op, rng.floats({1, 2, 0, 5}), {}, true, "empty height, kernel larger than the padding");
  }
  // An empty height with pads wider than the kernel: every window over padding only, y = act(bias (+ z)).
  for (const std::string op : {"Conv", "FusedConv"}) {
    SCOPED_TRACE("padding only");
    TestGraph g;
    g.input("x", rng.floats({2, 2, 0, 4}));
    g.constant("w", rng.floats({3, 2, 3, 3}));
    g.constant("b", rng.floats({3}, -1.0f, 1.0f));
    std::vector<std::string> inputs = {"x", "w", "b"};
    std::vector<ir::Attribute> attrs = {attr_ints("pads", {2, 1, 2, 1})};
    if (op == "FusedConv") {
      inputs.push_back(g.input("z", rng.floats({2, 3, 2, 4})));
      attrs.push_back(attr_string("activation", "Tanh"));
      g.contrib("FusedConv", inputs, {"y"}, attrs);
    } else {
      g.node("Conv", inputs, {"y"}, attrs);
    }
    g.output("y");
    expect_fast_matches_reference(g.model(), g.feeds(), 1, op + " padding only");
  }
  // ai.kiln.FusedConv channels_last = 1: the same checks on NHWC inputs, the messages naming X as the
  // reference Conv sees it (channels-first).
  const std::string nhwc = "FusedConv channels-last";
  ir::Tensor x64_last(ir::DType::kFloat64, {1, 5, 5, 2});
  expect_same_answer(nhwc, rng.floats({1, 5, 5, 4}), {}, true, "4 input channels for a weight of 2");
  expect_same_answer(nhwc, rng.floats({1, 2, 2, 2}), {}, true, "kernel larger than the input");
  expect_same_answer(nhwc, rng.floats({1, 9, 2}), {}, true, "a 1-D input");
  expect_same_answer(nhwc, rng.floats({1, 2}), {}, true, "a 2-D input");
  expect_same_answer(nhwc, x64_last, {}, true, "float64 X");
  expect_same_answer(nhwc, rng.floats({0, 5, 5, 2}), {}, false, "empty batch");
  expect_same_answer(nhwc, rng.floats({1, 0, 5, 2}), {}, true, "empty height, kernel larger than the padding");
  expect_same_answer(nhwc, rng.floats({1, 5, 5, 2}), {1, 3, 3, 3}, false, "Z of the right shape");
  expect_same_answer(nhwc, rng.floats({1, 5, 5, 2}), {1, 3, 3, 2}, true, "Z of the wrong shape");
  expect_same_answer(nhwc, rng.floats({2, 6, 5, 2}), {2, 4, 3, 3}, false, "Z of the right shape, batch 2");
  {
    SCOPED_TRACE("channels-last padding only");
    TestGraph g;
    g.import_opset("ai.kiln", 1);
    g.input("x", rng.floats({2, 0, 4, 2}));
    g.constant("w", rng.floats({3, 2, 3, 3}));
    g.constant("b", rng.floats({3}, -1.0f, 1.0f));
    g.input("z", rng.floats({2, 2, 4, 3}));
    g.node("FusedConv", {"x", "w", "b", "z"}, {"y"},
           {attr_ints("pads", {2, 1, 2, 1}), attr_string("activation", "Tanh"), attr_int("channels_last", 1)},
           "ai.kiln");
    g.output("y");
    expect_fast_matches_reference(g.model(), g.feeds(), 1, "channels-last padding only");
  }
  expect_same_answer("FusedConv", rng.floats({1, 2, 5, 5}), {1, 3, 2, 2}, true, "Z of the wrong shape");
  expect_same_answer("FusedConv", rng.floats({2, 2, 5, 5}), {2, 3, 3, 3}, false, "Z of the right shape");
  expect_same_answer("FusedConv", rng.floats({0, 2, 5, 5}), {0, 3, 3, 3}, false, "empty batch and Z");
}

TEST(PackedConv, CachesOnePrimitivePerInputShape) {
  Random rng(400);
  ConvCase c{1, 8, 0, 0, 16, 3, 3, 1, 1, {1, 1, 1, 1}};
  c.bias = false;
  const ir::Tensor w = rng.floats({c.m, c.c, c.kh, c.kw});
  PackedConv conv(c.spec(), w.data<float>(), nullptr);
  std::vector<float> x(2 * 8 * 40 * 40, 0.5f), y(2 * 16 * 40 * 40);
  conv.run(1, {10, 10}, x.data(), y.data());
  conv.run(1, {10, 10}, x.data(), y.data());
  EXPECT_EQ(conv.cached_primitives(), 1u);
  conv.run(2, {10, 10}, x.data(), y.data());
  conv.run(1, {12, 10}, x.data(), y.data());
  EXPECT_EQ(conv.cached_primitives(), 3u);
  for (int64_t h = 1; h <= 20; ++h) conv.run(1, {h, 7}, x.data(), y.data());
  EXPECT_EQ(conv.cached_primitives(), PackedConv::kMaxCachedPrimitives);
  EXPECT_GE(conv.packed_bytes(), static_cast<size_t>(w.nbytes()));
  conv.run(0, {10, 10}, x.data(), y.data());                                 // an empty batch does nothing
  EXPECT_THROW(conv.run(1, {10, 10}, x.data(), y.data(), x.data()), Error);  // z without add_sum
  EXPECT_THROW(PackedConv(ConvSpec{}, w.data<float>(), nullptr), Error);     // no channels
}

TEST(PackedConv, ConcurrentCallsOnOneConv) {
  Random rng(500);
  ConvCase c{1, 16, 0, 0, 24, 3, 3, 1, 1, {1, 1, 1, 1}};
  const ir::Tensor w = rng.floats({c.m, c.c, c.kh, c.kw});
  const ir::Tensor b = rng.floats({c.m});
  PackedConv conv(c.spec(), w.data<float>(), b.data<float>());
  // Each thread its own shape (so primitives are made concurrently too), checked against a lone call.
  constexpr int kThreads = 4;
  std::vector<ir::Tensor> xs, want, got;
  for (int t = 0; t < kThreads; ++t) {
    const int64_t h = 6 + 3 * t;
    xs.push_back(rng.floats({1, c.c, h, h}));
    want.emplace_back(ir::DType::kFloat32, std::vector<int64_t>{1, c.m, h, h});
    got.emplace_back(ir::DType::kFloat32, std::vector<int64_t>{1, c.m, h, h});
  }
  {
    PackedConv lone(c.spec(), w.data<float>(), b.data<float>());
    for (int t = 0; t < kThreads; ++t)
      lone.run(1, {xs[t].dim(2), xs[t].dim(3)}, xs[t].data<float>(), want[t].data<float>());
  }
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (int rep = 0; rep < 5; ++rep)
        conv.run(1, {xs[t].dim(2), xs[t].dim(3)}, xs[t].data<float>(), got[t].data<float>());
    });
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) expect_close(got[t], want[t], "thread " + std::to_string(t));
}

// 3x3 stride-1 convolutions of 100 MFLOP and more run as oneDNN's Winograd convolution where oneDNN has one
// (its AVX-512 kernels), on its blocked layout: the same outputs as the reference, in both activation
// layouts, with bias, Relu and Z; ConvLayout::kPlain (no reorders) and KILN_WINOGRAD=off keep the direct
// kernel, and smaller convolutions stay direct.
TEST(PackedConv, LargeThreeByThreeConvolutionsRunAsWinograd) {
  const bool has_winograd = kernels::cpu::onednn_isa_name().rfind("avx512_core", 0) == 0;
  enum class Expect { kWinograd, kEither, kDirect };  // kEither: oneDNN's Winograd kernel decides (channels...)
  struct WinoCase {
    ConvCase conv;
    bool add_sum;
    Expect expect;  // on a CPU with oneDNN's Winograd kernel, with it allowed
  };
  const std::vector<WinoCase> cases = {
      {{1, 64, 40, 40, 64, 3, 3, 1, 1, {1, 1, 1, 1}}, false, Expect::kWinograd},  // 118 MFLOP
      {{1, 64, 36, 40, 64, 3, 3, 1, 1, {1, 1, 1, 1}}, true, Expect::kWinograd},   // Z, 106 MFLOP
      {{1, 48, 34, 38, 80, 3, 3, 1, 1, {1, 1, 1, 1}, 1, 1, 1, false}, true, Expect::kEither},  // no bias, Z
      {{2, 40, 27, 29, 64, 3, 3, 1, 1, {1, 1, 1, 1}}, false, Expect::kEither},  // batch 2, odd sizes
      {{1, 32, 20, 20, 32, 3, 3, 1, 1, {1, 1, 1, 1}}, false, Expect::kDirect},  // 7 MFLOP
  };
  uint32_t seed = 900;
  for (const WinoCase& wc : cases) {
    const ConvCase& c = wc.conv;
    SCOPED_TRACE(c.label() + (wc.add_sum ? " with Z" : ""));
    Random rng(seed++);
    const ir::Tensor w = rng.floats({c.m, c.c, c.kh, c.kw}, -0.1f, 0.1f);
    const ir::Tensor b = rng.floats({c.m});
    const int64_t oh = c.h + c.pads[0] + c.pads[2] - 2, ow = c.w + c.pads[1] + c.pads[3] - 2;
    const ir::Tensor x = rng.floats({c.n, c.c, c.h, c.w});
    const ir::Tensor z = rng.floats({c.n, c.m, oh, ow});
    // The reference: FusedConv with Relu (and Z) on channels-first tensors.
    TestGraph g;
    g.input("x", x);
    std::vector<std::string> inputs = {"x", g.constant("w", w), c.bias ? g.constant("b", b) : ""};
    if (wc.add_sum) inputs.push_back(g.input("z", z));
    std::vector<ir::Attribute> attrs = c.attributes();
    attrs.push_back(attr_string("activation", "Relu"));
    g.node("FusedConv", inputs, {"y"}, attrs, "com.microsoft");
    g.output("y");
    const ir::Tensor want = g.run()[0];
    for (bool channels_last : {false, true}) {
      for (ConvLayout layout : {ConvLayout::kAuto, ConvLayout::kPlain}) {
        for (bool off : {false, true}) {
          const std::string what = str(channels_last ? "channels-last" : "channels-first", " layout ",
                                       static_cast<int>(layout), off ? " KILN_WINOGRAD=off" : "");
          SCOPED_TRACE(what);
          if (off) setenv("KILN_WINOGRAD", "off", 1);
          ConvSpec spec = c.spec();
          spec.channels_last = channels_last;
          spec.layout = layout;
          spec.activation = ConvActivation::kRelu;
          spec.add_sum = wc.add_sum;
          PackedConv conv(spec, w.data<float>(), c.bias ? b.data<float>() : nullptr);
          unsetenv("KILN_WINOGRAD");
          const std::string impl = conv.prepare(c.n, {c.h, c.w});
          const bool allowed = has_winograd && wc.expect != Expect::kDirect && layout != ConvLayout::kPlain && !off;
          const bool wino = impl.find("wino") != std::string::npos;
          if (!allowed || wc.expect == Expect::kWinograd) {
            EXPECT_EQ(wino, allowed) << impl;
          }
          const ir::Tensor xin = channels_last ? to_channels_last(x) : x;
          const ir::Tensor zin = channels_last ? to_channels_last(z) : z;
          const ir::Tensor expect = channels_last ? to_channels_last(want) : want;
          ir::Tensor y(ir::DType::kFloat32, expect.shape());
          conv.run(c.n, {c.h, c.w}, xin.data<float>(), y.data<float>(), wc.add_sum ? zin.data<float>() : nullptr);
          expect_close(y, expect, what + " (" + impl + ")");
          if (wc.add_sum) {  // z in place: y starts as z
            ir::Tensor yz = zin.clone();
            conv.run(c.n, {c.h, c.w}, xin.data<float>(), yz.data<float>(), yz.data<float>());
            expect_close(yz, expect, what + " z in place (" + impl + ")");
          }
        }
      }
    }
  }
}

// A FusedConv on oneDNN's path whose Z is read by nothing after it writes its output over Z (one buffer
// in the memory plan); the planned runs give the reference's answer. A depthwise one (kiln's kernel
// writes y before it reads z) keeps them apart.
TEST(ConvKernel, FusedConvWritesOverADeadZ) {
  for (bool depthwise : {false, true}) {
    SCOPED_TRACE(depthwise ? "depthwise" : "dense");
    Random rng(950);
    const int64_t c = 16, m = 16, group = depthwise ? 16 : 1;
    TestGraph g;
    g.input("x", rng.floats({1, 9, 11, c}));
    g.input("z_in", rng.floats({1, 9, 11, m}));
    g.node("Relu", {"z_in"}, {"z"});
    g.node("FusedConv",
           {"x", g.constant("w", rng.floats({m, c / group, 3, 3}, -0.3f, 0.3f)), g.constant("b", rng.floats({m})), "z"},
           {"y"},
           {attr_ints("pads", {1, 1, 1, 1}), attr_int("group", group), attr_string("activation", "Relu"),
            attr_int("channels_last", 1)},
           "ai.kiln");
    g.output("y");
    ir::Model model = g.model();
    model.opset_imports["ai.kiln"] = 1;
    runtime::SessionOptions o;
    o.optimization = passes::Level::kNone;
    runtime::Session s(model, o);
    o.fast_kernels = false;
    runtime::Session ref(model, o);
    s.run(g.feeds());  // records the plan
    const std::vector<ir::Datum> got = s.run(g.feeds());
    EXPECT_EQ(s.plan_stats().in_place_buffers, depthwise ? 0u : 1u);
    expect_close(got[0].tensor, ref.run(g.feeds())[0].tensor, "planned run");
  }
}

}  // namespace
}  // namespace kiln
