// kiln optimize: graph passes (folding, elimination, fusion) on a model, with a report of what each did.
#include <cstdio>
#include <fstream>

#include "analysis/model_preparation.h"
#include "analysis/shape_inference.h"
#include "common/error.h"
#include "onnx/model_io.h"
#include "passes/optimizer.h"
#include "tools/commands.h"

namespace kiln::tools {

namespace {

struct OptimizeArgs {
  std::string input;
  std::string output;
  std::string level = "all";
  // ort by default: a written model is meant to be portable, and only kiln runs kiln's own fused ops.
  std::string target = "ort";
  bool report = false;
  std::string json;
};

int run(const OptimizeArgs& args) {
  passes::OptimizeOptions options;
  options.level = passes::parse_level(args.level);
  options.target = passes::parse_target(args.target);
  // The model is prepared, checked and its types inferred the way a Session does, so that an invalid model
  // fails here with the same message rather than half-way through a pass.
  ir::Model model = onnx_io::load_model(args.input);
  analysis::prepare_model(model);
  analysis::infer_types(model, model.graph, {}, ops::Limits{});
  passes::OptimizationReport report = passes::optimize(model, options);
  onnx_io::save_model(model, args.output);
  if (args.report) std::fputs(report.to_text().c_str(), stdout);
  if (!args.json.empty()) {
    std::ofstream out(args.json);
    if (!(out << report.to_json() << "\n")) fail("cannot write the report to ", args.json);
  }
  std::printf("wrote %s: %lld nodes -> %lld nodes (level %s, target %s)\n", args.output.c_str(),
              static_cast<long long>(report.nodes_before), static_cast<long long>(report.nodes_after),
              passes::level_name(options.level), passes::target_name(options.target));
  return 0;
}

}  // namespace

Command optimize_command() {
  auto args = std::make_shared<OptimizeArgs>();
  return {[args](CLI::App& app) {
            auto* c = app.add_subcommand(
                "optimize",
                "Rewrite a model with graph passes (constant folding, elimination, "
                "fusion into ONNX Runtime's contrib ops, or kiln's own with --target kiln) and say what "
                "changed");
            c->add_option("model", args->input, "Input ONNX model")->required();
            c->add_option("-o,--output", args->output, "Output ONNX model")->required();
            c->add_option("--level", args->level,
                          "none, basic (folding, elimination, Conv+BatchNorm), extended (the fusions) or all "
                          "(with --target kiln also the layout passes: each 2-D Conv to channels-last "
                          "ai.kiln.FusedConv between Transposes, the Transposes then pushed down until they cancel)")
                ->capture_default_str()
                ->check(CLI::IsMember({"none", "basic", "extended", "all"}));
            c->add_option("--target", args->target,
                          "ort: write only ops ONNX Runtime runs (the output runs in both); kiln: also use "
                          "kiln's own fused ops (domain ai.kiln), which only kiln runs")
                ->capture_default_str()
                ->check(CLI::IsMember({"ort", "kiln"}));
            c->add_flag("--report", args->report,
                        "Print what each pass changed, and every candidate it left alone with the reason");
            c->add_option("--json", args->json, "Write the report as JSON to this file");
            return c;
          },
          [args] { return run(*args); }};
}

}  // namespace kiln::tools
