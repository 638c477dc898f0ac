// kiln bench: the percentile definition (nearest rank) against hand-computed values, generated inputs
// (batch and sequence dims, token ids within the vocabulary, masks, token types), .npz inputs, and the
// `kiln bench` program end to end on the bundled bert-tiny, alone and against ONNX Runtime.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <numeric>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "bench/bench_inputs.h"
#include "bench/latency_stats.h"
#include "common/error.h"
#include "io/npy.h"
#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/onednn_matmul.h"
#include "onnx/model_io.h"
#include "ort_peer.h"
#include "runtime/threads.h"
#include "test_util.h"

namespace {

namespace fs = std::filesystem;
using namespace kiln;
using namespace kiln::testing;

const std::string kBert = source_path("tests/data/bert-tiny/model.onnx");
const std::string kBertInputs = source_path("tests/data/bert-tiny/inputs");

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// ---- percentiles ----

TEST(BenchStats, NearestRankPercentiles) {
  // The textbook example: 15 20 35 40 50 -> p30 = 20 (rank ceil(1.5) = 2), p40 = 20 (rank 2), p50 = 35
  // (rank ceil(2.5) = 3), p100 = 50; p0 clamps to the first value.
  const std::vector<double> v = {15, 20, 35, 40, 50};
  EXPECT_EQ(bench::percentile(v, 0), 15);
  EXPECT_EQ(bench::percentile(v, 5), 15);
  EXPECT_EQ(bench::percentile(v, 30), 20);
  EXPECT_EQ(bench::percentile(v, 40), 20);
  EXPECT_EQ(bench::percentile(v, 50), 35);
  EXPECT_EQ(bench::percentile(v, 99), 50);
  EXPECT_EQ(bench::percentile(v, 100), 50);
  EXPECT_EQ(bench::percentile({7}, 50), 7);
}

TEST(BenchStats, SummarizeUnsortedSamples) {
  std::vector<double> v(100);
  std::iota(v.begin(), v.end(), 1.0);  // 1 .. 100
  std::shuffle(v.begin(), v.end(), std::mt19937(3));
  bench::LatencyStats s = bench::summarize(v);
  EXPECT_EQ(s.count, 100);
  EXPECT_EQ(s.min_ms, 1);
  EXPECT_EQ(s.max_ms, 100);
  EXPECT_DOUBLE_EQ(s.mean_ms, 50.5);
  EXPECT_EQ(s.p50_ms, 50);
  EXPECT_EQ(s.p90_ms, 90);
  EXPECT_EQ(s.p95_ms, 95);
  EXPECT_EQ(s.p99_ms, 99);

  // Ten samples: p90 is the 9th, p95 and p99 the 10th (the maximum).
  bench::LatencyStats t = bench::summarize({10, 9, 8, 7, 6, 5, 4, 3, 2, 1});
  EXPECT_EQ(t.p50_ms, 5);
  EXPECT_EQ(t.p90_ms, 9);
  EXPECT_EQ(t.p95_ms, 10);
  EXPECT_EQ(t.p99_ms, 10);
  EXPECT_EQ(bench::summarize({}).count, 0);
}

TEST(BenchStats, Median) {
  EXPECT_EQ(bench::median({3, 1, 2}), 2);
  EXPECT_EQ(bench::median({4, 1, 3, 2}), 2.5);
  EXPECT_EQ(bench::median({}), 0);
}

// ---- generated inputs ----

ir::ValueInfo tensor_input(const std::string& name, ir::DType dtype, std::vector<ir::Dim> dims) {
  return {name, ir::Type::tensor(dtype, ir::Shape(std::move(dims))), ""};
}

ir::Node node(const std::string& op, std::vector<std::string> inputs, std::vector<std::string> outputs) {
  ir::Node n;
  n.op_type = op;
  n.inputs = std::move(inputs);
  n.outputs = std::move(outputs);
  return n;
}

// input_ids, attention_mask, token_type_ids [batch, sequence]; the ids reach a [50, 4] embedding table
// through a Cast.
ir::Graph bert_like_graph() {
  ir::Graph g;
  const std::vector<ir::Dim> dims = {ir::Dim::symbolic("batch"), ir::Dim::symbolic("sequence")};
  g.inputs = {tensor_input("input_ids", ir::DType::kInt64, dims),
              tensor_input("attention_mask", ir::DType::kInt64, dims),
              tensor_input("token_type_ids", ir::DType::kInt64, dims)};
  g.add_initializer("word_embeddings", ir::Tensor(ir::DType::kFloat32, {50, 4}));
  g.nodes = {node("Cast", {"input_ids"}, {"ids32"}), node("Gather", {"word_embeddings", "ids32"}, {"words"})};
  return g;
}

TEST(BenchInputs, BertLikeInputs) {
  bench::InputPlan plan = bench::plan_inputs(bert_like_graph());
  ASSERT_EQ(plan.inputs.size(), 3u);
  EXPECT_EQ(plan.batch_dim, "batch");
  EXPECT_EQ(plan.seq_dim, "sequence");
  EXPECT_EQ(plan.inputs[0].kind, bench::InputKind::kTokenIds);
  EXPECT_EQ(plan.inputs[0].vocab, 50);
  EXPECT_FALSE(plan.inputs[0].vocab_guessed);
  EXPECT_EQ(plan.inputs[1].kind, bench::InputKind::kMask);
  EXPECT_EQ(plan.inputs[2].kind, bench::InputKind::kTokenType);

  std::vector<ir::Tensor> t = bench::generate_inputs(plan, 3, 40, 7);
  ASSERT_EQ(t.size(), 3u);
  int64_t max_id = 0;
  for (const auto& x : t) EXPECT_EQ(x.shape(), (std::vector<int64_t>{3, 40}));
  for (int64_t i = 0; i < t[0].numel(); ++i) {
    const int64_t id = t[0].data<int64_t>()[i];
    EXPECT_GE(id, 0);
    EXPECT_LT(id, 50);
    max_id = std::max(max_id, id);
    EXPECT_EQ(t[1].data<int64_t>()[i], 1);
    EXPECT_EQ(t[2].data<int64_t>()[i], 0);
  }
  EXPECT_GE(max_id, 40);  // 120 draws from [0, 50): the whole vocabulary is used, not a small prefix

  // Deterministic for a seed.
  EXPECT_TRUE(bench::generate_inputs(plan, 3, 40, 7)[0].bitwise_equal(t[0]));
}

TEST(BenchInputs, VocabularyFallsBackWithoutEmbedding) {
  ir::Graph g;
  g.inputs = {tensor_input("ids", ir::DType::kInt32, {ir::Dim::symbolic("N"), ir::Dim::symbolic("T")})};
  g.nodes = {node("Relu", {"ids"}, {"y"})};
  bench::InputPlan plan = bench::plan_inputs(g);
  ASSERT_EQ(plan.inputs.size(), 1u);
  EXPECT_EQ(plan.inputs[0].vocab, bench::kFallbackVocabSize);
  EXPECT_TRUE(plan.inputs[0].vocab_guessed);
  // No dim named like a sequence: the first symbolic dim is the batch, the second the sequence.
  EXPECT_EQ(plan.batch_dim, "N");
  EXPECT_EQ(plan.seq_dim, "T");
  ir::Tensor t = bench::generate_inputs(plan, 2, 5)[0];
  EXPECT_EQ(t.shape(), (std::vector<int64_t>{2, 5}));
  for (int64_t i = 0; i < t.numel(); ++i) EXPECT_LT(t.data<int32_t>()[i], bench::kFallbackVocabSize);
}

TEST(BenchInputs, SequenceDimFoundByName) {
  ir::Graph g;
  g.inputs = {
      tensor_input("input_ids", ir::DType::kInt64, {ir::Dim::symbolic("seq_len"), ir::Dim::symbolic("batch_size"), 4})};
  bench::InputPlan plan = bench::plan_inputs(g);
  EXPECT_EQ(plan.seq_dim, "seq_len");
  EXPECT_EQ(plan.batch_dim, "batch_size");
  EXPECT_EQ(bench::bench_shape(plan, plan.inputs[0], 2, 9), (std::vector<int64_t>{9, 2, 4}));
}

// Unnamed dims at one axis of two inputs are only guessed to be one size: given inputs that differ there
// (silero-vad: audio [1, 512], state [2, 1, 128]) are taken as they are; named ones must agree.
TEST(BenchInputs, GivenInputsMayDifferInUnnamedDims) {
  ir::Graph g;
  g.inputs = {tensor_input("input", ir::DType::kFloat32, {ir::Dim(), ir::Dim()}),
              tensor_input("state", ir::DType::kFloat32, {2, ir::Dim(), 128})};
  bench::InputPlan plan = bench::plan_inputs(g);
  std::vector<ir::Tensor> given = {ir::Tensor(ir::DType::kFloat32, {1, 512}), ir::Tensor(ir::DType::kFloat32, {2, 1, 128})};
  EXPECT_NO_THROW(bench::bound_sizes(plan, given));

  g.inputs = {tensor_input("a", ir::DType::kFloat32, {ir::Dim::symbolic("n"), 4}),
              tensor_input("b", ir::DType::kFloat32, {ir::Dim::symbolic("n"), 4})};
  plan = bench::plan_inputs(g);
  given = {ir::Tensor(ir::DType::kFloat32, {2, 4}), ir::Tensor(ir::DType::kFloat32, {3, 4})};
  try {
    bench::bound_sizes(plan, given);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("input \"b\" has n = 3 (dim 0), but an earlier input has n = 2"),
              std::string::npos)
        << e.what();
  }
}

TEST(BenchInputs, ImageModelHasNoSequence) {
  ir::Graph g;
  g.inputs = {tensor_input("pixel_values", ir::DType::kFloat32,
                           {ir::Dim::symbolic("batch"), 3, ir::Dim::symbolic("height"), ir::Dim::symbolic("width")})};
  bench::InputPlan plan = bench::plan_inputs(g);
  EXPECT_EQ(plan.batch_dim, "batch");
  EXPECT_FALSE(plan.has_seq());
  ir::Tensor t = bench::generate_inputs(plan, 2, 128)[0];
  EXPECT_EQ(t.shape(), (std::vector<int64_t>{2, 3, 1, 1}));

  // Float inputs are ~N(0, 1).
  g.inputs = {tensor_input("pixel_values", ir::DType::kFloat32, {ir::Dim::symbolic("batch"), 3, 32, 32})};
  plan = bench::plan_inputs(g);
  t = bench::generate_inputs(plan, 4, 1)[0];
  double sum = 0, sq = 0;
  for (int64_t i = 0; i < t.numel(); ++i) {
    sum += t.data<float>()[i];
    sq += t.data<float>()[i] * t.data<float>()[i];
  }
  const double n = static_cast<double>(t.numel()), mean = sum / n;
  EXPECT_NEAR(mean, 0, 0.1);
  EXPECT_NEAR(std::sqrt(sq / n - mean * mean), 1, 0.1);
}

TEST(BenchInputs, BertTinyVocabularyFromItsEmbedding) {
  ir::Model m = onnx_io::load_model(kBert);
  bench::InputPlan plan = bench::plan_inputs(m.graph);
  ASSERT_EQ(plan.inputs[0].info.name, "input_ids");
  EXPECT_FALSE(plan.inputs[0].vocab_guessed);
  // The table the ids index, found here independently: the Gather whose indices are input_ids.
  int64_t rows = 0;
  for (const auto& n : m.graph.nodes)
    if (n.op_type == "Gather" && n.inputs[1] == "input_ids") rows = m.graph.find_initializer(n.inputs[0])->dim(0);
  ASSERT_GT(rows, 0);
  EXPECT_EQ(plan.inputs[0].vocab, rows);
}

// ---- .npz inputs ----

std::string le(uint64_t v, int bytes) {
  std::string s;
  for (int i = 0; i < bytes; ++i) s += static_cast<char>((v >> (8 * i)) & 0xff);
  return s;
}

// A zip archive as np.savez writes it (members stored), without CRCs (the reader does not check them).
std::string make_zip(const std::vector<std::pair<std::string, std::string>>& members, uint16_t method = 0) {
  std::string out, dir;
  for (const auto& [name, data] : members) {
    const uint64_t offset = out.size();
    out += le(0x04034b50, 4) + le(20, 2) + le(0, 2) + le(method, 2) + le(0, 4) + le(0, 4) + le(data.size(), 4) +
           le(data.size(), 4) + le(name.size(), 2) + le(0, 2) + name + data;
    dir += le(0x02014b50, 4) + le(20, 2) + le(20, 2) + le(0, 2) + le(method, 2) + le(0, 4) + le(0, 4) +
           le(data.size(), 4) + le(data.size(), 4) + le(name.size(), 2) + le(0, 2) + le(0, 2) + le(0, 2) + le(0, 2) +
           le(0, 4) + le(offset, 4) + name;
  }
  const uint64_t dir_offset = out.size();
  out += dir;
  out += le(0x06054b50, 4) + le(0, 2) + le(0, 2) + le(members.size(), 2) + le(members.size(), 2) + le(dir.size(), 4) +
         le(dir_offset, 4) + le(0, 2);
  return out;
}

TEST(BenchInputs, ReadsNpz) {
  TempDir dir;
  ir::Tensor a = ir::Tensor::from_vector<int64_t>({1, 2, 3, 4, 5, 6}, {2, 3});
  ir::Tensor b = ir::Tensor::from_vector<float>({0.5f, -1.5f}, {2});
  write_file(dir.file("x.npz"), make_zip({{"input_ids.npy", io::serialize_npy(a)}, {"b.npy", io::serialize_npy(b)}}));
  auto members = bench::read_npz(dir.file("x.npz"));
  ASSERT_EQ(members.size(), 2u);
  EXPECT_TRUE(members.at("input_ids").bitwise_equal(a));
  EXPECT_TRUE(members.at("b").bitwise_equal(b));

  write_file(dir.file("c.npz"), make_zip({{"b.npy", io::serialize_npy(b)}}, 8));
  try {
    bench::read_npz(dir.file("c.npz"));
    FAIL() << "a compressed member was accepted";
  } catch (const Error& e) {
    EXPECT_TRUE(contains(e.what(), "np.savez")) << e.what();
  }
  write_file(dir.file("d.npz"), "not a zip at all");
  EXPECT_THROW(bench::read_npz(dir.file("d.npz")), Error);
}

// ---- the kiln bench program ----
// One intra-op thread where the count does not matter: on a loaded machine, OpenMP threads waiting for
// a core make every call slow.

TEST(BenchCli, Help) {
  RunResult r = run_kiln({"bench", "--help"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  for (const char* opt : {"--batch", "--seq", "--threads", "--warmup", "--iterations", "--duration", "--concurrency",
                          "--inputs", "--input-dir", "--level", "--json", "--vs", "--rounds", "nearest-rank"})
    EXPECT_TRUE(contains(r.out, opt)) << opt << " missing from:\n" << r.out;
}

void expect_sane_result(const nlohmann::json& c) {
  for (const char* f : {"engine", "batch", "seq", "threads", "iterations", "p50_ms", "p90_ms", "p95_ms", "p99_ms",
                        "mean_ms", "min_ms", "max_ms", "throughput_items_per_s", "throughput_inferences_per_s",
                        "peak_rss_mb", "load_ms", "first_ms", "model_size_mb", "per_round"})
    ASSERT_TRUE(c.contains(f)) << f << " missing from " << c.dump();
  EXPECT_LE(c["min_ms"].get<double>(), c["p50_ms"].get<double>());
  EXPECT_LE(c["p50_ms"].get<double>(), c["p90_ms"].get<double>());
  EXPECT_LE(c["p90_ms"].get<double>(), c["p95_ms"].get<double>());
  EXPECT_LE(c["p95_ms"].get<double>(), c["p99_ms"].get<double>());
  EXPECT_LE(c["p99_ms"].get<double>(), c["max_ms"].get<double>());
  EXPECT_GT(c["throughput_inferences_per_s"].get<double>(), 0);
  EXPECT_NEAR(c["throughput_items_per_s"].get<double>(),
              c["throughput_inferences_per_s"].get<double>() * c["batch"].get<double>(), 1e-6);
  EXPECT_GT(c["load_ms"].get<double>(), 0);
  EXPECT_GT(c["first_ms"].get<double>(), 0);
  EXPECT_GT(c["peak_rss_mb"].get<double>(), 1);
  EXPECT_NEAR(c["model_size_mb"].get<double>(), static_cast<double>(fs::file_size(kBert)) / (1 << 20), 0.01);
}

TEST(BenchCli, BertTinyJson) {
  TempDir dir;
  RunResult r = run_kiln({"bench", kBert, "--batch", "1,2", "--seq", "8", "--iterations", "3", "--warmup", "1",
                          "--threads", "1", "--json", dir.file("out.json")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "p50 ms")) << r.out;
  nlohmann::json j = nlohmann::json::parse(read_file(dir.file("out.json")));
  EXPECT_EQ(j["percentile_method"], "nearest-rank");
  // What ran the kernels, as this process (same environment) would choose it.
  EXPECT_EQ(j["cpu_isa"], kernels::cpu::isa_name(kernels::cpu::selected_isa()));
  EXPECT_EQ(j["gemm"], kernels::cpu::gemm_engine_name(kernels::cpu::auto_gemm_engine()));
  EXPECT_TRUE(contains(r.out, str("matmuls: ", j["gemm"].get<std::string>(), " (KILN_GEMM)"))) << r.out;
  ASSERT_EQ(j["results"].size(), 2u) << j.dump(1);
  for (size_t i = 0; i < 2; ++i) {
    const auto& c = j["results"][i];
    expect_sane_result(c);
    EXPECT_EQ(c["engine"], "kiln");
    EXPECT_EQ(c["batch"], i + 1);
    EXPECT_EQ(c["seq"], 8);
    EXPECT_EQ(c["threads"], 1);
    EXPECT_EQ(c["iterations"], 3);
    ASSERT_EQ(c["per_round"].size(), 1u);
    EXPECT_EQ(c["per_round"][0]["latencies_ms"].size(), 3u);
  }
  EXPECT_FALSE(j.contains("comparisons"));
}

TEST(BenchCli, RefusesAnUnknownGemmEngine) {
  kernels::cpu::auto_gemm_engine();  // this process reads KILN_GEMM once, before the change below
  const char* user_value = std::getenv("KILN_GEMM");
  const std::string saved = user_value == nullptr ? "" : user_value;
  ::setenv("KILN_GEMM", "blas", 1);
  RunResult r = run_kiln({"bench", kBert, "--iterations", "1", "--warmup", "0", "-q"});
  if (user_value == nullptr)
    ::unsetenv("KILN_GEMM");
  else
    ::setenv("KILN_GEMM", saved.c_str(), 1);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "KILN_GEMM: unknown GEMM engine 'blas' (known: onednn, panel)")) << r.err;
}

// The kiln program restarts itself once with GOMP_SPINCOUNT set (runtime/threads.h) unless the user chose
// a wait policy; the report names the policy that ran.
TEST(BenchCli, BoundsOpenMpSpinningUnlessTheUserChoseAPolicy) {
  TempDir dir;
  const std::vector<std::string> args = {"bench",    kBert, "--seq", "8",      "--iterations",      "1",
                                         "--warmup", "0",   "-q",    "--json", dir.file("out.json")};
  auto policy_of_a_run = [&] {
    RunResult r = run_kiln(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return nlohmann::json::parse(read_file(dir.file("out.json")))["omp_wait"].get<std::string>();
  };
  ScopedEnv no_preload("LD_PRELOAD", std::nullopt);
  {
    ScopedEnv spin("GOMP_SPINCOUNT", std::nullopt), policy("OMP_WAIT_POLICY", std::nullopt);
    EXPECT_TRUE(runtime::wants_default_spin_count());
    EXPECT_EQ(policy_of_a_run(), str("GOMP_SPINCOUNT=", runtime::kDefaultSpinCount));
    ScopedEnv valgrind("LD_PRELOAD", "/usr/libexec/valgrind/vgpreload_core-amd64-linux.so");
    EXPECT_FALSE(runtime::wants_default_spin_count());
  }
  {
    ScopedEnv spin("GOMP_SPINCOUNT", std::nullopt), policy("OMP_WAIT_POLICY", "passive");
    EXPECT_FALSE(runtime::wants_default_spin_count());
    EXPECT_EQ(policy_of_a_run(), "OMP_WAIT_POLICY=passive");
  }
  {
    ScopedEnv spin("GOMP_SPINCOUNT", "20000"), policy("OMP_WAIT_POLICY", std::nullopt);
    EXPECT_EQ(policy_of_a_run(), "GOMP_SPINCOUNT=20000");
  }
}

TEST(BenchCli, ConcurrentCallersShareTheSession) {
  TempDir dir;
  RunResult r = run_kiln({"bench", kBert, "--seq", "8", "--iterations", "4", "--warmup", "0", "--concurrency", "2",
                          "--threads", "2", "-q", "--json", dir.file("out.json")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(r.err.empty()) << r.err;  // -q: no progress
  nlohmann::json j = nlohmann::json::parse(read_file(dir.file("out.json")));
  ASSERT_EQ(j["results"].size(), 1u);
  expect_sane_result(j["results"][0]);
  EXPECT_EQ(j["results"][0]["iterations"], 4);  // calls in total, across callers
  EXPECT_EQ(j["results"][0]["concurrency"], 2);
}

TEST(BenchCli, GivenInputsSetTheShape) {
  TempDir dir;
  RunResult r = run_kiln({"bench", kBert, "--input-dir", kBertInputs, "--iterations", "2", "--warmup", "0", "--threads",
                          "1", "--json", dir.file("out.json")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  nlohmann::json j = nlohmann::json::parse(read_file(dir.file("out.json")));
  ASSERT_EQ(j["results"].size(), 1u);
  EXPECT_EQ(j["results"][0]["batch"], 2);
  EXPECT_EQ(j["results"][0]["seq"], 16);

  // The same inputs from an .npz archive.
  std::vector<std::pair<std::string, std::string>> members;
  for (const char* n : {"input_ids", "attention_mask", "token_type_ids"})
    members.push_back({std::string(n) + ".npy", read_file(kBertInputs + "/" + n + ".npy")});
  write_file(dir.file("in.npz"), make_zip(members));
  r = run_kiln({"bench", kBert, "--inputs", dir.file("in.npz"), "--iterations", "2", "--warmup", "0", "--threads", "1",
                "--json", dir.file("npz.json")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  j = nlohmann::json::parse(read_file(dir.file("npz.json")));
  EXPECT_EQ(j["results"][0]["batch"], 2);
  EXPECT_EQ(j["results"][0]["seq"], 16);

  r = run_kiln({"bench", kBert, "--input-dir", kBertInputs, "--batch", "4"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "shapes come from the files")) << r.err;
}

TEST(BenchCli, ModelWithoutSequenceIgnoresSeq) {
  TempDir dir;
  onnx::ModelProto m = new_model(17);
  auto* g = m.mutable_graph();
  add_input(g, "pixel_values", onnx::TensorProto::FLOAT, {"batch", 3, 4, 4});
  add_node(g, "Relu", {"pixel_values"}, {"y"}, "relu");
  add_output(g, "y", onnx::TensorProto::FLOAT, {"batch", 3, 4, 4});
  save(m, dir.file("image.onnx"));
  RunResult r = run_kiln({"bench", dir.file("image.onnx"), "--batch", "1,2", "--seq", "8,16", "--iterations", "2",
                          "--threads", "1", "--json", dir.file("out.json")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "--seq is ignored")) << r.out;
  nlohmann::json j = nlohmann::json::parse(read_file(dir.file("out.json")));
  ASSERT_EQ(j["results"].size(), 2u);
  EXPECT_TRUE(j["results"][0]["seq"].is_null());
  EXPECT_EQ(j["results"][1]["batch"], 2);
}

TEST(BenchCli, VsOrtAndOpenVino) {
  std::string why;
  ASSERT_TRUE(ort_available(&why)) << why;  // a missing peer fails: a skipped comparison hides a broken peer
  TempDir dir;
  RunResult r = run_kiln({"bench", kBert, "--batch", "1", "--seq", "8", "--iterations", "3", "--warmup", "1",
                          "--threads", "1", "--vs", "ort,openvino", "--rounds", "1", "--json", dir.file("out.json")},
                         300);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "kiln vs onnxruntime 1.31.1, computing in f32")) << r.out;
  EXPECT_TRUE(contains(r.out, "kiln vs openvino-f32 2026.4.1")) << r.out;
  EXPECT_TRUE(contains(r.out, "cpu ")) << r.out;
  nlohmann::json j = nlohmann::json::parse(read_file(dir.file("out.json")));
  ASSERT_EQ(j["results"].size(), 4u) << j.dump(1);
  EXPECT_EQ(j["results"][0]["engine"], "kiln");
  EXPECT_EQ(j["results"][1]["engine"], "onnxruntime");
  EXPECT_EQ(j["results"][2]["engine"], "openvino-f32");
  EXPECT_EQ(j["results"][3]["engine"], "openvino");
  EXPECT_EQ(j["results"][1]["precision"], "f32");
  EXPECT_EQ(j["results"][2]["precision"], "f32");
  // OpenVINO's own choice: bf16 or f16 where the CPU computes in it, else f32; named either way.
  const std::string native = j["results"][3]["precision"].get<std::string>();
  EXPECT_TRUE(native == "f32" || native == "bf16" || native == "f16") << native;
  for (const auto& c : j["results"]) {
    expect_sane_result(c);
    EXPECT_EQ(c["iterations"], 3);
    EXPECT_EQ(c["per_round"][0]["latencies_ms"].size(), 3u);
  }
  // A peer's percentiles are computed by kiln from its latencies, with the same definition.
  const auto& ort = j["results"][1];
  std::vector<double> lat = ort["per_round"][0]["latencies_ms"].get<std::vector<double>>();
  EXPECT_DOUBLE_EQ(ort["p50_ms"].get<double>(), bench::summarize(lat).p50_ms);
  ASSERT_EQ(j["comparisons"].size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    const auto& cmp = j["comparisons"][i];
    const auto& peer = j["results"][i + 1];
    EXPECT_EQ(cmp["peer"], peer["engine"]);
    // The JSON's p50s are rounded to 1 us and the ratio is computed before rounding: allow for both halves
    // of a microsecond (0.3 % on a 0.2 ms call).
    const double kiln_p50 = j["results"][0]["p50_ms"].get<double>(), peer_p50 = peer["p50_ms"].get<double>();
    const double ratio = kiln_p50 / peer_p50;
    EXPECT_NEAR(cmp["p50_ratio_kiln_over_peer"].get<double>(), ratio,
                1e-6 + ratio * (0.0005 / kiln_p50 + 0.0005 / peer_p50));
    EXPECT_GT(cmp["throughput_ratio_kiln_over_peer"].get<double>(), 0);
  }
}

TEST(BenchCli, Errors) {
  RunResult r = run_kiln({"bench", kBert, "--batch", "1,x"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "\"x\" is not a positive integer")) << r.err;
  EXPECT_EQ(count_lines(r.err), 1) << r.err;

  r = run_kiln({"bench", kBert, "--seq", "0"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "--seq")) << r.err;

  r = run_kiln({"bench", "no/such/model.onnx"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "no/such/model.onnx: no such file")) << r.err;
  EXPECT_EQ(count_lines(r.err), 1) << r.err;

  r = run_kiln({"bench", kBert, "--vs", "ort", "--concurrency", "2"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "--concurrency")) << r.err;

  r = run_kiln({"bench", kBert, "--vs", "ort,tensorrt"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "unknown peer \"tensorrt\"")) << r.err;
  EXPECT_EQ(count_lines(r.err), 1) << r.err;

  r = run_kiln({"bench", kBert, "--iterations", "3", "--duration", "1"});
  EXPECT_EQ(r.exit_code, 2);
}

}  // namespace
