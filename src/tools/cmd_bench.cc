// kiln bench: latency percentiles, throughput, memory and size of a model per (batch, seq), optionally
// side by side with ONNX Runtime and OpenVINO (--vs ort,openvino). The work is in bench/; this file parses options and
// prints.

#include <cstdio>

#include "bench/benchmark.h"
#include "bench/report.h"
#include "common/error.h"
#include "export/default_model.h"
#include "runtime/profile_report.h"
#include "runtime/threads.h"
#include "tools/commands.h"
#include "tools/parse_util.h"
#include "tools/progress_line.h"

namespace kiln::tools {

namespace {

struct BenchArgs {
  std::string model;
  std::string batch = "1";
  std::string seq = "128";
  int threads = runtime::default_threads();
  int warmup = 3;
  int iterations = 20;
  double duration = 0;
  int concurrency = 1;
  int rounds = 0;  // 0: 3 with --vs, else 1
  std::string inputs;
  std::string input_dir;
  std::string level = "all";
  std::string precision;  // empty: the model's tag
  std::string json;
  std::string vs;
  uint64_t seed = 0;
  bool quiet = false;
  bool profile = false;
  std::string profile_json;
  int profile_top = 30;
  CLI::Option* batch_opt = nullptr;
  CLI::Option* seq_opt = nullptr;
};

int run(const BenchArgs& args) {
  bench::BenchOptions o;
  o.batches = parse_positive_list(args.batch, "--batch");
  o.seqs = parse_positive_list(args.seq, "--seq");
  if ((!args.inputs.empty() || !args.input_dir.empty()) && (args.batch_opt->count() || args.seq_opt->count()))
    fail("--batch and --seq size generated inputs; with --inputs or --input-dir the shapes come from the files");
  o.threads = args.threads;
  o.warmup = args.warmup;
  o.iterations = args.iterations;
  o.duration_s = args.duration;
  o.concurrency = args.concurrency;
  if (!args.vs.empty()) o.peers = bench::parse_peer_engines(args.vs);
  o.rounds = args.rounds ? args.rounds : o.peers.empty() ? 1 : 3;
  o.inputs_npz = args.inputs;
  o.input_dir = args.input_dir;
  o.level = passes::parse_level(args.level);
  if (!args.precision.empty()) o.precision = runtime::parse_precision(args.precision);
  o.seed = args.seed;
  const bool profile = args.profile || !args.profile_json.empty();
  if (profile) o.profile_runs = args.iterations;
  // Before the benchmark: an unwritable trace path fails now, not after minutes of timing.
  if (!args.profile_json.empty()) runtime::check_trace_path(args.profile_json, "--profile-json");

  o.model = args.model;
  if (o.model.empty()) {
    o.model = exporter::default_model_path([](const std::string& line) { std::fprintf(stderr, "%s\n", line.c_str()); });
    std::fprintf(stderr, "model: the built-in %s (random weights), %s\n", exporter::kDefaultPreset, o.model.c_str());
  }

  bench::BenchReport report;
  {
    ProgressLine line(args.quiet);
    report = bench::run_benchmark(o, [&](const std::string& text, bool transient) { line.show(text, transient); });
  }
  std::fputs(bench::format_table(report).c_str(), stdout);
  if (profile) {
    std::vector<runtime::TraceSection> sections;
    for (const auto& c : report.configs) {
      if (!c.profile) continue;
      const std::string config = c.seq ? str("batch ", c.batch, ", seq ", *c.seq) : str("batch ", c.batch);
      std::printf(
          "\nprofile of kiln, %s: %d more calls after the timed ones, one caller (profiling adds overhead: "
          "these times are not the benchmark's figures)\n",
          config.c_str(), o.profile_runs);
      std::fputs(runtime::format_profile(runtime::summarize(*c.profile), static_cast<size_t>(args.profile_top)).c_str(),
                 stdout);
      sections.push_back({c.profile.get(), config});
    }
    if (!args.profile_json.empty()) {
      runtime::write_trace(args.profile_json, sections, "--profile-json");
      std::printf("\nwrote the profile trace %s (chrome://tracing, ui.perfetto.dev)\n", args.profile_json.c_str());
    }
  }
  if (!args.json.empty()) {
    bench::write_json(report, args.json);
    std::printf("\nwrote %s\n", args.json.c_str());
  }
  return 0;
}

}  // namespace

Command bench_command() {
  auto args = std::make_shared<BenchArgs>();
  return {[args](CLI::App& app) {
            auto* c = app.add_subcommand(
                "bench",
                "Measure latency percentiles, throughput, peak memory and size for each batch x sequence "
                "configuration, optionally against ONNX Runtime and OpenVINO on the same inputs (--vs ort,openvino)");
            c->add_option("model", args->model,
                          "ONNX model file (default: the built-in bert-base with random weights)");
            args->batch_opt =
                c->add_option("--batch", args->batch, "Batch sizes, comma-separated, e.g. 1,8")->capture_default_str();
            args->seq_opt = c->add_option("--seq", args->seq,
                                          "Sequence lengths, comma-separated, e.g. 32,128 (ignored, with a note, "
                                          "for models without a sequence dim such as ViT)")
                                ->capture_default_str();
            c->add_option("--threads", args->threads,
                          "Intra-op threads for kiln and ONNX Runtime (default: the number of cores)")
                ->capture_default_str();
            c->add_option("--warmup", args->warmup, "Untimed calls at the start of each round")->capture_default_str();
            auto* iterations =
                c->add_option("--iterations", args->iterations, "Timed calls per round")->capture_default_str();
            c->add_option("--duration", args->duration, "Instead of --iterations: timed calls for S seconds per round")
                ->excludes(iterations)
                ->check(CLI::PositiveNumber);
            c->add_option("--concurrency", args->concurrency,
                          "Callers running the one session at once; latency is per call, throughput is the "
                          "total; the threads are split between callers (not with --vs)")
                ->capture_default_str();
            auto* inputs = c->add_option("--inputs", args->inputs,
                                         "Inputs from an .npz archive (np.savez, uncompressed; member NAME.npy per "
                                         "input) instead of generated ones: one configuration, their shapes");
            c->add_option("--input-dir", args->input_dir, "Inputs from DIR/NAME.npy instead of generated ones")
                ->excludes(inputs);
            c->add_option("--precision", args->precision,
                          "Precision of the matrix products: fp32, or bf16 (bfloat16 operands, float32 sums; where the CPU has "
                          "AVX512-BF16 or AMX, float32 elsewhere). Default: the model's kiln.precision tag (kiln quantize "
                          "--mode bf16), else fp32")
                ->check(CLI::IsMember({"fp32", "bf16"}));
            c->add_option("--level", args->level,
                          "kiln's graph optimization when the session is created: none, basic, extended or all (all adds "
                          "the layout passes: convolutions run channels-last; ONNX Runtime always runs with all its "
                          "optimizations)")
                ->capture_default_str()
                ->check(CLI::IsMember({"none", "basic", "extended", "all"}));
            c->add_option("--json", args->json, "Also write every per-round and summary figure to this JSON file");
            c->add_option("--vs", args->vs,
                          "Compare with peers, comma-separated, in rounds alternating with kiln's: ort (ONNX "
                          "Runtime, all graph optimizations), openvino (OpenVINO twice: openvino-f32 with "
                          "INFERENCE_PRECISION_HINT=f32, and openvino at its default precision, bf16 where the CPU "
                          "has it), openvino-f32 or openvino-default for one of the two. They run through "
                          "benchmarks/peers/peer.py in the venv `make peers` installs; each on the same model file, "
                          "inputs, shapes and --threads (OpenVINO: INFERENCE_NUM_THREADS, latency hint)");
            c->add_option("--rounds", args->rounds,
                          "Rounds per engine, each of --warmup + --iterations calls (default: 3 with --vs, "
                          "else 1)")
                ->check(CLI::PositiveNumber);
            c->add_option("--seed", args->seed, "Seed for generated inputs")->capture_default_str();
            c->add_flag("-q,--quiet", args->quiet, "No progress on stderr");
            c->add_flag("--profile", args->profile,
                        "Profile kiln per node: after each configuration's timed rounds, --iterations more calls "
                        "(20 with --duration; one caller), timed node by node; tables per node and per op type follow the figures, "
                        "which these calls are not part of");
            c->add_option("--profile-json", args->profile_json,
                          "With --profile (implied): also write the profiled calls as a Chrome trace (JSON, for "
                          "chrome://tracing or ui.perfetto.dev) to this file; every configuration in the one file, "
                          "each run event naming its configuration");
            c->add_option("--profile-top", args->profile_top,
                          "Rows per profile table (the rest summed in one line); 0 lists all")
                ->capture_default_str()
                ->check(CLI::NonNegativeNumber);
            c->footer(
                "Generated inputs: the first symbolic dim is the batch; a dim named like seq/sequence/length (else "
                "the second symbolic dim) is the sequence. Token ids are uniform in [0, vocab), vocab being the row "
                "count of the embedding table the ids index (30522 when none is found); attention masks are ones, "
                "token_type_ids zeros, position ids 0, 1, 2, ..., float inputs ~N(0,1).\n"
                "Figures: load_ms is session creation (read + optimize + compile), first_ms the first call; "
                "latency percentiles are nearest-rank over one round's timed calls, for both engines; throughput "
                "is calls / wall time (items/s = batch x inferences/s); peak RSS is the process's VmHWM "
                "(a peer: its own process); MB = 2^20 bytes. With several rounds each figure is the median across "
                "rounds.\n"
                "JSON (--json): per configuration and engine: engine, batch, seq, threads, iterations, load_ms, "
                "first_ms, min_ms, mean_ms, p50_ms, p90_ms, p95_ms, p99_ms, max_ms, throughput_inferences_per_s, "
                "throughput_items_per_s, peak_rss_mb, model_size_mb and per_round (a peer also engine_version and "
                "precision); with --vs also comparisons, one per configuration and peer: peer, peer_version, "
                "peer_precision, kiln_/peer_ p50_ms, p99_ms and throughput_items_per_s, and the kiln/peer "
                "ratios p50_ratio_kiln_over_peer, p99_ratio_kiln_over_peer, throughput_ratio_kiln_over_peer.\n"
                "Profile (--profile): per node and per op type, total and mean ms per call, % of the time spent "
                "in nodes, and the kernel that answered (a fast kernel's name and implementation, or reference), "
                "then the share of reference kernels (views, shape reads and control flow named as such, apart "
                "from it). Nodes inside If/Loop/Scan bodies have rows of their own; the If/Loop/Scan row holds "
                "its own time only. Trace (--profile-json): ONNX Runtime's trace-event format, one \"ph\": \"X\" event per "
                "node call (cat Node; args op_name, kernel, input_type_shape, output_type_shape) and per run "
                "(cat Session, name run; args config), ts and dur in microseconds since the benchmark started.");
            return c;
          },
          [args] { return run(*args); }};
}

}  // namespace kiln::tools
