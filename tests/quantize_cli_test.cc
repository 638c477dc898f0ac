// `kiln quantize` through the program, on the torch-exported bert-tiny fixture: each mode's file runs in
// kiln (int8: its int8 kernels) and in ONNX Runtime to the same numbers, stays near the float32 reference
// outputs, and is smaller (bf16: only tagged); bad use gets one clear line and writes nothing.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <string>

#include "io/npy.h"
#include "onnx/model_io.h"
#include "ort_peer.h"
#include "passes/model_metadata.h"
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
  for (const char* s : {"bf16", "fp16", "int8-dynamic", "int8-static", "auto", "--per-channel", "--exclude", "--report",
                        "--calibration", "--calibration-random", "--method", "entropy", "--max-drop", "--inputs",
                        "--text", "--samples"})
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

// bert-tiny's outputs on the fixture's inputs, in kiln (fast kernels, all passes) and in ONNX Runtime.
struct BothRuns {
  ir::Tensor kiln, ort;
};

BothRuns run_in_kiln_and_ort(const std::string& model, const testing::TempDir& dir) {
  BothRuns r;
  testing::OrtRun ort = testing::run_ort(model, kBertTinyFixture + "/inputs", dir.file("ort"), "all");
  EXPECT_EQ(ort.exit_code, 0) << ort.err;
  r.ort = io::read_npy(dir.file("ort/last_hidden_state.npy"));
  runtime::Session s = runtime::Session::load(model);
  std::unordered_map<std::string, ir::Datum> feeds;
  for (const char* name : {"input_ids", "attention_mask", "token_type_ids"})
    feeds[name] = ir::Datum(io::read_npy(kBertTinyFixture + "/inputs/" + name + ".npy"));
  r.kiln = s.run(feeds)[0].tensor;
  return r;
}

TEST(QuantizeCli, Bf16OnlyTagsTheModel) {
  testing::TempDir dir("kiln_quantize");
  testing::RunResult r =
      testing::run_kiln({"quantize", kBertTinyFixture + "/model.onnx", "-o", dir.file("bf16.onnx"), "--mode", "bf16"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("tagged kiln.precision = bf16"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("ONNX Runtime runs the file in float32"), std::string::npos) << r.out;
  // Tagged twice: still one entry.
  r = testing::run_kiln({"quantize", dir.file("bf16.onnx"), "-o", dir.file("bf16.onnx"), "--mode", "bf16"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const ir::Model in = onnx_io::load_model(kBertTinyFixture + "/model.onnx");
  const ir::Model out = onnx_io::load_model(dir.file("bf16.onnx"));
  int tags = 0;
  for (const auto& [k, v] : out.metadata_props) tags += k == "kiln.precision";
  EXPECT_EQ(tags, 1);
  EXPECT_EQ(passes::model_metadata(out, "kiln.precision"), "bf16");
  EXPECT_EQ(out.graph.nodes.size(), in.graph.nodes.size());
  ASSERT_EQ(out.graph.initializers.size(), in.graph.initializers.size());
  for (const auto& [name, t] : in.graph.initializers) {
    const ir::Tensor* o = out.graph.find_initializer(name);
    ASSERT_NE(o, nullptr) << name;
    ASSERT_EQ(o->dtype(), t.dtype()) << name;
    ASSERT_EQ(o->nbytes(), t.nbytes()) << name;
    EXPECT_EQ(std::memcmp(o->raw(), t.raw(), t.nbytes()), 0) << name << " changed";
  }
}

TEST(QuantizeCli, Fp16HalvesTheFileAndRunsInKilnAndOnnxRuntimeNearFloat32) {
  std::string why;
  if (!testing::ort_available(&why)) GTEST_SKIP() << why;
  testing::TempDir dir("kiln_quantize");
  testing::RunResult r = testing::run_kiln(
      {"quantize", kBertTinyFixture + "/model.onnx", "-o", dir.file("fp16.onnx"), "--mode", "fp16", "--report"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("embedding tables, gathered in float16"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("fewer than 1024 values"), std::string::npos) << r.out;  // biases, LayerNorm weights
  const double ratio = static_cast<double>(std::filesystem::file_size(dir.file("fp16.onnx"))) /
                       static_cast<double>(std::filesystem::file_size(kBertTinyFixture + "/model.onnx"));
  EXPECT_LT(ratio, 0.52);
  EXPECT_GT(ratio, 0.48);
  const BothRuns runs = run_in_kiln_and_ort(dir.file("fp16.onnx"), dir);
  const ir::Tensor fp32 = io::read_npy(kBertTinyFixture + "/outputs/last_hidden_state.npy");
  // float16 weights keep ~3.3 significant digits: bert-tiny's hidden states (|x| up to ~10) move by ~1e-2.
  EXPECT_GT(int8_file_cosine(runs.kiln, fp32), 0.99999);
  EXPECT_LT(int8_file_max_diff(runs.kiln, fp32), 2e-2);
  EXPECT_GT(int8_file_max_diff(runs.kiln, fp32), 1e-5) << "the model did change";
  EXPECT_LT(int8_file_max_diff(runs.kiln, runs.ort), 1e-3) << "kiln vs ONNX Runtime on the fp16 model";
}

TEST(QuantizeCli, Int8StaticRunsInKilnAndOnnxRuntimeNearFloat32) {
  std::string why;
  if (!testing::ort_available(&why)) GTEST_SKIP() << why;
  testing::TempDir dir("kiln_quantize");
  testing::RunResult r = testing::run_kiln({"quantize", kBertTinyFixture + "/model.onnx", "-o", dir.file("int8.onnx"),
                                            "--mode", "int8-static", "--per-channel", "--calibration-random", "4"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("13 MatMul/Gemm node(s) in int8 (per-channel weights)"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("calibrating"), std::string::npos) << r.err;  // progress
  EXPECT_LT(std::filesystem::file_size(dir.file("int8.onnx")),
            std::filesystem::file_size(kBertTinyFixture + "/model.onnx"));
  const BothRuns runs = run_in_kiln_and_ort(dir.file("int8.onnx"), dir);
  const ir::Tensor fp32 = io::read_npy(kBertTinyFixture + "/outputs/last_hidden_state.npy");
  EXPECT_GT(int8_file_cosine(runs.kiln, fp32), 0.995) << "int8 vs the float32 reference output";
  EXPECT_GT(int8_file_cosine(runs.ort, fp32), 0.995) << "ONNX Runtime's run of it vs float32";
  // Not closer: a last-bit difference before a QuantizeLinear moves a value by one step of its scale.
  EXPECT_GT(int8_file_cosine(runs.kiln, runs.ort), 0.9999) << "kiln vs ONNX Runtime on the int8 model";

  // kiln's optimized file (QuantizeLinear -> MatMulIntegerToFloat) runs in ONNX Runtime too.
  r = testing::run_kiln({"optimize", dir.file("int8.onnx"), "-o", dir.file("int8-opt.onnx"), "--report"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("MatMulIntegerToFloat 13"), std::string::npos) << r.out;
  testing::OrtRun ort =
      testing::run_ort(dir.file("int8-opt.onnx"), kBertTinyFixture + "/inputs", dir.file("ort-opt"), "disabled");
  ASSERT_EQ(ort.exit_code, 0) << ort.err;
  EXPECT_GT(int8_file_cosine(runs.kiln, io::read_npy(dir.file("ort-opt/last_hidden_state.npy"))), 0.9999);

  // Calibrated on the fixture's own inputs (a folder of NAME.npy: one sample), with each method.
  for (const char* method : {"percentile", "entropy", "mse"}) {
    SCOPED_TRACE(method);
    r = testing::run_kiln({"quantize", kBertTinyFixture + "/model.onnx", "-o", dir.file("m.onnx"), "--mode",
                           "int8-static", "--calibration", kBertTinyFixture + "/inputs", "--method", method, "-q"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find(std::string(method) + " on 1 sample from"), std::string::npos) << r.out;
    EXPECT_TRUE(r.err.empty()) << r.err;
  }
}

TEST(QuantizeCli, BadCalibrationIsOneLineAndWritesNothing) {
  testing::TempDir dir("kiln_quantize");
  const std::string model = kBertTinyFixture + "/model.onnx";
  auto quantize = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = {"quantize", model, "-o", dir.file("out.onnx"), "--mode", "int8-static"};
    args.insert(args.end(), extra.begin(), extra.end());
    return testing::run_kiln(args);
  };
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  std::filesystem::create_directories(dir.path() / "samples/a");
  io::write_npy(dir.file("samples/a/input_ids.npy"), io::read_npy(kBertTinyFixture + "/inputs/input_ids.npy"));
  std::filesystem::create_directories(dir.path() / "wrong");
  for (const char* name : {"input_ids", "attention_mask", "token_type_ids"})
    io::write_npy(dir.file(std::string("wrong/") + name + ".npy"), ir::Tensor::from_vector<float>({1.0f}, {1, 1}));
  const std::vector<Case> cases = {
      {{}, "--mode int8-static needs calibration samples"},
      {{"--calibration", dir.file("none")}, "kiln: error: --calibration " + dir.file("none") + ": no such folder\n"},
      {{"--calibration", dir.file("samples")},
       "--calibration " + dir.file("samples/a") + ": no attention_mask.npy for input \"attention_mask\""},
      {{"--calibration", dir.file("wrong")}, "wrong/input_ids.npy: input \"input_ids\" must be int64"},
  };
  for (const Case& c : cases) {
    testing::RunResult r = quantize(c.args);
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_NE(r.err.find(c.message), std::string::npos) << r.err;
    // One line of error (after the calibration's step line, where it had begun).
    const size_t at = r.err.find("kiln: error: ");
    ASSERT_NE(at, std::string::npos) << r.err;
    EXPECT_EQ(testing::count_lines(r.err.substr(at)), 1) << r.err;
    EXPECT_FALSE(std::filesystem::exists(dir.file("out.onnx")));
  }
  testing::RunResult r = testing::run_kiln(
      {"quantize", model, "-o", dir.file("out.onnx"), "--mode", "int8-dynamic", "--method", "entropy"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--method are for --mode int8-static"), std::string::npos) << r.err;
  r = testing::run_kiln({"quantize", model, "-o", dir.file("out.onnx"), "--mode", "fp16", "--per-channel"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--per-channel is for the int8 modes"), std::string::npos) << r.err;
  // A quantized file is not quantized again.
  r = testing::run_kiln({"quantize", model, "-o", dir.file("fp16.onnx"), "--mode", "fp16"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = testing::run_kiln({"quantize", dir.file("fp16.onnx"), "-o", dir.file("out.onnx"), "--mode", "int8-dynamic"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("already quantized (metadata kiln.quantization = fp16)"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir.file("out.onnx")));
}

// --max-drop: per-tensor int8 misses a tight bound on bert-tiny, so the most sensitive products are kept in
// float32 (named, fewer than all) and the file written holds the bound; the scratch folder is gone.
TEST(QuantizeCli, MaxDropKeepsTheMostSensitiveProductsInFloat32) {
  testing::TempDir dir("kiln_quantize");
  const std::string model = kBertTinyFixture + "/model.onnx";
  testing::RunResult r = testing::run_kiln({"quantize", model, "-o", dir.file("out.onnx"), "--mode", "int8-dynamic",
                                            "--max-drop", "cosine=0.00007", "--samples", "3", "-q"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("--max-drop cosine=0.00007: met with"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("  kept in float32: "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("node(s) in int8"), std::string::npos) << r.out;
  testing::RunResult v = testing::run_kiln({"validate", model, dir.file("out.onnx"), "--samples", "3"});
  ASSERT_EQ(v.exit_code, 0) << v.err;
  // A bound the int8 file already meets keeps nothing in float32 and writes it.
  r = testing::run_kiln({"quantize", model, "-o", dir.file("loose.onnx"), "--mode", "int8-dynamic", "--max-drop",
                         "cosine=0.01", "--samples", "2", "-q"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("met with 0 product(s) kept in float32"), std::string::npos) << r.out;
  EXPECT_TRUE(std::filesystem::exists(dir.file("loose.onnx")));
  for (const auto& entry : std::filesystem::directory_iterator(dir.path()))
    EXPECT_TRUE(entry.path().filename() == "out.onnx" || entry.path().filename() == "loose.onnx")
        << "left behind: " << entry.path();
}

// --mode auto measures each mode and writes the one it marks; int8-static without calibration is left out.
TEST(QuantizeCli, AutoWritesTheModeItChoseAndItsTable) {
  testing::TempDir dir("kiln_quantize");
  const std::string model = kBertTinyFixture + "/model.onnx";
  testing::RunResult r =
      testing::run_kiln({"quantize", model, "-o", dir.file("out.onnx"), "--mode", "auto", "--samples", "2", "-q"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* s : {"fp32", "bf16", "int8-dynamic", "accuracy (--max-drop cosine=0.01)",
                        "int8-static            -          -          -  left out: no calibration samples", "->  "})
    EXPECT_NE(r.out.find(s), std::string::npos) << s << " missing from\n" << r.out;
  const size_t mark = r.out.find("->  ");
  ASSERT_NE(mark, std::string::npos);
  const std::string chosen = r.out.substr(mark + 4, r.out.find(' ', mark + 4) - mark - 4);
  EXPECT_NE(r.out.find("wrote " + dir.file("out.onnx") + ": " + chosen + " (the fastest within"), std::string::npos)
      << r.out;
  const ir::Model written = onnx_io::load_model(dir.file("out.onnx"));
  EXPECT_EQ(passes::model_metadata(written, passes::kQuantizationMetadataKey),
            chosen.rfind("int8", 0) == 0 ? chosen : "");
  EXPECT_EQ(passes::model_metadata(written, runtime::kPrecisionMetadataKey), chosen == "bf16" ? "bf16" : "");
}

TEST(QuantizeCli, MaxDropAndAutoRefuseWhatTheyCannotDo) {
  testing::TempDir dir("kiln_quantize");
  const std::string model = kBertTinyFixture + "/model.onnx";
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{"--mode", "fp16", "--max-drop", "cosine=0.01"}, "fp16 has no per-product choice"},
      {{"--mode", "int8-dynamic", "--max-drop", "accuracy=1"}, "METRIC one of cosine, top1, top5, retrieval"},
      {{"--mode", "int8-dynamic", "--max-drop", "retrieval=1", "--samples", "2"},
       "no output of this model has a retrieval figure"},
      {{"--mode", "int8-dynamic", "--inputs", dir.path().string()}, "--inputs and --text are the samples --max-drop"},
      {{"--mode", "auto", "--per-channel"}, "--mode auto always uses per-channel"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> args = {"quantize", model, "-o", dir.file("out.onnx")};
    args.insert(args.end(), c.args.begin(), c.args.end());
    testing::RunResult r = testing::run_kiln(args);
    EXPECT_EQ(r.exit_code, 2) << c.message;
    EXPECT_NE(r.err.find(c.message), std::string::npos) << r.err;
    EXPECT_FALSE(std::filesystem::exists(dir.file("out.onnx")));
  }
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()), {}), 0) << "a scratch folder was left";
}

}  // namespace
}  // namespace kiln
