// fp16 storage of weights (passes/float16_weights.cc): which initializers become float16 and which stay
// float32 (with the reason), the Casts that keep every computation float32, the embedding table gathered in
// float16, and the outputs near float32 in kiln and in ONNX Runtime.
#include "passes/float16_weights.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "common/half.h"
#include "contrib_test_util.h"
#include "pass_test_util.h"
#include "passes/model_metadata.h"

// Named, so that in a unity build its helpers meet no other test file's.
namespace kiln::float16_weights_test {
namespace {

using testing::contrib::Random;
using testing::contrib::TestGraph;

// ids [2, 5] -> Gather(table [300, 8]) -> MatMul W [8, 160] -> Add b [160] -> hb -> MatMul Tiny [160, 8] -> y
//                                                                           hb -> Min(., Huge [2, 5, 160]) -> z
TestGraph float16_test_model() {
  Random rng(21);
  TestGraph g(17);
  g.input("ids", ir::Tensor::from_vector<int64_t>({0, 7, 299, 12, 5, 5, 1, 150, 2, 3}, {2, 5}));
  g.node("Gather", {g.constant("table", rng.floats({300, 8})), "ids"}, {"emb"});
  g.node("MatMul", {"emb", g.constant("W", rng.floats({8, 160}, -0.5f, 0.5f))}, {"h"});
  g.node("Add", {"h", g.constant("b", rng.floats({160}))}, {"hb"});
  // Below float16's normal range (6.1e-5): float16 would keep a few bits of each, so it stays float32.
  ir::Tensor tiny = rng.floats({160, 8}, -1e-6f, 1e-6f);
  g.node("MatMul", {"hb", g.constant("Tiny", tiny)}, {"y"});
  // A value float16 cannot hold (it would become infinity); the Min keeps the outputs' scale near 1.
  ir::Tensor huge = rng.floats({2, 5, 160});
  huge.data<float>()[3] = 1e6f;
  g.node("Min", {"hb", g.constant("Huge", huge)}, {"z"});
  g.output("y");
  g.output("z");
  return g;
}

TEST(Float16Weights, StoresLargeWeightsAsFloat16BehindCastsAndSaysWhyOthersStay) {
  const TestGraph g = float16_test_model();
  ir::Model m = g.model();
  const passes::Float16WeightsReport report = passes::store_weights_in_float16(m, {});
  EXPECT_EQ(report.converted, (std::vector<std::string>{"table", "W"}));
  EXPECT_EQ(report.tables, 1);
  EXPECT_EQ(report.float_bytes, (300 * 8 + 8 * 160) * 4);
  EXPECT_EQ(report.float16_bytes, (300 * 8 + 8 * 160) * 2);
  ASSERT_EQ(report.skipped.size(), 3u);
  EXPECT_EQ(report.skipped[0].node, "b");
  EXPECT_EQ(report.skipped[0].reason, "fewer than 1024 values");
  EXPECT_EQ(report.skipped[1].node, "Tiny");
  EXPECT_NE(report.skipped[1].reason.find("below float16's normal range"), std::string::npos)
      << report.skipped[1].reason;
  EXPECT_EQ(report.skipped[2].node, "Huge");
  EXPECT_NE(report.skipped[2].reason.find("beyond float16's range (largest |x| 1e+06 > 65504"), std::string::npos)
      << report.skipped[2].reason;

  // W's name is now its Cast's output: the MatMul reads it unchanged. The table is gathered in float16.
  EXPECT_EQ(m.graph.find_initializer("W"), nullptr);
  EXPECT_EQ(m.graph.find_initializer("table"), nullptr);
  ASSERT_NE(m.graph.find_initializer("W_float16"), nullptr);
  EXPECT_EQ(m.graph.find_initializer("W_float16")->dtype(), ir::DType::kFloat16);
  EXPECT_EQ(m.graph.find_initializer("table_float16")->dtype(), ir::DType::kFloat16);
  EXPECT_EQ(m.graph.find_initializer("b")->dtype(), ir::DType::kFloat32);
  EXPECT_EQ(testing::count_ops(m, "Cast"), 2);
  const ir::Node* gather = testing::find_op(m, "Gather");
  ASSERT_NE(gather, nullptr);
  EXPECT_EQ(gather->inputs[0], "table_float16");
  EXPECT_EQ(passes::model_metadata(m, passes::kQuantizationMetadataKey), "fp16");

  // float16 keeps ~3.3 significant digits of each weight: the outputs stay within a few 1e-3 (relative).
  const std::vector<ir::Datum> want = testing::run_unoptimized(g.model(), g.feeds());
  const std::vector<ir::Datum> got = testing::run_unoptimized(m, g.feeds(), true);
  ASSERT_EQ(got.size(), 2u);
  for (size_t i = 0; i < got.size(); ++i) {
    double scale = 0;
    for (int64_t k = 0; k < want[i].tensor.numel(); ++k)
      scale = std::max(scale, std::fabs(static_cast<double>(want[i].tensor.data<float>()[k])));
    EXPECT_LT(testing::max_abs_diff(got[i].tensor, want[i].tensor), 2e-3 * scale) << g.model().graph.outputs[i].name;
  }
  EXPECT_GT(testing::max_abs_diff(got[1].tensor, want[1].tensor), 0.0);  // it did round the weights
  // kiln's optimizer folds the Casts of weights back into float32 constants: the same numbers.
  passes::OptimizeOptions o;
  const testing::Optimized folded = testing::optimize_and_compare(m, o, g.feeds(), 1e-5);
  EXPECT_EQ(folded.ops("Cast"), 1) << folded.text();  // the gathered rows' Cast stays: it reads no constant
  testing::expect_ort_matches(m, g.feeds(), got, 1e-5, "fp16 model");
}

TEST(Float16Weights, LeavesExcludedReadersGraphInputsAndNonFloatInitializersAlone) {
  Random rng(22);
  TestGraph g(17);
  g.input("x", rng.floats({3, 64}));
  g.node("MatMul", {"x", g.constant("W1", rng.floats({64, 32}))}, {"y1"});
  g.node("Gemm", {"x", g.constant("W2", rng.floats({64, 32}))}, {"y2"});
  g.node("Reshape", {"y2", g.constant("shape", ir::Tensor::from_vector<int64_t>({-1}, {1}))}, {"y3"});
  g.output("y1");
  g.output("y3");
  ir::Model m = g.model();
  // W1 is also declared as a graph input: a default the caller may replace.
  m.graph.inputs.push_back({"W1", ir::Type::tensor(ir::DType::kFloat32, ir::Shape::of({64, 32})), ""});
  passes::Float16WeightsOptions options;
  options.exclude = {"Gemm"};
  const passes::Float16WeightsReport report = passes::store_weights_in_float16(m, options);
  EXPECT_TRUE(report.converted.empty());
  ASSERT_EQ(report.skipped.size(), 2u);
  EXPECT_EQ(report.skipped[0].reason, "also a graph input (a default the caller may replace)");
  EXPECT_EQ(report.skipped[1].reason, "read by Gemm node \"Gemm_1\" (--exclude)");
  EXPECT_EQ(testing::count_ops(m, "Cast"), 0);
  EXPECT_EQ(passes::model_metadata(m, passes::kQuantizationMetadataKey), "");  // nothing done, nothing tagged
}

TEST(ModelMetadata, SetReplacesTheFirstEntryAndDropsDuplicates) {
  ir::Model m;
  m.metadata_props = {{"a", "1"}, {"kiln.quantization", "int8-dynamic"}, {"b", "2"}, {"kiln.quantization", "x"}};
  passes::set_model_metadata(m, passes::kQuantizationMetadataKey, "fp16");
  EXPECT_EQ(m.metadata_props,
            (std::vector<std::pair<std::string, std::string>>{{"a", "1"}, {"kiln.quantization", "fp16"}, {"b", "2"}}));
  passes::set_model_metadata(m, "kiln.precision", "bf16");
  EXPECT_EQ(passes::model_metadata(m, "kiln.precision"), "bf16");
  EXPECT_EQ(passes::model_metadata(m, "missing"), "");
}

}  // namespace
}  // namespace kiln::float16_weights_test
