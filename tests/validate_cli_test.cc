// Black-box tests of `kiln validate`: a model against itself (the bundled BERT), against a copy with one
// weight changed (figures checked against hand-computed values, per output and per layer), inputs from a
// folder or from lines of text, and refusals of bad input with one error line.
#include <gtest/gtest.h>

#include <algorithm>
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
using kiln::ir::DType;
using kiln::ir::Tensor;
using onnx::TensorProto;

const std::string kBert = source_path("tests/data/bert-tiny/model.onnx");

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// Logits of 6 classes from x [batch, 4]: y = x W (+ 0, so that the MatMul's output is an intermediate value
// a per-layer run can compare). With x's rows the unit vectors, row r of y is row r of W.
const std::vector<float> kWeights = {2, 1,    0.5f, 0.25f, -1,    -2,     //
                                     0, 3,    1,    -1,    0.5f,  0.25f,  //
                                     1, 0.5f, 4,    0,     -0.5f, 2,      //
                                     1, 1,    1,    1,     1,     1};
constexpr float kReferenceW01 = 1, kCandidateW01 = 2.5f;

std::string save_classifier(const TempDir& dir, const std::string& name, std::vector<float> weights,
                            const std::string& output = "logits", int64_t classes = 6) {
  onnx::ModelProto m = new_model();
  auto* g = m.mutable_graph();
  add_input(g, "x", TensorProto::FLOAT, {"batch", 4});
  weights.resize(static_cast<size_t>(4 * classes), 0.0f);
  add_float_initializer(g, "w", {4, classes}, weights);
  add_float_initializer(g, "zero", {classes}, std::vector<float>(static_cast<size_t>(classes), 0.0f));
  add_node(g, "MatMul", {"x", "w"}, {"h"}, "matmul");
  add_node(g, "Add", {"h", "zero"}, {output}, "add");
  add_output(g, output, TensorProto::FLOAT, {"batch", classes});
  const std::string path = dir.file(name);
  save(m, path);
  return path;
}

// The three unit vectors e0, e1, e2 as x [3, 4].
void write_unit_rows(const std::string& folder) {
  fs::create_directories(folder);
  kiln::io::write_npy((fs::path(folder) / "x.npy").string(),
                      Tensor::from_vector<float>({1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0}, {3, 4}));
}

struct Pair {
  TempDir dir{"kiln_validate"};
  std::string reference, candidate, inputs;
  Pair() {
    std::vector<float> changed = kWeights;
    changed[1] = kCandidateW01;
    reference = save_classifier(dir, "reference.onnx", kWeights);
    candidate = save_classifier(dir, "candidate.onnx", changed);
    inputs = dir.file("inputs");
    write_unit_rows(inputs);
  }
};

TEST(ValidateCli, Help) {
  RunResult r = run_kiln({"validate", "--help"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  for (const char* part :
       {"--inputs", "--samples", "--seed", "--per-layer", "--json", "--threads", "--level", "max rel", "cosine",
        "top-5", "retrieval", "growth", "--text", "--vocab", "--max-length", "attention_mask", "emb cos"})
    EXPECT_TRUE(contains(r.out, part)) << part << " missing from:\n" << r.out;
}

TEST(ValidateCli, BertAgainstItself) {
  TempDir dir("kiln_validate");
  RunResult r = run_kiln(
      {"validate", kBert, kBert, "--samples", "2", "--seq", "16", "--threads", "1", "--json", dir.file("v.json")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* part : {"2 generated samples (seeds 0..1), batch 1, sequence 16", "cpu ", "1 thread(s)", "max abs",
                           "last_hidden_state", "pooler_output"})
    EXPECT_TRUE(contains(r.out, part)) << part << " missing from:\n" << r.out;
  nlohmann::json j = nlohmann::json::parse(read_file(dir.file("v.json")));
  ASSERT_EQ(j["outputs"].size(), 2u) << j.dump(1);
  for (const auto& o : j["outputs"]) {
    EXPECT_TRUE(o["compared"].get<bool>()) << o.dump();
    EXPECT_EQ(o["max_abs_error"], 0.0) << o.dump();
    EXPECT_EQ(o["cosine"], 1.0) << o.dump();
    EXPECT_EQ(o["cosine_min"], 1.0) << o.dump();
    EXPECT_EQ(o["top1"]["percent"], 100.0) << o.dump();
    EXPECT_TRUE(o["retrieval"]["percent"].is_null()) << o.dump();  // 2 rows
  }
  EXPECT_FALSE(fs::exists(dir.file("v.json.tmp")));
}

// --precision bf16 runs the candidate's products in bfloat16 where the CPU has it (the reference stays
// float32): the same file then differs from itself by bf16's rounding, within its bound.
TEST(ValidateCli, CandidatePrecision) {
  TempDir dir("kiln_validate");
  RunResult r = run_kiln({"validate", kBert, kBert, "--samples", "2", "--seq", "16", "--threads", "1", "--precision",
                          "bf16", "--json", dir.file("v.json")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  nlohmann::json j = nlohmann::json::parse(read_file(dir.file("v.json")));
  const bool bf16 = j["candidate_precision"] == "bf16";
  EXPECT_TRUE(contains(r.out, bf16 ? "the candidate's products in bf16" : "the candidate's products in fp32")) << r.out;
  for (const auto& o : j["outputs"]) {
    EXPECT_GE(o["cosine_min"].get<double>(), 0.999) << o.dump();
    if (bf16) {
      EXPECT_GT(o["max_abs_error"].get<double>(), 0.0) << o.dump();
    } else {
      EXPECT_EQ(o["max_abs_error"].get<double>(), 0.0) << o.dump();
    }
  }
  RunResult bad = run_kiln({"validate", kBert, kBert, "--precision", "int8"});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_TRUE(contains(bad.err, "--precision")) << bad.err;
}

TEST(ValidateCli, ChangedWeightGivesTheExpectedError) {
  Pair p;
  RunResult r = run_kiln(
      {"validate", p.reference, p.candidate, "--inputs", p.inputs, "--threads", "1", "--json", p.dir.file("v.json")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "1 sample from " + p.inputs)) << r.out;
  nlohmann::json j = nlohmann::json::parse(read_file(p.dir.file("v.json")));
  ASSERT_EQ(j["outputs"].size(), 1u);
  const auto& o = j["outputs"][0];
  // Only y[0][1] changes, from 1 to 2.5.
  const double d = kCandidateW01 - kReferenceW01;
  EXPECT_DOUBLE_EQ(o["max_abs_error"].get<double>(), d);
  EXPECT_DOUBLE_EQ(o["max_rel_error"].get<double>(), d / kReferenceW01);
  EXPECT_DOUBLE_EQ(o["mean_abs_error"].get<double>(), d / 18);
  double squares = 0;  // of the reference's rows 0..2
  for (size_t i = 0; i < 18; ++i) squares += static_cast<double>(kWeights[i]) * kWeights[i];
  // a.b = |a|^2 + 1 x 1.5; |b|^2 = |a|^2 - 1 + 2.5^2.
  const double cosine = (squares + d) / std::sqrt(squares * (squares - 1 + 6.25));
  EXPECT_NEAR(o["cosine"].get<double>(), cosine, 1e-12);
  EXPECT_NEAR(o["cosine_min"].get<double>(), cosine, 1e-12);
  EXPECT_NEAR(o["rel_l2_error"].get<double>(), d / std::sqrt(squares), 1e-12);
  // Row 0's argmax moves from class 0 to class 1, which leaves class 0 second.
  EXPECT_EQ(o["top1"]["agreeing"], 2);
  EXPECT_EQ(o["top1"]["rows"], 3);
  EXPECT_EQ(o["top5"]["agreeing"], 3);
  // Nearest rows by cosine: reference 0 -> 1, 1 -> 2, 2 -> 1; candidate 0 -> 1, 1 -> 0 (0.509 against 0.369),
  // 2 -> 1.
  EXPECT_EQ(o["retrieval"]["agreeing"], 2);
  EXPECT_EQ(o["retrieval"]["rows"], 3);
  EXPECT_TRUE(contains(r.out, "66.7")) << r.out;
}

TEST(ValidateCli, PerLayerNamesTheNodeWhereTheErrorGrows) {
  Pair p;
  RunResult r = run_kiln({"validate", p.reference, p.candidate, "--inputs", p.inputs, "--per-layer", "--threads", "1",
                          "--json", p.dir.file("v.json")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "where the error grows most")) << r.out;
  EXPECT_TRUE(contains(r.out, "matmul  MatMul")) << r.out;
  nlohmann::json j = nlohmann::json::parse(read_file(p.dir.file("v.json")));
  const auto& layers = j["per_layer"];
  ASSERT_EQ(layers["values"].size(), 2u) << layers.dump(1);
  EXPECT_EQ(layers["values"][0]["name"], "h");
  EXPECT_EQ(layers["values"][0]["node"], "matmul");
  EXPECT_EQ(layers["values"][0]["op"], "MatMul");
  EXPECT_EQ(layers["values"][1]["name"], "logits");
  // Adding zeros adds no error: all of it grows at the MatMul.
  EXPECT_NEAR(layers["values"][1]["growth"].get<double>(), 0, 1e-12);
  EXPECT_GT(layers["values"][0]["growth"].get<double>(), 0);
  EXPECT_EQ(layers["where_error_grows"], nlohmann::json::array({"h"}));
}

TEST(ValidateCli, SamplesFromSubfolders) {
  Pair p;
  const std::string folders = p.dir.file("samples");
  write_unit_rows(folders + "/b");
  write_unit_rows(folders + "/a");
  RunResult r = run_kiln({"validate", p.reference, p.candidate, "--inputs", folders, "--threads", "1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "2 samples from the subfolders of " + folders)) << r.out;
}

TEST(ValidateCli, ShapeMismatchIsReportedNotFatal) {
  TempDir dir("kiln_validate");
  const std::string reference = save_classifier(dir, "six.onnx", kWeights);
  const std::string candidate = save_classifier(dir, "five.onnx", kWeights, "logits", 5);
  RunResult r = run_kiln({"validate", reference, candidate, "--samples", "1", "--threads", "1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "not compared: shape mismatch: reference [1,6], candidate [1,5]")) << r.out;
}

void expect_error(const std::vector<std::string>& args, const std::string& message) {
  RunResult r = run_kiln(args);
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_TRUE(contains(r.err, "kiln: error: " + message)) << "want: " << message << "\ngot: " << r.err;
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
}

const std::string kVocab = source_path("tests/data/tokenizer/vocab.json");

// Four sentences, a blank line (skipped) and a line end in Windows style.
std::string write_sentences(const TempDir& dir) {
  const std::string path = dir.file("sentences.txt");
  write_file(path,
             "The kiln fires the clay.\n\nA fast engine, proven with numbers.\r\nThe weather is cold today.\n"
             "Ovens and kilns both get hot.\n");
  return path;
}

TEST(ValidateCli, TextSamplesOneSentenceEach) {
  TempDir dir("kiln_validate");
  const std::string text = write_sentences(dir);
  const std::string quantized = dir.file("int8.onnx");
  RunResult q = run_kiln({"quantize", kBert, "-o", quantized, "--mode", "int8-dynamic"});
  ASSERT_EQ(q.exit_code, 0) << q.err;
  RunResult r = run_kiln({"validate", kBert, quantized, "--text", text, "--vocab", kVocab, "--max-length", "11",
                          "--threads", "1", "--json", dir.file("v.json")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // [CLS] the ki ##ln fires the clay . [SEP]: 9 tokens; then 10, 8, and 12 cut to 11 ("oven ##s and ki ##ln ##s
  // both get hot .").
  EXPECT_TRUE(contains(r.out, "4 lines of " + text + " (one sample each, batch 1), tokenized with " + kVocab +
                                  ": 8 to 11 tokens, mean 9.5, 1 cut to --max-length 11"))
      << r.out;
  EXPECT_TRUE(contains(r.out, "emb cos min")) << r.out;
  nlohmann::json j = nlohmann::json::parse(read_file(dir.file("v.json")));
  EXPECT_EQ(j["samples"], 4);
  EXPECT_EQ(j["text"], text);
  EXPECT_EQ(j["vocab"], kVocab);
  EXPECT_EQ(j["max_length"], 11);
  EXPECT_FALSE(j.contains("seed"));
  for (const auto& o : j["outputs"]) {
    ASSERT_TRUE(o["compared"].get<bool>()) << o.dump();
    // One sentence embedding per sample: last_hidden_state [1, tokens, 128] pooled, pooler_output as is.
    const auto& e = o["embedding_cosine"];
    ASSERT_EQ(e["rows"], 4) << o.dump();
    ASSERT_EQ(e["per_row"].size(), 4u);
    double lowest = 1, sum = 0;
    for (const auto& c : e["per_row"]) {
      lowest = std::min(lowest, c.get<double>());
      sum += c.get<double>();
    }
    EXPECT_DOUBLE_EQ(e["min"].get<double>(), lowest);
    EXPECT_NEAR(e["mean"].get<double>(), sum / 4, 1e-12);
    EXPECT_GT(lowest, 0.9) << o.dump();  // int8 of a random-weight BERT: close, not exact
    EXPECT_LT(lowest, 1.0) << o.dump();
    EXPECT_EQ(o["retrieval"]["rows"], 4) << o.dump();
  }
  EXPECT_EQ(j["outputs"][0]["name"], "last_hidden_state");
  EXPECT_EQ(j["outputs"][0]["reference_type"], "float32[1,9,128]");  // the first line's
}

TEST(ValidateCli, TextErrors) {
  TempDir dir("kiln_validate");
  const std::string text = write_sentences(dir);
  expect_error({"validate", kBert, kBert, "--text", dir.file("none.txt"), "--vocab", kVocab, "-q"},
               "--text " + dir.file("none.txt") + ": no such file");
  const std::string blank = dir.file("blank.txt");
  write_file(blank, "\n  \n\t\n");
  expect_error({"validate", kBert, kBert, "--text", blank, "--vocab", kVocab, "-q"},
               "--text " + blank + ": no text (one sample per line; blank lines are skipped)");
  expect_error({"validate", kBert, kBert, "--text", text, "-q"},
               "--text needs the model's vocabulary: give it with --vocab vocab.txt");
  expect_error({"validate", kBert, kBert, "--text", text, "--vocab", dir.file("vocab.txt"), "-q"},
               "--vocab " + dir.file("vocab.txt") + ": no such file");
  expect_error({"validate", kBert, kBert, "--vocab", kVocab, "-q"},
               "--vocab is used with --text FILE; give the text to tokenize");
  // A model that takes input_ids and something text cannot give.
  onnx::ModelProto m = new_model();
  auto* g = m.mutable_graph();
  add_input(g, "input_ids", TensorProto::INT64, {"batch", "sequence"});
  add_input(g, "pixel_values", TensorProto::FLOAT, {"batch", 3});
  add_node(g, "Identity", {"input_ids"}, {"ids"}, "ids");
  add_node(g, "Identity", {"pixel_values"}, {"pixels"}, "pixels");
  add_output(g, "ids", TensorProto::INT64, {"batch", "sequence"});
  add_output(g, "pixels", TensorProto::FLOAT, {"batch", 3});
  const std::string mixed = dir.file("mixed.onnx");
  save(m, mixed);
  expect_error({"validate", mixed, mixed, "--text", text, "--vocab", kVocab, "-q"},
               "--text: cannot feed the model's input \"pixel_values\" (float32[batch,3]): text gives only int64 or "
               "int32 input_ids, attention_mask and token_type_ids; give the inputs with --inputs DIR");
  Pair p;  // a model of one float input "x"
  expect_error({"validate", p.reference, p.candidate, "--text", text, "--vocab", kVocab, "-q"},
               "--text: the model has no input_ids input to feed tokens to (its inputs: x); give its inputs with "
               "--inputs DIR");
}

TEST(ValidateCli, Errors) {
  Pair p;
  expect_error({"validate", p.dir.file("none.onnx"), p.candidate, "-q"},
               "reference model " + p.dir.file("none.onnx") + ": no such file");
  expect_error({"validate", p.reference, p.dir.file("none.onnx"), "-q"},
               "candidate model " + p.dir.file("none.onnx") + ": no such file");

  const std::string other = save_classifier(p.dir, "other.onnx", kWeights, "scores");
  expect_error({"validate", p.reference, other, "-q"}, p.reference + " and " + other + " share no output name");

  const std::string missing = p.dir.file("empty");
  fs::create_directories(missing);
  expect_error({"validate", p.reference, p.candidate, "--inputs", missing, "-q"},
               "--inputs " + missing + ": no x.npy for input \"x\"");
  expect_error({"validate", p.reference, p.candidate, "--inputs", p.dir.file("nowhere"), "-q"},
               "--inputs " + p.dir.file("nowhere") + ": no such folder");

  const std::string wide = p.dir.file("wide");
  fs::create_directories(wide);
  kiln::io::write_npy(wide + "/x.npy", Tensor(DType::kFloat32, {3, 5}));
  expect_error({"validate", p.reference, p.candidate, "--inputs", wide, "-q"},
               "--inputs " + wide + "/x.npy: input \"x\" must be float32[batch,4], got float32[3,5] (dim 1)");

  const std::string ints = p.dir.file("ints");
  fs::create_directories(ints);
  kiln::io::write_npy(ints + "/x.npy", Tensor(DType::kInt64, {3, 4}));
  expect_error({"validate", p.reference, p.candidate, "--inputs", ints, "-q"},
               "--inputs " + ints + "/x.npy: input \"x\" must be float32[batch,4], got int64[3,4]");
}

TEST(ValidateCli, OutputMissingFromOneModel) {
  TempDir dir("kiln_validate");
  const std::string reference = save_classifier(dir, "reference.onnx", kWeights);
  onnx::ModelProto m = new_model();
  auto* g = m.mutable_graph();
  add_input(g, "x", TensorProto::FLOAT, {"batch", 4});
  add_node(g, "Identity", {"x"}, {"logits"}, "id");
  add_node(g, "Relu", {"x"}, {"extra"}, "relu");
  add_output(g, "logits", TensorProto::FLOAT, {"batch", 4});
  add_output(g, "extra", TensorProto::FLOAT, {"batch", 4});
  const std::string candidate = dir.file("candidate.onnx");
  save(m, candidate);
  expect_error({"validate", reference, candidate, "-q"},
               "reference " + reference + " has no output \"extra\" (an output of the candidate " + candidate + ")");
}

}  // namespace
