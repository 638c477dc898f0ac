// The generated image classifiers (export/cnn_export.h): ResNet-50 (and shallower variants) and
// MobileNetV3-Small have torchvision's structure, load, run with finite outputs, optimize into the folded
// and fused graph the fast path is for (every BatchNormalization folded, every Conv+activation fused), give
// the same outputs with fast kernels as the reference path, and ONNX Runtime agrees with them; `kiln
// export resnet50 | mobilenetv3` writes them.
#include "export/cnn_export.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "io/npy.h"
#include "onnx/model_io.h"
#include "ort_peer.h"
#include "passes/optimizer.h"
#include "runtime/session.h"
#include "test_util.h"

namespace kiln {
namespace {

using exporter::CnnFamily;
using exporter::CnnOptions;
using Feeds = std::unordered_map<std::string, ir::Datum>;

#define ASSERT_ORT_AVAILABLE()                        \
  do {                                                \
    std::string why;                                  \
    ASSERT_TRUE(testing::ort_available(&why)) << why; \
  } while (0)

// Outputs within 1e-4 of the largest reference magnitude (float32 against the reference's double sums).
constexpr double kRelTol = 1e-4;

ir::Tensor images(int64_t batch, int64_t size, uint32_t seed) {
  ir::Tensor t(ir::DType::kFloat32, {batch, 3, size, size});
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = normal(rng);
  return t;
}

std::vector<ir::Tensor> run(const ir::Model& m, const ir::Tensor& input, bool fast, passes::Level level,
                            size_t* fast_count = nullptr) {
  runtime::SessionOptions o;
  o.fast_kernels = fast;
  o.optimization = level;
  runtime::Session s(m, o);
  if (fast_count) *fast_count = s.fast_kernel_count();
  std::vector<ir::Tensor> out;
  for (ir::Datum& d : s.run({{"input", ir::Datum(input)}})) out.push_back(d.tensor);
  return out;
}

double max_abs(const ir::Tensor& t) {
  double m = 0;
  for (int64_t i = 0; i < t.numel(); ++i) m = std::max(m, std::fabs(t.as_double(i)));
  return m;
}

double max_abs_diff(const ir::Tensor& a, const ir::Tensor& b) {
  double m = 0;
  for (int64_t i = 0; i < a.numel(); ++i) m = std::max(m, std::fabs(a.as_double(i) - b.as_double(i)));
  return m;
}

void expect_finite_logits(const ir::Tensor& y, int64_t batch, int64_t classes) {
  ASSERT_EQ(y.shape(), (std::vector<int64_t>{batch, classes}));
  for (int64_t i = 0; i < y.numel(); ++i) ASSERT_TRUE(std::isfinite(y.as_double(i))) << "element " << i;
  // Not collapsed to a constant: the classes differ.
  EXPECT_GT(max_abs(y), 1e-3);
}

void expect_close(const ir::Tensor& got, const ir::Tensor& want, const std::string& what) {
  ASSERT_EQ(got.shape(), want.shape()) << what;
  EXPECT_LE(max_abs_diff(got, want), kRelTol * max_abs(want)) << what << ": largest |output| " << max_abs(want);
}

// Optimized and run on fast kernels against the model as written on the reference kernels.
void expect_fast_matches_reference(const ir::Model& m, const ir::Tensor& input, size_t min_fast) {
  size_t fast_count = 0;
  const ir::Tensor fast = run(m, input, true, passes::Level::kAll, &fast_count)[0];
  const ir::Tensor ref = run(m, input, false, passes::Level::kNone)[0];
  EXPECT_GE(fast_count, min_fast);
  expect_finite_logits(ref, input.dim(0), ref.dim(1));
  expect_close(fast, ref, "fast and optimized vs reference");
}

std::map<std::string, int64_t> ops_of(const ir::Model& m) { return passes::op_histogram(m.graph); }

// The fusions (level extended: level all then moves kiln's convolutions to channels-last, which
// conv_channels_last_test.cc checks).
std::map<std::string, int64_t> optimized_ops(ir::Model m, passes::Target target) {
  passes::OptimizeOptions o;
  o.target = target;
  o.level = passes::Level::kExtended;
  passes::optimize(m, o);
  return ops_of(m);
}

TEST(CnnExport, ResNet50HasTorchvisionsStructure) {
  CnnOptions o;
  // Under the sanitizers a shallower ResNet (the same code): drawing and folding 25 M weights at -O0 is
  // the cost there.
  if (testing::kSanitizeBuild) o.resnet_blocks = {1, 1, 1, 1};
  int64_t blocks = 0;
  for (int64_t b : o.resnet_blocks) blocks += b;
  const ir::Model m = exporter::export_cnn(CnnFamily::kResNet50, o);
  std::map<std::string, int64_t> ops = ops_of(m);
  EXPECT_EQ(ops["Conv"], 1 + 3 * blocks + 4);  // stem, 3 per bottleneck, a downsample per stage
  EXPECT_EQ(ops["BatchNormalization"], 1 + 3 * blocks + 4);
  EXPECT_EQ(ops["Relu"], 1 + 3 * blocks);
  EXPECT_EQ(ops["Add"], blocks);
  EXPECT_EQ(ops["MaxPool"], 1);
  EXPECT_EQ(ops["GlobalAveragePool"], 1);
  EXPECT_EQ(ops["Flatten"], 1);
  EXPECT_EQ(ops["Gemm"], 1);
  if (!testing::kSanitizeBuild) {
    int64_t params = 0;
    for (const auto& [name, t] : m.graph.initializers) params += t.numel();
    // torchvision's resnet50 has 25,557,032 parameters, plus 53,120 BatchNormalization running statistics.
    EXPECT_EQ(params, 25557032 + 53120);
    EXPECT_NE(m.graph.find_initializer("layer3.5.bn3.running_var"), nullptr);
  }
  ASSERT_EQ(m.graph.inputs.size(), 1u);
  EXPECT_EQ(m.graph.inputs[0].name, "input");
  EXPECT_TRUE(m.graph.inputs[0].type.shape->dims[0].is_symbolic());
  ASSERT_EQ(m.graph.outputs.size(), 1u);
  EXPECT_EQ(m.graph.outputs[0].name, "output");

  // Every BN folded into its Conv, every Conv+Relu fused (the stem, 2 per bottleneck), and each
  // bottleneck's last conv fused with its residual Add and the Relu after it (FusedConv's Z input); the 4
  // downsamples stay Conv.
  std::map<std::string, int64_t> opt = optimized_ops(m, passes::Target::kOnnxRuntime);
  EXPECT_EQ(opt["BatchNormalization"], 0);
  EXPECT_EQ(opt["com.microsoft.FusedConv"], 1 + 3 * blocks);
  EXPECT_EQ(opt["Conv"], 4);
  EXPECT_EQ(opt["Relu"], 0);
  EXPECT_EQ(opt["Add"], 0);
}

TEST(CnnExport, MobileNetV3HasTorchvisionsStructure) {
  const ir::Model m = exporter::export_cnn(CnnFamily::kMobileNetV3);
  std::map<std::string, int64_t> ops = ops_of(m);
  EXPECT_EQ(ops["Conv"], 52);
  EXPECT_EQ(ops["BatchNormalization"], 34);
  EXPECT_EQ(ops["HardSwish"], 19);  // 18 after convolutions, 1 in the classifier
  EXPECT_EQ(ops["HardSigmoid"], 9);
  EXPECT_EQ(ops["Relu"], 14);
  EXPECT_EQ(ops["Mul"], 9);
  EXPECT_EQ(ops["Add"], 6);
  EXPECT_EQ(ops["GlobalAveragePool"], 10);
  EXPECT_EQ(ops["Gemm"], 2);
  int64_t params = 0;
  for (const auto& [name, t] : m.graph.initializers) params += t.numel();
  // torchvision's mobilenet_v3_small: 2,542,856 parameters, plus 2 x 6,056 running statistics.
  EXPECT_EQ(params, 2542856 + 2 * 6056);

  // For kiln: Relu and HardSigmoid convs fuse into com.microsoft.FusedConv, HardSwish ones into
  // ai.kiln.FusedConv, and the 6 projections with a residual Add into com.microsoft.FusedConv with Z; the
  // other 5 projections stay Conv. For ONNX Runtime, HardSwish stays apart.
  std::map<std::string, int64_t> kiln = optimized_ops(m, passes::Target::kKiln);
  EXPECT_EQ(kiln["BatchNormalization"], 0);
  EXPECT_EQ(kiln["com.microsoft.FusedConv"], 14 + 9 + 6);
  EXPECT_EQ(kiln["ai.kiln.FusedConv"], 18);
  EXPECT_EQ(kiln["Conv"], 5);
  EXPECT_EQ(kiln["Add"], 0);
  std::map<std::string, int64_t> ort = optimized_ops(m, passes::Target::kOnnxRuntime);
  EXPECT_EQ(ort["com.microsoft.FusedConv"], 14 + 9 + 6);
  EXPECT_EQ(ort["ai.kiln.FusedConv"], 0);
  EXPECT_EQ(ort["Conv"], 5 + 18);
}

TEST(CnnExport, SameSeedSameModelOtherSeedOtherWeights) {
  CnnOptions o;
  o.resnet_blocks = {1, 1};
  const ir::Model a = exporter::export_cnn(CnnFamily::kResNet50, o), b = exporter::export_cnn(CnnFamily::kResNet50, o);
  o.seed = 1;
  const ir::Model c = exporter::export_cnn(CnnFamily::kResNet50, o);
  const ir::Tensor* wa = a.graph.find_initializer("layer2.0.conv2.weight");
  ASSERT_NE(wa, nullptr);
  EXPECT_TRUE(wa->bitwise_equal(*b.graph.find_initializer("layer2.0.conv2.weight")));
  EXPECT_FALSE(wa->bitwise_equal(*c.graph.find_initializer("layer2.0.conv2.weight")));
  EXPECT_THROW(exporter::export_cnn(CnnFamily::kResNet50, CnnOptions{.opset = 13}), Error);
  EXPECT_THROW(exporter::export_cnn(CnnFamily::kMobileNetV3, CnnOptions{.image_size = 16}), Error);
}

TEST(CnnExport, ShallowResNetFastMatchesReference) {
  CnnOptions o;
  o.resnet_blocks = {1, 1, 1, 1};
  o.image_size = 64;
  o.num_classes = 10;
  const ir::Model m = exporter::export_cnn(CnnFamily::kResNet50, o);
  // 17 convs (9 fused with their Relu, 4 with their residual Add and Relu) and the Gemm.
  expect_fast_matches_reference(m, images(2, 64, 1), 18);
}

TEST(CnnExport, ResNet50FastMatchesReference) {
  if (testing::kSanitizeBuild) GTEST_SKIP() << "50 layers of the reference conv: runs in the release build";
  CnnOptions o;
  o.image_size = 64;  // full depth; a small image keeps the reference quick
  expect_fast_matches_reference(exporter::export_cnn(CnnFamily::kResNet50, o), images(1, 64, 2), 54);
}

TEST(CnnExport, MobileNetV3FastMatchesReference) {
  CnnOptions o;
  o.image_size = testing::kSanitizeBuild ? 64 : 160;
  expect_fast_matches_reference(exporter::export_cnn(CnnFamily::kMobileNetV3, o), images(2, o.image_size, 3), 54);
}

// kiln (optimized, fast kernels) and ONNX Runtime (all optimizations) on the same saved model and input.
void expect_ort_agrees(const ir::Model& m, const ir::Tensor& input, const std::string& name) {
  SCOPED_TRACE(name);
  testing::TempDir dir("kiln_cnn_ort");
  std::filesystem::create_directories(dir.path() / "in");
  onnx_io::save_model(m, dir.file("model.onnx"));
  io::write_npy(dir.file("in/input.npy"), input);
  testing::OrtRun r = testing::run_ort(dir.file("model.onnx"), dir.file("in"), dir.file("out"), "all");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const ir::Tensor theirs = io::read_npy(dir.file("out/output.npy"));
  // Through the saved file, as a user would load it.
  runtime::Session s = runtime::Session::load(dir.file("model.onnx"));
  const ir::Tensor ours = s.run({{"input", ir::Datum(input)}})[0].tensor;
  expect_finite_logits(ours, input.dim(0), ours.dim(1));
  expect_close(ours, theirs, "kiln vs ONNX Runtime");
}

TEST(CnnExport, OnnxRuntimeAgrees) {
  ASSERT_ORT_AVAILABLE();
  CnnOptions o;
  if (testing::kSanitizeBuild) {
    o.resnet_blocks = {1, 1, 1, 1};
    o.image_size = 64;
  }
  expect_ort_agrees(exporter::export_cnn(CnnFamily::kResNet50, o), images(1, o.image_size, 4), "resnet50");
  expect_ort_agrees(exporter::export_cnn(CnnFamily::kMobileNetV3, o), images(2, o.image_size, 5), "mobilenetv3");
}

TEST(CnnExport, ExportCommand) {
  testing::RunResult help = testing::run_kiln({"export", "--help"});
  EXPECT_EQ(help.exit_code, 0) << help.err;
  for (const char* word : {"resnet50", "mobilenetv3", "--image-size"})
    EXPECT_NE(help.out.find(word), std::string::npos) << word;

  testing::TempDir dir;
  testing::RunResult r = testing::run_kiln({"export", "mobilenetv3", "--image-size", "96", "-o", dir.file("m.onnx")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("2.55 M parameters"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("[batch, 3, 96, 96]"), std::string::npos) << r.out;
  const ir::Model m = onnx_io::load_model(dir.file("m.onnx"));
  EXPECT_EQ(ops_of(m)["Conv"], 52);
  EXPECT_EQ(m.graph.inputs[0].type.shape->dims[2].value, 96);

  testing::RunResult bad = testing::run_kiln({"export", "resnet50", "--preset", "bert-base", "-o", dir.file("x.onnx")});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("seeded random weights"), std::string::npos) << bad.err;
  EXPECT_FALSE(std::filesystem::exists(dir.file("x.onnx")));
  testing::RunResult bad_size =
      testing::run_kiln({"export", "vit", "--preset", "vit-tiny", "--image-size", "64", "-o", dir.file("v.onnx")});
  EXPECT_NE(bad_size.exit_code, 0);
  EXPECT_NE(bad_size.err.find("--image-size"), std::string::npos) << bad_size.err;
}

}  // namespace
}  // namespace kiln
