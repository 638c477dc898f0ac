// The normalization and GELU fusions (layer_norm_fusion, gelu_fusion, bias_gelu_fusion,
// skip_layer_norm_fusion): each test builds a small graph the way exporters write it, runs the pass on a
// copy, checks the op counts changed as claimed, and that the outputs did not (against the unfused graph
// on random inputs, within 1e-4). Cases that must not match check the reason reported. End to end: the
// bundled torch export of bert-tiny and kiln's own exports of bert-tiny and vit-tiny, and ONNX Runtime
// running the fused bert-tiny.
#include <gtest/gtest.h>

#include <functional>

#include "export/exporter.h"
#include "export/graph_builder.h"
#include "io/npy.h"
#include "ort_peer.h"
#include "pass_test_util.h"
#include "passes/optimizer.h"
#include "passes/passes.h"
#include "runtime/session.h"
#include "test_util.h"

namespace kiln {
namespace {

using exporter::float_attr;
using exporter::GraphBuilder;
using exporter::int_attr;
using exporter::ints_attr;
using exporter::Scope;
using exporter::tensor_value;

constexpr double kTol = 1e-4;
constexpr int64_t kHidden = 8;

using testing::expect_same_outputs;
using testing::Feeds;
using testing::find_op;
using testing::Fused;
using testing::new_ir_model;

std::vector<ir::Dim> bsh() { return {ir::Dim::symbolic("batch"), ir::Dim::symbolic("seq"), ir::Dim(kHidden)}; }

ir::Tensor random_vector(int64_t n, uint64_t seed, float lo = -1, float hi = 1) {
  ir::Tensor t(ir::DType::kFloat32, {n});
  uint64_t s = seed * 6364136223846793005ull + 1442695040888963407ull;
  for (int64_t i = 0; i < n; ++i) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    t.data<float>()[i] = lo + (hi - lo) * static_cast<float>((s >> 33) % 100000) / 100000.0f;
  }
  return t;
}

// Random inputs: batch 2, seq 5, seeds from 7.
Feeds random_feeds(const ir::Model& m) { return testing::random_feeds(m, {{"batch", 2}, {"seq", 5}}, 7); }

// Runs the passes in order on a copy of `m`, checking and sorting the graph after each as the optimizer
// does, then drops dead code (the Constants the fused nodes no longer read).
Fused run_passes(const ir::Model& m, const std::vector<passes::PassFn>& fns) {
  Fused f = testing::run_passes(m, fns);
  testing::drop_dead_code(f.model);
  return f;
}

// Fuses with one pass and checks the outputs against the unfused graph.
Fused fuse_and_compare(const ir::Model& m, std::vector<passes::PassFn> fns) {
  Fused f = run_passes(m, fns);
  expect_same_outputs(m, f.model, random_feeds(m), kTol);
  return f;
}

// ---------------------------------------------------------------------------------------------------
// LayerNormFusion

struct LayerNormSpec {
  int64_t opset = 14;
  bool pow = true;             // Pow(d, 2), else Mul(d, d)
  bool reciprocal = false;     // Mul(d, Reciprocal(s)), else Div(d, s)
  bool recompute_sub = false;  // a second Sub(x, mean) for the division
  bool casts = false;          // Cast(to float) around the variance
  bool gamma = true, beta = true;
  bool swap = false;        // constant operands first
  int64_t mean_axis = -1;   // of the first ReduceMean
  bool eps_input = false;   // epsilon as a graph input
  bool other_mean = false;  // Sub(x, ReduceMean(y))
  bool leak = false;        // the variance also a graph output
};

std::string reduce_mean(GraphBuilder& b, int64_t opset, const std::string& x, int64_t axis) {
  if (opset >= 18) return b.add("ReduceMean", {x, b.constant_ints({axis})});
  return b.add("ReduceMean", {x}, {ints_attr("axes", {axis})});
}

ir::Model layer_norm_graph(const LayerNormSpec& s) {
  ir::Model m = new_ir_model(s.opset);
  GraphBuilder b(m.graph);
  Scope scope(b, "/encoder/LayerNorm");
  m.graph.inputs.push_back(tensor_value("x", ir::DType::kFloat32, bsh()));
  if (s.other_mean) m.graph.inputs.push_back(tensor_value("y", ir::DType::kFloat32, bsh()));
  if (s.eps_input) m.graph.inputs.push_back(tensor_value("eps", ir::DType::kFloat32, {}));
  auto bin = [&](const std::string& op, const std::string& a, const std::string& c) {
    return s.swap ? b.add(op, {c, a}) : b.add(op, {a, c});
  };
  std::string mean = reduce_mean(b, s.opset, s.other_mean ? "y" : "x", s.mean_axis);
  std::string d = b.add("Sub", {"x", mean});
  std::string dv = s.casts ? b.add("Cast", {d}, {int_attr("to", 1)}) : d;
  std::string sq = s.pow ? b.add("Pow", {dv, b.constant_float(2.0f)}) : b.add("Mul", {dv, dv});
  std::string var = reduce_mean(b, s.opset, sq, -1);
  std::string eps = s.eps_input ? "eps" : b.constant_float(1e-5f);
  std::string ve = bin("Add", var, eps);
  std::string sd = b.add("Sqrt", {ve});
  if (s.casts) sd = b.add("Cast", {sd}, {int_attr("to", 1)});
  std::string num = s.recompute_sub ? b.add("Sub", {"x", mean}) : d;
  std::string n = s.reciprocal ? bin("Mul", num, b.add("Reciprocal", {sd})) : b.add("Div", {num, sd});
  if (s.gamma) n = bin("Mul", n, b.initializer("gamma", random_vector(kHidden, 1, 0.5f, 1.5f)));
  if (s.beta) n = bin("Add", n, b.initializer("beta", random_vector(kHidden, 2)));
  b.add_named("Identity", {n}, "out");
  m.graph.outputs.push_back(tensor_value("out", ir::DType::kFloat32, bsh()));
  if (s.leak) {
    b.add_named("Identity", {var}, "variance");
    m.graph.outputs.push_back(tensor_value("variance", ir::DType::kFloat32,
                                           {ir::Dim::symbolic("batch"), ir::Dim::symbolic("seq"), ir::Dim(1)}));
  }
  return m;
}

void expect_fused_layer_norm(const LayerNormSpec& s, const std::string& label) {
  SCOPED_TRACE(label);
  ir::Model m = layer_norm_graph(s);
  Fused f = fuse_and_compare(m, {passes::fuse_layer_norm});
  EXPECT_EQ(f.changed("LayerNormalization"), 1) << f.rejections();
  EXPECT_EQ(f.ops("LayerNormalization"), 1);
  for (const char* op : {"ReduceMean", "Sub", "Pow", "Sqrt", "Div", "Reciprocal", "Cast", "Mul", "Add"})
    EXPECT_EQ(f.ops(op), 0) << op;
  EXPECT_EQ(f.ops("Identity"), 1);
  EXPECT_TRUE(f.report.rejections.empty()) << f.rejections();
}

TEST(LayerNormFusion, TorchForm) {
  expect_fused_layer_norm({}, "torch: Pow, Div, Sub reused, axes attribute");
  LayerNormSpec swapped;
  swapped.swap = true;
  expect_fused_layer_norm(swapped, "constants first");
}

TEST(LayerNormFusion, ReciprocalSquareByMulRecomputedSubAxesInput) {
  LayerNormSpec s;
  s.opset = 18;
  s.pow = false;
  s.reciprocal = true;
  s.recompute_sub = true;
  expect_fused_layer_norm(s, "opset 18, Mul(d,d), Reciprocal, recomputed Sub");
  s.swap = true;
  s.opset = 13;
  expect_fused_layer_norm(s, "opset 13, swapped");
}

TEST(LayerNormFusion, CastsAroundTheVariance) {
  LayerNormSpec s;
  s.casts = true;
  expect_fused_layer_norm(s, "Cast to float around the variance");
  s.recompute_sub = true;
  s.opset = 18;
  expect_fused_layer_norm(s, "Casts, recomputed Sub, opset 18");
}

TEST(LayerNormFusion, MissingGammaOrBetaBecomesOnesOrZeros) {
  for (bool gamma : {false, true}) {
    LayerNormSpec s;
    s.gamma = gamma;
    s.beta = !gamma;
    expect_fused_layer_norm(s, gamma ? "no beta" : "no gamma");
    Fused f = run_passes(layer_norm_graph(s), {passes::fuse_layer_norm});
    ASSERT_EQ(f.model.graph.nodes.size(), 2u);
    const ir::Node& ln = f.model.graph.nodes[0];
    ASSERT_EQ(ln.op_type, "LayerNormalization");
    ASSERT_EQ(ln.inputs.size(), 3u);
    const ir::Tensor* made = f.model.graph.find_initializer(ln.inputs[gamma ? 2 : 1]);
    ASSERT_NE(made, nullptr);
    EXPECT_EQ(made->shape(), std::vector<int64_t>{kHidden});
    EXPECT_EQ(made->data<float>()[3], gamma ? 0.0f : 1.0f);
  }
  LayerNormSpec neither;
  neither.gamma = neither.beta = false;
  expect_fused_layer_norm(neither, "neither");
}

void expect_rejected_layer_norm(const LayerNormSpec& s, const std::string& reason) {
  SCOPED_TRACE(reason);
  ir::Model m = layer_norm_graph(s);
  Fused f = fuse_and_compare(m, {passes::fuse_layer_norm});
  EXPECT_EQ(f.changed("LayerNormalization"), 0);
  EXPECT_EQ(f.ops("LayerNormalization"), 0);
  EXPECT_EQ(f.ops("ReduceMean"), 2);
  EXPECT_EQ(f.ops("Sqrt"), 1);
  ASSERT_EQ(f.report.rejections.size(), 1u) << f.rejections();
  EXPECT_EQ(f.report.rejections[0].pattern, "LayerNorm");
  EXPECT_NE(f.report.rejections[0].reason.find(reason), std::string::npos) << f.rejections();
}

TEST(LayerNormFusion, RejectsWithReasons) {
  LayerNormSpec axis;
  axis.mean_axis = 1;
  expect_rejected_layer_norm(axis, "reduces over axes [1], not the last axis");
  axis.opset = 18;
  expect_rejected_layer_norm(axis, "reduces over axes [1], not the last axis");
  LayerNormSpec eps;
  eps.eps_input = true;
  expect_rejected_layer_norm(eps, "epsilon (\"eps\") is not a constant");
  LayerNormSpec other;
  other.other_mean = true;
  expect_rejected_layer_norm(other, "the Sub subtracts the mean of a different tensor");
  LayerNormSpec leak;
  leak.leak = true;
  expect_rejected_layer_norm(leak, "is also read outside the pattern");
}

// ---------------------------------------------------------------------------------------------------
// GeluFusion

enum class Half { kFirst, kLast, kOnSum };

struct GeluSpec {
  bool tanh = false;
  bool mul_form = false;  // erf: x * 0.70710678, else x / 1.4142135; tanh: x*x*x, else Pow(x, 3)
  Half half = Half::kLast;
  bool swap = false;
  float divisor = 1.4142135f;
  float inner = 0.7978845608f;
  bool leak = false;  // Erf/Tanh output also a graph output
};

ir::Model gelu_graph(const GeluSpec& s) {
  ir::Model m = new_ir_model(14);
  GraphBuilder b(m.graph);
  Scope scope(b, "/ffn/act");
  m.graph.inputs.push_back(tensor_value("x", ir::DType::kFloat32, bsh()));
  auto bin = [&](const std::string& op, const std::string& a, const std::string& c) {
    return s.swap ? b.add(op, {c, a}) : b.add(op, {a, c});
  };
  std::string f;
  if (!s.tanh) {
    std::string arg =
        s.mul_form ? bin("Mul", "x", b.constant_float(0.70710678f)) : b.add("Div", {"x", b.constant_float(s.divisor)});
    f = b.add("Erf", {arg});
  } else {
    std::string cube =
        s.mul_form ? bin("Mul", b.add("Mul", {"x", "x"}), "x") : b.add("Pow", {"x", b.constant_float(3)});
    std::string inner = bin("Add", "x", bin("Mul", cube, b.constant_float(0.044715f)));
    f = b.add("Tanh", {bin("Mul", inner, b.constant_float(s.inner))});
  }
  std::string a = bin("Add", f, b.constant_float(1.0f));
  std::string y;
  switch (s.half) {
    case Half::kFirst:
      y = bin("Mul", a, bin("Mul", "x", b.constant_float(0.5f)));
      break;
    case Half::kLast:
      y = bin("Mul", bin("Mul", "x", a), b.constant_float(0.5f));
      break;
    case Half::kOnSum:
      y = bin("Mul", "x", bin("Mul", a, b.constant_float(0.5f)));
      break;
  }
  b.add_named("Identity", {y}, "y");
  m.graph.outputs.push_back(tensor_value("y", ir::DType::kFloat32, bsh()));
  if (s.leak) {
    b.add_named("Identity", {f}, "f");
    m.graph.outputs.push_back(tensor_value("f", ir::DType::kFloat32, bsh()));
  }
  return m;
}

TEST(GeluFusion, EveryErfAndTanhVariant) {
  for (bool tanh : {false, true})
    for (bool mul_form : {false, true})
      for (Half half : {Half::kFirst, Half::kLast, Half::kOnSum})
        for (bool swap : {false, true}) {
          GeluSpec s;
          s.tanh = tanh;
          s.mul_form = mul_form;
          s.half = half;
          s.swap = swap;
          SCOPED_TRACE(std::string(tanh ? "tanh" : "erf") + (mul_form ? " mul form" : "") + " half " +
                       std::to_string(static_cast<int>(half)) + (swap ? " swapped" : ""));
          Fused f = fuse_and_compare(gelu_graph(s), {passes::fuse_gelu});
          const char* op = tanh ? "FastGelu" : "Gelu";
          EXPECT_EQ(f.changed(op), 1) << f.rejections();
          EXPECT_EQ(f.ops(std::string("com.microsoft.") + op), 1);
          EXPECT_EQ(f.model.graph.nodes.size(), 2u);  // the fused op and the Identity
          EXPECT_EQ(f.model.opset("com.microsoft"), 1);
          EXPECT_TRUE(f.report.rejections.empty()) << f.rejections();
        }
}

TEST(GeluFusion, RejectsWithReasons) {
  struct Case {
    GeluSpec spec;
    const char* op;
    const char* reason;
  };
  GeluSpec divisor;
  divisor.divisor = 1.5f;
  GeluSpec coefficient;
  coefficient.tanh = true;
  coefficient.inner = 0.8f;
  GeluSpec leak;
  leak.leak = true;
  GeluSpec tanh_leak;
  tanh_leak.tanh = tanh_leak.leak = true;
  for (const Case& c :
       {Case{divisor, "Erf", "not x / sqrt(2)"}, Case{coefficient, "Tanh", "not sqrt(2/pi)"},
        Case{leak, "Erf", "also read outside the pattern"}, Case{tanh_leak, "Tanh", "also read outside the pattern"}}) {
    SCOPED_TRACE(c.reason);
    ir::Model m = gelu_graph(c.spec);
    Fused f = fuse_and_compare(m, {passes::fuse_gelu});
    EXPECT_EQ(f.ops("com.microsoft.Gelu") + f.ops("com.microsoft.FastGelu"), 0);
    EXPECT_EQ(f.ops(c.op), 1);
    ASSERT_EQ(f.report.rejections.size(), 1u) << f.rejections();
    EXPECT_NE(f.report.rejections[0].reason.find(c.reason), std::string::npos) << f.rejections();
  }
}

// ---------------------------------------------------------------------------------------------------
// BiasGeluFusion

// y = gelu(Add(x, bias)), the Gelu written as com.microsoft `op`.
ir::Model bias_gelu_graph(const std::string& op, bool bias_first, bool sum_read_elsewhere = false,
                          ir::Tensor bias = random_vector(kHidden, 3)) {
  ir::Model m = new_ir_model(14);
  m.opset_imports["com.microsoft"] = 1;
  GraphBuilder b(m.graph);
  m.graph.inputs.push_back(tensor_value("x", ir::DType::kFloat32, bsh()));
  std::string bn = b.initializer("bias", std::move(bias));
  std::string sum = bias_first ? b.add("Add", {bn, "x"}) : b.add("Add", {"x", bn});
  ir::Node gelu;
  gelu.name = "/ffn/act/" + op;
  gelu.op_type = op;
  gelu.domain = "com.microsoft";
  gelu.inputs = {sum};
  gelu.outputs = {"y"};
  m.graph.nodes.push_back(gelu);
  m.graph.outputs.push_back(tensor_value("y", ir::DType::kFloat32, bsh()));
  if (sum_read_elsewhere) {
    b.add_named("Relu", {sum}, "r");
    m.graph.outputs.push_back(tensor_value("r", ir::DType::kFloat32, bsh()));
  }
  return m;
}

TEST(BiasGeluFusion, GeluAndFastGeluTakeTheBias) {
  for (bool bias_first : {false, true}) {
    SCOPED_TRACE(bias_first ? "Add(bias, x)" : "Add(x, bias)");
    Fused g = fuse_and_compare(bias_gelu_graph("Gelu", bias_first), {passes::fuse_bias_gelu});
    EXPECT_EQ(g.changed("BiasGelu"), 1) << g.rejections();
    EXPECT_EQ(g.ops("com.microsoft.BiasGelu"), 1);
    EXPECT_EQ(g.ops("com.microsoft.Gelu"), 0);
    EXPECT_EQ(g.ops("Add"), 0);
    ASSERT_EQ(g.model.graph.nodes.size(), 1u);
    EXPECT_EQ(g.model.graph.nodes[0].inputs, (std::vector<std::string>{"x", "bias"}));

    Fused f = fuse_and_compare(bias_gelu_graph("FastGelu", bias_first), {passes::fuse_bias_gelu});
    EXPECT_EQ(f.changed("FastGelu bias"), 1) << f.rejections();
    EXPECT_EQ(f.ops("com.microsoft.FastGelu"), 1);
    EXPECT_EQ(f.ops("Add"), 0);
    ASSERT_EQ(f.model.graph.nodes.size(), 1u);
    EXPECT_EQ(f.model.graph.nodes[0].inputs, (std::vector<std::string>{"x", "bias"}));
  }
}

TEST(BiasGeluFusion, AfterGeluFusion) {
  // Add(bias, MatMul) -> the erf GELU: the two passes in order leave one BiasGelu.
  GeluSpec s;
  ir::Model m = gelu_graph(s);
  // Put a bias Add in front of x.
  GraphBuilder b(m.graph);
  std::string bias = b.initializer("bias", random_vector(kHidden, 4));
  for (auto& n : m.graph.nodes)
    for (auto& in : n.inputs)
      if (in == "x") in = "x_biased";
  ir::Node add;
  add.name = "/ffn/dense/Add";
  add.op_type = "Add";
  add.inputs = {bias, "x"};
  add.outputs = {"x_biased"};
  m.graph.nodes.insert(m.graph.nodes.begin(), add);
  Fused f = fuse_and_compare(m, {passes::fuse_gelu, passes::fuse_bias_gelu});
  EXPECT_EQ(f.changed("Gelu"), 1);
  EXPECT_EQ(f.changed("BiasGelu"), 1);
  EXPECT_EQ(f.ops("com.microsoft.BiasGelu"), 1);
  EXPECT_EQ(f.model.graph.nodes.size(), 2u);
}

TEST(BiasGeluFusion, RejectsWithReasons) {
  struct Case {
    ir::Model m;
    const char* reason;
  };
  std::vector<Case> cases;
  cases.push_back({bias_gelu_graph("Gelu", false, true), "the sum is also read elsewhere"});
  cases.push_back({bias_gelu_graph("FastGelu", true, true), "the sum is also read elsewhere"});
  cases.push_back({bias_gelu_graph("Gelu", false, false, random_vector(1, 5)), "not a 1-D vector over the last dim"});
  {
    ir::Model m = bias_gelu_graph("Gelu", false);
    m.graph.inputs.push_back(tensor_value("bias", ir::DType::kFloat32, {ir::Dim(kHidden)}));
    m.graph.initializers.clear();
    m.graph.initializer_names.clear();
    cases.push_back({m, "neither operand of the Add is a constant bias"});
  }
  for (const Case& c : cases) {
    SCOPED_TRACE(c.reason);
    Fused f = fuse_and_compare(c.m, {passes::fuse_bias_gelu});
    EXPECT_EQ(f.ops("com.microsoft.BiasGelu"), 0);
    EXPECT_EQ(f.ops("Add"), 1);
    ASSERT_EQ(f.report.rejections.size(), 1u) << f.rejections();
    EXPECT_NE(f.report.rejections[0].reason.find(c.reason), std::string::npos) << f.rejections();
  }
}

// ---------------------------------------------------------------------------------------------------
// SkipLayerNormFusion

struct SkipSpec {
  bool matmul_bias = false;  // a = Add(bias, MatMul(x, W))
  bool sum_read_elsewhere = false;
  bool skip_broadcast = false;  // b is [1, seq, H]
  bool beta = true;
};

ir::Model skip_graph(const SkipSpec& s) {
  ir::Model m = new_ir_model(17);
  GraphBuilder b(m.graph);
  Scope scope(b, "/layer/output");
  m.graph.inputs.push_back(tensor_value("a", ir::DType::kFloat32, bsh()));
  std::vector<ir::Dim> skip_dims = bsh();
  if (s.skip_broadcast) skip_dims[0] = ir::Dim(1);
  m.graph.inputs.push_back(tensor_value("b", ir::DType::kFloat32, skip_dims));
  std::string a = "a";
  if (s.matmul_bias) {
    ir::Tensor w(ir::DType::kFloat32, {kHidden, kHidden});
    for (int64_t i = 0; i < w.numel(); ++i) w.data<float>()[i] = std::sin(static_cast<float>(i)) * 0.3f;
    std::string mm = b.add("MatMul", {"a", b.initializer("W", w)});
    a = b.add("Add", {b.initializer("bias", random_vector(kHidden, 6)), mm});
  }
  std::string sum = b.add("Add", {a, "b"});
  std::vector<std::string> ln_in = {sum, b.initializer("gamma", random_vector(kHidden, 7, 0.5f, 1.5f))};
  if (s.beta) ln_in.push_back(b.initializer("beta", random_vector(kHidden, 8)));
  b.add_named("LayerNormalization", ln_in, "y", {int_attr("axis", -1), float_attr("epsilon", 1e-5f)});
  m.graph.outputs.push_back(tensor_value("y", ir::DType::kFloat32, bsh()));
  if (s.sum_read_elsewhere) {
    b.add_named("Add", {sum, "b"}, "next");  // the next residual Add
    m.graph.outputs.push_back(tensor_value("next", ir::DType::kFloat32, bsh()));
  }
  return m;
}

TEST(SkipLayerNormFusion, ResidualAddAndMatMulBias) {
  for (bool bias : {false, true})
    for (bool beta : {true, false}) {
      SkipSpec s;
      s.matmul_bias = bias;
      s.beta = beta;
      SCOPED_TRACE(std::string(bias ? "MatMul bias" : "plain") + (beta ? "" : ", no beta"));
      Fused f = fuse_and_compare(skip_graph(s), {passes::fuse_skip_layer_norm});
      EXPECT_EQ(f.changed("SkipLayerNormalization"), 1) << f.rejections();
      EXPECT_EQ(f.ops("com.microsoft.SkipLayerNormalization"), 1);
      EXPECT_EQ(f.ops("LayerNormalization"), 0);
      EXPECT_EQ(f.ops("Add"), 0);
      EXPECT_EQ(f.ops("MatMul"), bias ? 1 : 0);
      const ir::Node* n = find_op(f.model, "SkipLayerNormalization");
      ASSERT_NE(n, nullptr);
      EXPECT_EQ(n->inputs.size(), bias ? 5u : beta ? 4u : 3u);
      if (bias) {
        EXPECT_EQ(n->inputs[4], "bias");
      }
      EXPECT_EQ(n->outputs, std::vector<std::string>{"y"});
      EXPECT_EQ(f.changed("SkipLayerNormalization bias folded"), bias ? 1 : 0);
    }
}

TEST(SkipLayerNormFusion, SumReadElsewhereComesFromTheFourthOutput) {
  for (bool bias : {false, true}) {
    SkipSpec s;
    s.matmul_bias = bias;
    s.sum_read_elsewhere = true;
    SCOPED_TRACE(bias ? "MatMul bias" : "plain");
    ir::Model m = skip_graph(s);
    Fused f = fuse_and_compare(m, {passes::fuse_skip_layer_norm});
    EXPECT_EQ(f.ops("com.microsoft.SkipLayerNormalization"), 1) << f.rejections();
    EXPECT_EQ(f.ops("Add"), 1);  // the next residual Add
    EXPECT_EQ(f.changed("SkipLayerNormalization sum output kept"), 1);
    const ir::Node* n = find_op(f.model, "SkipLayerNormalization");
    ASSERT_NE(n, nullptr);
    ASSERT_EQ(n->outputs.size(), 4u);
    EXPECT_EQ(n->outputs[1], "");
    EXPECT_EQ(n->outputs[2], "");
    EXPECT_EQ(find_op(f.model, "Add")->inputs[0], n->outputs[3]);
  }
}

TEST(SkipLayerNormFusion, RejectsAddsOfDifferentShapes) {
  SkipSpec s;
  s.skip_broadcast = true;  // the embeddings' [B,S,H] + [1,S,H]
  Fused f = fuse_and_compare(skip_graph(s), {passes::fuse_skip_layer_norm});
  EXPECT_EQ(f.ops("com.microsoft.SkipLayerNormalization"), 0);
  EXPECT_EQ(f.ops("LayerNormalization"), 1);
  ASSERT_EQ(f.report.rejections.size(), 1u) << f.rejections();
  EXPECT_NE(f.report.rejections[0].reason.find("operands have different shapes"), std::string::npos) << f.rejections();
}

// ---------------------------------------------------------------------------------------------------
// End to end: all four in the pipeline's order.

const std::vector<passes::PassFn> kAllFour = {passes::fuse_layer_norm, passes::fuse_gelu, passes::fuse_bias_gelu,
                                              passes::fuse_skip_layer_norm};

// The model after the basic passes, as the fusions see it in the pipeline.
ir::Model basic_optimized(ir::Model m) {
  passes::OptimizeOptions o;
  o.level = passes::Level::kBasic;
  passes::optimize(m, o);
  return m;
}

Feeds bert_feeds() {
  Feeds feeds;
  for (const char* name : {"input_ids", "attention_mask", "token_type_ids"})
    feeds[name] = io::read_npy(testing::source_path(std::string("tests/data/bert-tiny/inputs/") + name + ".npy"));
  return feeds;
}

ir::Model load_unoptimized(const std::string& path) {
  runtime::SessionOptions o;
  o.optimization = passes::Level::kNone;
  o.fast_kernels = false;
  return runtime::Session::load(path, o).model();
}

struct Counts {
  int64_t layer_norm, gelu, bias_gelu, skip;
};

void expect_counts(const Fused& f, const Counts& c) {
  EXPECT_EQ(f.changed("LayerNormalization"), c.layer_norm) << f.rejections();
  EXPECT_EQ(f.changed("Gelu"), c.gelu) << f.rejections();
  EXPECT_EQ(f.changed("BiasGelu"), c.bias_gelu) << f.rejections();
  EXPECT_EQ(f.changed("SkipLayerNormalization"), c.skip) << f.rejections();
  EXPECT_EQ(f.ops("com.microsoft.BiasGelu"), c.bias_gelu);
  EXPECT_EQ(f.ops("com.microsoft.Gelu"), c.gelu - c.bias_gelu);
  EXPECT_EQ(f.ops("com.microsoft.SkipLayerNormalization"), c.skip);
  EXPECT_EQ(f.ops("LayerNormalization"), c.layer_norm - c.skip);
  EXPECT_EQ(f.ops("Erf"), 0);
  EXPECT_EQ(f.ops("Sqrt"), 0);
}

TEST(NormGeluFusionEndToEnd, TorchBertTiny) {
  ir::Model m = basic_optimized(load_unoptimized(testing::source_path("tests/data/bert-tiny/model.onnx")));
  Fused f = run_passes(m, kAllFour);
  expect_counts(f, {5, 2, 2, 4});
  // The one left alone: the embeddings' LayerNorm, for the EmbedLayerNormalization fusion.
  EXPECT_NE(f.rejections().find("operands have different shapes"), std::string::npos) << f.rejections();
  expect_same_outputs(m, f.model, bert_feeds(), kTol);
}

TEST(NormGeluFusionEndToEnd, KilnExportedBertTiny) {
  exporter::ExportResult r = exporter::export_model(exporter::preset_config("bert-tiny"), *exporter::random_weights(1));
  ir::Model m = basic_optimized(r.model);
  Fused f = run_passes(m, kAllFour);
  expect_counts(f, {5, 2, 2, 4});
  expect_same_outputs(m, f.model, random_feeds(m), kTol);
}

TEST(NormGeluFusionEndToEnd, KilnExportedVitTinyPreNorm) {
  if (testing::kSanitizeBuild) GTEST_SKIP() << "12 layers: runs in the release build";
  exporter::ExportResult r = exporter::export_model(exporter::preset_config("vit-tiny"), *exporter::random_weights(1));
  ir::Model m = basic_optimized(r.model);
  Fused f = run_passes(m, kAllFour);
  // Pre-norm: every residual sum feeds the next LayerNorm and the next residual Add, so the fused nodes
  // write it as input_skip_bias_sum. The first LayerNorm reads the embeddings (no Add in front).
  expect_counts(f, {25, 12, 12, 24});
  EXPECT_EQ(f.changed("SkipLayerNormalization sum output kept"), 23);
  expect_same_outputs(m, f.model, random_feeds(m), kTol);
}

TEST(NormGeluFusionEndToEnd, OrtRunsTheFusedBertTiny) {
  std::string why;
  ASSERT_TRUE(testing::ort_available(&why)) << why;
  ir::Model m = basic_optimized(load_unoptimized(testing::source_path("tests/data/bert-tiny/model.onnx")));
  Fused f = run_passes(m, kAllFour);
  ASSERT_EQ(f.ops("com.microsoft.SkipLayerNormalization"), 4);
  Feeds feeds = bert_feeds();
  testing::expect_ort_matches(f.model, feeds, testing::run_unoptimized(m, feeds), kTol);
}

}  // namespace
}  // namespace kiln
