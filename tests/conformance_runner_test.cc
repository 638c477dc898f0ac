// The conformance runner (src/conformance/runner.h): where it finds the onnx wheel's suite, and that with
// fast kernels on it runs ONNX cases through them (weights bound as constants so that the packed matmul
// and conv kernels see them too).
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "common/error.h"
#include "conformance/runner.h"
#include "test_util.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;
using testing::ScopedEnv;

conformance::CaseResult run_extra_case(const std::string& name, bool fast) {
  conformance::Options o;
  o.fast_kernels = fast;
  return conformance::run_case(testing::source_path("tests/conformance/extra/" + name), "extra/" + name, o);
}

TEST(ConformanceRunner, Onnx122SuiteWithoutThePeersVenvNamesMakePeers) {
  fs::path empty = fs::temp_directory_path() / "kiln_no_peers_here";
  fs::create_directories(empty);
  ScopedEnv env("KILN_PEERS", empty.string());
  try {
    conformance::suite_root(conformance::kSuiteOnnx122);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("make peers"), std::string::npos) << e.what();
  }
  fs::remove_all(empty);
}

TEST(ConformanceRunner, Onnx122SuiteIsTheWheelsTestData) {
  const std::string peers = testing::source_path("benchmarks/peers");
  if (!fs::exists(peers + "/.venv")) GTEST_SKIP() << "the peers' venv is not installed (make peers)";
  ScopedEnv env("KILN_PEERS", peers);
  const std::string root = conformance::suite_root(conformance::kSuiteOnnx122);
  EXPECT_TRUE(fs::exists(fs::path(root) / "node" / "test_attention_4d")) << root;
  EXPECT_EQ(conformance::suite_root(conformance::kSuiteLibonnxTestdata), conformance::Options{}.root);
  EXPECT_THROW(conformance::suite_root("onnx-0.1"), Error);
}

// ONNX's Gelu (opset 20) is covered by the fast GELU; with fast kernels off nothing is.
TEST(ConformanceRunner, FastKernelsRunOnnxGelu) {
  conformance::CaseResult fast = run_extra_case("test_elem_gelu_float", true);
  EXPECT_EQ(fast.status, conformance::Status::kPass) << fast.reason;
  EXPECT_EQ(fast.fast_nodes, 1u);
  conformance::CaseResult ref = run_extra_case("test_elem_gelu_float", false);
  EXPECT_EQ(ref.status, conformance::Status::kPass) << ref.reason;
  EXPECT_EQ(ref.fast_nodes, 0u);
}

// A Conv whose weights the case feeds as an input: the runner binds them as an initializer, so the
// packed convolution (which takes constant weights only) runs, on grouped, dilated, padded input.
TEST(ConformanceRunner, FastKernelsBindFedWeightsAsConstants) {
  conformance::CaseResult fast = run_extra_case("test_nn_conv_group_dil_pads", true);
  EXPECT_EQ(fast.status, conformance::Status::kPass) << fast.reason;
  EXPECT_EQ(fast.fast_nodes, 1u);
  // LSTM's W, R, B and P likewise (initial_h and initial_c stay fed).
  conformance::CaseResult lstm = run_extra_case("test_quant_lstm_bidi_peep_forget", true);
  EXPECT_EQ(lstm.status, conformance::Status::kPass) << lstm.reason;
  EXPECT_EQ(lstm.fast_nodes, 1u);
}

}  // namespace
}  // namespace kiln
