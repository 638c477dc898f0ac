// kiln run: one inference, outputs to .npy files and a one-line summary per output; with --profile, its
// time node by node (runtime/profile_report.h).
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <optional>

#include "export/default_model.h"
#include "io/npy.h"
#include "runtime/profile_report.h"
#include "runtime/profiler.h"
#include "runtime/random_inputs.h"
#include "runtime/session.h"
#include "runtime/threads.h"
#include "text/wordpiece_tokenizer.h"
#include "tools/commands.h"
#include "tools/parse_util.h"

namespace kiln::tools {

namespace {

namespace fs = std::filesystem;

struct RunArgs {
  std::string model;
  std::vector<std::string> inputs;
  std::string input_dir;
  bool random = false;
  std::vector<std::string> dims;
  uint64_t seed = 0;
  std::string output_dir;
  std::string compare_dir;
  double rtol = 1e-4;
  double atol = 1e-5;
  std::string vocab;
  std::vector<std::string> texts;
  std::vector<std::string> text_pairs;
  int64_t max_length = 512;
  bool cased = false;
  std::string level = "all";
  std::string precision;  // empty: the model's tag
  int threads = runtime::default_threads();
  bool profile = false;
  std::string profile_json;
  int profile_top = 30;
};

std::string summary(const ir::Tensor& t) {
  std::string s = std::string(ir::dtype_name(t.dtype())) + ir::to_string(t.shape());
  if (t.dtype() == ir::DType::kString || t.dtype() == ir::DType::kComplex64 || t.dtype() == ir::DType::kComplex128 ||
      t.numel() == 0)
    return s;
  double lo = std::numeric_limits<double>::infinity(), hi = -lo, sum = 0;
  for (int64_t i = 0; i < t.numel(); ++i) {
    double v = t.as_double(i);
    lo = std::min(lo, v);
    hi = std::max(hi, v);
    sum += v;
  }
  char buf[160];
  std::snprintf(buf, sizeof buf, "  min %.6g  max %.6g  mean %.6g", lo, hi, sum / static_cast<double>(t.numel()));
  return s + buf;
}

// Max abs difference, and whether every element is within atol + rtol * |expected|.
std::pair<double, bool> compare(const ir::Tensor& actual, const ir::Tensor& expected, double rtol, double atol) {
  double max_diff = 0;
  bool ok = true;
  for (int64_t i = 0; i < expected.numel(); ++i) {
    double a = actual.as_double(i), e = expected.as_double(i);
    if (std::isnan(a) && std::isnan(e)) continue;
    double d = std::fabs(a - e);
    if (!(d <= atol + rtol * std::fabs(e))) ok = false;
    if (!(d <= max_diff)) max_diff = d;
  }
  return {max_diff, ok};
}

// Tokenizes --text (and --text-pair) into the token inputs a BERT-style model declares.
void add_text_feeds(const RunArgs& args, const runtime::Session& session,
                    std::unordered_map<std::string, ir::Datum>& feeds) {
  if (args.vocab.empty()) fail("--text needs the model's vocabulary: give it with --vocab vocab.txt");
  if (!args.text_pairs.empty() && args.text_pairs.size() != args.texts.size())
    fail("give one --text-pair per --text (", args.texts.size(), " texts, ", args.text_pairs.size(), " pairs)");
  text::TokenizerOptions options;
  options.lower_case = !args.cased;
  options.max_length = args.max_length;
  text::WordPieceTokenizer tokenizer = text::WordPieceTokenizer::from_file(args.vocab, options);
  std::vector<text::Encoding> batch = tokenizer.encode_batch(args.texts, args.text_pairs, text::Padding::kLongest);
  const int64_t rows = static_cast<int64_t>(batch.size()), cols = static_cast<int64_t>(batch[0].ids.size());
  auto stack = [&](auto field) {
    ir::Tensor t(ir::DType::kInt64, {rows, cols});
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) t.data<int64_t>()[r * cols + c] = (batch[r].*field)[c];
    return t;
  };
  std::map<std::string, ir::Tensor> by_name = {{"input_ids", stack(&text::Encoding::ids)},
                                               {"attention_mask", stack(&text::Encoding::attention_mask)},
                                               {"token_type_ids", stack(&text::Encoding::token_type_ids)}};
  bool used = false;
  for (const auto& in : session.inputs()) {
    auto it = by_name.find(in.name);
    if (it == by_name.end() || feeds.count(in.name)) continue;
    feeds[in.name] = it->second;
    used = true;
  }
  if (!used) fail("--text: the model has no input_ids, attention_mask or token_type_ids input to feed");
  for (int64_t r = 0; r < rows; ++r) {
    std::string line;
    int64_t real = 0;
    for (size_t k = 0; k < batch[r].tokens.size(); ++k) {
      if (!batch[r].attention_mask[k]) continue;
      line += (line.empty() ? "" : " ") + batch[r].tokens[k];
      ++real;
    }
    std::printf("text %lld: %lld tokens: %s\n", static_cast<long long>(r), static_cast<long long>(real), line.c_str());
  }
}

int run(const RunArgs& args) {
  const bool profile = args.profile || !args.profile_json.empty();
  if (!args.profile_json.empty()) runtime::check_trace_path(args.profile_json, "--profile-json");
  std::string model = args.model;
  const bool builtin = model.empty();
  if (builtin) {
    model = exporter::default_model_path([](const std::string& line) { std::fprintf(stderr, "%s\n", line.c_str()); });
    std::fprintf(stderr, "model: the built-in %s (random weights), %s\n", exporter::kDefaultPreset, model.c_str());
  }
  runtime::SessionOptions options;
  options.optimization = passes::parse_level(args.level);
  if (!args.precision.empty()) options.precision = runtime::parse_precision(args.precision);
  runtime::set_intra_op_threads(args.threads);
  runtime::Session session = runtime::Session::load(model, options);
  if (session.precision() == runtime::Precision::kBfloat16)
    std::fprintf(stderr, "precision: %s\n",
                 session.computes_bf16() ? "bf16 (matrix products in bfloat16, float32 sums)"
                                         : "bf16 asked for; this CPU has no faster bfloat16 (AVX512-BF16 or AMX), so "
                                           "the matrix products run in float32");
  std::map<std::string, int64_t> dims = parse_dims(args.dims);
  std::unordered_map<std::string, ir::Datum> feeds;
  if (!args.texts.empty())
    add_text_feeds(args, session, feeds);
  else if (!args.vocab.empty())
    fail("--vocab is used with --text \"...\"; give the text to tokenize");
  // With no model and no inputs, the built-in model runs on generated inputs of a typical size.
  const bool generate = args.random || (builtin && args.inputs.empty() && args.input_dir.empty());
  if (builtin && !dims.count("sequence")) dims["sequence"] = 128;
  for (const auto& item : args.inputs) {
    auto [name, file] = split_assignment(item, "--input");
    feeds[name] = io::read_npy(file);
  }
  for (size_t i = 0; i < session.inputs().size(); ++i) {
    const auto& in = session.inputs()[i];
    if (feeds.count(in.name)) continue;
    if (!args.input_dir.empty()) {
      fs::path p = fs::path(args.input_dir) / (io::npy_file_stem(in.name) + ".npy");
      if (fs::exists(p)) {
        feeds[in.name] = io::read_npy(p.string());
        continue;
      }
    }
    if (generate) {
      feeds[in.name] = runtime::random_input(in, dims, args.seed + i);
      continue;
    }
    fail(model, ": missing input \"", in.name, "\" (", ir::to_string(in.type), "); give it with --input ", in.name,
         "=FILE.npy or --input-dir DIR, or generate it with --random");
  }
  std::optional<runtime::Profiler> profiler;
  if (profile) {
    profiler.emplace();
    session.set_profiler(&*profiler);
  }
  std::vector<ir::Datum> outs = session.run(feeds);
  session.set_profiler(nullptr);

  if (!args.output_dir.empty()) fs::create_directories(args.output_dir);
  int mismatches = 0;
  const auto& outputs = session.model().graph.outputs;
  for (size_t i = 0; i < outs.size(); ++i) {
    const std::string& name = outputs[i].name;
    const ir::Datum& d = outs[i];
    if (d.is_none()) {
      std::printf("%-24s (empty optional)\n", name.c_str());
      continue;
    }
    if (d.is_sequence()) {
      std::printf("%-24s sequence of %zu tensors\n", name.c_str(), d.sequence.size());
      for (size_t k = 0; k < d.sequence.size(); ++k) {
        std::printf("  [%zu] %s\n", k, summary(d.sequence[k]).c_str());
        if (!args.output_dir.empty())
          io::write_npy((fs::path(args.output_dir) / (io::npy_file_stem(name) + "_" + std::to_string(k) + ".npy")).string(),
                        d.sequence[k]);
      }
      continue;
    }
    std::string line = summary(d.tensor);
    if (!args.output_dir.empty())
      io::write_npy((fs::path(args.output_dir) / (io::npy_file_stem(name) + ".npy")).string(), d.tensor);
    if (!args.compare_dir.empty()) {
      fs::path p = fs::path(args.compare_dir) / (io::npy_file_stem(name) + ".npy");
      if (!fs::exists(p)) {
        line += "  (no reference " + p.string() + ")";
      } else {
        ir::Tensor expected = io::read_npy(p.string());
        if (expected.shape() != d.tensor.shape()) {
          line += "  MISMATCH: reference shape " + ir::to_string(expected.shape());
          ++mismatches;
        } else {
          auto [max_diff, ok] = compare(d.tensor, expected, args.rtol, args.atol);
          char buf[128];
          std::snprintf(buf, sizeof buf, "  max|diff| %.3g vs reference: %s", max_diff, ok ? "ok" : "MISMATCH");
          line += buf;
          if (!ok) ++mismatches;
        }
      }
    }
    std::printf("%-24s %s\n", name.c_str(), line.c_str());
  }
  if (!args.output_dir.empty()) std::printf("outputs written to %s\n", args.output_dir.c_str());
  if (profile) {
    std::printf(
        "\nprofile of the run (a session's first run also plans its memory; kiln bench --profile shows "
        "steady-state runs):\n%s",
        runtime::format_profile(runtime::summarize(*profiler), static_cast<size_t>(args.profile_top)).c_str());
    if (!args.profile_json.empty()) {
      const runtime::TraceSection section{&*profiler, ""};
      runtime::write_trace(args.profile_json, std::span(&section, 1), "--profile-json");
      std::printf("wrote the profile trace %s (chrome://tracing, ui.perfetto.dev)\n", args.profile_json.c_str());
    }
  }
  if (mismatches) {
    std::fprintf(stderr, "kiln: %d output(s) differ from the reference beyond rtol %g, atol %g\n", mismatches,
                 args.rtol, args.atol);
    return 1;
  }
  return 0;
}

}  // namespace

Command run_command() {
  auto args = std::make_shared<RunArgs>();
  return {[args](CLI::App& app) {
            auto* c = app.add_subcommand("run", "Run one inference and write each output as .npy");
            c->add_option("model", args->model,
                          "ONNX model file (default: the built-in bert-base with random weights, on generated "
                          "inputs of batch 1, sequence 128)");
            c->add_option("--input", args->inputs, "An input from a .npy file: NAME=FILE.npy (repeatable)");
            c->add_option("--input-dir", args->input_dir, "Read each input NAME from DIR/NAME.npy");
            c->add_flag("--random", args->random, "Generate the inputs not given (dtype- and shape-correct)");
            c->add_option("--dim", args->dims, "Value of a symbolic dim for generated inputs, e.g. sequence=128");
            c->add_option("--seed", args->seed, "Seed for generated inputs")->capture_default_str();
            c->add_option("--output-dir", args->output_dir, "Write each output as DIR/<output name>.npy");
            c->add_option("--compare", args->compare_dir,
                          "Compare outputs with DIR/<output name>.npy (exit 1 if they differ)");
            c->add_option("--rtol", args->rtol, "Relative tolerance for --compare")->capture_default_str();
            c->add_option("--atol", args->atol, "Absolute tolerance for --compare")->capture_default_str();
            c->add_option("--vocab", args->vocab, "WordPiece vocabulary (vocab.txt or a JSON token list) for --text");
            c->add_option("--text", args->texts, "Text to tokenize into the model's token inputs (repeat for a batch)");
            c->add_option("--text-pair", args->text_pairs, "Second segment for each --text (sentence pairs)");
            c->add_option("--max-length", args->max_length, "Truncate each tokenized input to this many tokens")
                ->capture_default_str();
            c->add_flag("--cased", args->cased, "The vocabulary is cased: no lower-casing or accent stripping");
            c->add_option("--precision", args->precision,
                          "Precision of the matrix products: fp32, or bf16 (bfloat16 operands, float32 sums; where the CPU has "
                          "AVX512-BF16 or AMX, float32 elsewhere). Default: the model's kiln.precision tag (kiln quantize "
                          "--mode bf16), else fp32")
                ->check(CLI::IsMember({"fp32", "bf16"}));
            c->add_option("--level", args->level,
                          "Graph optimization applied when the model is loaded: none, basic, extended or all (all "
                          "adds the layout passes: convolutions run channels-last)")
                ->capture_default_str()
                ->check(CLI::IsMember({"none", "basic", "extended", "all"}));
            c->add_option("--threads", args->threads,
                          "Threads for one inference (oneDNN and kiln's kernels share one OpenMP pool; default: the "
                          "number of cores)")
                ->capture_default_str()
                ->check(CLI::PositiveNumber);
            c->add_flag("--profile", args->profile,
                        "Time the run node by node: tables per node and per op type (total and mean ms, % of the "
                        "time in nodes, the kernel that answered: a fast kernel's name and implementation, or "
                        "reference; views, shape reads and control flow named as such; shapes), then the share of "
                        "reference kernels. Nodes inside If/Loop/Scan bodies have rows of their own (named "
                        "If_0/then_branch/...); the If/Loop/Scan row holds its own time only");
            c->add_option("--profile-json", args->profile_json,
                          "With --profile (implied): also write the run as a Chrome trace (ONNX Runtime's "
                          "trace-event format, for chrome://tracing or ui.perfetto.dev) to this file");
            c->add_option("--profile-top", args->profile_top,
                          "Rows per profile table (the rest summed in one line); 0 lists all")
                ->capture_default_str()
                ->check(CLI::NonNegativeNumber);
            return c;
          },
          [args] { return run(*args); }};
}

}  // namespace kiln::tools
