// kiln pipeline: the whole job on one model (pipeline/pipeline.h), ending in a table and a report.
#include <cstdio>
#include <fstream>

#include "bench/peer_bench.h"
#include "common/error.h"
#include "pipeline/pipeline.h"
#include "pipeline/report_terminal.h"
#include "runtime/threads.h"
#include "tools/commands.h"
#include "tools/parse_util.h"
#include "tools/progress_line.h"

namespace kiln::tools {

namespace {

struct PipelineArgs {
  pipeline::PipelineOptions options;
  std::string batch = "1";
  std::string seq = "128";
  std::string precision = "auto";
  std::string vs;
  bool quiet = false;
};

// The command line as typed (from /proc/self/cmdline), quoted for a shell, for the report's commands.
std::string quoted_command_line() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  std::string out = "kiln", arg;
  bool first = true;
  while (std::getline(in, arg, '\0')) {
    if (first) {  // the program's own path
      first = false;
      continue;
    }
    const bool plain = !arg.empty() && arg.find_first_of(" \t'\"$\\;&|<>*?()`!#~") == std::string::npos;
    out += " " + (plain ? arg : "'" + arg + "'");
  }
  return out;
}

int run(PipelineArgs& args) {
  pipeline::PipelineOptions o = args.options;
  o.batches = parse_positive_list(args.batch, "--batch");
  o.seqs = parse_positive_list(args.seq, "--seq");
  o.precisions = pipeline::parse_precisions(args.precision);
  if (!args.vs.empty()) o.peers = bench::parse_peer_engines(args.vs);
  o.command_line = quoted_command_line();
  pipeline::PipelineResult result;
  {
    ProgressLine line(args.quiet);
    result = pipeline::run_pipeline(o, [&](const std::string& text, bool transient) { line.show(text, transient); });
  }
  std::fputs(pipeline::format_terminal_table(result.report).c_str(), stdout);
  if (!result.chosen_file.empty()) std::printf("use this: %s\n", result.chosen_file.c_str());
  std::printf("report: %s/report.html (also report.md, report.json)\n", result.out_dir.c_str());
  return 0;
}

}  // namespace

Command pipeline_command() {
  auto args = std::make_shared<PipelineArgs>();
  args->options.threads = runtime::default_threads();
  return {[args](CLI::App& app) {
            auto* c = app.add_subcommand(
                "pipeline",
                "The whole job on one model: measure where it starts (the model as given, no graph "
                "optimization), optimize it, lower its precision where this CPU runs faster (bf16, int8 dynamic "
                "and static), benchmark each variant with the peers alongside, validate each against the "
                "baseline, write the fastest within the accuracy bound and a report (report.md, report.json and "
                "a self-contained report.html)");
            pipeline::PipelineOptions& o = args->options;
            auto* model = c->add_option("model", o.model,
                                        "ONNX model file (default: the built-in bert-base with random weights)");
            auto* family = c->add_option("--export", o.export_family,
                                         "Export the model first from a Hugging Face checkpoint: bert or vit, with "
                                         "--config and --weights")
                               ->check(CLI::IsMember({"bert", "vit"}))
                               ->excludes(model);
            c->add_option("--config", o.export_config, "With --export: the checkpoint's config.json");
            c->add_option("--weights", o.export_weights, "With --export: the checkpoint's model.safetensors");
            c->add_option("--preset", o.preset,
                          "Export a preset with seeded random weights: bert-tiny, bert-mini, bert-base, bert-large, "
                          "distilbert, vit-tiny or vit-base")
                ->excludes(model)
                ->excludes(family);
            c->add_option("--batch", args->batch, "Batch sizes, comma-separated, e.g. 1,8")->capture_default_str();
            c->add_option("--seq", args->seq,
                          "Sequence lengths, comma-separated (ignored for models without a sequence dim)")
                ->capture_default_str();
            c->add_option("--precision", args->precision,
                          "auto (every precision this CPU runs faster: bf16 with AVX512-BF16 or AMX, int8 with "
                          "AVX512-VNNI or AMX, int8-static when calibration samples are given), or a list of fp32, "
                          "bf16, int8-dynamic, int8-static (the baseline and optimized fp32 variants always run)")
                ->capture_default_str();
            c->add_option("--max-drop", o.max_drop,
                          "The accuracy a variant may lose against the baseline and still be chosen: cosine=D (the "
                          "lowest per-sample cosine >= 1 - D), top1=P, top5=P or retrieval=P (percent points), "
                          "optionally METRIC:OUTPUT=VALUE for one output")
                ->capture_default_str();
            c->add_option("--vs", args->vs,
                          "Peers run on the baseline's file alongside it, comma-separated: ort, openvino, "
                          "openvino-f32, openvino-default (as kiln bench --vs; `make peers` installs them)");
            c->add_option("--calibration", o.calibration_dir,
                          "int8-static's calibration samples: a folder of NAME.npy files or of subfolders of them");
            c->add_option("--calibration-random", o.calibration_random,
                          "int8-static calibrated on this many generated samples instead (random inputs calibrate "
                          "only as well as they resemble real ones)");
            c->add_option("--inputs", o.inputs_dir,
                          "Validation samples: a folder of NAME.npy files or of subfolders of them (default: "
                          "--samples generated ones)");
            c->add_option("--samples", o.samples, "Generated validation samples")->capture_default_str();
            c->add_option("-o,--output", o.out_dir,
                          "Output folder: report.md, report.json, report.html and model.<variant>.onnx")
                ->capture_default_str();
            c->add_option("--threads", o.threads, "Intra-op threads for kiln and the peers (default: the cores)")
                ->capture_default_str();
            c->add_option("--warmup", o.warmup, "Untimed calls at the start of each round")->capture_default_str();
            c->add_option("--iterations", o.iterations, "Timed calls per round")->capture_default_str();
            c->add_option("--rounds", o.rounds, "Rounds per variant and peer; figures are medians across rounds")
                ->capture_default_str();
            c->add_flag("-q,--quiet", args->quiet, "No progress on stderr");
            c->footer(
                "Variants: baseline (the model as given, kiln with no graph optimization: where you start), "
                "optimized (kiln's graph passes, float32), bf16 (optimized, the matrix products in bfloat16), "
                "int8-dynamic (per-channel int8 weights), int8-static (QDQ, calibrated). Each is benchmarked on "
                "every --batch x --seq and validated against the baseline (kiln validate's figures); the fastest "
                "within --max-drop is chosen (a lower precision only when >= 3 % faster) and written as "
                "OUT/model.<variant>.onnx. Everything is made in a staging folder inside OUT and moved into place "
                "at the end: a failed run leaves no half-written report.");
            return c;
          },
          [args] { return run(*args); }};
}

}  // namespace kiln::tools
