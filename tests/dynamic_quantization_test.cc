// int8 dynamic quantization (passes/dynamic_quantization.cc) and kiln's reading of it: the rewrite into
// ONNX Runtime's quantize_dynamic format (structure, numbers near float32, and ORT running the result
// to the same numbers), then the fusion of each product into com.microsoft.DynamicQuantizeMatMul
// (passes/dynamic_quantize_matmul_fusion.cc), whose fast kernel must give what the unfused subgraph gives.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "common/error.h"
#include "io/npy.h"
#include "onnx/model_io.h"
#include "analysis/model_preparation.h"
#include "contrib_test_util.h"
#include "pass_test_util.h"
#include "passes/dynamic_quantization.h"
#include "passes/passes.h"
#include "runtime/session.h"

namespace kiln {
namespace {

using testing::contrib::attr_int;
using testing::contrib::Random;
using testing::contrib::TestGraph;

// x [2, 5, 48] -> MatMul W1 [48, 40] + b1 -> Relu -> h; x -> MatMul W2 [48, 40] -> y2 (same A as W1);
// h [10, 40] (Reshape) -> Gemm W3^T [24, 40] (transB) + C [24], alpha 0.5, beta 2 -> y3. Two outputs.
TestGraph int8_test_model(uint32_t seed) {
  Random rng(seed);
  TestGraph g(17);
  g.input("x", rng.floats({2, 5, 48}));
  g.node("MatMul", {"x", g.constant("W1", rng.floats({48, 40}, -0.2f, 0.2f))}, {"m1"});
  g.node("Add", {"m1", g.constant("b1", rng.floats({40}))}, {"a1"});
  g.node("Relu", {"a1"}, {"h"});
  g.node("MatMul", {"x", g.constant("W2", rng.floats({48, 40}, -0.3f, 0.3f))}, {"y2"});
  g.node("Reshape", {"h", g.constant("shape", ir::Tensor::from_vector<int64_t>({10, 40}, {2}))}, {"h2"});
  ir::Attribute alpha;
  alpha.name = "alpha";
  alpha.kind = ir::Attribute::Kind::kFloat;
  alpha.f = 0.5f;
  ir::Attribute beta = alpha;
  beta.name = "beta";
  beta.f = 2.0f;
  g.node("Gemm", {"h2", g.constant("W3", rng.floats({24, 40}, -0.2f, 0.2f)), g.constant("C", rng.floats({24}))},
         {"y3"}, {attr_int("transB", 1), alpha, beta});
  g.output("y2");
  g.output("y3");
  return g;
}

ir::Model quantized_copy(const TestGraph& g, const passes::DynamicQuantizeOptions& options = {},
                    passes::DynamicQuantizeReport* report = nullptr) {
  ir::Model m = g.model();
  passes::DynamicQuantizeReport r = passes::quantize_dynamic(m, options);
  if (report) *report = r;
  return m;
}

double output_cosine(const ir::Tensor& a, const ir::Tensor& b) {
  double ab = 0, aa = 0, bb = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    ab += double(a.data<float>()[i]) * b.data<float>()[i];
    aa += double(a.data<float>()[i]) * a.data<float>()[i];
    bb += double(b.data<float>()[i]) * b.data<float>()[i];
  }
  return ab / std::sqrt(aa * bb);
}

TEST(DynamicQuantization, WritesOnnxRuntimesFormatForEveryProductWithConstantWeights) {
  const TestGraph g = int8_test_model(1);
  passes::DynamicQuantizeReport report;
  const ir::Model q = quantized_copy(g, {}, &report);
  EXPECT_EQ(report.quantized.size(), 3u);
  EXPECT_TRUE(report.skipped.empty());
  EXPECT_EQ(testing::count_ops(q, "MatMul"), 0);
  EXPECT_EQ(testing::count_ops(q, "Gemm"), 0);
  EXPECT_EQ(testing::count_ops(q, "MatMulInteger"), 3);
  // x is quantized once for both of its products; h2 once.
  EXPECT_EQ(testing::count_ops(q, "DynamicQuantizeLinear"), 2);
  // The float weights are gone; int8 ones with a scalar scale and zero point took their place.
  EXPECT_EQ(q.graph.find_initializer("W1"), nullptr);
  int int8_weights = 0;
  for (const auto& [name, t] : q.graph.initializers)
    if (t.dtype() == ir::DType::kInt8 && t.rank() == 2) ++int8_weights;
  EXPECT_EQ(int8_weights, 3);
  EXPECT_EQ(report.float_weight_bytes, (48 * 40 * 2 + 24 * 40) * 4);
  bool tagged = false;
  for (const auto& [k, v] : q.metadata_props) tagged |= k == "kiln.quantization" && v == "int8-dynamic";
  EXPECT_TRUE(tagged);
}

TEST(DynamicQuantization, StaysNearFloat32AndOnnxRuntimeRunsItToTheSameNumbers) {
  for (bool per_channel : {false, true}) {
    SCOPED_TRACE(per_channel ? "per column" : "per tensor");
    const TestGraph g = int8_test_model(2);
    passes::DynamicQuantizeOptions options;
    options.per_channel = per_channel;
    const ir::Model q = quantized_copy(g, options);
    const std::vector<ir::Datum> want = testing::run_unoptimized(g.model(), g.feeds());
    const std::vector<ir::Datum> got = testing::run_unoptimized(q, g.feeds(), true);
    ASSERT_EQ(got.size(), 2u);
    for (size_t i = 0; i < got.size(); ++i) {
      EXPECT_GT(output_cosine(got[i].tensor, want[i].tensor), 0.999);
      EXPECT_LT(testing::max_abs_diff(got[i].tensor, want[i].tensor), 0.05);
      EXPECT_GT(testing::max_abs_diff(got[i].tensor, want[i].tensor), 0.0);  // it did quantize
    }
    testing::expect_ort_matches(q, g.feeds(), got, 1e-5, "quantized model");
  }
}

TEST(DynamicQuantization, LeavesExcludedNodesAndOtherProductsInFloat) {
  const TestGraph g = int8_test_model(3);
  passes::DynamicQuantizeOptions options;
  options.exclude = {"Gemm", "MatMul_3"};  // an op type, and a node's name (the second MatMul)
  passes::DynamicQuantizeReport report;
  const ir::Model q = quantized_copy(g, options, &report);
  EXPECT_EQ(report.quantized.size(), 1u);
  ASSERT_EQ(report.skipped.size(), 2u);
  EXPECT_EQ(report.skipped[0].reason, "excluded (--exclude)");
  EXPECT_EQ(testing::count_ops(q, "MatMulInteger"), 1);
  EXPECT_EQ(testing::count_ops(q, "Gemm"), 1);

  // A product of two activations is no candidate.
  Random rng(4);
  TestGraph h(17);
  h.input("a", rng.floats({3, 4}));
  h.input("b", rng.floats({4, 5}));
  h.node("MatMul", {"a", "b"}, {"y"});
  h.output("y");
  ir::Model m = h.model();
  report = passes::quantize_dynamic(m, {});
  EXPECT_TRUE(report.quantized.empty());
  ASSERT_EQ(report.skipped.size(), 1u);
  EXPECT_EQ(report.skipped[0].reason, "B is not a 2-D float32 constant");
}

TEST(DynamicQuantization, SharedWeightsAreQuantizedOnceAndNonFiniteOnesNotAtAll) {
  Random rng(12);
  TestGraph g(17);
  g.input("x", rng.floats({3, 16}));
  g.input("z", rng.floats({3, 16}));
  g.constant("W", rng.floats({16, 8}));
  g.node("MatMul", {"x", "W"}, {"y1"});
  g.node("MatMul", {"z", "W"}, {"y2"});
  ir::Tensor bad = rng.floats({16, 8});
  bad.data<float>()[5] = std::numeric_limits<float>::infinity();
  g.node("MatMul", {"x", g.constant("Bad", bad)}, {"y3"});
  for (const char* y : {"y1", "y2", "y3"}) g.output(y);
  ir::Model m = g.model();
  const passes::DynamicQuantizeReport report = passes::quantize_dynamic(m, {});
  EXPECT_EQ(report.quantized.size(), 2u);
  EXPECT_EQ(report.float_weight_bytes, 16 * 8 * 4);  // W once
  EXPECT_EQ(report.int8_weight_bytes, 16 * 8 + 5);
  ASSERT_EQ(report.skipped.size(), 1u);
  EXPECT_EQ(report.skipped[0].reason, "B \"Bad\" holds NaN or infinity");
  int int8_weights = 0;
  for (const auto& [name, t] : m.graph.initializers) int8_weights += t.dtype() == ir::DType::kInt8 && t.rank() == 2;
  EXPECT_EQ(int8_weights, 1);
}

TEST(DynamicQuantization, RefusesOpsetsWithoutDynamicQuantizeLinear) {
  TestGraph g(10);
  Random rng(5);
  g.input("x", rng.floats({2, 4}));
  g.node("MatMul", {"x", g.constant("W", rng.floats({4, 3}))}, {"y"});
  g.output("y");
  ir::Model m = g.model();
  try {
    passes::quantize_dynamic(m, {});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("needs ONNX opset 11 or later (DynamicQuantizeLinear); the model imports opset 10"),
              std::string::npos)
        << e.what();
  }
}

TEST(DynamicQuantizeMatMulFusion, FoldsEachProductAndItsBiasIntoOneOpWithTheSameResults) {
  for (bool per_channel : {false, true}) {
    SCOPED_TRACE(per_channel ? "per column" : "per tensor");
    const TestGraph g = int8_test_model(6);
    passes::DynamicQuantizeOptions options;
    options.per_channel = per_channel;
    const ir::Model q = quantized_copy(g, options);
    passes::OptimizeOptions o;
    o.level = passes::Level::kExtended;
    // The fused model runs the fast kernel; the unfused one the reference kernels, op by op.
    const testing::Optimized fused = testing::optimize_and_compare(q, o, g.feeds(), 1e-4);
    SCOPED_TRACE(fused.text());
    EXPECT_EQ(fused.ops("com.microsoft.DynamicQuantizeMatMul"), 3);
    EXPECT_EQ(fused.ops("MatMulInteger"), 0);
    EXPECT_EQ(fused.ops("DynamicQuantizeLinear"), 0);
    EXPECT_EQ(fused.ops("Cast"), 0);
    // W1's bias Add and the Gemm's C joined their products.
    EXPECT_EQ(fused.ops("Add"), 0);
    const ir::Node* gemm = fused.writer_of("y3");
    ASSERT_NE(gemm, nullptr);
    EXPECT_EQ(gemm->op_type, "DynamicQuantizeMatMul");
    ASSERT_EQ(gemm->inputs.size(), 5u);
    EXPECT_FALSE(gemm->inputs[4].empty());
  }
}

// The reference kernel of com.microsoft.DynamicQuantizeMatMul against the ONNX subgraph it stands for, both
// on the reference kernels alone: the same integers, and the same float32 rounding in the same order.
TEST(DynamicQuantizeMatMulReference, IsTheSubgraphBitForBit) {
  const TestGraph g = int8_test_model(8);
  for (bool per_channel : {false, true}) {
    passes::DynamicQuantizeOptions options;
    options.per_channel = per_channel;
    const ir::Model q = quantized_copy(g, options);
    const testing::Fused fused = testing::run_passes(q, {passes::fuse_dynamic_quantize_matmul});
    ASSERT_EQ(fused.changed("DynamicQuantizeMatMul"), 3);
    runtime::SessionOptions reference;
    reference.optimization = passes::Level::kNone;
    reference.fast_kernels = false;
    reference.verify_inference = true;
    runtime::Session want(q, reference), got(fused.model, reference);
    const std::vector<ir::Datum> a = want.run(g.feeds()), b = got.run(g.feeds());
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(testing::max_abs_diff(a[i].tensor, b[i].tensor), 0.0);
  }
}

// QAttention's reference: its integer projection, scaled, equals Attention's on the dequantized input and
// weights (up to float rounding: the one sums exact integers, the other float products in double).
TEST(QAttentionReference, IsTheQuantizedProjectionThenAttention) {
  for (bool per_column : {false, true}) {
    SCOPED_TRACE(per_column ? "per column" : "per tensor");
    Random rng(11);
    const int64_t batch = 2, seq = 6, in = 12, d = 8;  // 2 heads of 4
    std::vector<uint8_t> xq(batch * seq * in);
    for (size_t i = 0; i < xq.size(); ++i) xq[i] = static_cast<uint8_t>(i * 71 % 256);
    std::vector<int8_t> wq(in * 3 * d);
    for (size_t i = 0; i < wq.size(); ++i) wq[i] = static_cast<int8_t>(static_cast<int>(i * 29 % 255) - 127);
    const float x_scale = 0.02f;
    const uint8_t x_zp = 100;
    std::vector<float> w_scale(per_column ? 3 * d : 1);
    for (size_t i = 0; i < w_scale.size(); ++i) w_scale[i] = 0.003f + 0.0005f * static_cast<float>(i % 5);
    const ir::Tensor bias = rng.floats({3 * d});
    const ir::Tensor mask = ir::Tensor::from_vector<int32_t>({1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1}, {batch, seq});

    TestGraph q(17);
    q.input("x", ir::Tensor::from_vector(xq, {batch, seq, in}));
    q.constant("w", ir::Tensor::from_vector(wq, {in, 3 * d}));
    q.constant("b", bias);
    q.constant("xs", ir::Tensor::from_vector<float>({x_scale}, {}));
    q.constant("ws", ir::Tensor::from_vector(w_scale, per_column ? std::vector<int64_t>{3 * d} : std::vector<int64_t>{}));
    q.input("mask", mask);
    q.constant("xz", ir::Tensor::from_vector<uint8_t>({x_zp}, {}));
    q.contrib("QAttention", {"x", "w", "b", "xs", "ws", "mask", "xz"}, {"y"}, {attr_int("num_heads", 2)});
    q.output("y");

    std::vector<float> xf(xq.size()), wf(wq.size());
    for (size_t i = 0; i < xq.size(); ++i) xf[i] = (static_cast<float>(xq[i]) - x_zp) * x_scale;
    for (size_t i = 0; i < wq.size(); ++i) wf[i] = wq[i] * w_scale[per_column ? i % (3 * d) : 0];
    TestGraph f(17);
    f.input("x", ir::Tensor::from_vector(xf, {batch, seq, in}));
    f.constant("w", ir::Tensor::from_vector(wf, {in, 3 * d}));
    f.constant("b", bias);
    f.input("mask", mask);
    f.contrib("Attention", {"x", "w", "b", "mask"}, {"y"}, {attr_int("num_heads", 2)});
    f.output("y");
    EXPECT_LT(testing::max_abs_diff(q.run()[0], f.run()[0]), 1e-5);
  }
}

// The int8 BERT fixture: its Q, K and V products fused into QAttention (after one DynamicQuantizeLinear
// of their input), the other products into DynamicQuantizeMatMul; outputs near the unfused int8 model's.
TEST(DynamicQuantizeMatMulFusion, TheInt8BertFixtureGetsQAttention) {
  ir::Model m = onnx_io::load_model(KILN_SOURCE_DIR "/tests/data/bert-tiny/model.onnx");
  analysis::prepare_model(m);
  passes::quantize_dynamic(m, {});
  std::unordered_map<std::string, ir::Datum> feeds;
  for (const char* name : {"input_ids", "attention_mask", "token_type_ids"})
    feeds[name] = ir::Datum(io::read_npy(std::string(KILN_SOURCE_DIR "/tests/data/bert-tiny/inputs/") + name + ".npy"));
  passes::OptimizeOptions o;
  o.level = passes::Level::kExtended;
  o.target = passes::Target::kOnnxRuntime;
  // Not closer: a last-bit difference before a quantization can move a value by one step of its scale.
  const testing::Optimized fused = testing::optimize_and_compare(m, o, feeds, 1e-3);
  SCOPED_TRACE(fused.text());
  EXPECT_EQ(fused.ops("com.microsoft.QAttention"), 2);
  EXPECT_EQ(fused.ops("com.microsoft.DynamicQuantizeMatMul"), 7);
  EXPECT_EQ(fused.ops("DynamicQuantizeLinear"), 2);
  EXPECT_EQ(fused.ops("MatMul"), 0);
}

TEST(DynamicQuantizeMatMulFusion, LeavesAProductOfTwoActivations) {
  // MatMulInteger of two quantized activations: no constant B, so it stays.
  Random rng(7);
  TestGraph g(17);
  g.input("a", rng.floats({3, 4}));
  g.input("b", rng.floats({4, 5}));
  g.node("DynamicQuantizeLinear", {"a"}, {"qa", "sa", "za"});
  g.node("DynamicQuantizeLinear", {"b"}, {"qb", "sb", "zb"});
  g.node("MatMulInteger", {"qa", "qb", "za", "zb"}, {"p"});
  g.node("Cast", {"p"}, {"pf"}, {attr_int("to", 1)});
  g.node("Mul", {"sa", "sb"}, {"s"});
  g.node("Mul", {"pf", "s"}, {"y"});
  g.output("y");
  const testing::Fused f = testing::run_passes(g.model(), {passes::fuse_dynamic_quantize_matmul});
  EXPECT_EQ(f.changed("DynamicQuantizeMatMul"), 0);
  ASSERT_EQ(f.reasons().size(), 1u);
  EXPECT_EQ(f.reasons()[0], "B or its zero point is not a constant");
}

}  // namespace
}  // namespace kiln
