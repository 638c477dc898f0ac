// kiln quantize: a model in lower precision, written as ONNX that ONNX Runtime runs too.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include "analysis/model_preparation.h"
#include "analysis/shape_inference.h"
#include "common/error.h"
#include "kernels/cpu/onednn_matmul.h"
#include "onnx/model_io.h"
#include "passes/dynamic_quantization.h"
#include "passes/float16_weights.h"
#include "passes/model_metadata.h"
#include "passes/static_quantization.h"
#include "quantize/accuracy_bound.h"
#include "quantize/calibration.h"
#include "quantize/precision_choice.h"
#include "runtime/session.h"
#include "runtime/threads.h"
#include "tools/commands.h"
#include "tools/progress_line.h"

namespace kiln::tools {

namespace {

struct QuantizeArgs {
  std::string input;
  std::string output;
  std::string mode;
  bool per_channel = false;
  std::vector<std::string> exclude;
  bool report = false;
  std::string calibration_dir;
  int64_t calibration_random = 0;
  std::string method;  // empty: minmax
  std::string max_drop;  // --max-drop METRIC=VALUE; empty: none (auto: kDefaultAutoBound)
  validate::ValidationOptions validation;  // the inputs --max-drop and auto validate on
  bool quiet = false;
};

// auto's bound when --max-drop does not give one.
constexpr const char* kDefaultAutoBound = "cosine=0.01";

namespace fs = std::filesystem;

// A folder beside the output for the candidates --max-drop and auto make, removed when done.
class ScratchFolder {
 public:
  explicit ScratchFolder(const std::string& output)
      : path_(fs::absolute(output).parent_path() / (".kiln-quantize-" + std::to_string(::getpid()))) {
    KILN_CHECK(fs::is_directory(path_.parent_path()), "-o ", output, ": no such folder ", path_.parent_path().string());
    fs::create_directory(path_);
  }
  ~ScratchFolder() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  ScratchFolder(const ScratchFolder&) = delete;
  ScratchFolder& operator=(const ScratchFolder&) = delete;
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

double file_mb(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 ? static_cast<double>(st.st_size) / (1 << 20) : 0.0;
}

double mb(int64_t bytes) { return static_cast<double>(bytes) / (1 << 20); }

void print_file_sizes(const QuantizeArgs& args) {
  const double in = file_mb(args.input), out = file_mb(args.output);
  std::printf("file %.1f MB -> %.1f MB (%.2fx)\n", in, out, in > 0 ? out / in : 0.0);
}

void print_validate_hint(const QuantizeArgs& args, const char* note) {
  std::printf("check its accuracy: kiln validate %s %s%s\n", args.input.c_str(), args.output.c_str(), note);
}

void print_skipped(std::FILE* out, const std::vector<passes::Rejection>& skipped, const char* precision) {
  for (const auto& s : skipped) std::fprintf(out, "  %s: %s: %s\n", precision, s.node.c_str(), s.reason.c_str());
}

// Options that only some modes take, refused with one line where they mean nothing.
void check_options(const QuantizeArgs& args) {
  if (args.mode == "auto" && args.per_channel)
    fail("--per-channel: --mode auto always uses per-channel int8 weights (the same speed, closer to float32)");
  if (args.mode == "auto" && !args.exclude.empty()) fail("--exclude is for one mode, not --mode auto");
  const bool int8 = args.mode == "int8-dynamic" || args.mode == "int8-static";
  const bool calibrated = !args.calibration_dir.empty() || args.calibration_random > 0;
  if (args.mode != "int8-static" && args.mode != "auto" && (calibrated || !args.method.empty()))
    fail("--calibration, --calibration-random and --method are for --mode int8-static or auto (", args.mode,
         " needs no calibration)");
  if (args.mode == "int8-static" && !calibrated)
    fail(
        "--mode int8-static needs calibration samples: --calibration DIR (a folder of sample folders of NAME.npy "
        "files) or --calibration-random N (N generated samples)");
  if (args.per_channel && !int8) fail("--per-channel is for the int8 modes (", args.mode, " has no scales)");
  if (args.mode == "bf16" && !args.exclude.empty())
    fail(
        "--exclude: bf16 is a precision for the whole model's matrix products, kept in its metadata; it cannot "
        "leave nodes out");
  if (!args.max_drop.empty() && (args.mode == "bf16" || args.mode == "fp16"))
    fail("--max-drop keeps an int8 mode's most sensitive products in float32; ", args.mode,
         " has no per-product choice (check it with kiln validate), or use --mode auto");
  const bool validating = !args.max_drop.empty() || args.mode == "auto";
  const validate::ValidationOptions& v = args.validation;
  if (!validating && (!v.inputs_dir.empty() || !v.text.file.empty()))
    fail("--inputs and --text are the samples --max-drop and --mode auto validate on; give one of those");
}

// The modes that rewrite the weights take a float32 model: quantizing twice would compound the error
// and hide what the file holds.
void refuse_requantizing(const ir::Model& model, const QuantizeArgs& args) {
  const std::string done = passes::model_metadata(model, passes::kQuantizationMetadataKey);
  if (!done.empty() && args.mode != "bf16")
    fail(args.input, ": already quantized (metadata ", passes::kQuantizationMetadataKey, " = ", done,
         "); quantize its float32 original instead");
}

// bf16: the file unchanged but for its kiln.precision tag (ONNX has no bfloat16 matrix product that ONNX
// Runtime's CPU provider runs; kiln's Session reads the tag).
int run_bf16(const QuantizeArgs& args) {
  ir::Model model = onnx_io::load_model(args.input);
  // Checked as a Session would check it, so that an invalid model fails here; written as read.
  ir::Model checked = model;
  analysis::prepare_model(checked);
  analysis::infer_types(checked, checked.graph, {}, ops::Limits{});
  passes::set_model_metadata(model, runtime::kPrecisionMetadataKey, "bf16");
  onnx_io::save_model(model, args.output);
  std::printf("wrote %s: bf16, the weights unchanged (float32), tagged %s = bf16\n", args.output.c_str(),
              runtime::kPrecisionMetadataKey);
  std::printf(
      "ONNX Runtime runs the file in float32; kiln multiplies its matrix products in bfloat16 (float32 "
      "sums) where the CPU computes bfloat16 (AVX512-BF16 or AMX), else in float32. This CPU: %s\n",
      kernels::cpu::bf16_products_run() ? "bfloat16" : "float32 (no faster bfloat16 here)");
  print_file_sizes(args);
  print_validate_hint(args, "");
  return 0;
}

int run_fp16(const QuantizeArgs& args, ir::Model& model) {
  passes::Float16WeightsOptions options;
  options.exclude = args.exclude;
  const passes::Float16WeightsReport report = passes::store_weights_in_float16(model, options);
  if (report.converted.empty()) {
    print_skipped(stderr, report.skipped, "left in float32");
    fail(args.input, ": no float32 weights of ", passes::kMinFloat16Values, " values or more to store as float16");
  }
  onnx_io::save_model(model, args.output);
  std::printf(
      "wrote %s: fp16, %zu weight(s) stored as float16 (%lld of them embedding tables, gathered in float16), "
      "%zu float32 initializer(s) left\n",
      args.output.c_str(), report.converted.size(), static_cast<long long>(report.tables), report.skipped.size());
  std::printf("weights: %.1f MB float32 -> %.1f MB float16; ", mb(report.float_bytes), mb(report.float16_bytes));
  print_file_sizes(args);
  std::printf(
      "each is cast back to float32 where it is read, so the file computes in float32 in ONNX Runtime and "
      "in kiln (which folds the Casts when it loads it): fp16 buys a smaller file, not speed, on CPUs\n");
  print_validate_hint(args, "");
  if (args.report) {
    for (const auto& c : report.converted) std::printf("  float16: %s\n", c.c_str());
    print_skipped(stdout, report.skipped, "float32");
  }
  return 0;
}

int run_int8_dynamic(const QuantizeArgs& args, ir::Model& model) {
  passes::DynamicQuantizeOptions options;
  options.per_channel = args.per_channel;
  options.exclude = args.exclude;
  const passes::DynamicQuantizeReport report = passes::quantize_dynamic(model, options);
  if (report.quantized.empty()) {
    print_skipped(stderr, report.skipped, "left in float32");
    fail(args.input, ": no MatMul or Gemm with constant float32 weights to quantize");
  }
  onnx_io::save_model(model, args.output);
  const int64_t products = static_cast<int64_t>(report.quantized.size()) - report.tables;
  std::printf(
      "wrote %s: %s, %lld MatMul/Gemm node(s) in int8 (%s weights) and %lld embedding table(s), %zu "
      "product(s) left in float32\n",
      args.output.c_str(), args.mode.c_str(), static_cast<long long>(products),
      args.per_channel ? "per-column" : "per-tensor", static_cast<long long>(report.tables), report.skipped.size());
  std::printf("weights of the quantized nodes: %.1f MB float32 -> %.1f MB int8; ", mb(report.float_weight_bytes),
              mb(report.int8_weight_bytes));
  print_file_sizes(args);
  print_validate_hint(args, args.per_channel
                                ? ""
                                : "  (per-tensor scales: on trained models --per-channel is usually much closer to "
                                  "float32, e.g. all-MiniLM-L6-v2's cosine 0.992 against 0.952)");
  if (args.report) {
    for (const auto& q : report.quantized) std::printf("  int8: %s\n", q.c_str());
    print_skipped(stdout, report.skipped, "float32");
  }
  return 0;
}

int run_int8_static(const QuantizeArgs& args, ir::Model& model) {
  passes::StaticQuantizeOptions options;
  options.per_channel = args.per_channel;
  options.exclude = args.exclude;
  const quantize::CalibrationMethod method =
      quantize::parse_calibration_method(args.method.empty() ? "minmax" : args.method);
  const passes::StaticQuantizePlan plan = passes::plan_static_quantization(model, options);
  if (plan.activations.empty()) {
    print_skipped(stderr, plan.skipped, "left in float32");
    fail(args.input, ": no MatMul or Gemm with constant float32 weights to quantize");
  }
  // Every sample's files are checked before the first one runs (InputSamples): a missing one fails at once.
  const validate::InputSamples samples = args.calibration_dir.empty()
                                             ? quantize::generated_calibration_samples(model, args.calibration_random)
                                             : quantize::calibration_samples_from_folder(model, args.calibration_dir);
  std::map<std::string, passes::ActivationRange> ranges;
  {
    ProgressLine line(args.quiet);
    line.show(str("calibrating ", plan.activations.size(), " activation(s) on ", samples.description(), ", method ",
                  quantize::calibration_method_name(method)),
              false);
    ranges = quantize::calibrate(model, plan.activations, samples, method,
                                 [&](const std::string& text, bool transient) { line.show(text, transient); });
  }
  const passes::StaticQuantizeReport report = passes::quantize_static(model, options, ranges);
  onnx_io::save_model(model, args.output);
  std::printf(
      "wrote %s: int8-static (QDQ), %lld MatMul/Gemm node(s) in int8 (%s weights) and %lld embedding "
      "table(s), %lld activation(s) with static uint8 scales (%s on %s), %zu product(s) left in float32\n",
      args.output.c_str(), static_cast<long long>(report.quantized.size()) - report.tables,
      args.per_channel ? "per-channel" : "per-tensor", static_cast<long long>(report.tables),
      static_cast<long long>(report.activations), quantize::calibration_method_name(method),
      samples.description().c_str(), report.skipped.size());
  std::printf("weights of the quantized nodes: %.1f MB float32 -> %.1f MB int8; ", mb(report.float_weight_bytes),
              mb(report.int8_weight_bytes));
  print_file_sizes(args);
  print_validate_hint(args, args.calibration_dir.empty()
                                ? "  (its generated samples are not the calibration's; random inputs calibrate only "
                                  "as well as they resemble real ones: on your own, --inputs DIR)"
                                : " --inputs DIR  (DIR: inputs the calibration did not see)");
  if (args.report) {
    for (const auto& q : report.quantized) std::printf("  int8: %s\n", q.c_str());
    print_skipped(stdout, report.skipped, "float32");
    for (const auto& [name, r] : ranges) std::printf("  range: %s: [%g, %g]\n", name.c_str(), r.min, r.max);
  }
  return 0;
}

// The calibrated ranges of int8-static's activations, computed once for every candidate of a search.
std::map<std::string, passes::ActivationRange> calibrate_once(const QuantizeArgs& args, const ir::Model& model,
                                                              const passes::StaticQuantizePlan& plan) {
  const quantize::CalibrationMethod method =
      quantize::parse_calibration_method(args.method.empty() ? "minmax" : args.method);
  const validate::InputSamples samples = args.calibration_dir.empty()
                                             ? quantize::generated_calibration_samples(model, args.calibration_random)
                                             : quantize::calibration_samples_from_folder(model, args.calibration_dir);
  ProgressLine line(args.quiet);
  line.show(str("calibrating ", plan.activations.size(), " activation(s) on ", samples.description()), false);
  return quantize::calibrate(model, plan.activations, samples, method,
                             [&](const std::string& text, bool transient) { line.show(text, transient); });
}

// The int8 file of args.mode with `keep_float` added to --exclude, written to `path`; the names of the nodes
// it lowered. `ranges`: int8-static's calibration (made on first use).
std::vector<std::string> write_int8_candidate(const QuantizeArgs& args, const ir::Model& prepared,
                                              const std::vector<std::string>& keep_float, const std::string& path,
                                              std::map<std::string, passes::ActivationRange>& ranges) {
  ir::Model m = prepared;
  std::vector<std::string> exclude = args.exclude;
  exclude.insert(exclude.end(), keep_float.begin(), keep_float.end());
  std::vector<std::string> lowered;
  if (args.mode == "int8-static") {
    passes::StaticQuantizeOptions o;
    o.per_channel = args.per_channel;
    o.exclude = exclude;
    if (ranges.empty()) ranges = calibrate_once(args, m, passes::plan_static_quantization(m, o));
    lowered = passes::quantize_static(m, o, ranges).quantized;
  } else {
    passes::DynamicQuantizeOptions o;
    o.per_channel = args.per_channel;
    o.exclude = exclude;
    lowered = passes::quantize_dynamic(m, o).quantized;
  }
  onnx_io::save_model(m, path);
  return quantize::node_names(prepared.graph, lowered);
}

// --max-drop: the int8 mode with its most sensitive products kept in float32 until the bound holds, then
// written (as without --max-drop, with those products added to --exclude).
int run_int8_within_bound(const QuantizeArgs& args, ir::Model& prepared) {
  const quantize::AccuracyBound bound = quantize::parse_accuracy_bound(args.max_drop);
  ScratchFolder scratch(args.output);
  validate::ValidationOptions v = args.validation;
  v.reference = scratch.file("reference.onnx");
  onnx_io::save_model(prepared, v.reference);  // as prepared: the candidates' node names are its own
  std::map<std::string, passes::ActivationRange> ranges;
  quantize::BoundSearch search;
  {
    ProgressLine line(args.quiet);
    search = quantize::keep_float_until_bound_holds(
        [&](const std::vector<std::string>& keep, const std::string& path) {
          return write_int8_candidate(args, prepared, keep, path, ranges);
        },
        scratch.file("candidate.onnx"), v, bound, [&](const std::string& text, bool transient) { line.show(text, transient); });
  }
  if (!search.held)
    fail("--max-drop ", bound.text, ": not met even with all ", search.kept_float.size(),
         " ranked products in float32 (", search.check.describe(), "); no file written");
  if (!search.kept_float.empty() && search.kept_float.size() == search.products)
    fail("--max-drop ", bound.text, ": met only with every product in float32, which is the input itself: ",
         args.mode, " buys nothing within this bound on these inputs (", search.check.describe(),
         "); no file written. Try --per-channel, a looser bound, or --precision bf16");
  std::printf("--max-drop %s: met with %zu product(s) kept in float32, in %d validation(s) on %s: %s\n",
              bound.text.c_str(), search.kept_float.size(), search.steps, search.report.inputs.c_str(),
              search.check.describe().c_str());
  for (const std::string& name : search.kept_float) std::printf("  kept in float32: %s\n", name.c_str());
  QuantizeArgs chosen = args;
  chosen.exclude.insert(chosen.exclude.end(), search.kept_float.begin(), search.kept_float.end());
  chosen.quiet = true;
  return chosen.mode == "int8-static" ? run_int8_static(chosen, prepared) : run_int8_dynamic(chosen, prepared);
}

// --mode auto: every precision made, validated and measured here; the fastest within the bound written.
int run_auto(const QuantizeArgs& args) {
  const quantize::AccuracyBound bound =
      quantize::parse_accuracy_bound(args.max_drop.empty() ? kDefaultAutoBound : args.max_drop);
  ir::Model prepared = onnx_io::load_model(args.input);
  refuse_requantizing(prepared, args);
  // Its fp32 row would run at the tag's precision, and every candidate would inherit it.
  const std::string tagged = passes::model_metadata(prepared, runtime::kPrecisionMetadataKey);
  if (!tagged.empty())
    fail(args.input, ": tagged ", runtime::kPrecisionMetadataKey, " = ", tagged,
         "; --mode auto starts from the float32 original");
  analysis::prepare_model(prepared);
  analysis::infer_types(prepared, prepared.graph, {}, ops::Limits{});
  ScratchFolder scratch(args.output);
  std::map<std::string, passes::ActivationRange> ranges;
  auto make = [&](const std::string& mode, const std::string& path) -> std::string {
    QuantizeArgs a = args;
    a.mode = mode;
    a.per_channel = true;
    if (mode == "bf16") {
      ir::Model m = onnx_io::load_model(args.input);
      passes::set_model_metadata(m, runtime::kPrecisionMetadataKey, "bf16");
      onnx_io::save_model(m, path);
      return "";
    }
    if (mode == "int8-static" && args.calibration_dir.empty() && args.calibration_random == 0)
      return "no calibration samples (--calibration DIR or --calibration-random N)";
    if (write_int8_candidate(a, prepared, {}, path, ranges).empty()) return "no MatMul or Gemm to quantize";
    return "";
  };
  validate::ValidationOptions v = args.validation;
  v.reference = args.input;
  bench::BenchOptions b;
  b.threads = v.threads;
  b.seqs = {v.seq};
  b.batches = {v.batch};
  b.warmup = 3;
  b.iterations = 20;
  quantize::PrecisionChoice choice;
  {
    ProgressLine line(args.quiet);
    choice = quantize::choose_precision({"fp32", "bf16", "int8-dynamic", "int8-static"}, make, scratch.file(""), v,
                                        bound, b, [&](const std::string& text, bool transient) { line.show(text, transient); });
  }
  std::printf("kiln quantize --mode auto on %s (%d thread(s), batch %lld, sequence %lld; accuracy on %s):\n%s",
              args.input.c_str(), b.threads, static_cast<long long>(v.batch), static_cast<long long>(v.seq),
              v.text.file.empty() ? (v.inputs_dir.empty() ? "generated samples" : v.inputs_dir.c_str())
                                  : v.text.file.c_str(),
              quantize::format_precision_choice(choice, bound).c_str());
  KILN_CHECK(choice.chosen >= 0, "--mode auto: no mode could be measured");
  const quantize::PrecisionCandidate& c = choice.candidates[static_cast<size_t>(choice.chosen)];
  // fp32 chosen: the input as it is (nothing lower pays here within the bound). Through the scratch folder
  // (beside the output, so the same file system) and a rename: never a half-written output.
  if (!fs::exists(args.output) || !fs::equivalent(c.path, args.output)) {
    const std::string staged = scratch.file("chosen.onnx");
    if (c.path != staged) fs::copy_file(c.path, staged, fs::copy_options::overwrite_existing);
    fs::rename(staged, args.output);
  }
  std::printf("wrote %s: %s (the fastest within --max-drop %s on this CPU)\n", args.output.c_str(), c.mode.c_str(),
              bound.text.c_str());
  print_file_sizes(args);
  return 0;
}

int run(const QuantizeArgs& args) {
  check_options(args);
  if (args.mode == "auto") return run_auto(args);
  if (args.mode == "bf16") return run_bf16(args);
  // Prepared, checked and typed as a Session would, so that an invalid model fails here with the same
  // message. The file written is the prepared model (local functions inlined, Constant nodes as
  // initializers) with the quantization; no graph optimization, so ONNX Runtime optimizes it as its own.
  ir::Model model = onnx_io::load_model(args.input);
  refuse_requantizing(model, args);
  analysis::prepare_model(model);
  analysis::infer_types(model, model.graph, {}, ops::Limits{});
  if (args.mode == "fp16") return run_fp16(args, model);
  if (!args.max_drop.empty()) return run_int8_within_bound(args, model);
  if (args.mode == "int8-static") return run_int8_static(args, model);
  return run_int8_dynamic(args, model);
}

}  // namespace

Command quantize_command() {
  auto args = std::make_shared<QuantizeArgs>();
  args->validation.threads = runtime::default_threads();
  return {[args](CLI::App& app) {
            auto* c = app.add_subcommand(
                "quantize",
                "Write a model in lower precision (bf16, fp16, int8 dynamic or static), in a format ONNX Runtime "
                "runs too");
            c->add_option("model", args->input, "Input ONNX model (float32)")->required();
            c->add_option("-o,--output", args->output, "Output ONNX model")->required();
            c->add_option("--mode", args->mode,
                          "bf16: the model unchanged but for its metadata kiln.precision = bf16: kiln multiplies in "
                          "bfloat16 (float32 sums) where the CPU computes bfloat16 (AVX512-BF16, AMX), else float32; "
                          "ONNX Runtime runs it in float32. "
                          "fp16: weights stored as float16, each cast back to float32 where it is read (embedding "
                          "tables gathered in float16): half the file, computed in float32. "
                          "int8-dynamic: each MatMul and Gemm with constant weights as ONNX Runtime's "
                          "quantize_dynamic writes it: int8 weights (symmetric, zero point 0) and uint8 "
                          "activations quantized on every call from their range (DynamicQuantizeLinear -> "
                          "MatMulInteger -> Cast -> Mul), and embedding tables of 64 Ki values or more as int8 "
                          "rows (Gather -> DequantizeLinear); kiln runs each product as one int8 kernel. "
                          "int8-static: as ONNX Runtime's quantize_static writes it (QDQ): int8 weights through "
                          "DequantizeLinear, each product's activation through QuantizeLinear -> DequantizeLinear "
                          "with a uint8 scale calibrated once on samples (--calibration or --calibration-random); "
                          "kiln runs each product as one int8 kernel. "
                          "auto: fp32, bf16, int8-dynamic and int8-static (with calibration) made, validated "
                          "against the input and measured here; the fastest within --max-drop (default cosine=0.01) "
                          "written, with the table it chose from")
                ->required()
                ->check(CLI::IsMember({"bf16", "fp16", "int8-dynamic", "int8-static", "auto"}));
            c->add_option("--max-drop", args->max_drop,
                          "METRIC[:OUTPUT]=VALUE, the accuracy the lower precision may cost against the input, as kiln "
                          "validate measures it: cosine=D (every output's lowest per-sample cosine >= 1 - D), top1=P, "
                          "top5=P or retrieval=P (agreement drops by at most P percent points). int8 modes: the "
                          "products adding the most error (kiln validate --per-layer) are kept in float32 until it "
                          "holds, and named; auto: the bound its choice must meet. :OUTPUT bounds one output only (e.g. "
                          "retrieval:last_hidden_state=2 for a text encoder used through its mean-pooled embedding)");
            auto* vinputs = c->add_option("--inputs", args->validation.inputs_dir,
                                          "--max-drop / auto: validate on DIR/NAME.npy (or subfolders of them) instead "
                                          "of generated samples");
            auto* vtext = c->add_option("--text", args->validation.text.file,
                                        "--max-drop / auto: validate on the lines of FILE (a text encoder; with --vocab)")
                              ->excludes(vinputs);
            c->add_option("--vocab", args->validation.text.vocab, "WordPiece vocabulary for --text");
            c->add_option("--samples", args->validation.samples,
                          "--max-drop / auto: generated samples to validate on (default 8)")
                ->check(CLI::PositiveNumber)
                ->excludes(vinputs)
                ->excludes(vtext);
            c->add_flag("--per-channel", args->per_channel,
                        "int8: a scale per output channel of the weights instead of one per tensor: closer to "
                        "float32 when the channels' ranges differ, as in most trained models (all-MiniLM-L6-v2 "
                        "int8-dynamic: cosine 0.992 against 0.952 per tensor); the same speed");
            c->add_option("--exclude", args->exclude,
                          "Node names or op types to leave in float32 (repeatable), e.g. a sensitive "
                          "classifier head; with fp16, the weights such nodes read stay float32");
            auto* dir = c->add_option(
                "--calibration", args->calibration_dir,
                "int8-static: calibration samples from a folder: DIR/NAME.npy per model input (one sample), or "
                "subfolders each holding NAME.npy per input (one sample per subfolder); file names as `kiln run "
                "--input-dir` maps input names");
            c->add_option("--calibration-random", args->calibration_random,
                          "int8-static: calibrate on N generated samples instead (batch 1, sequence 128; as `kiln "
                          "bench` makes inputs: token ids within the vocabulary, masks of ones, floats ~N(0, 1)); "
                          "ranges only as good as random inputs resemble real ones")
                ->check(CLI::PositiveNumber)
                ->excludes(dir);
            c->add_option("--method", args->method,
                          "int8-static: how an activation's range is chosen from what calibration saw: minmax (the "
                          "smallest and largest value; default), percentile (clips 0.0005 % at each end), entropy "
                          "(the clipped range whose quantization loses least information, KL divergence) or mse "
                          "(the clipped range with the smallest expected squared error)")
                ->check(CLI::IsMember({"minmax", "percentile", "entropy", "mse"}));
            c->add_flag("--report", args->report,
                        "List every node quantized, and every one left with the reason (int8-static: and each "
                        "activation's range)");
            c->add_flag("-q,--quiet", args->quiet, "No progress lines on stderr (calibration, --max-drop, auto)");
            return c;
          },
          [args] { return run(*args); }};
}

}  // namespace kiln::tools
