// Every entry of the fast-kernel table (kernels/cpu/fast_kernel_table.h) against the reference kernel:
// each (domain, op) has cases here, on odd sizes and broadcasts, at its first opset and at the newest one
// it covers, in every element type it declares. An entry without cases fails the test, so a kernel cannot
// join the table untested. (tests/fast_kernels_test.cc and the per-kernel tests go deeper per kernel.)
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <numeric>
#include <set>
#include <string>

#include "contrib_test_util.h"
#include "kernels/cpu/fast_kernel_table.h"
#include "runtime/session.h"

namespace kiln {
namespace {

using kernels::cpu::FastKernelEntry;
using testing::contrib::attr_float;
using testing::contrib::attr_int;
using testing::contrib::attr_ints;
using testing::contrib::attr_string;
using testing::contrib::max_abs_diff;
using testing::contrib::Random;
using testing::contrib::TestGraph;

// A case: a graph whose every node of the entry's op should get its fast kernel.
struct Case {
  std::string what;
  TestGraph graph;
  double tolerance = 1e-4;
};

// Builds the cases for one entry at one opset (of the entry's domain).
using CaseMaker = std::function<std::vector<Case>(const FastKernelEntry& e, int64_t opset)>;

// A graph importing `opset` for the entry's domain (ai.onnx otherwise at 17, or `opset` when the entry is
// ai.onnx's), with a node of the entry's op.
TestGraph graph_for(const FastKernelEntry& e, int64_t opset) {
  const bool onnx = *e.domain == '\0';
  TestGraph g(onnx ? opset : 17);
  if (!onnx) g.import_opset(e.domain, opset);
  return g;
}

void add_node(TestGraph& g, const FastKernelEntry& e, std::vector<std::string> ins, std::vector<ir::Attribute> attrs = {}) {
  g.node(e.op, std::move(ins), {"y"}, std::move(attrs), e.domain);
  g.output("y");
}

std::vector<Case> matmul_cases(const FastKernelEntry& e, int64_t opset) {
  std::vector<Case> cases;
  for (std::vector<int64_t> a_shape : {std::vector<int64_t>{7}, {3, 7}, {2, 5, 7}}) {
    Random rng(static_cast<uint32_t>(a_shape.size()));
    TestGraph g = graph_for(e, opset);
    g.input("a", rng.floats(a_shape));
    g.constant("b", rng.floats({7, 33}));
    add_node(g, e, {"a", "b"});
    cases.push_back({"A rank " + std::to_string(a_shape.size()), std::move(g)});
  }
  Random rng(4);
  TestGraph g = graph_for(e, opset);
  g.input("a", rng.floats({2, 3, 5, 7}));
  g.input("b", rng.floats({3, 7, 4}));
  add_node(g, e, {"a", "b"});
  cases.push_back({"B computed, batched and broadcast", std::move(g)});
  return cases;
}

std::vector<Case> gemm_cases(const FastKernelEntry& e, int64_t opset) {
  std::vector<Case> cases;
  for (int64_t trans_b : {0, 1}) {
    Random rng(static_cast<uint32_t>(trans_b));
    TestGraph g = graph_for(e, opset);
    g.input("a", rng.floats({9, 17}));
    g.constant("b", rng.floats(trans_b ? std::vector<int64_t>{13, 17} : std::vector<int64_t>{17, 13}));
    g.constant("c", rng.floats({13}));
    add_node(g, e, {"a", "b", "c"}, {attr_int("transB", trans_b), attr_float("alpha", 0.5f), attr_float("beta", 2.0f)});
    cases.push_back({"transB " + std::to_string(trans_b), std::move(g)});
  }
  Random rng(3);
  TestGraph g = graph_for(e, opset);
  g.input("a", rng.floats({17, 9}));
  g.input("b", rng.floats({13, 17}));
  g.input("c", rng.floats({9, 1}));
  add_node(g, e, {"a", "b", "c"}, {attr_int("transA", 1), attr_int("transB", 1), attr_float("beta", 0.5f)});
  cases.push_back({"transA and transB, B computed, C a column", std::move(g)});
  return cases;
}

// int8 weights B [13, 21] with zero point 0, per tensor or per column, with and without a bias; A of
// odd sizes and ranks, and all zeros (an empty range: scale 1). Tolerance: the fast kernel removes A's
// zero point in float32 (onednn_int8_matmul.h), the reference in integers.
std::vector<Case> dynamic_quantize_matmul_cases(const FastKernelEntry& e, int64_t opset) {
  std::vector<Case> cases;
  int seed = 0;
  for (bool per_column : {false, true})
    for (bool bias : {false, true})
      for (std::vector<int64_t> a_shape : {std::vector<int64_t>{13}, {5, 13}, {2, 37, 13}, {3, 100}}) {
        Random rng(static_cast<uint32_t>(++seed));
        TestGraph g = graph_for(e, opset);
        g.input("a", rng.floats(a_shape, -2.0f, 3.0f));
        const int64_t k = a_shape.back();  // 100: past oneDNN's blocking of K
        std::vector<int8_t> b(static_cast<size_t>(k * 21));
        for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<int8_t>(static_cast<int>(i * 37 % 255) - 127);
        g.constant("b", ir::Tensor::from_vector(b, {k, 21}));
        g.constant("s", per_column ? rng.floats({21}, 0.001f, 0.01f) : ir::Tensor::from_vector<float>({0.004f}, {}));
        std::vector<std::string> ins = {"a", "b", "s"};
        if (bias) {
          g.constant("z", ir::Tensor::from_vector(std::vector<int8_t>(per_column ? 21 : 1, 0), per_column ? std::vector<int64_t>{21} : std::vector<int64_t>{}));
          ins.push_back("z");
          ins.push_back(g.constant("bias", rng.floats({21})));
        }
        add_node(g, e, ins);
        cases.push_back({std::string(per_column ? "per column" : "per tensor") + (bias ? ", bias" : "") + ", A rank " +
                             std::to_string(a_shape.size()),
                         std::move(g), 1e-4});
      }
  TestGraph g = graph_for(e, opset);
  g.input("a", ir::Tensor::from_vector(std::vector<float>(4 * 13, 0.0f), {4, 13}));
  g.constant("b", ir::Tensor::from_vector(std::vector<int8_t>(13 * 21, 3), {13, 21}));
  g.constant("s", ir::Tensor::from_vector<float>({0.5f}, {}));
  add_node(g, e, {"a", "b", "s"});
  cases.push_back({"A all zeros", std::move(g), 0.0});
  return cases;
}

// DynamicQuantizeLinear of odd sizes and ranges: mixed signs, one sign only (the range extended to 0), all
// zeros, a NaN (quantized to 0). Exact: both sides quantize by the one rule.
std::vector<Case> dynamic_quantize_linear_cases(const FastKernelEntry& e, int64_t opset) {
  std::vector<Case> cases;
  struct Input {
    const char* what;
    std::vector<int64_t> shape;
    float lo, hi;
  };
  for (const Input& in : {Input{"mixed signs", {3, 37}, -3.0f, 5.0f}, Input{"positive", {129}, 0.5f, 2.0f},
                          Input{"negative", {2, 2, 17}, -7.0f, -1.0f}, Input{"zeros", {20}, 0.0f, 0.0f}}) {
    Random rng(static_cast<uint32_t>(cases.size() + 1));
    TestGraph g = graph_for(e, opset);
    ir::Tensor x = rng.floats(in.shape, in.lo, in.hi);
    if (in.lo == in.hi)
      for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = 0.0f;
    g.input("x", x);
    g.node(e.op, {"x"}, {"y", "scale", "zero_point"}, {}, e.domain);
    for (const char* out : {"y", "scale", "zero_point"}) g.output(out);
    cases.push_back({in.what, std::move(g), 0.0});
  }
  // Large enough for the range and the rounding to be split across threads, NaNs in more than one piece.
  for (int64_t count : {int64_t{40}, int64_t{100003}}) {
    TestGraph g = graph_for(e, opset);
    ir::Tensor x = Random(9).floats({count}, -1.0f, 2.0f);
    for (int64_t i = 7; i < count; i += 40000) x.data<float>()[i] = std::numeric_limits<float>::quiet_NaN();
    x.data<float>()[count - 1] = 5.0f;  // the maximum in the last piece
    g.input("x", x);
    g.node(e.op, {"x"}, {"y", "scale", "zero_point"}, {}, e.domain);
    for (const char* out : {"y", "scale", "zero_point"}) g.output(out);
    cases.push_back({"NaN, " + std::to_string(count) + " values", std::move(g), 0.0});
  }
  return cases;
}

// DequantizeLinear of int8 and uint8, with and without a zero point, a scalar scale (the embedding
// tables' form). Exact.
std::vector<Case> dequantize_linear_cases(const FastKernelEntry& e, int64_t opset) {
  std::vector<Case> cases;
  for (bool uint8 : {false, true})
    for (bool zero_point : {false, true}) {
      TestGraph g = graph_for(e, opset);
      std::vector<std::string> ins = {"x", g.constant("scale", ir::Tensor::from_vector<float>({0.037f}, {}))};
      if (uint8) {
        std::vector<uint8_t> x(3 * 41);
        for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<uint8_t>(i * 89 % 256);
        g.input("x", ir::Tensor::from_vector(x, {3, 41}));
        if (zero_point) ins.push_back(g.constant("zp", ir::Tensor::from_vector<uint8_t>({131}, {})));
      } else {
        std::vector<int8_t> x(3 * 41);
        for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<int8_t>(static_cast<int>(i * 89 % 256) - 128);
        g.input("x", ir::Tensor::from_vector(x, {3, 41}));
        if (zero_point) ins.push_back(g.constant("zp", ir::Tensor::from_vector<int8_t>({-3}, {})));
      }
      add_node(g, e, ins);
      cases.push_back({std::string(uint8 ? "uint8" : "int8") + (zero_point ? " with a zero point" : ""), std::move(g), 0.0});
    }
  return cases;
}

// QuantizeLinear of float32 with one scale and a uint8 or int8 zero point (quantize_static's activations):
// ties to even, saturation at both ends, NaN, and enough values to split across threads. Exact.
std::vector<Case> quantize_linear_cases(const FastKernelEntry& e, int64_t opset) {
  std::vector<Case> cases;
  for (bool int8 : {false, true})
    for (int64_t count : {int64_t{37}, int64_t{70001}}) {
      TestGraph g = graph_for(e, opset);
      ir::Tensor x = Random(static_cast<uint32_t>(count)).floats({count}, -3.0f, 3.0f);
      const float special[] = {0.01f, 0.03f, -0.05f, 1e9f, -1e9f, std::numeric_limits<float>::quiet_NaN()};
      for (size_t i = 0; i < 6; ++i) x.data<float>()[i] = special[i];  // 0.5, 1.5 and -2.5 steps, saturation
      g.input("x", x);
      g.constant("scale", ir::Tensor::from_vector<float>({0.02f}, {}));
      g.constant("zp", int8 ? ir::Tensor::from_vector<int8_t>({-3}, {}) : ir::Tensor::from_vector<uint8_t>({128}, {}));
      add_node(g, e, {"x", "scale", "zp"});
      cases.push_back({std::string(int8 ? "int8, " : "uint8, ") + std::to_string(count) + " values", std::move(g), 0.0});
    }
  return cases;
}

// com.microsoft.MatMulIntegerToFloat (quantize_static's products, folded): uint8 or int8 A with a constant
// scale and zero point, int8 weights B [K, 21] with zero point 0 per tensor or per column, with and without
// a bias. Tolerance: the fast kernel removes A's zero point in float32 (onednn_int8_matmul.h).
std::vector<Case> matmul_integer_to_float_cases(const FastKernelEntry& e, int64_t opset) {
  std::vector<Case> cases;
  int seed = 0;
  for (bool int8_a : {false, true})
    for (bool per_column : {false, true})
      for (std::vector<int64_t> a_shape : {std::vector<int64_t>{13}, {2, 37, 13}, {3, 100}}) {
        TestGraph g = graph_for(e, opset);
        const int64_t k = a_shape.back();
        const int64_t count = std::accumulate(a_shape.begin(), a_shape.end(), int64_t{1}, std::multiplies<int64_t>());
        ++seed;
        if (int8_a) {
          std::vector<int8_t> a(static_cast<size_t>(count));
          for (size_t i = 0; i < a.size(); ++i) a[i] = static_cast<int8_t>(static_cast<int>((i + seed) * 71 % 256) - 128);
          g.input("a", ir::Tensor::from_vector(a, a_shape));
          g.constant("az", ir::Tensor::from_vector<int8_t>({-5}, {}));
        } else {
          std::vector<uint8_t> a(static_cast<size_t>(count));
          for (size_t i = 0; i < a.size(); ++i) a[i] = static_cast<uint8_t>((i + seed) * 71 % 256);
          g.input("a", ir::Tensor::from_vector(a, a_shape));
          g.constant("az", ir::Tensor::from_vector<uint8_t>({121}, {}));
        }
        std::vector<int8_t> b(static_cast<size_t>(k * 21));
        for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<int8_t>(static_cast<int>(i * 37 % 255) - 127);
        g.constant("b", ir::Tensor::from_vector(b, {k, 21}));
        g.constant("as", ir::Tensor::from_vector<float>({0.02f}, {}));
        Random rng(static_cast<uint32_t>(seed));
        g.constant("bs", per_column ? rng.floats({21}, 0.001f, 0.01f) : ir::Tensor::from_vector<float>({0.004f}, {}));
        std::vector<std::string> ins = {"a", "b", "as", "bs", "az"};
        const bool bias = a_shape.size() != 1;
        if (bias) {
          ins.push_back("");
          ins.push_back(g.constant("bias", rng.floats({21})));
        }
        add_node(g, e, ins);
        cases.push_back({std::string(int8_a ? "int8 A" : "uint8 A") + (per_column ? ", per column" : ", per tensor") +
                             (bias ? ", bias" : "") + ", A rank " + std::to_string(a_shape.size()),
                         std::move(g), 1e-4});
      }
  return cases;
}

// QAttention on uint8 (or int8) input [2, 5, 16] (2 heads of 8), int8 weights [16, 48], per tensor or per
// column scales, with and without a raw [2, 5] mask; then an int8 input, a 1-D mask_index (end
// positions) and unidirectional=1.
std::vector<Case> qattention_cases(const FastKernelEntry& e, int64_t opset) {
  std::vector<Case> cases;
  enum class Variant { kPlain, kInt8Input, kLengths, kCausal };
  struct Shape {
    bool per_column, mask;
    Variant variant;
  };
  std::vector<Shape> shapes;
  for (bool per_column : {false, true})
    for (bool mask : {false, true}) shapes.push_back({per_column, mask, Variant::kPlain});
  shapes.push_back({true, true, Variant::kInt8Input});
  shapes.push_back({false, true, Variant::kLengths});
  shapes.push_back({true, false, Variant::kCausal});
  for (const Shape& sh : shapes) {
      const bool per_column = sh.per_column, mask = sh.mask;
      Random rng(static_cast<uint32_t>(cases.size() + 1));
      TestGraph g = graph_for(e, opset);
      if (sh.variant == Variant::kInt8Input) {
        std::vector<int8_t> x(2 * 5 * 16);
        for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<int8_t>(static_cast<int>(i * 97 % 256) - 128);
        g.input("x", ir::Tensor::from_vector(x, {2, 5, 16}));
      } else {
        std::vector<uint8_t> x(2 * 5 * 16);
        for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<uint8_t>(i * 97 % 256);
        g.input("x", ir::Tensor::from_vector(x, {2, 5, 16}));
      }
      std::vector<int8_t> w(16 * 48);
      for (size_t i = 0; i < w.size(); ++i) w[i] = static_cast<int8_t>(static_cast<int>(i * 53 % 255) - 127);
      g.constant("w", ir::Tensor::from_vector(w, {16, 48}));
      g.constant("b", rng.floats({48}));
      g.input("x_scale", ir::Tensor::from_vector<float>({0.01f}, {}));
      g.constant("w_scale", per_column ? rng.floats({48}, 0.001f, 0.004f) : ir::Tensor::from_vector<float>({0.002f}, {}));
      if (sh.variant == Variant::kInt8Input)
        g.input("x_zero_point", ir::Tensor::from_vector<int8_t>({-7}, {}));
      else
        g.input("x_zero_point", ir::Tensor::from_vector<uint8_t>({121}, {}));
      std::string m;
      if (sh.variant == Variant::kLengths)
        m = g.input("mask", ir::Tensor::from_vector<int32_t>({3, 5}, {2}));
      else if (mask)
        m = g.input("mask", ir::Tensor::from_vector<int32_t>({1, 1, 1, 0, 0, 1, 1, 1, 1, 1}, {2, 5}));
      std::vector<ir::Attribute> attrs = {attr_int("num_heads", 2)};
      if (sh.variant == Variant::kCausal) attrs.push_back(attr_int("unidirectional", 1));
      add_node(g, e, {"x", "w", "b", "x_scale", "w_scale", m, "x_zero_point"}, attrs);
      const char* names[] = {"", ", int8 input", ", mask_index of lengths", ", unidirectional"};
      cases.push_back({std::string(per_column ? "per column" : "per tensor") + (mask ? ", masked" : "") +
                           names[static_cast<int>(sh.variant)],
                       std::move(g)});
  }
  return cases;
}

std::vector<Case> conv_cases(const FastKernelEntry& e, int64_t opset) {
  struct Shape {
    const char* what;
    int64_t in_channels, out_channels, group, kernel, stride;
    std::vector<int64_t> pads;
  };
  const std::vector<Shape> shapes = {
      {"3x3 stride 2, asymmetric pads", 3, 8, 1, 3, 2, {1, 0, 2, 1}},
      {"depthwise 3x3", 6, 6, 6, 3, 1, {1, 1, 1, 1}},
      {"grouped 1x1", 4, 6, 2, 1, 1, {0, 0, 0, 0}},
  };
  const bool fused = std::string(e.op) == "FusedConv";
  std::vector<Case> cases;
  for (const Shape& s : shapes) {
    Random rng(static_cast<uint32_t>(s.out_channels));
    TestGraph g = graph_for(e, opset);
    g.input("x", rng.floats({2, s.in_channels, 9, 11}));
    g.constant("w", rng.floats({s.out_channels, s.in_channels / s.group, s.kernel, s.kernel}));
    g.constant("b", rng.floats({s.out_channels}));
    std::vector<ir::Attribute> attrs = {attr_int("group", s.group), attr_ints("strides", {s.stride, s.stride}),
                                        attr_ints("pads", s.pads)};
    if (fused)
      attrs.push_back(std::string(e.domain) == "ai.kiln" ? attr_string("activation", "HardSwish")
                                                         : attr_string("activation", "Relu"));
    add_node(g, e, {"x", "w", "b"}, attrs);
    cases.push_back({s.what, std::move(g)});
  }
  if (std::string(e.domain) != "ai.kiln") return cases;
  // ai.kiln.FusedConv's channels-last X, Z, Y [N, H, W, C], what the optimizer's layout pass writes.
  for (const Shape& s : shapes) {
    Random rng(static_cast<uint32_t>(s.out_channels + 100));
    TestGraph g = graph_for(e, opset);
    g.input("x", rng.floats({2, 9, 11, s.in_channels}));
    g.constant("w", rng.floats({s.out_channels, s.in_channels / s.group, s.kernel, s.kernel}));
    g.constant("b", rng.floats({s.out_channels}));
    const int64_t oh = (9 + s.pads[0] + s.pads[2] - s.kernel) / s.stride + 1;
    const int64_t ow = (11 + s.pads[1] + s.pads[3] - s.kernel) / s.stride + 1;
    g.input("z", rng.floats({2, oh, ow, s.out_channels}));
    add_node(g, e, {"x", "w", "b", "z"},
             {attr_int("group", s.group), attr_ints("strides", {s.stride, s.stride}), attr_ints("pads", s.pads),
              attr_string("activation", "Silu"), attr_int("channels_last", 1)});
    cases.push_back({std::string(s.what) + ", channels-last with Z", std::move(g)});
  }
  return cases;
}

std::vector<Case> conv_transpose_cases(const FastKernelEntry& e, int64_t opset) {
  struct Shape {
    const char* what;
    std::vector<int64_t> x, w;  // w [C, M / group, k...]
    int64_t group;
    std::vector<ir::Attribute> attrs;
  };
  const std::vector<Shape> shapes = {
      {"2x2 stride 2", {2, 6, 5, 7}, {6, 4, 2, 2}, 1, {attr_ints("strides", {2, 2})}},
      {"3x3 stride 2, pads, output_padding, 2 groups",
       {1, 6, 5, 4},
       {6, 3, 3, 3},
       2,
       {attr_ints("strides", {2, 2}), attr_ints("pads", {1, 1, 1, 1}), attr_ints("output_padding", {1, 0})}},
      {"1-D, output_shape", {1, 4, 9}, {4, 5, 4}, 1, {attr_ints("strides", {2}), attr_ints("output_shape", {20})}},
      {"3-D", {1, 3, 3, 4, 2}, {3, 2, 2, 3, 2}, 1, {attr_ints("strides", {1, 2, 2})}},
  };
  std::vector<Case> cases;
  uint32_t seed = 50;
  for (const Shape& s : shapes) {
    Random rng(seed++);
    TestGraph g = graph_for(e, opset);
    g.input("x", rng.floats(s.x));
    g.constant("w", rng.floats(s.w));
    g.constant("b", rng.floats({s.w[1] * s.group}));
    std::vector<ir::Attribute> attrs = s.attrs;
    attrs.push_back(attr_int("group", s.group));
    add_node(g, e, {"x", "w", "b"}, attrs);
    cases.push_back({s.what, std::move(g)});
  }
  return cases;
}

std::vector<Case> attention_cases(const FastKernelEntry& e, int64_t opset) {
  std::vector<Case> cases;
  for (bool mask : {false, true}) {
    Random rng(mask ? 3 : 4);
    TestGraph g = graph_for(e, opset);
    g.input("x", rng.floats({2, 5, 12}));
    g.constant("w", rng.floats({12, 36}));
    g.constant("bias", rng.floats({36}));
    std::vector<std::string> ins = {"x", "w", "bias"};
    if (mask) {
      ir::Tensor m(ir::DType::kInt32, {2, 5});
      for (int64_t i = 0; i < m.numel(); ++i) m.data<int32_t>()[i] = i % 5 == 4 ? 0 : 1;
      ins.push_back(g.input("mask", m));
    }
    add_node(g, e, ins, {attr_int("num_heads", 3)});
    cases.push_back({mask ? "raw mask" : "no mask", std::move(g)});
  }
  return cases;
}

std::vector<Case> layer_norm_cases(const FastKernelEntry& e, int64_t opset) {
  Random rng(6);
  TestGraph g = graph_for(e, opset);
  const bool skip = std::string(e.op) == "SkipLayerNormalization";
  g.input("x", rng.floats({3, 5, 19}));
  if (skip) g.input("skip", rng.floats({3, 5, 19}));
  g.constant("gamma", rng.floats({19}));
  g.constant("beta", rng.floats({19}));
  if (skip) {
    g.constant("bias", rng.floats({19}));
    add_node(g, e, {"x", "skip", "gamma", "beta", "bias"});
  } else {
    add_node(g, e, {"x", "gamma", "beta"});
  }
  std::vector<Case> cases;
  cases.push_back({"[3, 5, 19]", std::move(g)});
  return cases;
}

std::vector<Case> gelu_cases(const FastKernelEntry& e, int64_t opset) {
  std::vector<Case> cases;
  const std::string op = e.op;
  const bool onnx = *e.domain == '\0';
  for (const char* approximate : {"none", "tanh"}) {
    if (!onnx && std::string(approximate) == "tanh") break;  // the contrib GELUs have no attribute
    Random rng(7);
    TestGraph g = graph_for(e, opset);
    g.input("x", rng.floats({3, 37}));
    std::vector<std::string> ins = {"x"};
    if (op == "BiasGelu" || op == "FastGelu") ins.push_back(g.constant("bias", rng.floats({37})));
    std::vector<ir::Attribute> attrs;
    if (onnx) attrs.push_back(attr_string("approximate", approximate));
    add_node(g, e, ins, attrs);
    cases.push_back({std::string("approximate ") + approximate, std::move(g), 1e-5});
  }
  return cases;
}

std::vector<Case> softmax_cases(const FastKernelEntry& e, int64_t opset) {
  Random rng(8);
  TestGraph g = graph_for(e, opset);
  g.input("x", rng.floats({2, 3, 41}));
  // The last axis: opset 13's default, and before 13 the axis from which the dims are flattened.
  add_node(g, e, {"x"}, {attr_int("axis", opset >= 13 ? -1 : 2)});
  std::vector<Case> cases;
  cases.push_back({"last axis", std::move(g), 1e-6});
  return cases;
}

std::vector<Case> pool_cases(const FastKernelEntry& e, int64_t opset) {
  Random rng(9);
  TestGraph g = graph_for(e, opset);
  g.input("x", rng.floats({2, 3, 10, 9}));
  if (std::string(e.op) == "MaxPool") {
    add_node(g, e, {"x"}, {attr_ints("kernel_shape", {3, 3}), attr_ints("strides", {2, 2}), attr_ints("pads", {1, 1, 1, 0})});
  } else {
    add_node(g, e, {"x"});
  }
  std::vector<Case> cases;
  cases.push_back({"[2, 3, 10, 9]", std::move(g), 1e-6});
  return cases;
}

// ai.kiln.MaxPool / AveragePool, channels-last [N, H, W, C]: odd channels, asymmetric pads, strides,
// ceil_mode; count_include_pad both ways.
std::vector<Case> channels_last_pool_cases(const FastKernelEntry& e, int64_t opset) {
  const bool average = std::string(e.op) == "AveragePool";
  std::vector<Case> cases;
  for (int64_t include_pad : {0, 1}) {
    if (include_pad && !average) break;
    Random rng(static_cast<uint32_t>(10 + include_pad));
    TestGraph g = graph_for(e, opset);
    g.input("x", rng.floats({2, 10, 9, 17}));
    std::vector<ir::Attribute> attrs = {attr_ints("kernel_shape", {3, 3}), attr_ints("strides", {2, 2}),
                                        attr_ints("pads", {1, 1, 1, 0}), attr_int("ceil_mode", 1),
                                        attr_int("channels_last", 1)};
    if (average) attrs.push_back(attr_int("count_include_pad", include_pad));
    add_node(g, e, {"x"}, attrs);
    cases.push_back({"[2, 10, 9, 17], count_include_pad " + std::to_string(include_pad), std::move(g), 1e-6});
  }
  return cases;
}

// (domain, op) -> its cases. A new table entry needs a line here.
// Reductions over a block of axes: a global pool in NCHW and NHWC, the last axis, all axes; keepdims both ways.
std::vector<Case> reduce_cases(const FastKernelEntry& e, int64_t opset) {
  const bool axes_input = opset >= (std::string(e.op) == "ReduceSum" ? 13 : 18);
  std::vector<Case> cases;
  struct Shape {
    std::vector<int64_t> x, axes;
    int64_t keepdims;
  };
  for (const Shape& c : {Shape{{2, 3, 7, 5}, {2, 3}, 1}, Shape{{2, 7, 5, 300}, {1, 2}, 1}, Shape{{3, 1, 33}, {-1}, 0},
                         Shape{{4, 6}, {}, 1}, Shape{{2, 1, 9, 4}, {1, 2}, 0},
                         // Over every element of a large tensor: one run split across the threads.
                         Shape{{2, 40001}, {}, 0}}) {
    Random rng(static_cast<uint32_t>(c.x.size() + c.axes.size()));
    TestGraph g = graph_for(e, opset);
    g.input("x", rng.floats(c.x));
    std::vector<ir::Attribute> attrs = {attr_int("keepdims", c.keepdims)};
    std::vector<std::string> ins = {"x"};
    if (axes_input) {
      if (!c.axes.empty()) ins.push_back(g.constant("axes", ir::Tensor::from_vector<int64_t>(c.axes, {static_cast<int64_t>(c.axes.size())})));
    } else if (!c.axes.empty()) {
      attrs.push_back(attr_ints("axes", c.axes));
    }
    add_node(g, e, ins, attrs);
    cases.push_back({"x " + ir::to_string(c.x) + " axes " + ir::to_string(c.axes), std::move(g)});
  }
  return cases;
}

// Broadcasts of every kind: equal shapes, a scalar either side, per-channel in NCHW and NHWC, an outer
// product, ranks that differ, odd sizes.
std::vector<Case> binary_cases(const FastKernelEntry& e, int64_t opset) {
  std::vector<Case> cases;
  struct Shapes {
    std::vector<int64_t> a, b;
  };
  for (const Shapes& c : {Shapes{{3, 17}, {3, 17}}, Shapes{{2, 3, 5}, {}}, Shapes{{1}, {4, 7}},
                          Shapes{{2, 3, 4, 5}, {3, 1, 1}}, Shapes{{1, 6, 5, 19}, {1, 1, 1, 19}},
                          Shapes{{4, 1, 6}, {1, 5, 1}}, Shapes{{7}, {3, 2, 7}}, Shapes{{2, 1, 3, 1}, {2, 4, 3, 5}},
                          Shapes{{1, 70000}, {1, 70000}}, Shapes{{1, 1, 1, 37}, {1, 30, 20, 37}}}) {
    Random rng(static_cast<uint32_t>(c.a.size() * 7 + c.b.size()));
    TestGraph g = graph_for(e, opset);
    g.input("a", rng.floats(c.a));
    // Divisors away from 0.
    g.input("b", std::string(e.op) == "Div" ? rng.floats(c.b, 0.5f, 2.0f) : rng.floats(c.b));
    add_node(g, e, {"a", "b"});
    cases.push_back({ir::to_string(c.a) + " and " + ir::to_string(c.b), std::move(g)});
  }
  return cases;
}

// Transposes that keep and that move the innermost axis, with and without perm.
std::vector<Case> transpose_cases(const FastKernelEntry& e, int64_t opset) {
  std::vector<Case> cases;
  struct Shape {
    std::vector<int64_t> x, perm;
  };
  for (const Shape& c : {Shape{{2, 3, 17}, {1, 0, 2}}, Shape{{3, 9, 17}, {0, 2, 1}}, Shape{{2, 3, 4, 5}, {3, 1, 0, 2}},
                         Shape{{7, 5}, {}}}) {
    Random rng(static_cast<uint32_t>(c.x.size() + c.perm.size()));
    TestGraph g = graph_for(e, opset);
    g.input("x", rng.floats(c.x));
    std::vector<ir::Attribute> attrs;
    if (!c.perm.empty()) attrs.push_back(attr_ints("perm", c.perm));
    add_node(g, e, {"x"}, attrs);
    cases.push_back({"x " + ir::to_string(c.x) + " perm " + ir::to_string(c.perm), std::move(g), 0});
  }
  return cases;
}

// Slices with negative starts and steps: attributes before opset 10, inputs from then on (with steps).
std::vector<Case> slice_cases(const FastKernelEntry& e, int64_t opset) {
  std::vector<Case> cases;
  Random rng(12);
  TestGraph g = graph_for(e, opset);
  g.input("x", rng.floats({4, 7, 9}));
  if (opset < 10) {
    add_node(g, e, {"x"}, {attr_ints("starts", {1, -5}), attr_ints("ends", {3, 100}), attr_ints("axes", {0, 2})});
  } else {
    add_node(g, e,
             {"x", g.constant("starts", ir::Tensor::from_vector<int64_t>({1, -1}, {2})),
              g.constant("ends", ir::Tensor::from_vector<int64_t>({3, 0}, {2})),
              g.constant("axes", ir::Tensor::from_vector<int64_t>({0, 2}, {2})),
              g.constant("steps", ir::Tensor::from_vector<int64_t>({1, -2}, {2}))});
  }
  cases.push_back({"[4, 7, 9]", std::move(g), 0});
  return cases;
}

std::vector<Case> concat_cases(const FastKernelEntry& e, int64_t opset) {
  std::vector<Case> cases;
  for (int64_t axis : {0, 1, -1}) {
    Random rng(static_cast<uint32_t>(axis + 5));
    TestGraph g = graph_for(e, opset);
    std::vector<int64_t> a = {2, 3, 5}, b = {2, 3, 5};
    b[static_cast<size_t>(axis < 0 ? axis + 3 : axis)] = 4;
    g.input("a", rng.floats(a));
    g.input("b", rng.floats(b));
    add_node(g, e, {"a", "b"}, {attr_int("axis", axis)});
    cases.push_back({"axis " + std::to_string(axis), std::move(g), 0});
  }
  return cases;
}

// Given sizes (an attribute before opset 13, an input from then on) and equal parts.
std::vector<Case> split_cases(const FastKernelEntry& e, int64_t opset) {
  std::vector<Case> cases;
  for (bool given : {true, false}) {
    Random rng(given ? 13 : 14);
    TestGraph g = graph_for(e, opset);
    g.input("x", rng.floats({3, 6, 5}));
    std::vector<std::string> ins = {"x"};
    std::vector<ir::Attribute> attrs = {attr_int("axis", 1)};
    if (given && opset >= 13)
      ins.push_back(g.constant("split", ir::Tensor::from_vector<int64_t>({1, 5}, {2})));
    else if (given)
      attrs.push_back(attr_ints("split", {1, 5}));
    g.node(e.op, ins, {"y0", "y1"}, attrs, e.domain);
    g.output("y0");
    g.output("y1");
    cases.push_back({given ? "sizes given" : "equal parts", std::move(g), 0});
  }
  return cases;
}

// Nearest and bilinear, up and down, from scales (an attribute for Upsample before opset 9).
std::vector<Case> resize_cases(const FastKernelEntry& e, int64_t opset) {
  std::vector<Case> cases;
  const bool upsample = std::string(e.op) == "Upsample";
  for (const char* mode : {"nearest", "linear"}) {
    for (std::vector<float> scales : {std::vector<float>{1, 1, 2, 3}, std::vector<float>{1, 1, 0.5f, 1.5f}}) {
      if (upsample && scales[2] < 1) continue;  // Upsample only grows
      Random rng(15);
      TestGraph g = graph_for(e, opset);
      g.input("x", rng.floats({1, 2, 5, 7}));
      std::vector<std::string> ins = {"x"};
      std::vector<ir::Attribute> attrs = {attr_string("mode", mode)};
      ir::Tensor s = ir::Tensor::from_vector<float>(scales, {4});
      if (upsample && opset < 9) {
        attrs.push_back(testing::contrib::attr_floats("scales", scales));
      } else if (upsample || opset < 11) {
        ins.push_back(g.constant("scales", s));
      } else {
        ins.push_back(g.constant("roi", ir::Tensor(ir::DType::kFloat32, {0})));
        ins.push_back(g.constant("scales", s));
      }
      add_node(g, e, ins, attrs);
      cases.push_back({std::string(mode) + " scales " + std::to_string(scales[2]), std::move(g), 1e-5});
    }
  }
  return cases;
}

// LSTM and GRU: bidirectional with sequence_lens and initial states (LSTM with peepholes, GRU with
// linear_before_reset), and reverse with clip (batch-major from opset 14); every output.
std::vector<Case> recurrent_cases(const FastKernelEntry& e, int64_t opset) {
  const bool lstm = std::string(e.op) == "LSTM";
  const int64_t gates = lstm ? 4 : 3, hidden = 9, input = 6, seq = 4, batch = 3;
  std::vector<Case> cases;
  for (bool bidirectional : {true, false}) {
    Random rng(bidirectional ? 11 : 12);
    const int64_t dirs = bidirectional ? 2 : 1;
    const int64_t layout = !bidirectional && opset >= 14 ? 1 : 0;
    TestGraph g = graph_for(e, opset);
    g.input("x", rng.floats(layout == 0 ? std::vector<int64_t>{seq, batch, input}
                                        : std::vector<int64_t>{batch, seq, input}));
    std::vector<std::string> ins = {"x", g.constant("w", rng.floats({dirs, gates * hidden, input})),
                                    g.constant("r", rng.floats({dirs, gates * hidden, hidden})),
                                    g.constant("b", rng.floats({dirs, 2 * gates * hidden}))};
    std::vector<ir::Attribute> attrs = {attr_string("direction", bidirectional ? "bidirectional" : "reverse")};
    if (layout) attrs.push_back(attr_int("layout", 1));
    if (bidirectional) {
      ins.push_back(g.input("lens", ir::Tensor::from_vector<int32_t>({4, 0, 2}, {batch})));
      ins.push_back(g.input("h0", rng.floats({dirs, batch, hidden})));
      if (lstm) {
        ins.push_back(g.input("c0", rng.floats({dirs, batch, hidden})));
        ins.push_back(g.constant("p", rng.floats({dirs, 3 * hidden})));
      } else {
        attrs.push_back(attr_int("linear_before_reset", 1));
      }
    } else {
      attrs.push_back(attr_float("clip", 0.9f));
    }
    std::vector<std::string> outs = {"y", "y_h"};
    if (lstm) outs.push_back("y_c");
    g.node(e.op, ins, outs, attrs, e.domain);
    for (const std::string& o : outs) g.output(o);
    cases.push_back(
        {bidirectional ? "bidirectional, sequence_lens, initial state" : "reverse, clip", std::move(g), 2e-5});
  }
  return cases;
}

// ai.kiln.ElementwiseChain: channels-last per-channel operands and a residual; NCHW per-channel and
// scalar operands with every unary step.
std::vector<Case> chain_cases(const FastKernelEntry& e, int64_t opset) {
  std::vector<Case> cases;
  {
    Random rng(41);
    TestGraph g = graph_for(e, opset);
    g.input("x", rng.floats({2, 5, 7, 19}));
    g.constant("bias", rng.floats({19}));
    g.constant("gamma", rng.floats({1, 1, 19}));
    g.input("residual", rng.floats({2, 5, 7, 19}));
    add_node(g, e, {"x", "bias", "gamma", "residual"},
             {testing::contrib::attr_strings("ops", {"Add", "Mul", "Add", "Relu"}), attr_ints("operands", {1, 2, 3, 0}),
              testing::contrib::attr_floats("params", std::vector<float>(8, 0.0f))});
    cases.push_back({"channels last: bias, scale, residual, Relu", std::move(g), 0.0});
  }
  {
    Random rng(42);
    TestGraph g = graph_for(e, opset);
    g.input("x", rng.floats({1, 6, 33, 40}));
    g.constant("scale", rng.floats({6, 1, 1}));
    g.constant("eps", testing::contrib::scalar(0.5f));
    const std::vector<std::string> ops = {"Mul",  "SubFrom", "Pow", "Add",  "Sqrt",       "DivInto", "Sigmoid", "Tanh",
                                          "Erf",  "Exp",     "Neg", "Abs",  "Reciprocal", "Clip",    "LeakyRelu",
                                          "HardSigmoid", "Div", "Sub", "Pow"};
    std::vector<int64_t> operands = {1, 2, 0, 2, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 1, 0};
    std::vector<float> params(2 * ops.size(), 0.0f);
    params[2 * 2] = 2.0f;                               // Pow 2
    params[2 * 13] = -0.7f, params[2 * 13 + 1] = 0.9f;  // Clip
    params[2 * 14] = 0.1f;                              // LeakyRelu
    params[2 * 15] = 0.3f, params[2 * 15 + 1] = 0.4f;   // HardSigmoid
    params[2 * 18] = 1.5f;                              // Pow 1.5
    add_node(g, e, {"x", "scale", "eps"},
             {testing::contrib::attr_strings("ops", ops), attr_ints("operands", operands),
              testing::contrib::attr_floats("params", params)});
    // The transcendental steps run vector_kernels' unary: within a few ulp of the reference's functions.
    cases.push_back({"NCHW per-channel and scalar operands, every step", std::move(g), 1e-5});
  }
  return cases;
}

// Pad in each mode (wrap from 19) with a crop: pads as attributes before opset 11, inputs from then on
// (with a constant value, and axes from 18).
std::vector<Case> pad_cases(const FastKernelEntry& e, int64_t opset) {
  std::vector<Case> cases;
  for (const char* mode : {"constant", "reflect", "edge", "wrap"}) {
    if (std::string(mode) == "wrap" && opset < 19) continue;
    Random rng(21);
    TestGraph g = graph_for(e, opset);
    g.input("x", rng.floats({2, 5, 7, 3}));
    const std::vector<int64_t> pads = {0, 2, -1, 0, 0, 1, 3, 0};
    std::vector<ir::Attribute> attrs = {attr_string("mode", mode)};
    std::vector<std::string> ins = {"x"};
    if (opset < 11) {
      attrs.push_back(attr_ints(opset < 2 ? "paddings" : "pads", pads));
      attrs.push_back(attr_float("value", 1.5f));
    } else if (opset < 18) {
      ins.push_back(g.constant("pads", testing::contrib::int64s(pads)));
      ins.push_back(g.constant("value", testing::contrib::scalar(1.5f)));
    } else {
      ins.push_back(g.constant("pads", testing::contrib::int64s({2, -1, 1, 3})));
      ins.push_back(g.constant("value", testing::contrib::scalar(1.5f)));
      ins.push_back(g.constant("axes", testing::contrib::int64s({1, -2})));
    }
    add_node(g, e, ins, attrs);
    cases.push_back({std::string(mode) + ", a crop", std::move(g), 0});
  }
  return cases;
}

// Gather along the first, a middle and the last axis, negative and scalar indices.
std::vector<Case> gather_cases(const FastKernelEntry& e, int64_t opset) {
  std::vector<Case> cases;
  for (int64_t axis : {0, 1, -1}) {
    Random rng(static_cast<uint32_t>(axis + 30));
    TestGraph g = graph_for(e, opset);
    g.input("x", rng.floats({5, 6, 7}));
    g.constant("i", ir::Tensor::from_vector<int64_t>({4, -1, 0, 2, -5, 3}, {2, 3}));
    add_node(g, e, {"x", "i"}, {attr_int("axis", axis)});
    cases.push_back({"axis " + std::to_string(axis), std::move(g), 0});
  }
  Random rng(33);
  TestGraph g = graph_for(e, opset);
  g.input("x", rng.floats({9, 4}));
  g.input("i", ir::Tensor::from_vector<int32_t>({-2}, {}));
  add_node(g, e, {"x", "i"});
  cases.push_back({"scalar int32 index", std::move(g), 0});
  return cases;
}

// BatchNormalization with constant parameters and with computed ones, ranks 2 to 5.
std::vector<Case> batch_norm_cases(const FastKernelEntry& e, int64_t opset) {
  std::vector<Case> cases;
  for (std::vector<int64_t> shape : {std::vector<int64_t>{3, 5}, {2, 5, 7, 9}, {1, 5, 3, 4, 3}}) {
    for (bool constant : {true, false}) {
      Random rng(static_cast<uint32_t>(shape.size() * 2 + constant));
      TestGraph g = graph_for(e, opset);
      g.input("x", rng.floats(shape));
      std::vector<std::string> ins = {"x"};
      for (const char* p : {"scale", "b", "mean", "var"}) {
        ir::Tensor t = std::string(p) == "var" ? rng.floats({5}, 0.1f, 2.0f) : rng.floats({5});
        ins.push_back(constant ? g.constant(p, t) : g.input(p, t));
      }
      add_node(g, e, ins, {attr_float("epsilon", 1e-3f)});
      cases.push_back({ir::to_string(shape) + (constant ? " constant" : " computed") + " parameters", std::move(g), 1e-5});
    }
  }
  return cases;
}

// The single unary ops (unary_elementwise_kernel.cc): a scalar, odd sizes, and a tensor large enough to
// be split across threads; inputs where the op is defined (Log and Sqrt: positive; Reciprocal: away from
// 0), the attributes set away from their defaults, and Clip's bounds as attributes or inputs (one absent).
std::vector<Case> unary_cases(const FastKernelEntry& e, int64_t opset) {
  const std::string op = e.op;
  std::vector<Case> cases;
  for (const std::vector<int64_t>& shape : {std::vector<int64_t>{}, {7}, {3, 17}, {2, 3, 5, 7}, {1, 70001}}) {
    Random rng(static_cast<uint32_t>(shape.size() + 11));
    TestGraph g = graph_for(e, opset);
    g.input("x", op == "Log" || op == "Sqrt" ? rng.floats(shape, 0.01f, 8.0f)
                 : op == "Reciprocal"        ? rng.floats(shape, 0.5f, 2.0f)
                                             : rng.floats(shape, -4.0f, 4.0f));
    std::vector<ir::Attribute> attrs;
    std::vector<std::string> ins = {"x"};
    if (op == "LeakyRelu" || op == "Elu") attrs = {attr_float("alpha", 0.3f)};
    if (op == "HardSigmoid") attrs = {attr_float("alpha", 0.3f), attr_float("beta", 0.4f)};
    if (op == "Clip" && opset < 11) attrs = {attr_float("min", -0.7f), attr_float("max", 0.9f)};
    if (op == "Clip" && opset >= 11) {
      g.constant("lo", testing::contrib::scalar(-0.7f));
      g.constant("hi", testing::contrib::scalar(0.9f));
      ins = shape.size() == 2 ? std::vector<std::string>{"x", "", "hi"}
            : shape.size() == 1 ? std::vector<std::string>{"x", "lo"}
                                : std::vector<std::string>{"x", "lo", "hi"};
    }
    add_node(g, e, ins, attrs);
    cases.push_back({ir::to_string(shape), std::move(g), 1e-5});
  }
  return cases;
}

// Pow by a one-element exponent (a scalar or [1], float or int64), bases positive for the fractional ones.
std::vector<Case> pow_cases(const FastKernelEntry& e, int64_t opset) {
  std::vector<Case> cases;
  for (float exponent : {2.0f, 0.5f, 3.0f, -1.0f, 1.7f}) {
    Random rng(static_cast<uint32_t>(exponent * 10 + 100));
    TestGraph g = graph_for(e, opset);
    const bool integral = exponent == std::trunc(exponent);
    g.input("x", rng.floats({3, 5, 17}, integral ? -3.0f : 0.1f, 3.0f));
    if (exponent == 3.0f)
      g.constant("e", testing::contrib::int64s({3}));
    else
      g.constant("e", testing::contrib::scalar(exponent));
    add_node(g, e, {"x", "e"});
    cases.push_back({"exponent " + std::to_string(exponent), std::move(g), 1e-5});
  }
  return cases;
}

// Cast from float32 to each simple type, with values that round, truncate, and are 0.
std::vector<Case> cast_cases(const FastKernelEntry& e, int64_t opset) {
  std::vector<Case> cases;
  for (ir::DType to : {ir::DType::kFloat32, ir::DType::kFloat16, ir::DType::kInt64, ir::DType::kInt32, ir::DType::kBool}) {
    Random rng(static_cast<uint32_t>(to) + 200);
    TestGraph g = graph_for(e, opset);
    ir::Tensor x = rng.floats({5, 33}, -100.0f, 100.0f);
    x.data<float>()[3] = 0.0f;
    g.input("x", x);
    add_node(g, e, {"x"}, {attr_int("to", static_cast<int64_t>(to))});
    cases.push_back({"to " + std::string(ir::dtype_name(to)), std::move(g), 0.0});
  }
  return cases;
}

// x's values as `to` (int64, int32, bool: non-zero; float32 as is).
ir::Tensor converted(const ir::Tensor& x, ir::DType to) {
  ir::Tensor y(to, x.shape());
  for (int64_t i = 0; i < x.numel(); ++i) {
    const float v = x.data<float>()[i];
    if (to == ir::DType::kFloat32) y.data<float>()[i] = v;
    if (to == ir::DType::kInt64) y.data<int64_t>()[i] = static_cast<int64_t>(v);
    if (to == ir::DType::kInt32) y.data<int32_t>()[i] = static_cast<int32_t>(v);
    if (to == ir::DType::kBool) y.data<bool>()[i] = v != 0.0f;
  }
  return y;
}

// Comparisons and logical ops, in every element type the entry takes at the opset: operands of few
// values (so that equal pairs occur) broadcast against each other, a scalar against a [1] (silero-vad's
// conditions), and for float32 a NaN and signed zeros.
std::vector<Case> comparison_cases(const FastKernelEntry& e, int64_t opset) {
  const std::string op = e.op;
  const bool logical = op == "And" || op == "Or" || op == "Xor" || op == "Not";
  std::vector<ir::DType> types;
  if (logical) {
    types = {ir::DType::kBool};
  } else {
    if (op != "Equal" || opset >= 11) types.push_back(ir::DType::kFloat32);
    if (op == "Equal" || opset >= 9) types.insert(types.end(), {ir::DType::kInt64, ir::DType::kInt32});
    if (op == "Equal" && opset >= 11) types.push_back(ir::DType::kBool);
  }
  std::vector<Case> cases;
  for (ir::DType t : types) {
    Random rng(static_cast<uint32_t>(t) + 300);
    const float lo = t == ir::DType::kBool ? 0.0f : -2.0f;
    auto few_values = [&](std::vector<int64_t> shape) {
      ir::Tensor x = rng.floats(std::move(shape), lo, 2.99f);
      for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = std::floor(x.data<float>()[i]);
      return x;
    };
    const std::string type(ir::dtype_name(t));
    if (op == "Not") {
      TestGraph g = graph_for(e, opset);
      g.input("x", converted(few_values({4, 37}), t));
      add_node(g, e, {"x"});
      cases.push_back({"bool [4, 37]", std::move(g), 0.0});
      continue;
    }
    {
      TestGraph g = graph_for(e, opset);
      ir::Tensor a = few_values({2, 3, 37}), b = few_values({3, 1});
      if (t == ir::DType::kFloat32) {
        a.data<float>()[0] = NAN;
        a.data<float>()[1] = -0.0f;
        b.data<float>()[0] = 0.0f;
      }
      g.input("a", converted(a, t));
      g.input("b", converted(b, t));
      add_node(g, e, {"a", "b"});
      cases.push_back({type + " [2, 3, 37] with [3, 1]", std::move(g), 0.0});
    }
    {
      TestGraph g = graph_for(e, opset);
      g.input("a", converted(few_values({}), t));
      g.input("b", converted(few_values({1}), t));
      add_node(g, e, {"a", "b"});
      cases.push_back({type + " [] with [1]", std::move(g), 0.0});
    }
  }
  return cases;
}

const std::map<std::string, CaseMaker>& case_makers() {
  static const std::map<std::string, CaseMaker> makers = {
      {":MatMul", matmul_cases},
      {":Gemm", gemm_cases},
      {":Conv", conv_cases},
      {"com.microsoft:FusedConv", conv_cases},
      {"ai.kiln:FusedConv", conv_cases},
      {":ConvTranspose", conv_transpose_cases},
      {"com.microsoft:Attention", attention_cases},
      {"com.microsoft:DynamicQuantizeMatMul", dynamic_quantize_matmul_cases},
      {"com.microsoft:QAttention", qattention_cases},
      {":DynamicQuantizeLinear", dynamic_quantize_linear_cases},
      {":DequantizeLinear", dequantize_linear_cases},
      {":QuantizeLinear", quantize_linear_cases},
      {"com.microsoft:MatMulIntegerToFloat", matmul_integer_to_float_cases},
      {":LayerNormalization", layer_norm_cases},
      {"com.microsoft:SkipLayerNormalization", layer_norm_cases},
      {":Gelu", gelu_cases},
      {"com.microsoft:Gelu", gelu_cases},
      {"com.microsoft:BiasGelu", gelu_cases},
      {"com.microsoft:FastGelu", gelu_cases},
      {":Softmax", softmax_cases},
      {":MaxPool", pool_cases},
      {":GlobalAveragePool", pool_cases},
      {":ReduceMean", reduce_cases},
      {":Add", binary_cases},
      {":Sub", binary_cases},
      {":Mul", binary_cases},
      {":Div", binary_cases},
      {":ReduceSum", reduce_cases},
      {":ReduceMax", reduce_cases},
      {":Transpose", transpose_cases},
      {":Slice", slice_cases},
      {":Concat", concat_cases},
      {":Split", split_cases},
      {":Resize", resize_cases},
      {":Upsample", resize_cases},
      {":LSTM", recurrent_cases},
      {":GRU", recurrent_cases},
      {"ai.kiln:ElementwiseChain", chain_cases},
      {"ai.kiln:MaxPool", channels_last_pool_cases},
      {"ai.kiln:AveragePool", channels_last_pool_cases},
      {":Pad", pad_cases},
      {":Gather", gather_cases},
      {":BatchNormalization", batch_norm_cases},
      {":Relu", unary_cases},
      {":Sigmoid", unary_cases},
      {":Tanh", unary_cases},
      {":Exp", unary_cases},
      {":Log", unary_cases},
      {":Sqrt", unary_cases},
      {":Erf", unary_cases},
      {":Neg", unary_cases},
      {":Abs", unary_cases},
      {":Reciprocal", unary_cases},
      {":Floor", unary_cases},
      {":Ceil", unary_cases},
      {":Round", unary_cases},
      {":Softplus", unary_cases},
      {":HardSwish", unary_cases},
      {":HardSigmoid", unary_cases},
      {":LeakyRelu", unary_cases},
      {":Elu", unary_cases},
      {":Clip", unary_cases},
      {":Pow", pow_cases},
      {":Cast", cast_cases},
      {":Equal", comparison_cases},
      {":Less", comparison_cases},
      {":Greater", comparison_cases},
      {":LessOrEqual", comparison_cases},
      {":GreaterOrEqual", comparison_cases},
      {":And", comparison_cases},
      {":Or", comparison_cases},
      {":Xor", comparison_cases},
      {":Not", comparison_cases},
  };
  return makers;
}

std::string key(const FastKernelEntry& e) { return std::string(e.domain) + ":" + e.op; }

// The newest opset kiln runs for the entry's domain, capped by the entry's range.
int64_t newest_opset(const FastKernelEntry& e) {
  const int64_t newest = *e.domain == '\0' ? 23 : 1;
  return std::min(e.until_opset, std::max(newest, e.since_opset));
}

size_t fast_nodes(const ir::Model& m) {
  runtime::Session s(m);
  return s.fast_kernel_count();
}

TEST(FastKernelTable, EveryEntryMatchesTheReferenceAtItsOpsets) {
  ASSERT_FALSE(kernels::cpu::fast_kernel_table().empty());
  for (const FastKernelEntry& e : kernels::cpu::fast_kernel_table()) {
    auto maker = case_makers().find(key(e));
    ASSERT_NE(maker, case_makers().end()) << key(e) << " has no cases in fast_kernel_table_test.cc";
    // The cases are float32, but for the entries that take no float32 (the logical ops, the int8 ones), whose
    // cases are in their own types, and the comparisons, whose cases cover each of theirs.
    // QAttention's, DequantizeLinear's and MatMulIntegerToFloat's inputs are 8-bit integers (their cases too).
    ASSERT_TRUE(kernels::cpu::dtype_set_has(e.dtypes, ir::DType::kFloat32) ||
                e.dtypes == kernels::cpu::dtype_set({ir::DType::kBool}) ||
                e.dtypes == kernels::cpu::dtype_set({ir::DType::kInt8, ir::DType::kUInt8}))
        << key(e) << ": cases are float32 only";
    for (int64_t opset : std::set<int64_t>{e.since_opset, newest_opset(e)}) {
      for (Case& c : maker->second(e, opset)) {
        SCOPED_TRACE(::testing::Message() << key(e) << " opset " << opset << ": " << c.what);
        runtime::SessionOptions fast, ref;
        fast.optimization = ref.optimization = passes::Level::kNone;
        ref.fast_kernels = false;
        runtime::Session fast_session(c.graph.model(), fast), ref_session(c.graph.model(), ref);
        EXPECT_EQ(fast_session.fast_kernel_count(), 1u);
        std::vector<ir::Datum> got = fast_session.run(c.graph.feeds()), want = ref_session.run(c.graph.feeds());
        ASSERT_EQ(got.size(), want.size());
        for (size_t i = 0; i < want.size(); ++i) {
          ASSERT_EQ(got[i].tensor.shape(), want[i].tensor.shape());
          EXPECT_LE(max_abs_diff(got[i].tensor, want[i].tensor), c.tolerance);
        }
      }
    }
  }
}

TEST(FastKernelTable, NoEntryOutsideItsOpsets) {
  for (const FastKernelEntry& e : kernels::cpu::fast_kernel_table()) {
    SCOPED_TRACE(key(e));
    EXPECT_LE(e.since_opset, e.until_opset);
    EXPECT_EQ(kernels::cpu::find_fast_kernel_entry(e.domain, e.op, e.since_opset), &e);
    if (e.since_opset > 1) {
      // A graph at the opset before: no fast kernel (the op meant something else, or did not exist).
      const kernels::cpu::FastKernelEntry* before = kernels::cpu::find_fast_kernel_entry(e.domain, e.op, e.since_opset - 1);
      EXPECT_TRUE(before == nullptr || before->until_opset < e.since_opset);
    }
    for (const FastKernelEntry& other : kernels::cpu::fast_kernel_table())
      if (&other != &e && key(other) == key(e)) {
        EXPECT_TRUE(other.until_opset < e.since_opset || e.until_opset < other.since_opset) << "overlapping entries";
      }
  }
  // Gemm 6 (with its broadcast attribute) has none, and FusedConv is no ai.onnx op.
  EXPECT_EQ(kernels::cpu::find_fast_kernel_entry("", "Gemm", 6), nullptr);
  EXPECT_NE(kernels::cpu::find_fast_kernel_entry("ai.onnx", "Gemm", 7), nullptr);
  EXPECT_EQ(kernels::cpu::find_fast_kernel_entry("", "FusedConv", 1), nullptr);
}

TEST(FastKernelTable, APreparedKernelIsNamedAfterItsEntry) {
  Random rng(1);
  TestGraph g;
  g.input("a", rng.floats({2, 3}));
  g.constant("b", rng.floats({3, 4}));
  g.node("MatMul", {"a", "b"}, {"y"});
  g.output("y");
  ir::Model m = g.model();
  std::unique_ptr<kernels::cpu::FastKernel> k = kernels::cpu::make_fast_kernel(m.graph.nodes[0], m.graph, 17);
  ASSERT_NE(k, nullptr);
  EXPECT_EQ(k->name(), "MatMul");
  EXPECT_FALSE(k->implementation().empty());
  EXPECT_EQ(fast_nodes(m), 1u);
}

}  // namespace
}  // namespace kiln
