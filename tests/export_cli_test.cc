// Black-box tests of `kiln export` and of the model-free `kiln run`: the fixture checkpoint through the
// program, every preset, the built-in default model and its cache, tokenized text, and bad checkpoints.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "test_util.h"

namespace {

namespace fs = std::filesystem;
using namespace kiln::testing;

const std::string kConfig = source_path("tests/data/bert-tiny-hf/config.json");
const std::string kWeights = source_path("tests/data/bert-tiny-hf/model.safetensors");

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

TEST(ExportCli, Help) {
  RunResult r = run_kiln({"export", "--help"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  for (const char* word : {"--config", "--weights", "--preset", "--random-weights", "--seed", "--opset", "bert-base"})
    EXPECT_TRUE(contains(r.out, word)) << word;
}

TEST(ExportCli, CheckpointReproducesTorchOutputs) {
  TempDir dir;
  RunResult e = run_kiln({"export", "bert", "--config", kConfig, "--weights", kWeights, "-o", dir.file("t.onnx")});
  ASSERT_EQ(e.exit_code, 0) << e.err;
  EXPECT_TRUE(contains(e.out, "4.39 M parameters")) << e.out;
  RunResult r = run_kiln({"run", dir.file("t.onnx"), "--input-dir", source_path("tests/data/bert-tiny-hf/inputs"),
                          "--compare", source_path("tests/data/bert-tiny-hf/outputs")});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_TRUE(contains(r.out, "last_hidden_state        float32[2,16,128]")) << r.out;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 2) << r.out;
  EXPECT_FALSE(contains(r.out, "MISMATCH")) << r.out;
}

struct PresetCase {
  std::string preset;
  std::string hidden_shape;  // last_hidden_state: batch 2, sequence 8 for text models; batch 1 for images
  std::string pooled_shape;  // "" when the model has no pooler
};

class ExportPreset : public ::testing::TestWithParam<PresetCase> {};

TEST_P(ExportPreset, ExportsAndRunsWithFiniteOutputs) {
  const PresetCase& pc = GetParam();
#ifdef KILN_SANITIZE_BUILD
  // The large presets run the same exporter code as the small ones, only longer: minutes under ASan.
  // The release build's run of this test covers them.
  if (pc.preset == "bert-base" || pc.preset == "bert-large" || pc.preset == "vit-base")
    GTEST_SKIP() << pc.preset << " runs in the release build only";
#endif
  TempDir dir;
  RunResult e = run_kiln({"export", "--preset", pc.preset, "--seed", "3", "-o", dir.file("m.onnx")}, 600);
  ASSERT_EQ(e.exit_code, 0) << e.err;
  const bool vision = pc.preset.rfind("vit", 0) == 0;
  RunResult r = run_kiln(
      {"run", dir.file("m.onnx"), "--random", "--dim", vision ? "batch=1" : "batch=2", "--dim", "sequence=8"}, 600);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "last_hidden_state        float32" + pc.hidden_shape)) << r.out;
  if (!pc.pooled_shape.empty())
    EXPECT_TRUE(contains(r.out, "pooler_output            float32" + pc.pooled_shape));
  else
    EXPECT_FALSE(contains(r.out, "pooler_output")) << r.out;
  // The summary prints min, max and mean: a NaN or an infinity would show.
  EXPECT_FALSE(contains(r.out, "nan")) << r.out;
  EXPECT_FALSE(contains(r.out, "inf")) << r.out;
}

INSTANTIATE_TEST_SUITE_P(Presets, ExportPreset,
                         ::testing::Values(PresetCase{"bert-tiny", "[2,8,128]", "[2,128]"},
                                           PresetCase{"bert-mini", "[2,8,256]", "[2,256]"},
                                           PresetCase{"bert-base", "[2,8,768]", "[2,768]"},
                                           PresetCase{"bert-large", "[2,8,1024]", "[2,1024]"},
                                           PresetCase{"distilbert", "[2,8,768]", ""},
                                           PresetCase{"vit-tiny", "[1,197,192]", "[1,192]"},
                                           PresetCase{"vit-base", "[1,197,768]", "[1,768]"}),
                         [](const auto& info) {
                           std::string n = info.param.preset;
                           for (char& c : n)
                             if (c == '-') c = '_';
                           return n;
                         });

TEST(ExportCli, BuiltInModelIsBuiltOnceAndCached) {
  TempDir cache;
  setenv("KILN_CACHE_DIR", cache.path().c_str(), 1);
  RunResult first = run_kiln({"run", "--dim", "sequence=8"}, 600);
  ASSERT_EQ(first.exit_code, 0) << first.err;
  EXPECT_TRUE(contains(first.err, "building the built-in model (bert-base")) << first.err;
  EXPECT_TRUE(contains(first.out, "last_hidden_state        float32[1,8,768]")) << first.out;
  EXPECT_TRUE(contains(first.out, "pooler_output            float32[1,768]")) << first.out;
  int models = 0;
  for (const auto& entry : fs::directory_iterator(cache.path())) models += entry.path().extension() == ".onnx";
  EXPECT_EQ(models, 1);
  RunResult second = run_kiln({"run", "--dim", "sequence=4"}, 600);
  ASSERT_EQ(second.exit_code, 0) << second.err;
  EXPECT_FALSE(contains(second.err, "building")) << second.err;
  EXPECT_TRUE(contains(second.out, "last_hidden_state        float32[1,4,768]")) << second.out;
  unsetenv("KILN_CACHE_DIR");
}

TEST(ExportCli, RunTokenizesText) {
  TempDir dir;
  ASSERT_EQ(
      run_kiln({"export", "bert", "--config", kConfig, "--weights", kWeights, "-o", dir.file("t.onnx")}).exit_code, 0);
  const std::string vocab = source_path("tests/data/tokenizer/vocab.json");
  RunResult r = run_kiln({"run", dir.file("t.onnx"), "--vocab", vocab, "--text", "Hello, world!", "--text",
                          "The café is open.", "--text-pair", "Yes.", "--text-pair", "No."});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "text 0: 9 tokens: [CLS] hello , world ! [SEP] yes . [SEP]")) << r.out;
  EXPECT_TRUE(contains(r.out, "text 1: 10 tokens: [CLS] the cafe is open . [SEP] no . [SEP]")) << r.out;
  EXPECT_TRUE(contains(r.out, "last_hidden_state        float32[2,10,128]")) << r.out;

  RunResult no_vocab = run_kiln({"run", dir.file("t.onnx"), "--text", "hello"});
  EXPECT_EQ(no_vocab.exit_code, 2);
  EXPECT_TRUE(contains(no_vocab.err, "--text needs the model's vocabulary")) << no_vocab.err;
  RunResult pairs =
      run_kiln({"run", dir.file("t.onnx"), "--vocab", vocab, "--text", "a", "--text-pair", "b", "--text-pair", "c"});
  EXPECT_EQ(pairs.exit_code, 2);
  EXPECT_TRUE(contains(pairs.err, "one --text-pair per --text")) << pairs.err;
}

// ---- bad checkpoints: one line on stderr, exit 2, naming what is wrong ----

class BadCheckpoint : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::copy_file(kConfig, dir_.file("config.json"));
    fs::copy_file(kWeights, dir_.file("model.safetensors"));
  }
  RunResult export_model() {
    return run_kiln({"export", "bert", "--config", dir_.file("config.json"), "--weights",
                     dir_.file("model.safetensors"), "-o", dir_.file("out.onnx")});
  }
  void expect_refused(const std::vector<std::string>& words) {
    RunResult r = export_model();
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_EQ(count_lines(r.err), 1) << r.err;
    for (const auto& w : words) EXPECT_TRUE(contains(r.err, w)) << "missing \"" << w << "\" in: " << r.err;
    EXPECT_FALSE(fs::exists(dir_.file("out.onnx")));
  }
  // Rewrites the checkpoint with `edit` applied to its tensors.
  void rewrite(const std::function<void(std::vector<std::pair<std::string, kiln::ir::Tensor>>&)>& edit) {
    std::vector<std::pair<std::string, kiln::ir::Tensor>> tensors;
    {
      kiln::io::SafetensorsFile f = kiln::io::SafetensorsFile::open(kWeights);
      for (const auto& e : f.entries()) tensors.emplace_back(e.name, f.tensor(e.name).clone());
    }
    edit(tensors);
    kiln::io::write_safetensors(dir_.file("model.safetensors"), tensors);
  }
  TempDir dir_;
};

TEST_F(BadCheckpoint, Truncated) {
  fs::resize_file(dir_.file("model.safetensors"), fs::file_size(kWeights) / 2);
  expect_refused({"model.safetensors", "runs past the end of the data", "truncated"});
}

TEST_F(BadCheckpoint, HeaderPastTheEnd) {
  std::string bytes = read_file(kWeights).substr(0, 64);
  uint64_t huge = 1u << 20;
  std::memcpy(bytes.data(), &huge, 8);
  write_file(dir_.file("model.safetensors"), bytes);
  expect_refused({"model.safetensors", "header of 1048576 bytes runs past the end of the file (64 bytes)"});
}

TEST_F(BadCheckpoint, WrongDtype) {
  rewrite([](auto& tensors) {
    for (auto& [name, t] : tensors)
      if (name == "encoder.layer.0.attention.self.key.weight") t = kiln::ir::Tensor(kiln::ir::DType::kInt64, t.shape());
  });
  expect_refused({"encoder.layer.0.attention.self.key.weight", "has dtype I64", "F32, F16 or BF16"});
}

TEST_F(BadCheckpoint, MissingTensor) {
  rewrite([](auto& tensors) {
    std::erase_if(tensors, [](const auto& p) { return p.first == "encoder.layer.1.output.dense.weight"; });
  });
  expect_refused({"missing tensor \"encoder.layer.1.output.dense.weight\"", "float[128,512]"});
}

TEST_F(BadCheckpoint, WrongShape) {
  rewrite([](auto& tensors) {
    for (auto& [name, t] : tensors)
      if (name == "encoder.layer.0.intermediate.dense.weight")
        t = kiln::ir::Tensor(kiln::ir::DType::kFloat32, {512, 64});
  });
  expect_refused({"encoder.layer.0.intermediate.dense.weight", "has shape [512,64]", "needs [512,128]"});
}

TEST_F(BadCheckpoint, ConfigWithoutRequiredField) {
  std::string config = read_file(kConfig);
  size_t at = config.find("\"num_attention_heads\"");
  ASSERT_NE(at, std::string::npos);
  config.replace(at, std::string("\"num_attention_heads\"").size(), "\"heads\"");
  write_file(dir_.file("config.json"), config);
  expect_refused({"config.json", "required field \"num_attention_heads\" is missing"});
}

TEST_F(BadCheckpoint, MissingFile) {
  fs::remove(dir_.file("model.safetensors"));
  expect_refused({"model.safetensors"});
}

TEST(ExportCli, UsageErrors) {
  TempDir dir;
  RunResult r = run_kiln({"export", "bert", "-o", dir.file("x.onnx")});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "--config config.json or --preset NAME")) << r.err;
  r = run_kiln({"export", "bert", "--config", kConfig, "-o", dir.file("x.onnx")});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "--random-weights")) << r.err;
  r = run_kiln({"export", "vit", "--preset", "bert-tiny", "-o", dir.file("x.onnx")});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "preset bert-tiny is a bert model, not vit")) << r.err;
  r = run_kiln({"export", "--preset", "bert-huge", "-o", dir.file("x.onnx")});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "unknown preset \"bert-huge\"")) << r.err;
  r = run_kiln({"export", "--preset", "bert-tiny", "--opset", "12", "-o", dir.file("x.onnx")});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "--opset 12 is not supported")) << r.err;
  EXPECT_FALSE(fs::exists(dir.file("x.onnx")));
}

}  // namespace
