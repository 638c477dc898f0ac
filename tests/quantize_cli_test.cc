// `kiln quantize` through the program, on the torch-exported bert-tiny fixture: the int8 file runs in
// kiln (its int8 kernels) and in ONNX Runtime to the same numbers, stays near the float32 reference
// outputs, and is smaller; bad use gets one clear line and writes nothing.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <string>

#include "io/npy.h"
#include "ort_peer.h"
#include "runtime/session.h"
#include "test_util.h"

namespace kiln {
namespace {

const std::string kBertTinyFixture = KILN_SOURCE_DIR "/tests/data/bert-tiny";

double int8_file_cosine(const ir::Tensor& a, const ir::Tensor& b) {
  double ab = 0, aa = 0, bb = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    const double x = a.data<float>()[i], y = b.data<float>()[i];
    ab += x * y;
    aa += x * x;
    bb += y * y;
  }
  return ab / std::sqrt(aa * bb);
}

double int8_file_max_diff(const ir::Tensor& a, const ir::Tensor& b) {
  double d = 0;
  for (int64_t i = 0; i < a.numel(); ++i) d = std::max(d, std::fabs(double(a.data<float>()[i]) - b.data<float>()[i]));
  return d;
}

TEST(QuantizeCli, HelpNamesTheModesAndOptions) {
  testing::RunResult r = testing::run_kiln({"quantize", "--help"});
  EXPECT_EQ(r.exit_code, 0);
  for (const char* s : {"int8-dynamic", "--per-channel", "--exclude", "--report"})
    EXPECT_NE(r.out.find(s), std::string::npos) << s;
}

TEST(QuantizeCli, Int8DynamicBertRunsInKilnAndOnnxRuntimeAlike) {
  std::string why;
  if (!testing::ort_available(&why)) GTEST_SKIP() << why;
  for (bool per_channel : {false, true}) {
    SCOPED_TRACE(per_channel ? "per channel" : "per tensor");
    testing::TempDir dir("kiln_quantize");
    std::vector<std::string> args = {"quantize", kBertTinyFixture + "/model.onnx", "-o", dir.file("int8.onnx"), "--mode",
                                     "int8-dynamic"};
    if (per_channel) args.push_back("--per-channel");
    testing::RunResult r = testing::run_kiln(args);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("13 MatMul/Gemm node(s) in int8"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("and 2 embedding table(s)"), std::string::npos) << r.out;  // words and positions
    EXPECT_LT(std::filesystem::file_size(dir.file("int8.onnx")), std::filesystem::file_size(kBertTinyFixture + "/model.onnx"));

    testing::OrtRun ort = testing::run_ort(dir.file("int8.onnx"), kBertTinyFixture + "/inputs", dir.file("ort"), "all");
    ASSERT_EQ(ort.exit_code, 0) << ort.err;
    runtime::Session s = runtime::Session::load(dir.file("int8.onnx"));
    std::unordered_map<std::string, ir::Datum> feeds;
    for (const char* name : {"input_ids", "attention_mask", "token_type_ids"})
      feeds[name] = ir::Datum(io::read_npy(kBertTinyFixture + "/inputs/" + name + ".npy"));
    const std::vector<ir::Datum> ours = s.run(feeds);
    ASSERT_EQ(ours.size(), 2u);
    const ir::Tensor theirs = io::read_npy(dir.file("ort/last_hidden_state.npy"));
    const ir::Tensor fp32 = io::read_npy(kBertTinyFixture + "/outputs/last_hidden_state.npy");
    // Not bit for bit: kiln removes A's zero point in float32 (onednn_int8_matmul.h), and a last-bit
    // difference before the next layer's quantization can move a value by one step of its scale.
    EXPECT_LT(int8_file_max_diff(ours[0].tensor, theirs), 1e-3) << "kiln vs ONNX Runtime on the int8 model";
    EXPECT_GT(int8_file_cosine(ours[0].tensor, fp32), 0.999) << "int8 vs the float32 reference output";
    EXPECT_GT(int8_file_max_diff(ours[0].tensor, fp32), 1e-4) << "the model did change";

    // kiln's optimized int8 model (QAttention, DynamicQuantizeMatMul) runs in ONNX Runtime too.
    r = testing::run_kiln({"optimize", dir.file("int8.onnx"), "-o", dir.file("int8-opt.onnx"), "--report"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("QAttention 2"), std::string::npos) << r.out;
    ort = testing::run_ort(dir.file("int8-opt.onnx"), kBertTinyFixture + "/inputs", dir.file("ort-opt"), "disabled");
    ASSERT_EQ(ort.exit_code, 0) << ort.err;
    EXPECT_LT(int8_file_max_diff(ours[0].tensor, io::read_npy(dir.file("ort-opt/last_hidden_state.npy"))), 1e-3);
  }
}

TEST(QuantizeCli, AModelWithoutWeightsToQuantizeIsAnErrorAndWritesNothing) {
  testing::TempDir dir("kiln_quantize");
  onnx::ModelProto m = testing::new_model(17);
  onnx::GraphProto* g = m.mutable_graph();
  testing::add_input(g, "x", onnx::TensorProto::FLOAT, {2, 3});
  testing::add_node(g, "Relu", {"x"}, {"y"}, "relu");
  testing::add_output(g, "y", onnx::TensorProto::FLOAT, {2, 3});
  testing::save(m, dir.file("relu.onnx"));
  testing::RunResult r =
      testing::run_kiln({"quantize", dir.file("relu.onnx"), "-o", dir.file("out.onnx"), "--mode", "int8-dynamic"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("no MatMul or Gemm with constant float32 weights to quantize"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir.file("out.onnx")));

  r = testing::run_kiln({"quantize", dir.file("relu.onnx"), "-o", dir.file("out.onnx"), "--mode", "int4"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("--mode"), std::string::npos) << r.err;
  r = testing::run_kiln({"quantize", dir.file("missing.onnx"), "-o", dir.file("out.onnx"), "--mode", "int8-dynamic"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("missing.onnx"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir.file("out.onnx")));
}

}  // namespace
}  // namespace kiln
