#include "pipeline/pipeline.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <optional>
#include <sstream>

#include "analysis/model_preparation.h"
#include "analysis/shape_inference.h"
#include "bench/benchmark.h"
#include "common/atomic_file.h"
#include "common/cpu_model_name.h"
#include "common/error.h"
#include "export/default_model.h"
#include "export/exporter.h"
#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/onednn_int8_matmul.h"
#include "kernels/cpu/onednn_matmul.h"
#include "onnx/model_io.h"
#include "passes/dynamic_quantization.h"
#include "passes/model_metadata.h"
#include "passes/optimizer.h"
#include "passes/static_quantization.h"
#include "pipeline/report_html.h"
#include "pipeline/report_markdown.h"
#include "quantize/accuracy_bound.h"
#include "quantize/calibration.h"
#include "quantize/precision_choice.h"
#include "runtime/session.h"
#include "validate/validation.h"

namespace kiln::pipeline {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kKilnVersion = "kiln 0.1.0";

bool contains(const std::vector<std::string>& list, const std::string& item) {
  return std::find(list.begin(), list.end(), item) != list.end();
}

// The output folder's staging folder: everything is written there, and moved into the output folder only
// when the run has succeeded. Removed in every case; the output folder too when this run made it and it
// is left empty.
class Staging {
 public:
  explicit Staging(const fs::path& out_dir) : out_(out_dir) {
    std::error_code ec;
    if (!fs::exists(out_, ec)) {
      fs::create_directories(out_, ec);
      if (ec) fail("-o ", out_.string(), ": cannot create the folder: ", ec.message());
      made_out_ = true;
    }
    if (!fs::is_directory(out_)) fail("-o ", out_.string(), ": not a folder");
    path_ = out_ / (".kiln-pipeline-" + std::to_string(::getpid()));
    fs::create_directory(path_, ec);
    if (ec) fail("-o ", out_.string(), ": cannot write there: ", ec.message());
  }
  ~Staging() {
    std::error_code ec;
    fs::remove_all(path_, ec);
    if (made_out_ && fs::is_empty(out_, ec)) fs::remove(out_, ec);
  }
  Staging(const Staging&) = delete;
  Staging& operator=(const Staging&) = delete;

  std::string file(const std::string& name) const { return (path_ / name).string(); }
  // Moves a staged file into the output folder (one rename: the same file system).
  std::string publish(const std::string& name) {
    const fs::path to = out_ / name;
    fs::rename(path_ / name, to);
    made_out_ = false;
    return to.string();
  }

 private:
  fs::path out_, path_;
  bool made_out_ = false;
};

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

double file_mb(const std::string& path) {
  std::error_code ec;
  const auto bytes = fs::file_size(path, ec);
  return ec ? 0.0 : static_cast<double>(bytes) / (1024.0 * 1024.0);
}

json nullable(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

// Rounded for a report: 4 significant digits are more than a noisy 2-core machine can tell apart.
double round_to(double v, int digits) {
  if (v == 0 || !std::isfinite(v)) return v;
  const double scale = std::pow(10.0, digits - 1 - static_cast<int>(std::floor(std::log10(std::fabs(v)))));
  return std::round(v * scale) / scale;
}

json machine_json(int threads) {
  const auto& f = kernels::cpu::cpu_features();
  json features = json::array();
  for (const auto& [name, has] : std::vector<std::pair<const char*, bool>>{
           {"avx2", f.avx2}, {"fma", f.fma}, {"avx512f", f.avx512f}, {"avx512bw", f.avx512bw}})
    if (has) features.push_back(name);
  return {{"cpu", cpu_model_name()},
          {"isa", kernels::cpu::isa_name(kernels::cpu::selected_isa())},
          {"features", features},
          {"gemm", kernels::cpu::gemm_engine_name(kernels::cpu::auto_gemm_engine())},
          {"bf16", kernels::cpu::bf16_products_run()},
          {"int8", kernels::cpu::int8_matmul_is_fast()},
          {"cores", static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN))},
          {"threads", threads}};
}

json results_json(const bench::EngineResult& e) {
  std::vector<double> all;
  for (const auto& r : e.rounds) all.insert(all.end(), r.latencies_ms.begin(), r.latencies_ms.end());
  for (double& v : all) v = round_to(v, 4);
  const bench::LatencyStats& s = e.summary;
  return {{"batch", e.batch},
          {"seq", e.seq ? json(*e.seq) : json(nullptr)},
          {"load_ms", round_to(e.load_ms, 4)},
          {"first_ms", round_to(e.first_ms, 4)},
          {"min_ms", round_to(s.min_ms, 4)},
          {"mean_ms", round_to(s.mean_ms, 4)},
          {"p50_ms", round_to(s.p50_ms, 4)},
          {"p90_ms", round_to(s.p90_ms, 4)},
          {"p99_ms", round_to(s.p99_ms, 4)},
          {"max_ms", round_to(s.max_ms, 4)},
          {"throughput_items_per_s", round_to(e.items_per_s, 4)},
          {"peak_rss_mb", round_to(e.peak_rss_mb, 4)},
          {"latencies_ms", all}};
}

json agreement_json(const validate::Agreement& a) { return a.measured() ? json(a.percent()) : json(nullptr); }

json accuracy_json(const validate::ValidationReport& v, const quantize::BoundCheck& check,
                   const quantize::AccuracyBound& bound) {
  json outputs = json::array();
  for (const validate::OutputFigures& f : v.outputs) {
    if (!f.compared()) {
      outputs.push_back({{"name", f.name}, {"not_compared", f.not_compared}});
      continue;
    }
    outputs.push_back(
        {{"name", f.name},
         {"cosine", nullable(f.cosine)},
         {"min_cosine", nullable(f.min_cosine)},
         {"max_abs_error", nullable(f.max_abs_error)},
         {"max_rel_error", nullable(f.max_rel_error)},
         {"rel_l2_error", nullable(f.rel_l2_error)},
         {"top1", agreement_json(f.top1)},
         {"top5", agreement_json(f.top5)},
         {"retrieval", agreement_json(f.retrieval)},
         {"embedding_cosine_mean", f.has_embedding_cosines() ? nullable(f.embedding_cosine_mean()) : json(nullptr)},
         {"embedding_cosine_min", f.has_embedding_cosines() ? nullable(f.embedding_cosine_min()) : json(nullptr)}});
  }
  return {{"bound", bound.text}, {"holds", check.holds}, {"summary", check.describe()}, {"outputs", outputs}};
}

json optimization_json(const passes::OptimizationReport& r) {
  json changes = json::array();
  for (const passes::PassReport& p : r.passes)
    for (const auto& [kind, count] : p.changes)
      if (count > 0) changes.push_back({{"pass", p.pass}, {"kind", kind}, {"count", count}});
  return {{"nodes_before", r.nodes_before},
          {"nodes_after", r.nodes_after},
          {"changes", changes},
          {"ops_before", r.ops_before},
          {"ops_after", r.ops_after}};
}

// One variant of the model: the file measured, and why it was not where it was not.
struct Variant {
  std::string name, label, precision, file, skipped;
  passes::Level level = passes::Level::kAll;
};

// Where the model comes from, made into a file when it is not one yet.
struct Source {
  std::string path;         // the baseline's file
  std::string description;  // for the report
  std::string staged_name;  // set when the file is made in the staging folder (to publish with the report)
};

Source resolve_model(const PipelineOptions& o, Staging& staging, const Progress& progress) {
  auto say = [&](const std::string& text) {
    if (progress) progress(text, false);
  };
  if (!o.model.empty()) {
    if (!fs::is_regular_file(o.model)) fail(o.model, ": no such model file");
    return {o.model, o.model + " as given", ""};
  }
  const std::string name = "model.baseline.onnx";
  if (!o.export_family.empty()) {
    if (o.export_family != "bert" && o.export_family != "vit")
      fail("--export ", o.export_family, ": bert or vit (kiln export handles the other families)");
    if (o.export_config.empty() || o.export_weights.empty())
      fail("--export ", o.export_family, " needs --config config.json and --weights model.safetensors");
    for (const std::string& f : {o.export_config, o.export_weights})
      if (!fs::is_regular_file(f)) fail(f, ": no such file (--export ", o.export_family, ")");
    const exporter::Family family = o.export_family == "vit" ? exporter::Family::kVit : exporter::Family::kBert;
    const exporter::TransformerConfig config = exporter::read_config(o.export_config, family);
    auto weights = exporter::checkpoint_weights(o.export_weights, config.family);
    exporter::ExportOptions eo;
    eo.weights_description = fs::path(o.export_weights).filename().string();
    say("exporting " + o.export_family + " from " + o.export_config + " and " + o.export_weights);
    onnx_io::save_model(exporter::export_model(config, *weights, eo).model, staging.file(name));
    return {staging.file(name),
            "exported by kiln export " + o.export_family + " from " + o.export_config + " and " + o.export_weights,
            name};
  }
  const std::string preset = o.preset.empty() ? exporter::kDefaultPreset : o.preset;
  if (preset == exporter::kDefaultPreset)
    return {exporter::default_model_path(say),
            std::string(o.preset.empty() ? "the built-in " : "preset ") + preset + ", seeded random weights (seed 0)",
            ""};
  const exporter::TransformerConfig config = exporter::preset_config(preset);
  auto weights = exporter::random_weights(exporter::kDefaultSeed);
  exporter::ExportOptions eo;
  eo.weights_description = "random, seed 0";
  say("exporting preset " + preset + " with seeded random weights");
  onnx_io::save_model(exporter::export_model(config, *weights, eo).model, staging.file(name));
  return {staging.file(name), "preset " + preset + ", seeded random weights (seed 0)", name};
}

// Why `precision` gains nothing on this CPU, or empty.
std::string not_faster_here(const std::string& precision) {
  if (precision == "bf16") {
    if (kernels::cpu::bf16_products_run()) return "";
    return kernels::cpu::bf16_matmul_is_fast()
               ? "KILN_GEMM=panel runs float32 products only"
               : "this CPU computes bfloat16 no faster than float32 (no AVX512-BF16 or AMX)";
  }
  if (kernels::cpu::int8_matmul_is_fast()) return "";
  return "this CPU has no faster int8 products (no AVX512-VNNI or AMX, or KILN_CPU_ISA below avx512): int8 "
         "runs in float32 here";
}

// The geometric mean of a[i] / b[i]: one figure for several configurations, each weighing the same.
double geometric_mean_ratio(const std::vector<double>& a, const std::vector<double>& b) {
  double logs = 0;
  for (size_t i = 0; i < a.size(); ++i) logs += std::log(a[i] / b[i]);
  return a.empty() ? 1.0 : std::exp(logs / static_cast<double>(a.size()));
}

std::string join(const std::vector<std::string>& items, const std::string& sep) {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : sep) + s;
  return out;
}

std::string fixed(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

void check_options(const PipelineOptions& o) {
  const int sources = !o.model.empty() + !o.export_family.empty() + !o.preset.empty();
  if (sources > 1) fail("give one model: a file, --export or --preset");
  if (o.export_family.empty() && (!o.export_config.empty() || !o.export_weights.empty()))
    fail("--config and --weights are for --export bert|vit");
  if (o.batches.empty() || o.seqs.empty()) fail("--batch and --seq need at least one value each");
  for (int64_t b : o.batches)
    if (b < 1) fail("--batch: sizes must be >= 1 (got ", b, ")");
  for (int64_t s : o.seqs)
    if (s < 1) fail("--seq: lengths must be >= 1 (got ", s, ")");
  if (o.threads < 1) fail("--threads must be >= 1 (got ", o.threads, ")");
  if (o.iterations < 1 || o.rounds < 1 || o.warmup < 0) fail("--iterations and --rounds must be >= 1, --warmup >= 0");
  if (o.samples < 1) fail("--samples must be >= 1 (got ", o.samples, ")");
  if (!o.calibration_dir.empty() && o.calibration_random > 0)
    fail("give --calibration DIR or --calibration-random N, not both");
  if (!o.calibration_dir.empty()) {
    std::error_code ec;
    if (!fs::is_directory(o.calibration_dir, ec)) fail("--calibration ", o.calibration_dir, ": no such folder");
    fs::directory_iterator it(o.calibration_dir, ec);
    if (ec) fail("--calibration ", o.calibration_dir, ": cannot read the folder: ", ec.message());
  }
  if (!o.inputs_dir.empty() && !fs::is_directory(o.inputs_dir)) fail("--inputs ", o.inputs_dir, ": no such folder");
  if (contains(o.precisions, "int8-static") && o.calibration_dir.empty() && o.calibration_random == 0)
    fail("--precision int8-static needs calibration samples: --calibration DIR (or --calibration-random N)");
  quantize::parse_accuracy_bound(o.max_drop);  // fails on a bad bound before any work
}

// The commands that redo the run, then make, measure and check the chosen file alone.
json reproduce_commands(const PipelineOptions& o, const std::string& baseline, const std::string& chosen,
                        const std::string& chosen_file) {
  auto list = [](const std::vector<int64_t>& v) {
    std::string out;
    for (int64_t x : v) out += (out.empty() ? "" : ",") + std::to_string(x);
    return out;
  };
  json commands = json::array({o.command_line.empty() ? "kiln pipeline" : o.command_line});
  if (chosen.empty() || chosen == "baseline") return commands;
  const std::string shapes =
      " --batch " + list(o.batches) + " --seq " + list(o.seqs) + " --threads " + std::to_string(o.threads);
  if (chosen == "optimized")
    commands.push_back("kiln optimize " + baseline + " -o " + chosen_file);
  else if (chosen == "bf16")
    commands.push_back("kiln quantize " + baseline + " -o " + chosen_file + " --mode bf16");
  else if (chosen == "int8-dynamic")
    commands.push_back("kiln quantize " + baseline + " -o " + chosen_file + " --mode int8-dynamic --per-channel");
  else
    commands.push_back("kiln quantize " + baseline + " -o " + chosen_file + " --mode int8-static --per-channel " +
                       (o.calibration_dir.empty() ? "--calibration-random " + std::to_string(o.calibration_random)
                                                  : "--calibration " + o.calibration_dir));
  std::string peers;
  for (const auto& p : o.peers) peers += (peers.empty() ? "" : ",") + p.key;
  commands.push_back("kiln bench " + baseline + " --level none" + shapes + (peers.empty() ? "" : " --vs " + peers));
  commands.push_back("kiln bench " + chosen_file + shapes);
  commands.push_back("kiln validate " + baseline + " " + chosen_file + " --threads " + std::to_string(o.threads) +
                     (o.inputs_dir.empty() ? " --samples " + std::to_string(o.samples) : " --inputs " + o.inputs_dir));
  return commands;
}

}  // namespace

std::vector<std::string> parse_precisions(const std::string& list) {
  if (list == "auto" || list.empty()) return {};
  std::vector<std::string> out;
  std::stringstream in(list);
  std::string item;
  while (std::getline(in, item, ',')) {
    if (item.empty()) continue;
    if (item == "auto") fail("--precision: auto stands alone (it means every precision this CPU speeds up)");
    if (item != "fp32" && !contains(kPrecisions, item))
      fail("--precision: unknown precision \"", item, "\" (auto, or a list of fp32, ", join(kPrecisions, ", "), ")");
    if (!contains(out, item)) out.push_back(item);
  }
  if (out.empty()) fail("--precision: no precision given");
  return out;
}

PipelineResult run_pipeline(const PipelineOptions& o, const Progress& progress) {
  check_options(o);
  const quantize::AccuracyBound bound = quantize::parse_accuracy_bound(o.max_drop);
  auto say = [&](const std::string& text) {
    if (progress) progress(text, false);
  };
  const auto start = std::chrono::steady_clock::now();
  Staging staging(o.out_dir);
  std::vector<std::string> notes;

  const Source source = resolve_model(o, staging, progress);
  say("reading " + source.path);
  ir::Model prepared = onnx_io::load_model(source.path);
  analysis::prepare_model(prepared);
  analysis::infer_types(prepared, prepared.graph, {}, ops::Limits{});
  const std::string quantized_already = passes::model_metadata(prepared, passes::kQuantizationMetadataKey);
  // Calibration samples are read (and checked against the model's inputs) before any long work.
  std::optional<validate::InputSamples> calibration;
  if (!o.calibration_dir.empty()) calibration = quantize::calibration_samples_from_folder(prepared, o.calibration_dir);

  // The variants, their files made before anything is measured.
  const bool auto_precisions = o.precisions.empty();
  std::vector<Variant> variants;
  variants.push_back(
      {"baseline", "the model as given, no graph optimization", "fp32", source.path, "", passes::Level::kNone});
  say("optimizing");
  passes::OptimizationReport optimization;
  {
    ir::Model m = prepared;  // as a kiln Session optimizes it: the fusion summary
    optimization = passes::optimize(m, passes::OptimizeOptions{});
  }
  {
    ir::Model m = prepared;  // the file: ONNX Runtime's ops only, so that it runs there too
    passes::OptimizeOptions oo;
    oo.target = passes::Target::kOnnxRuntime;
    passes::optimize(m, oo);
    onnx_io::save_model(m, staging.file("model.optimized.onnx"));
    variants.push_back({"optimized", "kiln's graph passes, float32", "fp32", staging.file("model.optimized.onnx"), ""});
  }
  for (const std::string& precision : kPrecisions) {
    if (!auto_precisions && !contains(o.precisions, precision)) continue;
    Variant v{precision, "", precision == "bf16" ? "bf16" : "int8", "", ""};
    v.label = precision == "bf16"           ? "optimized, matrix products in bfloat16 (kiln.precision tag)"
              : precision == "int8-dynamic" ? "int8 weights per channel, activations quantized per call"
                                            : "int8 weights per channel, activations at calibrated scales (QDQ)";
    const std::string slow = not_faster_here(precision);
    if (!slow.empty()) {
      if (auto_precisions) {
        v.skipped = slow;
        variants.push_back(v);
        continue;
      }
      notes.push_back(precision + " was asked for, but " + slow);
    }
    if (!quantized_already.empty() && precision != "bf16") {
      if (!auto_precisions)
        fail(source.path, ": already quantized (", passes::kQuantizationMetadataKey, " = ", quantized_already,
             "); --precision ", precision, " needs its float32 original");
      v.skipped = "the model is already quantized (" + quantized_already + ")";
      variants.push_back(v);
      continue;
    }
    const std::string file = staging.file("model." + precision + ".onnx");
    if (precision == "bf16") {
      ir::Model m = onnx_io::load_model(staging.file("model.optimized.onnx"));
      passes::set_model_metadata(m, runtime::kPrecisionMetadataKey, "bf16");
      onnx_io::save_model(m, file);
    } else if (precision == "int8-dynamic") {
      say("quantizing: int8-dynamic, per channel");
      ir::Model m = prepared;
      passes::DynamicQuantizeOptions qo;
      qo.per_channel = true;
      if (passes::quantize_dynamic(m, qo).quantized.empty()) {
        if (!auto_precisions) fail(source.path, ": no MatMul or Gemm with constant float32 weights for int8-dynamic");
        v.skipped = "no MatMul or Gemm with constant float32 weights to quantize";
        variants.push_back(v);
        continue;
      }
      onnx_io::save_model(m, file);
    } else {
      if (o.calibration_dir.empty() && o.calibration_random == 0) {
        v.skipped = "no calibration samples (--calibration DIR, or --calibration-random N)";
        variants.push_back(v);
        continue;
      }
      ir::Model m = prepared;
      passes::StaticQuantizeOptions so;
      so.per_channel = true;
      const passes::StaticQuantizePlan plan = passes::plan_static_quantization(m, so);
      if (plan.activations.empty()) {
        if (!auto_precisions) fail(source.path, ": no MatMul or Gemm with constant float32 weights for int8-static");
        v.skipped = "no MatMul or Gemm with constant float32 weights to quantize";
        variants.push_back(v);
        continue;
      }
      const validate::InputSamples samples =
          calibration ? *calibration : quantize::generated_calibration_samples(m, o.calibration_random);
      say("calibrating int8-static on " + samples.description());
      const auto ranges =
          quantize::calibrate(m, plan.activations, samples, quantize::CalibrationMethod::kMinMax, progress);
      passes::quantize_static(m, so, ranges);
      onnx_io::save_model(m, file);
    }
    v.file = file;
    variants.push_back(v);
  }

  // Measured: each variant benchmarked (the peers alongside the baseline), then validated against it.
  json variants_json = json::array();
  json peers_json = json::array();
  std::vector<double> baseline_p50;           // per configuration
  std::vector<std::vector<double>> peer_p50;  // per peer, per configuration
  std::vector<double> chosen_p50;
  int chosen = -1;
  double chosen_time = 0;  // geometric mean over the configurations of p50 / the baseline's
  std::vector<std::optional<quantize::BoundCheck>> checks(variants.size());
  for (size_t i = 0; i < variants.size(); ++i) {
    const Variant& v = variants[i];
    json vj = {{"name", v.name},
               {"label", v.label},
               {"file", v.file.empty() ? json(nullptr) : json(v.file)},
               {"precision", v.precision},
               {"skipped", v.skipped.empty() ? json(nullptr) : json(v.skipped)},
               {"size_mb", v.file.empty() ? json(nullptr) : json(round_to(file_mb(v.file), 4))},
               {"results", json::array()},
               {"accuracy", nullptr}};
    if (!v.skipped.empty()) {
      say(v.name + ": left out: " + v.skipped);
      variants_json.push_back(vj);
      continue;
    }
    bench::BenchOptions b;
    b.model = v.file;
    b.batches = o.batches;
    b.seqs = o.seqs;
    b.threads = o.threads;
    b.warmup = o.warmup;
    b.iterations = o.iterations;
    b.rounds = o.rounds;
    b.level = v.level;
    if (v.name == "baseline") b.peers = o.peers;
    say(v.name + ": measuring" + (b.peers.empty() ? "" : " (with the peers)"));
    const bench::BenchReport r = bench::run_benchmark(b, progress);
    for (const std::string& n : r.notes)
      if (v.name == "baseline") notes.push_back(n);
    for (size_t c = 0; c < r.configs.size(); ++c) {
      json res = results_json(r.configs[c].kiln);
      if (v.name == "baseline") baseline_p50.push_back(r.configs[c].kiln.summary.p50_ms);
      res["speedup"] = round_to(baseline_p50[c] / r.configs[c].kiln.summary.p50_ms, 4);
      vj["results"].push_back(res);
      if (v.name != "baseline") continue;
      for (size_t p = 0; p < r.configs[c].peers.size(); ++p) {
        const bench::EngineResult& e = r.configs[c].peers[p];
        if (peers_json.size() <= p)
          peers_json.push_back(
              {{"name", e.engine}, {"version", e.version}, {"precision", e.precision}, {"results", json::array()}});
        json pres = results_json(e);
        pres["speedup"] = round_to(baseline_p50[c] / e.summary.p50_ms, 4);
        peers_json[p]["results"].push_back(pres);
        if (peer_p50.size() <= p) peer_p50.emplace_back();
        peer_p50[p].push_back(e.summary.p50_ms);
      }
    }
    std::vector<double> p50s;
    for (const bench::ConfigResult& c : r.configs) p50s.push_back(c.kiln.summary.p50_ms);
    const double p50 = p50s.front();
    bool holds = true;
    if (v.name != "baseline") {
      say(v.name + ": validating against the baseline");
      validate::ValidationOptions vo;
      vo.reference = source.path;
      vo.candidate = v.file;
      vo.inputs_dir = o.inputs_dir;
      vo.samples = o.samples;
      vo.batch = o.batches.front();
      vo.seq = o.seqs.front();
      vo.threads = o.threads;
      vo.reference_level = passes::Level::kNone;
      const validate::ValidationReport vr = validate::run_validation(vo, progress);
      const quantize::BoundCheck check = quantize::check_bound(vr, bound);
      vj["accuracy"] = accuracy_json(vr, check, bound);
      checks[i] = check;
      holds = check.holds;
      say(v.name + ": p50 " + fixed(p50, 2) + " ms, " + check.describe() + (holds ? "" : ": out of bound"));
    } else {
      say("baseline: p50 " + fixed(p50, 2) + " ms");
    }
    // The fastest within the bound over every configuration (the geometric mean of its times relative to the
    // baseline's), a later (lower) precision chosen only when it is clearly faster: a noisy machine must not
    // trade accuracy for a difference it cannot measure.
    const double time = geometric_mean_ratio(p50s, baseline_p50);
    if (holds && (chosen < 0 || time < chosen_time * (1.0 - quantize::kMinGain))) {
      chosen = static_cast<int>(i);
      chosen_time = time;
      chosen_p50 = p50s;
    }
    variants_json.push_back(vj);
  }

  // The report, with the chosen variant's file.
  json report;
  report["schema"] = "kiln.pipeline.report/1";
  report["kiln_version"] = kKilnVersion;
  report["created"] = utc_now();
  report["machine"] = machine_json(o.threads);
  json inputs = json::array();
  for (const ir::ValueInfo& in : prepared.graph.inputs) inputs.push_back(in.name + " " + ir::to_string(in.type));
  const std::string baseline_path =
      source.staged_name.empty() ? source.path : (fs::path(o.out_dir) / source.staged_name).string();
  report["model"] = {{"path", baseline_path},
                     {"source", source.description},
                     {"size_mb", round_to(file_mb(source.path), 4)},
                     {"inputs", inputs}};
  std::vector<std::string> peer_names;
  for (const auto& p : o.peers) peer_names.push_back(p.name);
  const bool has_seq = !variants_json[0]["results"].empty() && !variants_json[0]["results"][0]["seq"].is_null();
  report["settings"] = {
      {"batches", o.batches},
      {"seqs", has_seq ? json(o.seqs) : json::array()},
      {"threads", o.threads},
      {"warmup", o.warmup},
      {"iterations", o.iterations},
      {"rounds", o.rounds},
      {"max_drop", bound.text},
      {"validation_inputs", o.inputs_dir.empty() ? std::to_string(o.samples) + " generated samples" : o.inputs_dir},
      {"peers", peer_names}};
  report["optimization"] = optimization_json(optimization);
  // Only the chosen variant's file is kept (and the baseline's, the user's own or made from an export):
  // the others' paths named the staging folder, which is gone when the run ends.
  for (size_t i = 0; i < variants.size(); ++i) {
    json& file = variants_json[i]["file"];
    if (file.is_null()) continue;
    if (static_cast<int>(i) == chosen)
      file = (fs::path(o.out_dir) / ("model." + variants[i].name + ".onnx")).string();
    else if (i == 0)
      file = baseline_path;
    else
      file = nullptr;
  }
  report["variants"] = variants_json;
  report["peers"] = peers_json;

  PipelineResult result;
  result.out_dir = o.out_dir;
  std::string chosen_name;
  if (chosen >= 0) {
    const Variant& v = variants[static_cast<size_t>(chosen)];
    chosen_name = "model." + v.name + ".onnx";
    const double speedup = 1.0 / chosen_time;
    json vs_peers = json::object();
    for (size_t p = 0; p < peers_json.size(); ++p)
      vs_peers[peers_json[p]["name"].get<std::string>()] = round_to(geometric_mean_ratio(peer_p50[p], chosen_p50), 3);
    const std::string accuracy = checks[static_cast<size_t>(chosen)]
                                     ? checks[static_cast<size_t>(chosen)]->output + " " +
                                           fixed(checks[static_cast<size_t>(chosen)]->value,
                                                 bound.metric == quantize::AccuracyBound::Metric::kCosine ? 5 : 1)
                                     : "the reference itself";
    report["chosen"] = {{"variant", v.name},
                        {"file", (fs::path(o.out_dir) / chosen_name).string()},
                        {"speedup", round_to(speedup, 3)},
                        {"speedup_vs_peers", vs_peers},
                        {"accuracy", accuracy}};
    if (v.name == "baseline") {
      result.headline = "baseline: nothing kiln tried here was faster within --max-drop " + bound.text;
    } else {
      result.headline = v.name + ": " + fixed(speedup, 1) + "x faster than the baseline";
      for (const auto& [peer, ratio] : vs_peers.items())
        result.headline += ", " + fixed(ratio.get<double>(), 1) + "x " + peer + "'s speed";
      result.headline += "; " + accuracy;
    }
    // The baseline's file is the user's own: copied, not moved.
    if (v.name == "baseline" && source.staged_name.empty())
      fs::copy_file(v.file, staging.file(chosen_name), fs::copy_options::overwrite_existing);
    else if (v.name == "baseline")
      chosen_name = source.staged_name;
  } else {
    report["chosen"] = nullptr;
    result.headline = "no variant met --max-drop " + bound.text + ": nothing written but the report";
  }
  report["headline"] = result.headline;
  const double minutes = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / 60.0;
  notes.push_back("the run took " + fixed(minutes, 1) + " min");
  report["commands"] =
      reproduce_commands(o, baseline_path, chosen >= 0 ? variants[static_cast<size_t>(chosen)].name : "",
                         chosen >= 0 ? (fs::path(o.out_dir) / chosen_name).string() : "");
  report["notes"] = notes;

  say("writing the report");
  write_file_atomically(staging.file("report.json"), report.dump(2) + "\n", "report.json");
  write_file_atomically(staging.file("report.md"), render_report_markdown(report), "report.md");
  write_file_atomically(staging.file("report.html"), render_report_html(report), "report.html");
  // Published last, the report after the model it names.
  if (chosen >= 0) result.chosen_file = staging.publish(chosen_name);
  if (!source.staged_name.empty() && source.staged_name != chosen_name) staging.publish(source.staged_name);
  staging.publish("report.json");
  staging.publish("report.md");
  staging.publish("report.html");
  result.report = std::move(report);
  return result;
}

}  // namespace kiln::pipeline
