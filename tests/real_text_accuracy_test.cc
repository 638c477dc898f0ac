// int8 accuracy on real weights and real text (issue #15): sentence-transformers/all-MiniLM-L6-v2, a trained
// 6-layer BERT, exported from its checkpoint by `kiln export bert`, quantized by `kiln quantize --mode
// int8-dynamic` per tensor and --per-channel and by ONNX Runtime's quantize_dynamic (the peer), each
// validated against fp32 by `kiln validate --text` on 256 sentences of Debian's fortunes-min. The figures
// are of the sentence embeddings: last_hidden_state mean-pooled over the attention mask, as
// sentence-transformers pools it.
//
// `make real-text` fetches the checkpoint and writes the sentences (benchmarks/real-text/prepare.py); without
// them the test skips, saying so. benchmarks/real-text/run.sh prints the same figures as a table.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "ort_peer.h"
#include "test_util.h"

// Named, so that in a unity build its helpers meet no other test file's.
namespace kiln::real_text_accuracy_test {
namespace {

namespace fs = std::filesystem;
using testing::RunResult;
using testing::TempDir;

const std::string kData = testing::source_path("benchmarks/real-text/data");
const std::string kCheckpoint = kData + "/minilm";
const std::string kSentences = kData + "/sentences.txt";
const std::string kPeerPython = testing::source_path("benchmarks/peers/.venv/bin/python");
const std::string kOrtQuantize = testing::source_path("benchmarks/real-text/ort_quantize.py");

// The issue asks for >= 200 sentences; prepare.py selects 256, of 6 to 49 tokens (~3 s of CPU per validation).
constexpr int64_t kMinSentences = 200;

// Issue #15's targets for int8 against fp32 on real sentences.
constexpr double kInt8Cosine = 0.99;
constexpr double kInt8RetrievalPercent = 98;

struct EmbeddingFigures {
  double cosine_mean = 0, cosine_min = 0, retrieval_percent = 0;
  int64_t sentences = 0;
};

std::string describe(const EmbeddingFigures& f) {
  char buf[160];
  std::snprintf(buf, sizeof buf, "cosine mean %.5f, min %.5f, retrieval %.1f %% over %lld sentences", f.cosine_mean,
                f.cosine_min, f.retrieval_percent, static_cast<long long>(f.sentences));
  return buf;
}

// `kiln validate REFERENCE CANDIDATE --text` on the sentences (with the candidate at `precision`, when
// given); the figures of last_hidden_state.
EmbeddingFigures validate_on_sentences(const TempDir& dir, const std::string& reference, const std::string& candidate,
                                       const std::string& precision = "") {
  const std::string json = dir.file(fs::path(candidate).stem().string() + precision + ".json");
  std::vector<std::string> args = {"validate", reference, candidate, "--text", kSentences, "--vocab",
                                   kCheckpoint + "/vocab.txt", "--json", json, "-q"};
  if (!precision.empty()) args.insert(args.end(), {"--precision", precision});
  RunResult r = testing::run_kiln(args, 300);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  if (r.exit_code != 0) return {};
  const nlohmann::json j = nlohmann::json::parse(testing::read_file(json));
  for (const auto& o : j["outputs"]) {
    if (o["name"] != "last_hidden_state") continue;
    EmbeddingFigures f;
    f.cosine_mean = o["embedding_cosine"]["mean"];
    f.cosine_min = o["embedding_cosine"]["min"];
    f.retrieval_percent = o["retrieval"]["percent"];
    f.sentences = o["embedding_cosine"]["rows"];
    EXPECT_EQ(o["retrieval"]["rows"], f.sentences);
    std::printf("[ figures  ] %s%s: %s\n", fs::path(candidate).filename().c_str(),
                precision.empty() ? "" : (" at " + precision).c_str(), describe(f).c_str());
    return f;
  }
  ADD_FAILURE() << "no last_hidden_state in " << json;
  return {};
}

// bf16 (kiln run|bench|validate --precision bf16, or quantize --mode bf16's tag): issue #15's bound is
// cosine >= 0.999 on every output, and retrieval holds. Measured: embedding cosine min 0.99996, retrieval
// 100 % (AMD EPYC Zen 4, avx512). Where the CPU has no faster bfloat16 the candidate runs float32, which
// meets the bound exactly.
TEST(RealTextAccuracy, Bf16AllMiniLmOnFortunesAgainstFp32) {
  if (testing::kSanitizeBuild) GTEST_SKIP() << "runs in the release build only (the same code as the unit tests)";
  if (!fs::exists(kCheckpoint + "/model.safetensors") || !fs::exists(kSentences))
    GTEST_SKIP() << "no all-MiniLM-L6-v2 checkpoint or sentences in " << kData << ": run `make real-text`";
  TempDir dir("kiln_real_text_bf16");
  const std::string fp32 = dir.file("minilm.onnx");
  RunResult e = testing::run_kiln({"export", "bert", "--config", kCheckpoint + "/config.json", "--weights",
                                   kCheckpoint + "/model.safetensors", "-o", fp32, "-q"});
  ASSERT_EQ(e.exit_code, 0) << e.err;
  const EmbeddingFigures b = validate_on_sentences(dir, fp32, fp32, "bf16");
  EXPECT_GE(b.sentences, kMinSentences);
  EXPECT_GE(b.cosine_min, 0.999) << describe(b);
  EXPECT_GE(b.retrieval_percent, kInt8RetrievalPercent) << describe(b);
}

TEST(RealTextAccuracy, Int8AllMiniLmOnFortunesAgainstFp32AndOrtQuantizeDynamic) {
  if (testing::kSanitizeBuild) GTEST_SKIP() << "runs in the release build only (the same code as the unit tests)";
  if (!fs::exists(kCheckpoint + "/model.safetensors") || !fs::exists(kSentences))
    GTEST_SKIP() << "no all-MiniLM-L6-v2 checkpoint or sentences in " << kData << ": run `make real-text`";
  std::string why;
  if (!testing::ort_available(&why)) GTEST_SKIP() << why;

  TempDir dir("kiln_real_text");
  const std::string fp32 = dir.file("minilm.onnx"), per_tensor = dir.file("minilm-int8.onnx"),
                    per_channel = dir.file("minilm-int8-per-channel.onnx"), ort = dir.file("minilm-ort-int8.onnx");
  RunResult e = testing::run_kiln({"export", "bert", "--config", kCheckpoint + "/config.json", "--weights",
                                   kCheckpoint + "/model.safetensors", "-o", fp32, "-q"});
  ASSERT_EQ(e.exit_code, 0) << e.err;
  for (const auto& [out, extra] : {std::pair{per_tensor, ""}, std::pair{per_channel, "--per-channel"}}) {
    std::vector<std::string> args = {"quantize", fp32, "-o", out, "--mode", "int8-dynamic"};
    if (*extra) args.push_back(extra);
    RunResult q = testing::run_kiln(args);
    ASSERT_EQ(q.exit_code, 0) << q.err;
  }
  RunResult o = testing::run_program({kPeerPython, kOrtQuantize, fp32, ort});
  ASSERT_EQ(o.exit_code, 0) << o.err;

  const EmbeddingFigures t = validate_on_sentences(dir, fp32, per_tensor);
  const EmbeddingFigures c = validate_on_sentences(dir, fp32, per_channel);
  const EmbeddingFigures p = validate_on_sentences(dir, fp32, ort);
  for (const EmbeddingFigures* f : {&t, &c, &p}) EXPECT_GE(f->sentences, kMinSentences);

  // Measured (AMD EPYC Zen 4; the same to 4 digits with KILN_CPU_ISA=avx2 and scalar), against issue #15's
  // targets of cosine >= 0.99 and retrieval agreement >= 98 %:
  //
  //                              cosine mean  cosine min  retrieval
  //   kiln per tensor              0.95488      0.89637     68.0 %
  //   kiln --per-channel           0.99076      0.97990     82.8 %
  //   ORT quantize_dynamic         0.95524      0.90170     67.6 %   (per tensor, its default)
  //
  // Per channel meets the cosine target on average. It misses it on the worst sentence (0.980, a gap of
  // 0.010) and misses the retrieval target by 15 points; so does every int8 file here, ORT's per-channel
  // one too (86.7 %, benchmarks/real-text/run.sh): the fortunes are short and unrelated, so a sentence's
  // nearest neighbour under fp32 often leads the next by less than int8 moves an embedding (under 0.01 for
  // 50 of the 256). The floors below hold what is measured, so that a regression shows; they are not the
  // targets, which stay open.
  EXPECT_GE(c.cosine_mean, kInt8Cosine) << describe(c);
  EXPECT_GE(c.cosine_min, 0.975) << describe(c) << " (target " << kInt8Cosine << ", not met yet)";
  EXPECT_GE(c.retrieval_percent, 80) << describe(c) << " (target " << kInt8RetrievalPercent << " %, not met yet)";
  // Per tensor is far from every target (kiln quantize says so and suggests --per-channel).
  EXPECT_GE(t.cosine_mean, 0.95) << describe(t);
  EXPECT_GE(t.cosine_min, 0.89) << describe(t);
  EXPECT_GE(t.retrieval_percent, 64) << describe(t);

  // kiln's int8 is at least as close to fp32 as ONNX Runtime's quantize_dynamic (per tensor, its default):
  // --per-channel, the mode kiln quantize recommends for trained models, on every figure.
  EXPECT_GE(c.cosine_mean, p.cosine_mean) << "kiln per channel: " << describe(c) << "; ORT: " << describe(p);
  EXPECT_GE(c.cosine_min, p.cosine_min) << "kiln per channel: " << describe(c) << "; ORT: " << describe(p);
  EXPECT_GE(c.retrieval_percent, p.retrieval_percent)
      << "kiln per channel: " << describe(c) << "; ORT: " << describe(p);
  // kiln's per-tensor file is ORT's scheme and lands next to it, but not at or above it on every figure
  // (mean 0.0004 and min 0.005 below, retrieval 0.4 points above): held to within 0.002 in mean cosine.
  EXPECT_NEAR(t.cosine_mean, p.cosine_mean, 0.002) << "kiln per tensor: " << describe(t) << "; ORT: " << describe(p);
}

}  // namespace
}  // namespace kiln::real_text_accuracy_test
