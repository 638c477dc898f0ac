// Black-box tests of the `kiln` program: help text, `inspect --json` on the bundled BERT, `run` against
// the PyTorch reference outputs, generated inputs, output file names, and refusal of bad --input use.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "io/npy.h"
#include "test_util.h"

namespace {

namespace fs = std::filesystem;
using namespace kiln::testing;
using onnx::TensorProto;

const std::string kBert = source_path("tests/data/bert-tiny/model.onnx");
const std::string kBertDir = source_path("tests/data/bert-tiny");

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

TEST(Cli, Help) {
  RunResult r = run_kiln({"--help"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  for (const char* cmd : {"inspect", "run", "conformance"}) EXPECT_TRUE(contains(r.out, cmd)) << r.out;
}

TEST(Cli, NoCommandIsUsageError) {
  RunResult r = run_kiln({});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_FALSE(r.err.empty());
}

TEST(Cli, InspectHelp) {
  RunResult r = run_kiln({"inspect", "--help"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  for (const char* opt : {"--json", "--dim"}) EXPECT_TRUE(contains(r.out, opt)) << r.out;
}

TEST(Cli, RunHelp) {
  RunResult r = run_kiln({"run", "--help"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  for (const char* opt : {"--input", "--input-dir", "--random", "--dim", "--output-dir", "--compare"})
    EXPECT_TRUE(contains(r.out, opt)) << opt << " missing from:\n" << r.out;
}

TEST(Cli, ConformanceHelp) {
  RunResult r = run_kiln({"conformance", "--help"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  for (const char* opt : {"--filter", "--verbose", "--expected", "--write-expected"})
    EXPECT_TRUE(contains(r.out, opt)) << opt << " missing from:\n" << r.out;
}

TEST(Cli, UnknownOptionIsUsageError) {
  RunResult r = run_kiln({"run", kBert, "--no-such-option"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "--no-such-option")) << r.err;
}

TEST(Cli, InspectBertJson) {
  RunResult r = run_kiln({"inspect", kBert, "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  nlohmann::json j = nlohmann::json::parse(r.out);  // throws (and fails the test) on bad JSON
  ASSERT_EQ(j["inputs"].size(), 3u) << r.out;
  const nlohmann::json* ids = nullptr;
  for (const auto& in : j["inputs"])
    if (in["name"] == "input_ids") ids = &in;
  ASSERT_NE(ids, nullptr) << r.out;
  EXPECT_EQ((*ids)["dtype"], "int64");
  EXPECT_EQ((*ids)["shape"], nlohmann::json::array({"batch", "sequence"}));
  EXPECT_EQ(j["outputs"].size(), 2u);
  EXPECT_EQ(j["opsets"], nlohmann::json({{"ai.onnx", 14}}));
  EXPECT_EQ(j["op_histogram"]["MatMul"], 16);
  EXPECT_GT(j["parameter_count"].get<int64_t>(), 4000000);
}

TEST(Cli, InspectBertText) {
  RunResult r = run_kiln({"inspect", kBert});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* part : {"input_ids", "last_hidden_state", "MatMul", "FLOPs"})
    EXPECT_TRUE(contains(r.out, part)) << part << " missing from:\n" << r.out;
}

void expect_close(const kiln::ir::Tensor& got, const kiln::ir::Tensor& expected, const std::string& what) {
  ASSERT_EQ(got.dtype(), expected.dtype()) << what;
  ASSERT_EQ(got.shape(), expected.shape()) << what;
  for (int64_t i = 0; i < expected.numel(); ++i) {
    double a = got.as_double(i), e = expected.as_double(i);
    ASSERT_LE(std::fabs(a - e), 1e-5 + 1e-4 * std::fabs(e)) << what << " element " << i;
  }
}

TEST(Cli, RunBertMatchesReference) {
  TempDir out("kiln_cli");
  RunResult r = run_kiln({"run", kBert, "--input-dir", kBertDir + "/inputs", "--output-dir", out.path().string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* name : {"last_hidden_state", "pooler_output"}) {
    std::string file = std::string(name) + ".npy";
    ASSERT_TRUE(fs::exists(out.path() / file)) << file << "\n" << r.out;
    expect_close(kiln::io::read_npy(out.file(file)), kiln::io::read_npy(kBertDir + "/outputs/" + file), name);
  }
}

TEST(Cli, RunBertCompare) {
  RunResult r = run_kiln({"run", kBert, "--input-dir", kBertDir + "/inputs", "--compare", kBertDir + "/outputs"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_TRUE(contains(r.out, "ok")) << r.out;
}

TEST(Cli, RunBertRandomWithDims) {
  TempDir out("kiln_cli");
  RunResult r = run_kiln(
      {"run", kBert, "--random", "--dim", "batch=2", "--dim", "sequence=7", "--output-dir", out.path().string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(kiln::io::read_npy(out.file("last_hidden_state.npy")).shape(), (std::vector<int64_t>{2, 7, 128}));
  EXPECT_EQ(kiln::io::read_npy(out.file("pooler_output.npy")).shape(), (std::vector<int64_t>{2, 128}));
}

TEST(Cli, OutputNameSanitized) {
  TempDir dir("kiln_cli");
  onnx::ModelProto m = new_model();
  auto* g = m.mutable_graph();
  add_input(g, "x", TensorProto::FLOAT, {2});
  add_node(g, "Identity", {"x"}, {"a/b:0"}, "id0");
  add_output(g, "a/b:0", TensorProto::FLOAT, {2});
  std::string model = dir.file("model.onnx");
  save(m, model);
  std::string out = dir.file("out");
  RunResult r = run_kiln({"run", model, "--random", "--output-dir", out});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(fs::exists(fs::path(out) / "a_b_0.npy")) << r.out;
  EXPECT_EQ(kiln::io::read_npy((fs::path(out) / "a_b_0.npy").string()).shape(), (std::vector<int64_t>{2}));
}

TEST(Cli, UnknownInputListsModelInputs) {
  TempDir dir("kiln_cli");
  std::string f = dir.file("z.npy");
  kiln::io::write_npy(f, kiln::ir::Tensor(kiln::ir::DType::kInt64, {1, 4}));
  RunResult r = run_kiln({"run", kBert, "--random", "--input", "no_such_input=" + f});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
  for (const char* part : {"no_such_input", "input_ids", "attention_mask", "token_type_ids"})
    EXPECT_TRUE(contains(r.err, part)) << part << " missing from: " << r.err;
}

TEST(Cli, MissingInputNamed) {
  TempDir dir("kiln_cli");
  RunResult r = run_kiln({"run", kBert, "--input", "input_ids=" + kBertDir + "/inputs/input_ids.npy", "--input",
                          "attention_mask=" + kBertDir + "/inputs/attention_mask.npy"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
  EXPECT_TRUE(contains(r.err, "missing input \"token_type_ids\"")) << r.err;
}

TEST(Cli, InputWithoutEqualsIsRefused) {
  RunResult r = run_kiln({"run", kBert, "--input", "input_ids"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_TRUE(contains(r.err, "--input")) << r.err;
}

TEST(Cli, BadDimValueIsRefused) {
  RunResult r = run_kiln({"run", kBert, "--random", "--dim", "batch=two"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_TRUE(contains(r.err, "batch")) << r.err;
}

}  // namespace

namespace {

TEST(Cli, OptimizeWritesAModelThatComputesTheSame) {
  TempDir dir;
  RunResult r = run_kiln({"optimize", kBert, "-o", dir.file("opt.onnx"), "--report", "--json", dir.file("r.json")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // The file has 257 nodes; its 75 Constant nodes become initializers when the model is prepared.
  EXPECT_TRUE(contains(r.out, "optimize (level all): 182 nodes ->")) << r.out;
  EXPECT_TRUE(contains(r.out, "fold_constants:")) << r.out;
  EXPECT_TRUE(contains(r.out, "wrote " + dir.file("opt.onnx"))) << r.out;
  nlohmann::json j = nlohmann::json::parse(read_file(dir.file("r.json")));
  EXPECT_EQ(j["nodes_before"], 182);
  EXPECT_EQ(j["level"], "all");
  RunResult run = run_kiln({"run", dir.file("opt.onnx"), "--input-dir", kBertDir + "/inputs", "--compare",
                            kBertDir + "/outputs"});
  EXPECT_EQ(run.exit_code, 0) << run.out << run.err;

  RunResult bad = run_kiln({"optimize", kBert, "-o", dir.file("x.onnx"), "--level", "max"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_FALSE(std::filesystem::exists(dir.file("x.onnx")));
}

}  // namespace

namespace {

TEST(Cli, RunAtEveryOptimizationLevelMatchesTorch) {
  for (const char* level : {"none", "basic", "extended", "all"}) {
    RunResult r = run_kiln({"run", kBert, "--input-dir", kBertDir + "/inputs", "--compare", kBertDir + "/outputs",
                            "--level", level});
    EXPECT_EQ(r.exit_code, 0) << level << ": " << r.out << r.err;
  }
  RunResult bad = run_kiln({"run", kBert, "--random", "--level", "max"});
  EXPECT_EQ(bad.exit_code, 2);
}

}  // namespace
