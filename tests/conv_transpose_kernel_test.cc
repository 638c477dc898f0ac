// The fast ConvTranspose kernel (oneDNN's deconvolution through PackedConv with ConvSpec::transposed)
// against kiln's reference ConvTranspose: 1-D, 2-D and 3-D, strides, dilations, asymmetric pads,
// output_padding, output_shape (smaller and larger than the full result), auto_pad, groups, no bias,
// batch > 1, channels-first and channels-last, both activation layouts; outputs reaching past the last
// window (the margin, which holds the bias alone); the nodes the fast kernel leaves to the reference; and
// invalid calls failing with the reference's messages.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "common/error.h"
#include "contrib_test_util.h"
#include "kernels/cpu/onednn_conv.h"
#include "runtime/session.h"

namespace kiln {
namespace {

using kernels::cpu::ConvDims;
using kernels::cpu::ConvLayout;
using kernels::cpu::ConvPadding;
using kernels::cpu::ConvSpec;
using kernels::cpu::PackedConv;
using testing::contrib::attr_int;
using testing::contrib::attr_ints;
using testing::contrib::attr_string;
using testing::contrib::max_abs_diff;
using testing::contrib::Random;
using testing::contrib::TestGraph;
using Feeds = std::unordered_map<std::string, ir::Datum>;

// Float32 sums in another order than the reference's double ones: 1e-4 of the largest output.
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

// [N, C, spatial...] as [N, spatial..., C].
ir::Tensor to_channels_last(const ir::Tensor& t) {
  const int64_t n = t.dim(0), c = t.dim(1);
  const int64_t plane = n * c == 0 ? 0 : t.numel() / (n * c);
  std::vector<int64_t> shape = {n};
  shape.insert(shape.end(), t.shape().begin() + 2, t.shape().end());
  shape.push_back(c);
  ir::Tensor r(ir::DType::kFloat32, shape);
  for (int64_t ni = 0; ni < n; ++ni)
    for (int64_t ci = 0; ci < c; ++ci)
      for (int64_t p = 0; p < plane; ++p)
        r.data<float>()[(ni * plane + p) * c + ci] = t.data<float>()[(ni * c + ci) * plane + p];
  return r;
}

// One ConvTranspose, attributes as ONNX writes them: x [n, c, in...], w [c, m / group, kernel...].
struct TransposeCase {
  int64_t n, c, m;
  std::vector<int64_t> in, kernel, strides;
  std::vector<int64_t> pads = {};            // every begin, then every end; empty: zeros
  std::vector<int64_t> dilations = {};       // empty: ones
  std::vector<int64_t> output_padding = {};  // empty: not given
  std::vector<int64_t> output_shape = {};    // empty: not given
  int64_t group = 1;
  std::string auto_pad = "NOTSET";
  bool bias = true;

  size_t axes() const { return in.size(); }
  std::vector<int64_t> or_default(const std::vector<int64_t>& v, size_t count, int64_t d) const {
    return v.empty() ? std::vector<int64_t>(count, d) : v;
  }
  std::string label() const {
    return str("x[", n, ",", c, " ", ir::to_string(in), "] w[", c, ",", m / group, " ", ir::to_string(kernel),
               "] strides ", ir::to_string(strides), " pads ", ir::to_string(pads), " dilations ",
               ir::to_string(dilations), " output_padding ", ir::to_string(output_padding), " output_shape ",
               ir::to_string(output_shape), " group ", group, " auto_pad ", auto_pad, bias ? "" : " no bias");
  }
  std::vector<ir::Attribute> attributes() const {
    std::vector<ir::Attribute> a = {attr_ints("strides", strides), attr_int("group", group),
                                    attr_ints("kernel_shape", kernel)};
    if (!dilations.empty()) a.push_back(attr_ints("dilations", dilations));
    if (!pads.empty()) a.push_back(attr_ints("pads", pads));
    if (!output_padding.empty()) a.push_back(attr_ints("output_padding", output_padding));
    if (!output_shape.empty()) a.push_back(attr_ints("output_shape", output_shape));
    if (auto_pad != "NOTSET") a.push_back(attr_string("auto_pad", auto_pad));
    return a;
  }
  ConvSpec spec() const {
    ConvSpec s;
    s.transposed = true;
    s.in_channels = c;
    s.out_channels = m;
    s.group = group;
    s.spatial_dims = static_cast<int>(axes());
    const std::vector<int64_t> p = or_default(pads, 2 * axes(), 0), d = or_default(dilations, axes(), 1),
                               op = or_default(output_padding, axes(), 0);
    for (size_t i = 0; i < axes(); ++i) {
      s.kernel[i] = kernel[i];
      s.strides[i] = strides[i];
      s.dilations[i] = d[i];
      s.pads_begin[i] = p[i];
      s.pads_end[i] = p[i + axes()];
      s.output_padding[i] = op[i];
      // output_shape as the spec writes it, or as older exporters do: [N, C, spatial...].
      if (!output_shape.empty()) s.output_shape[i] = output_shape[i + output_shape.size() - axes()];
    }
    s.padding = auto_pad == "SAME_UPPER"   ? ConvPadding::kSameUpper
                : auto_pad == "SAME_LOWER" ? ConvPadding::kSameLower
                : auto_pad == "VALID"      ? ConvPadding::kValid
                                           : ConvPadding::kExplicit;
    s.has_bias = bias;
    return s;
  }
  ConvDims in_dims() const {
    ConvDims d = {0, 0, 0};
    for (size_t i = 0; i < axes(); ++i) d[i] = in[i];
    return d;
  }
};

std::vector<TransposeCase> transpose_cases() {
  std::vector<TransposeCase> v;
  // 2-D: the upsampling heads of detectors and segmenters, then every attribute on odd sizes.
  v.push_back({1, 16, 8, {10, 12}, {2, 2}, {2, 2}});                               // ppocr-det's 2x2 / 2
  v.push_back({1, 8, 8, {7, 9}, {4, 4}, {2, 2}, {1, 1, 1, 1}});                    // 4x4 / 2, pads 1
  v.push_back({2, 6, 4, {5, 6}, {3, 3}, {2, 2}, {1, 1, 1, 1}, {}, {1, 1}});        // PyTorch's output_padding
  v.push_back({1, 5, 7, {6, 5}, {3, 3}, {1, 1}, {1, 1, 1, 1}});                    // stride 1, same size
  v.push_back({1, 4, 6, {5, 7}, {3, 2}, {3, 2}, {2, 0, 1, 1}});                    // asymmetric pads
  v.push_back({1, 4, 6, {5, 6}, {3, 3}, {2, 2}, {0, 0, 0, 0}, {2, 2}});            // dilation 2
  v.push_back({1, 4, 6, {5, 6}, {3, 3}, {2, 3}, {}, {2, 1}, {1, 2}});              // dilation and output_padding
  v.push_back({1, 8, 12, {6, 6}, {3, 3}, {2, 2}, {1, 1, 1, 1}, {}, {}, {}, 4});    // 4 groups
  v.push_back({1, 16, 16, {7, 7}, {4, 4}, {2, 2}, {1, 1, 1, 1}, {}, {}, {}, 16});  // depthwise
  v.push_back({1, 6, 6, {4, 5}, {3, 3}, {2, 2}, {}, {}, {1, 1}, {}, 1, "NOTSET", false});  // no bias
  v.push_back({1, 3, 5, {4, 5}, {3, 3}, {2, 2}, {}, {}, {}, {9, 10}});         // output_shape: the full size + 0
  v.push_back({1, 3, 5, {4, 5}, {3, 3}, {2, 2}, {}, {}, {}, {7, 8}});          // output_shape smaller
  v.push_back({1, 3, 5, {4, 5}, {3, 3}, {2, 2}, {}, {}, {}, {12, 11}});        // larger: a margin
  v.push_back({1, 3, 5, {4, 5}, {3, 3}, {2, 2}, {}, {}, {}, {1, 3, 12, 11}});  // the full-shape spelling
  v.push_back({2, 4, 3, {5, 4}, {3, 3}, {2, 2}, {}, {}, {}, {}, 1, "SAME_UPPER"});
  v.push_back({2, 4, 3, {5, 4}, {4, 3}, {2, 3}, {}, {}, {}, {}, 1, "SAME_LOWER"});
  v.push_back({1, 4, 3, {5, 4}, {3, 3}, {2, 1}, {}, {}, {}, {}, 1, "VALID"});
  v.push_back({1, 4, 3, {5, 4}, {3, 3}, {3, 3}, {0, 0, 0, 0}, {}, {2, 2}});    // output_padding past the pads: margin
  v.push_back({1, 4, 3, {5, 5}, {2, 2}, {1, 1}, {3, 3, 0, 0}});                // pads wider than the kernel
  v.push_back({1, 2, 3, {1, 1}, {1, 1}, {1, 1}, {5, 5, 0, 0}, {}, {10, 10}});  // every window past the end
  v.push_back({3, 32, 16, {9, 9}, {3, 3}, {2, 2}, {1, 1, 1, 1}, {}, {1, 1}});  // batch 3, wider
  v.push_back({1, 32, 32, {48, 48}, {2, 2}, {2, 2}});  // large enough for parallel calls and bias
  // 1-D
  v.push_back({1, 16, 8, {20}, {4}, {2}, {1, 1}});
  v.push_back({2, 5, 7, {13}, {3}, {3}, {2, 0}, {2}, {1}});
  v.push_back({1, 8, 8, {11}, {5}, {2}, {2, 2}, {}, {1}, {}, 8});  // depthwise
  v.push_back({1, 4, 6, {9}, {3}, {2}, {}, {}, {}, {22}});         // output_shape larger
  v.push_back({1, 4, 6, {9}, {3}, {2}, {}, {}, {}, {}, 2, "SAME_UPPER"});
  // 3-D
  v.push_back({1, 8, 4, {3, 4, 5}, {2, 2, 2}, {2, 2, 2}});
  v.push_back({1, 4, 6, {3, 4, 3}, {3, 3, 3}, {2, 2, 2}, {1, 1, 1, 1, 1, 1}, {}, {1, 1, 1}});
  v.push_back({2, 6, 6, {3, 3, 4}, {1, 3, 3}, {1, 2, 2}, {0, 1, 1, 0, 1, 1}, {}, {}, {}, 3});  // grouped
  v.push_back({1, 3, 2, {2, 3, 4}, {3, 2, 3}, {2, 1, 2}, {}, {1, 2, 1}, {}, {6, 5, 10}});      // dilated, output_shape
  v.push_back({1, 3, 2, {3, 3, 3}, {3, 3, 3}, {2, 2, 2}, {}, {}, {}, {}, 1, "SAME_LOWER"});
  return v;
}

TestGraph transpose_graph(const TransposeCase& c, uint32_t seed) {
  Random rng(seed);
  TestGraph g;
  std::vector<int64_t> x_shape = {c.n, c.c}, w_shape = {c.c, c.m / c.group};
  x_shape.insert(x_shape.end(), c.in.begin(), c.in.end());
  w_shape.insert(w_shape.end(), c.kernel.begin(), c.kernel.end());
  g.input("x", rng.floats(x_shape));
  std::vector<std::string> inputs = {"x", g.constant("w", rng.floats(w_shape, -0.5f, 0.5f))};
  if (c.bias) inputs.push_back(g.constant("b", rng.floats({c.m})));
  g.node("ConvTranspose", inputs, {"y"}, c.attributes());
  g.output("y");
  return g;
}

std::vector<ir::Datum> run_session(const ir::Model& m, const Feeds& feeds, bool fast, size_t* fast_count = nullptr) {
  runtime::SessionOptions o;
  o.optimization = passes::Level::kNone;
  o.fast_kernels = fast;
  runtime::Session s(m, o);
  if (fast_count) *fast_count = s.fast_kernel_count();
  return s.run(feeds);
}

void expect_fast_matches_reference(const ir::Model& m, const Feeds& feeds, size_t expect_fast,
                                   const std::string& what) {
  size_t fast_count = 0;
  std::vector<ir::Datum> fast = run_session(m, feeds, true, &fast_count);
  std::vector<ir::Datum> ref = run_session(m, feeds, false);
  EXPECT_EQ(fast_count, expect_fast) << what;
  ASSERT_EQ(fast.size(), ref.size()) << what;
  for (size_t i = 0; i < ref.size(); ++i) expect_close(fast[i].tensor, ref[i].tensor, what);
}

TEST(PackedConvTranspose, MatchesReferenceInEveryLayout) {
  uint32_t seed = 1;
  for (const TransposeCase& c : transpose_cases()) {
    SCOPED_TRACE(c.label());
    TestGraph g = transpose_graph(c, seed++);
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
        for (size_t i = 0; i < c.axes(); ++i) EXPECT_EQ(out[i], want.dim(i + 2)) << "axis " << i;
        const std::string impl = conv.prepare(c.n, c.in_dims());
        EXPECT_EQ(impl.find("ref"), std::string::npos) << "oneDNN fell back to its reference deconvolution: " << impl;
        ir::Tensor y(ir::DType::kFloat32, want_here.shape());
        std::fill(y.data<float>(), y.data<float>() + y.numel(), 1e6f);  // every element must be written
        conv.run(c.n, c.in_dims(), x.data<float>(), y.data<float>());
        expect_close(
            y, want_here,
            str(last ? "channels-last" : "channels-first", " layout ", static_cast<int>(layout), " (", impl, ")"));
      }
    }
  }
}

TEST(ConvTransposeKernel, FastMatchesReference) {
  uint32_t seed = 100;
  for (const TransposeCase& c : transpose_cases()) {
    TestGraph g = transpose_graph(c, seed++);
    expect_fast_matches_reference(g.model(), g.feeds(), 1, c.label());
  }
}

// No fast kernel where W or B is not a float32 initializer, over 4 spatial axes, or where the attributes
// are refused by the reference (or can never give an output): it then answers, as without fast kernels.
TEST(ConvTransposeKernel, LeavesWhatItDoesNotCoverToTheReference) {
  Random rng(200);
  auto expect_reference = [&](TestGraph& g, const char* what) {
    SCOPED_TRACE(what);
    g.output("y");
    std::string fast_error, ref_error;
    size_t fast_count = 0;
    try {
      run_session(g.model(), g.feeds(), true, &fast_count);
    } catch (const Error& e) {
      fast_error = e.what();
    }
    EXPECT_EQ(fast_count, 0u);
    try {
      run_session(g.model(), g.feeds(), false);
    } catch (const Error& e) {
      ref_error = e.what();
    }
    EXPECT_EQ(fast_error, ref_error);
  };
  {
    TestGraph g;
    g.input("x", rng.floats({1, 3, 4, 4}));
    g.input("w", rng.floats({3, 2, 3, 3}));
    g.node("ConvTranspose", {"x", "w"}, {"y"});
    expect_reference(g, "W fed at run time");
  }
  {
    TestGraph g;
    g.input("x", rng.floats({1, 3, 4, 4}));
    g.constant("w", rng.floats({3, 2, 3, 3}));
    g.input("b", rng.floats({2}));
    g.node("ConvTranspose", {"x", "w", "b"}, {"y"});
    expect_reference(g, "B fed at run time");
  }
  {
    TestGraph g;
    g.input("x", rng.floats({1, 2, 2, 3, 2, 3}));
    g.constant("w", rng.floats({2, 2, 2, 2, 2, 2}));
    g.node("ConvTranspose", {"x", "w"}, {"y"});
    expect_reference(g, "4 spatial axes");
  }
  {
    TestGraph g;
    g.input("x", rng.floats({1, 3, 4, 4}));
    g.constant("w", rng.floats({3, 2, 3, 3}));
    g.node("ConvTranspose", {"x", "w"}, {"y"}, {attr_int("group", 2)});
    expect_reference(g, "3 input channels in 2 groups");
  }
  {
    TestGraph g;
    g.input("x", rng.floats({1, 3, 4, 4}));
    g.constant("w", rng.floats({3, 2, 3, 3}));
    g.node("ConvTranspose", {"x", "w"}, {"y"}, {attr_ints("output_padding", {1})});
    expect_reference(g, "output_padding of the wrong length");
  }
  {
    TestGraph g;
    g.input("x", rng.floats({1, 3, 4, 4}));
    g.constant("w", rng.floats({3, 2, 3, 3}));
    g.node("ConvTranspose", {"x", "w"}, {"y"}, {attr_ints("output_shape", {0, 9})});
    expect_reference(g, "output_shape not positive");
  }
}

// The kernel holds W and B packed and the session releases them, so it answers every call: invalid ones
// fail with the reference's message, an empty batch gives the reference's empty output.
TEST(ConvTransposeKernel, AnswersEveryCallAsTheReferenceDoes) {
  Random rng(300);
  auto expect_same_answer = [&](const ir::Tensor& x, std::vector<ir::Attribute> attrs, bool fails, const char* what) {
    SCOPED_TRACE(what);
    TestGraph g;
    g.input("x", x);
    g.constant("w", rng.floats({2, 3, 3, 3}));
    g.constant("b", rng.floats({3}));
    g.node("ConvTranspose", {"x", "w", "b"}, {"y"}, std::move(attrs));
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
  ir::Tensor x64(ir::DType::kFloat64, {1, 2, 4, 4}), xi(ir::DType::kInt32, {1, 2, 4, 4});
  expect_same_answer(rng.floats({1, 3, 4, 4}), {}, true, "3 input channels for a weight of 2");
  expect_same_answer(rng.floats({1, 2, 4}), {}, true, "a 1-D input");
  expect_same_answer(rng.floats({1, 2}), {}, true, "a 2-D input");
  expect_same_answer(x64, {}, true, "float64 X");
  expect_same_answer(xi, {}, true, "int32 X");
  expect_same_answer(rng.floats({1, 2, 0, 4}), {}, true, "an empty spatial dim");
  expect_same_answer(rng.floats({1, 2, 1, 1}), {attr_ints("pads", {2, 2, 1, 1})}, true, "pads leaving no output");
  expect_same_answer(rng.floats({0, 2, 4, 4}), {}, false, "empty batch");
  expect_same_answer(rng.floats({2, 2, 3, 5}), {attr_ints("strides", {2, 3})}, false, "a valid call");
}

TEST(PackedConvTranspose, CachesOnePrimitivePerInputShape) {
  Random rng(400);
  TransposeCase c{1, 8, 4, {0, 0}, {4, 4}, {2, 2}, {1, 1, 1, 1}};
  c.bias = false;
  const ir::Tensor w = rng.floats({8, 4, 4, 4});
  PackedConv conv(c.spec(), w.data<float>(), nullptr);
  std::vector<float> x(2 * 8 * 20 * 20, 0.5f), y(2 * 4 * 40 * 40);
  conv.run(1, {10, 10}, x.data(), y.data());
  conv.run(1, {10, 10}, x.data(), y.data());
  EXPECT_EQ(conv.cached_primitives(), 1u);
  conv.run(2, {10, 10}, x.data(), y.data());
  EXPECT_EQ(conv.cached_primitives(), 2u);
  ConvDims out;
  ASSERT_TRUE(conv.output_size({10, 7}, &out));
  EXPECT_EQ(out, (ConvDims{20, 14, 0}));
  ConvSpec bad = c.spec();
  bad.add_sum = true;
  EXPECT_THROW(PackedConv(bad, w.data<float>(), nullptr), Error);  // no sum for a transposed convolution
}

}  // namespace
}  // namespace kiln
