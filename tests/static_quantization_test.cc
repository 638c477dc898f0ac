// int8 static quantization (passes/static_quantization.cc) and kiln's reading of it: the QDQ rewrite
// (structure, numbers near float32, ONNX Runtime running the result to the same numbers), the fold of each
// QDQ product into com.microsoft.MatMulIntegerToFloat (passes/qdq_matmul_fusion.cc), its reference kernel
// against the dequantized product, and the fast kernels (MatMulIntegerToFloat, QuantizeLinear) against the
// reference.
#include "passes/static_quantization.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include "common/error.h"
#include "contrib_test_util.h"
#include "io/npy.h"
#include "pass_test_util.h"
#include "passes/model_metadata.h"
#include "passes/passes.h"
#include "quantize/calibration.h"
#include "runtime/session.h"
#include "test_util.h"

// Named, so that in a unity build its helpers meet no other test file's.
namespace kiln::static_quantization_test {
namespace {

using testing::contrib::attr_float;
using testing::contrib::attr_int;
using testing::contrib::Random;
using testing::contrib::TestGraph;

// x [2, 5, 48] -> MatMul W1 [48, 40] + b1 -> Relu -> h; x -> MatMul W2 [48, 40] -> y2 (same A as W1);
// h [10, 40] (Reshape) -> Gemm W3^T [24, 40] (transB) + C [24], alpha 0.5, beta 2 -> y3. Two outputs.
TestGraph static_test_model(uint32_t seed) {
  Random rng(seed);
  TestGraph g(17);
  g.input("x", rng.floats({2, 5, 48}));
  g.node("MatMul", {"x", g.constant("W1", rng.floats({48, 40}, -0.2f, 0.2f))}, {"m1"});
  g.node("Add", {"m1", g.constant("b1", rng.floats({40}))}, {"a1"});
  g.node("Relu", {"a1"}, {"h"});
  g.node("MatMul", {"x", g.constant("W2", rng.floats({48, 40}, -0.3f, 0.3f))}, {"y2"});
  g.node("Reshape", {"h", g.constant("shape", ir::Tensor::from_vector<int64_t>({10, 40}, {2}))}, {"h2"});
  g.node("Gemm", {"h2", g.constant("W3", rng.floats({24, 40}, -0.2f, 0.2f)), g.constant("C", rng.floats({24}))}, {"y3"},
         {attr_int("transB", 1), attr_float("alpha", 0.5f), attr_float("beta", 2.0f)});
  g.output("y2");
  g.output("y3");
  return g;
}

// The model quantized with ranges calibrated (minmax) on its own feeds, given as a folder of .npy files.
ir::Model qdq_copy(const TestGraph& g, bool per_channel, passes::StaticQuantizeReport* report = nullptr) {
  ir::Model m = g.model();
  passes::StaticQuantizeOptions options;
  options.per_channel = per_channel;
  const passes::StaticQuantizePlan plan = passes::plan_static_quantization(m, options);
  testing::TempDir dir("kiln_static_q");
  for (const auto& [name, d] : g.feeds()) io::write_npy(dir.file(name + ".npy"), d.tensor);
  const auto ranges = quantize::calibrate(m, plan.activations, quantize::calibration_samples_from_folder(m, dir.path()),
                                          quantize::CalibrationMethod::kMinMax);
  passes::StaticQuantizeReport r = passes::quantize_static(m, options, ranges);
  if (report) *report = r;
  return m;
}

double qdq_cosine(const ir::Tensor& a, const ir::Tensor& b) {
  double ab = 0, aa = 0, bb = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    ab += double(a.data<float>()[i]) * b.data<float>()[i];
    aa += double(a.data<float>()[i]) * a.data<float>()[i];
    bb += double(b.data<float>()[i]) * b.data<float>()[i];
  }
  return ab / std::sqrt(aa * bb);
}

TEST(StaticQuantization, WritesQdqPairsForEveryProductWithConstantWeights) {
  const TestGraph g = static_test_model(1);
  passes::StaticQuantizeReport report;
  const ir::Model q = qdq_copy(g, true, &report);
  EXPECT_EQ(report.quantized.size(), 3u);
  EXPECT_TRUE(report.skipped.empty());
  EXPECT_EQ(report.activations, 2);  // x once for both of its products; h2
  EXPECT_EQ(report.float_weight_bytes, (48 * 40 * 2 + 24 * 40) * 4);
  EXPECT_EQ(testing::count_ops(q, "QuantizeLinear"), 2);
  EXPECT_EQ(testing::count_ops(q, "DequantizeLinear"), 5);
  EXPECT_EQ(testing::count_ops(q, "MatMul"), 2);  // the products stay, reading dequantized operands
  EXPECT_EQ(testing::count_ops(q, "Gemm"), 1);
  EXPECT_EQ(q.graph.find_initializer("W1"), nullptr);
  const ir::Tensor* w3 = q.graph.find_initializer("W3_quantized");
  ASSERT_NE(w3, nullptr);
  EXPECT_EQ(w3->dtype(), ir::DType::kInt8);
  EXPECT_EQ(w3->shape(), (ir::Dims{24, 40}));  // the Gemm's layout, its channels along axis 0
  EXPECT_EQ(q.graph.find_initializer("W3_scale")->shape(), (ir::Dims{24}));
  for (const ir::Node& n : q.graph.nodes) {
    if (n.op_type == "DequantizeLinear" && n.inputs[0] == "W3_quantized") {
      ASSERT_NE(n.find_attribute("axis"), nullptr);
      EXPECT_EQ(n.find_attribute("axis")->i, 0);
    }
  }
  const ir::Tensor* x_zp = q.graph.find_initializer("x_zero_point");
  ASSERT_NE(x_zp, nullptr);
  EXPECT_EQ(x_zp->dtype(), ir::DType::kUInt8);
  EXPECT_EQ(passes::model_metadata(q, passes::kQuantizationMetadataKey), "int8-static");
}

TEST(StaticQuantization, StaysNearFloat32AndOnnxRuntimeRunsItToTheSameNumbers) {
  for (bool per_channel : {false, true}) {
    SCOPED_TRACE(per_channel ? "per channel" : "per tensor");
    const TestGraph g = static_test_model(2);
    const ir::Model q = qdq_copy(g, per_channel);
    const std::vector<ir::Datum> want = testing::run_unoptimized(g.model(), g.feeds());
    const std::vector<ir::Datum> got = testing::run_unoptimized(q, g.feeds(), true);
    ASSERT_EQ(got.size(), 2u);
    for (size_t i = 0; i < got.size(); ++i) {
      EXPECT_GT(qdq_cosine(got[i].tensor, want[i].tensor), 0.999);
      EXPECT_LT(testing::max_abs_diff(got[i].tensor, want[i].tensor), 0.05);
      EXPECT_GT(testing::max_abs_diff(got[i].tensor, want[i].tensor), 0.0);  // it did quantize
    }
    // Not closer: a last-bit difference in h before its QuantizeLinear can move a value by one step.
    testing::expect_ort_matches(q, g.feeds(), got, 2e-3, "int8 static model");
  }
}

TEST(StaticQuantization, LeavesExcludedNodesAndRefusesOldOpsets) {
  const TestGraph g = static_test_model(3);
  ir::Model m = g.model();
  passes::StaticQuantizeOptions options;
  options.exclude = {"Gemm"};
  const passes::StaticQuantizePlan plan = passes::plan_static_quantization(m, options);
  EXPECT_EQ(plan.activations, (std::vector<std::string>{"x"}));
  ASSERT_EQ(plan.skipped.size(), 1u);
  EXPECT_EQ(plan.skipped[0].reason, "excluded (--exclude)");
  try {
    passes::quantize_static(m, {}, {{"x", {-1.0f, 1.0f}}});  // h2 needs a range too
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "int8 static quantization: no calibrated range for activation \"h2\"");
  }

  TestGraph old(12);
  Random rng(4);
  old.input("x", rng.floats({2, 4}));
  old.node("MatMul", {"x", old.constant("W", rng.floats({4, 3}))}, {"y"});
  old.output("y");
  options.per_channel = true;
  try {
    passes::plan_static_quantization(old.model(), options);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("needs ONNX opset 13 or later (DequantizeLinear's axis); the model imports "
                                         "opset 12"),
              std::string::npos)
        << e.what();
  }
}

TEST(QdqMatMulFusion, FoldsEachProductAndItsBiasIntoMatMulIntegerToFloat) {
  for (bool per_channel : {false, true}) {
    SCOPED_TRACE(per_channel ? "per channel" : "per tensor");
    const TestGraph g = static_test_model(6);
    const ir::Model q = qdq_copy(g, per_channel);
    passes::OptimizeOptions o;
    o.level = passes::Level::kExtended;
    // The fused model runs the fast kernels; the unfused one the reference kernels, op by op.
    const testing::Optimized fused = testing::optimize_and_compare(q, o, g.feeds(), 2e-3);
    SCOPED_TRACE(fused.text());
    EXPECT_EQ(fused.ops("com.microsoft.MatMulIntegerToFloat"), 3);
    EXPECT_EQ(fused.ops("QuantizeLinear"), 2);
    EXPECT_EQ(fused.ops("DequantizeLinear"), 0);
    EXPECT_EQ(fused.ops("MatMul"), 0);
    EXPECT_EQ(fused.ops("Gemm"), 0);
    EXPECT_EQ(fused.ops("Add"), 0);  // b1 joined its product
    const ir::Node* gemm = fused.writer_of("y3");
    ASSERT_NE(gemm, nullptr);
    EXPECT_EQ(gemm->op_type, "MatMulIntegerToFloat");
    ASSERT_EQ(gemm->inputs.size(), 7u);
    EXPECT_FALSE(gemm->inputs[6].empty());  // beta * C
    // kiln's optimized file runs in ONNX Runtime too (its MatMulIntegerToFloat).
    passes::OptimizeOptions ort_target = o;
    ort_target.target = passes::Target::kOnnxRuntime;
    ir::Model for_ort = q;
    passes::optimize(for_ort, ort_target);
    ASSERT_EQ(testing::count_ops(for_ort, "com.microsoft.MatMulIntegerToFloat"), 3);
    testing::expect_ort_matches(for_ort, g.feeds(), testing::run_unoptimized(for_ort, g.feeds()), 1e-4,
                                "MatMulIntegerToFloat model");
  }
}

// One QDQ product of each kind on one quantized input: the reference MatMulIntegerToFloat equals the float
// product of the dequantized operands up to float rounding (no requantization after it to amplify that).
TEST(MatMulIntegerToFloatReference, IsTheDequantizedProduct) {
  Random rng(8);
  TestGraph g(17);
  g.input("x", rng.floats({3, 7, 20}));
  g.constant("xs", testing::contrib::scalar(0.01f));
  g.constant("xz", ir::Tensor::from_vector<uint8_t>({117}, {}));
  g.node("QuantizeLinear", {"x", "xs", "xz"}, {"qx"});
  g.node("DequantizeLinear", {"qx", "xs", "xz"}, {"dx"});
  std::vector<int8_t> w(20 * 12);
  for (size_t i = 0; i < w.size(); ++i) w[i] = static_cast<int8_t>(static_cast<int>(i * 37 % 255) - 127);
  g.constant("w", ir::Tensor::from_vector(w, {20, 12}));
  g.constant("ws", rng.floats({12}, 0.001f, 0.01f));
  g.constant("wz", ir::Tensor::from_vector(std::vector<int8_t>(12, 0), {12}));
  g.node("DequantizeLinear", {"w", "ws", "wz"}, {"dw"}, {attr_int("axis", 1)});
  g.node("MatMul", {"dx", "dw"}, {"p"});
  g.node("Add", {g.constant("b", rng.floats({12})), "p"}, {"y1"});  // the bias first: either order
  g.constant("wt", ir::Tensor::from_vector(w, {12, 20}));           // the same values as a Gemm's transposed B [N, K]
  g.constant("wts", testing::contrib::scalar(0.004f));
  g.node("DequantizeLinear", {"wt", "wts"}, {"dwt"});
  g.node("Reshape", {"x", g.constant("shape", testing::contrib::int64s({21, 20}))}, {"x2"});
  g.node("QuantizeLinear", {"x2", "xs", "xz"}, {"qx2"});
  g.node("DequantizeLinear", {"qx2", "xs", "xz"}, {"dx2"});
  g.node("Gemm", {"dx2", "dwt", g.constant("C", rng.floats({1, 12}))}, {"y2"},
         {attr_int("transB", 1), attr_float("alpha", 0.5f), attr_float("beta", -2.0f)});
  g.output("y1");
  g.output("y2");
  const testing::Fused fused = testing::run_passes(g.model(), {passes::fuse_qdq_matmul});
  ASSERT_EQ(fused.changed("MatMulIntegerToFloat"), 2) << fused.rejections();
  // The DequantizeLinear nodes went with their products, before constant folding could make float32
  // copies of the int8 weights.
  EXPECT_EQ(fused.ops("DequantizeLinear"), 0);
  EXPECT_EQ(fused.ops("Add"), 0);
  runtime::SessionOptions reference;
  reference.optimization = passes::Level::kNone;
  reference.fast_kernels = false;
  reference.verify_inference = true;
  const std::vector<ir::Datum> a = runtime::Session(g.model(), reference).run(g.feeds());
  const std::vector<ir::Datum> b = runtime::Session(fused.model, reference).run(g.feeds());
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_LT(testing::max_abs_diff(a[i].tensor, b[i].tensor), 1e-5);
}

TEST(QdqMatMulFusion, LeavesWhatItCannotFold) {
  Random rng(9);
  TestGraph g(17);
  g.input("x", rng.floats({4, 8}));
  std::vector<int8_t> w(8 * 5, 3);
  g.constant("w", ir::Tensor::from_vector(w, {8, 5}));
  g.constant("ws", testing::contrib::scalar(0.1f));
  g.constant("wz", ir::Tensor::from_vector<int8_t>({2}, {}));
  g.node("DequantizeLinear", {"w", "ws"}, {"dw"});
  g.node("MatMul", {"x", "dw"}, {"y1"});  // A is float32 as it comes
  g.constant("xz", ir::Tensor::from_vector<uint8_t>({128}, {}));
  g.node("QuantizeLinear", {"x", "ws", "xz"}, {"qx"});
  g.node("DequantizeLinear", {"qx", "ws", "xz"}, {"dx"});
  g.node("DequantizeLinear", {"w", "ws", "wz"}, {"dwz"});
  g.node("MatMul", {"dx", "dwz"}, {"y2"});  // B with a zero point of 2
  g.node("DequantizeLinear", {"qx", "ws"}, {"dx_untyped"});
  g.node("MatMul", {"dx_untyped", "dw"}, {"y3"});  // A without a zero point: its type is not known here
  g.output("y1");
  g.output("y2");
  g.output("y3");
  const testing::Fused f = testing::run_passes(g.model(), {passes::fuse_qdq_matmul});
  EXPECT_EQ(f.changed("MatMulIntegerToFloat"), 0);
  EXPECT_EQ(f.reasons(), (std::vector<std::string>{"A does not come from a DequantizeLinear", "B's zero point is not 0",
                                                   "A's zero point is not one 8-bit constant"}));
}

// The fast MatMulIntegerToFloat (Int8MatMul with the static activation scale) against the reference, over
// sizes below, at and above the kernels' blocks, uint8 and int8 A, per tensor and per column, with and
// without a bias.
TEST(MatMulIntegerToFloatKernel, MatchesTheReference) {
  Random rng(10);
  for (int64_t m : {1, 3, 17})
    for (int64_t k : {1, 16, 33})
      for (int64_t n : {1, 15, 64})
        for (bool int8_a : {false, true})
          for (bool per_column : {false, true}) {
            const bool bias = (m + k + n) % 2 == 0;
            SCOPED_TRACE(::testing::Message()
                         << "m " << m << " k " << k << " n " << n << (int8_a ? " int8 A" : " uint8 A")
                         << (per_column ? " per column" : " per tensor") << (bias ? " bias" : ""));
            TestGraph g(17);
            const ir::Tensor codes = rng.ints({2, m, k}, int8_a ? -128 : 0, int8_a ? 127 : 255);
            ir::Tensor a(int8_a ? ir::DType::kInt8 : ir::DType::kUInt8, {2, m, k});
            for (int64_t i = 0; i < a.numel(); ++i) {
              if (int8_a)
                a.data<int8_t>()[i] = static_cast<int8_t>(codes.data<int32_t>()[i]);
              else
                a.data<uint8_t>()[i] = static_cast<uint8_t>(codes.data<int32_t>()[i]);
            }
            g.input("a", a);
            const ir::Tensor wcodes = rng.ints({k, n}, -127, 127);
            std::vector<int8_t> w(static_cast<size_t>(k * n));
            for (size_t i = 0; i < w.size(); ++i) w[i] = static_cast<int8_t>(wcodes.data<int32_t>()[i]);
            g.constant("b", ir::Tensor::from_vector(w, {k, n}));
            g.constant("as", testing::contrib::scalar(0.02f));
            g.constant("bs", per_column ? rng.floats({n}, 0.001f, 0.01f) : testing::contrib::scalar(0.005f));
            g.constant(
                "az", int8_a ? ir::Tensor::from_vector<int8_t>({-7}, {}) : ir::Tensor::from_vector<uint8_t>({131}, {}));
            std::vector<std::string> inputs = {"a", "b", "as", "bs", "az"};
            if (bias) {
              inputs.push_back("");
              inputs.push_back(g.constant("bias", rng.floats({n})));
            }
            g.contrib("MatMulIntegerToFloat", inputs, {"y"});
            g.output("y");
            runtime::SessionOptions fast;
            fast.optimization = passes::Level::kNone;
            runtime::Session s(g.model(), fast);
            EXPECT_EQ(s.fast_kernel_count(), 1u);
            const ir::Tensor want = g.run()[0], got = s.run(g.feeds())[0].tensor;
            double scale = 1;
            for (int64_t i = 0; i < want.numel(); ++i)
              scale = std::max(scale, std::fabs(double(want.data<float>()[i])));
            EXPECT_LE(testing::max_abs_diff(got, want), 1e-5 * scale);
          }
}

// The fast QuantizeLinear (float32, one scale and zero point) bit for bit against the reference: ties to
// even, saturation at both ends, NaN and infinities, uint8 and int8, small and threaded sizes.
TEST(QuantizeLinearKernel, MatchesTheReferenceBitForBit) {
  Random rng(11);
  for (int64_t count : {1, 17, 70000})
    for (bool int8 : {false, true}) {
      SCOPED_TRACE(::testing::Message() << count << (int8 ? " int8" : " uint8"));
      ir::Tensor x = rng.floats({count}, -3.0f, 3.0f);
      const float special[] = {0.5f * 0.02f,
                               1.5f * 0.02f,
                               -2.5f * 0.02f,
                               1e9f,
                               -1e9f,
                               std::nanf(""),
                               std::numeric_limits<float>::infinity(),
                               -std::numeric_limits<float>::infinity()};
      for (int64_t i = 0; i < std::min<int64_t>(count, 8); ++i) x.data<float>()[i] = special[i];
      TestGraph g(17);
      g.input("x", x);
      g.constant("s", testing::contrib::scalar(0.02f));
      g.constant("z", int8 ? ir::Tensor::from_vector<int8_t>({-3}, {}) : ir::Tensor::from_vector<uint8_t>({128}, {}));
      g.node("QuantizeLinear", {"x", "s", "z"}, {"y"});
      g.output("y");
      runtime::SessionOptions fast;
      fast.optimization = passes::Level::kNone;
      runtime::Session s(g.model(), fast);
      EXPECT_EQ(s.fast_kernel_count(), 1u);
      EXPECT_EQ(testing::max_abs_diff(s.run(g.feeds())[0].tensor, g.run()[0]), 0.0);
    }
}

}  // namespace
}  // namespace kiln::static_quantization_test
