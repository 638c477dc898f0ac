// kiln against ONNX Runtime, its reference peer, and OpenVINO (benchmarks/peers/peer.py, installed from
// PyPI by `make peers`): ORT and OpenVINO (f32) reproduce PyTorch's outputs for the bundled BERT, kiln and
// ORT agree on it, the peer script exchanges every numeric dtype with kiln's .npy code, and it reports
// errors as one line with exit status 2.
// A missing peer FAILS these tests rather than skipping them: a skipped interop test hides a broken peer.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "io/npy.h"
#include "ir/shape.h"
#include "ort_peer.h"
#include "test_util.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;
using namespace kiln::testing;

const std::string kBert = source_path("tests/data/bert-tiny/model.onnx");
const std::string kBertInputs = source_path("tests/data/bert-tiny/inputs");
const std::string kBertOutputs = source_path("tests/data/bert-tiny/outputs");

#define ASSERT_ORT_AVAILABLE()               \
  do {                                       \
    std::string why;                         \
    ASSERT_TRUE(ort_available(&why)) << why; \
  } while (0)

// Names of the .npy files in `dir`, sorted, without the extension.
std::vector<std::string> npy_stems(const std::string& dir) {
  std::vector<std::string> stems;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".npy") stems.push_back(e.path().stem().string());
  std::sort(stems.begin(), stems.end());
  return stems;
}

struct Diff {
  double max_abs = 0;
  int64_t outside = 0;  // elements beyond atol + rtol * |expected|
};

Diff diff(const ir::Tensor& actual, const ir::Tensor& expected, double rtol, double atol) {
  Diff d;
  for (int64_t i = 0; i < expected.numel(); ++i) {
    double a = actual.as_double(i), e = expected.as_double(i), ad = std::fabs(a - e);
    if (!(ad <= d.max_abs)) d.max_abs = ad;  // NaN makes max_abs NaN, which fails every bound below
    if (!(ad <= atol + rtol * std::fabs(e))) ++d.outside;
  }
  return d;
}

OrtRun run_ort_checked(const std::string& model, const std::string& in, const std::string& out,
                       const std::string& opt_level = "all", const std::string& engine = "ort") {
  OrtRun r = run_ort(model, in, out, opt_level, 300, engine);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return r;
}

// The peer's outputs in `out` against PyTorch's for the bundled BERT.
void expect_matches_pytorch(const TempDir& out) {
  ASSERT_EQ(npy_stems(out.path().string()), npy_stems(kBertOutputs));
  for (const auto& name : npy_stems(kBertOutputs)) {
    ir::Tensor expected = io::read_npy(kBertOutputs + "/" + name + ".npy");
    ir::Tensor actual = io::read_npy(out.file(name + ".npy"));
    ASSERT_EQ(actual.dtype(), expected.dtype()) << name;
    ASSERT_EQ(actual.shape(), expected.shape()) << name;
    Diff d = diff(actual, expected, 1e-4, 1e-5);
    EXPECT_EQ(d.outside, 0) << name << ": " << d.outside << " elements beyond rtol 1e-4, atol 1e-5; max abs diff "
                            << d.max_abs;
  }
}

TEST(OrtInterop, OrtMatchesPyTorchOnBertTiny) {
  ASSERT_ORT_AVAILABLE();
  // Both ends of ORT's optimizer: the fused graph (all) and the graph as exported (disabled).
  for (const char* level : {"all", "disabled"}) {
    SCOPED_TRACE(std::string("--opt-level ") + level);
    TempDir out("kiln_ort_bert");
    run_ort_checked(kBert, kBertInputs, out.path().string(), level);
    expect_matches_pytorch(out);
  }
}

// OpenVINO at f32 is the fair peer of `kiln bench --vs openvino`: it must compute the same model.
TEST(OrtInterop, OpenVinoF32MatchesPyTorchOnBertTiny) {
  ASSERT_ORT_AVAILABLE();
  TempDir out("kiln_ov_bert");
  run_ort_checked(kBert, kBertInputs, out.path().string(), "all", "openvino-f32");
  expect_matches_pytorch(out);
}

TEST(OrtInterop, KilnAgreesWithOrtOnBertTiny) {
  ASSERT_ORT_AVAILABLE();
  TempDir kiln_out("kiln_ort_k"), ort_out("kiln_ort_o");
  RunResult k = run_kiln({"run", kBert, "--input-dir", kBertInputs, "--output-dir", kiln_out.path().string()});
  ASSERT_EQ(k.exit_code, 0) << k.err;
  run_ort_checked(kBert, kBertInputs, ort_out.path().string());
  std::vector<std::string> names = npy_stems(ort_out.path().string());
  ASSERT_FALSE(names.empty());
  ASSERT_EQ(npy_stems(kiln_out.path().string()), names);
  for (const auto& name : names) {
    ir::Tensor kt = io::read_npy(kiln_out.file(name + ".npy"));
    ir::Tensor ot = io::read_npy(ort_out.file(name + ".npy"));
    ASSERT_EQ(kt.dtype(), ot.dtype()) << name;
    ASSERT_EQ(kt.shape(), ot.shape()) << name;
    Diff d = diff(kt, ot, 0, 1e-4);
    EXPECT_LE(d.max_abs, 1e-4) << name << ": kiln and ORT differ by up to " << d.max_abs;
  }
}

// Identity on one input of every dtype the peer exchanges, written by kiln's .npy writer and read back by
// its reader: ORT must return the very bytes, under kiln's file-name rule for the odd output names.
TEST(OrtInterop, NpyExchangeKeepsEveryDtype) {
  ASSERT_ORT_AVAILABLE();
  struct Case {
    const char* name;
    ir::DType dtype;
    std::vector<int64_t> shape;
  };
  const std::vector<Case> cases = {
      {"f32", ir::DType::kFloat32, {2, 3}}, {"f64", ir::DType::kFloat64, {2, 3}}, {"f16", ir::DType::kFloat16, {4}},
      {"i64", ir::DType::kInt64, {2, 3}},   {"i32", ir::DType::kInt32, {3, 1}},   {"i8", ir::DType::kInt8, {5}},
      {"u8", ir::DType::kUInt8, {}},        {"b", ir::DType::kBool, {2, 2}},
  };
  TempDir dir("kiln_ort_dtypes");
  fs::create_directories(dir.path() / "in");
  onnx::ModelProto m = new_model(17);
  auto* g = m.mutable_graph();
  std::vector<ir::Tensor> inputs;
  for (const auto& c : cases) {
    std::vector<DimSpec> dims(c.shape.begin(), c.shape.end());
    const int32_t elem = static_cast<int32_t>(c.dtype);  // kiln's DType numbers are ONNX's
    add_input(g, c.name, elem, dims);
    add_output(g, std::string("out/") + c.name + ":0", elem, dims);
    add_node(g, "Identity", {c.name}, {std::string("out/") + c.name + ":0"}, std::string("id_") + c.name);
    ir::Tensor t(c.dtype, c.shape);
    for (size_t i = 0; i < t.nbytes(); ++i) static_cast<uint8_t*>(t.raw())[i] = static_cast<uint8_t>(i * 37 + 11);
    if (c.dtype == ir::DType::kBool)
      for (int64_t i = 0; i < t.numel(); ++i) t.data<bool>()[i] = i % 3 == 1;
    io::write_npy((dir.path() / "in" / (std::string(c.name) + ".npy")).string(), t);
    inputs.push_back(t);
  }
  save(m, dir.file("identity.onnx"));
  run_ort_checked(dir.file("identity.onnx"), dir.file("in"), dir.file("out"));
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string file = dir.file("out/out_" + std::string(cases[i].name) + "_0.npy");
    ASSERT_TRUE(fs::exists(file)) << file;
    ir::Tensor back = io::read_npy(file);
    EXPECT_TRUE(back.bitwise_equal(inputs[i]))
        << cases[i].name << ": " << ir::dtype_name(back.dtype()) << ir::to_string(back.shape());
  }
}

// Both peers name output files by the graph's output names, even where a tensor has two (OpenVINO merges
// an Identity's input and output names), and find input files under kiln's file-name rule, which works
// on the UTF-8 bytes ("xé" is x__.npy).
TEST(OrtInterop, PeersUseTheGraphsNamesAndKilnsFileNames) {
  ASSERT_ORT_AVAILABLE();
  TempDir dir("kiln_peer_names");
  onnx::ModelProto m = new_model(17);
  auto* g = m.mutable_graph();
  add_input(g, "x\xc3\xa9", onnx::TensorProto::FLOAT, {2});
  add_node(g, "Relu", {"x\xc3\xa9"}, {"a"}, "relu");
  add_node(g, "Identity", {"a"}, {"y"}, "id");
  add_output(g, "y", onnx::TensorProto::FLOAT, {2});
  save(m, dir.file("m.onnx"));
  fs::create_directories(dir.path() / "in");
  ir::Tensor x(ir::DType::kFloat32, {2});
  x.data<float>()[0] = -1.0f;
  x.data<float>()[1] = 2.0f;
  io::write_npy((dir.path() / "in" / (io::npy_file_stem("x\xc3\xa9") + ".npy")).string(), x);
  for (const char* engine : {"ort", "openvino-f32"}) {
    SCOPED_TRACE(engine);
    const std::string out = dir.file(std::string("out-") + engine);
    run_ort_checked(dir.file("m.onnx"), dir.file("in"), out, "all", engine);
    EXPECT_EQ(npy_stems(out), std::vector<std::string>{"y"});
    if (fs::exists(out + "/y.npy")) {
      ir::Tensor y = io::read_npy(out + "/y.npy");
      EXPECT_EQ(y.data<float>()[0], 0.0f);
      EXPECT_EQ(y.data<float>()[1], 2.0f);
    }
  }
}

void expect_one_line_error(const OrtRun& r, const std::string& part) {
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_EQ(r.err.rfind("ort: error: ", 0), 0u) << r.err;
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find(part), std::string::npos) << r.err;
}

TEST(OrtInterop, BadInputGivesOneLineErrorAndExit2) {
  ASSERT_ORT_AVAILABLE();
  TempDir dir("kiln_ort_bad");
  const std::string missing = dir.file("no_such_model.onnx");
  expect_one_line_error(run_ort(missing, kBertInputs, dir.file("out")), "no_such_model.onnx");
  // ORT's own refusals (a file that is not a model, an input of the wrong type) come out the same way.
  write_file(dir.file("garbage.onnx"), "not a protobuf\n");
  expect_one_line_error(run_ort(dir.file("garbage.onnx"), kBertInputs, dir.file("out")), "garbage.onnx");
  fs::create_directories(dir.path() / "in");
  for (const char* name : {"attention_mask", "token_type_ids"})
    fs::copy_file(kBertInputs + "/" + name + ".npy", dir.file(std::string("in/") + name + ".npy"));
  io::write_npy(dir.file("in/input_ids.npy"), ir::Tensor(ir::DType::kFloat32, {2, 16}));
  expect_one_line_error(run_ort(kBert, dir.file("in"), dir.file("out")), "tensor(int64)");
  expect_one_line_error(run_ort(kBert, kBertInputs, dir.file("out"), "fastest"), "--opt-level");
  EXPECT_FALSE(fs::exists(dir.file("out")));
  // OpenVINO's refusals name it.
  OrtRun ov = run_ort(dir.file("garbage.onnx"), kBertInputs, dir.file("out"), "all", 300, "openvino-f32");
  EXPECT_EQ(ov.exit_code, 2) << ov.err;
  EXPECT_EQ(ov.err.rfind("openvino: error: ", 0), 0u) << ov.err;
  EXPECT_EQ(count_lines(ov.err), 1) << ov.err;
}

}  // namespace
}  // namespace kiln
