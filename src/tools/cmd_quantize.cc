// kiln quantize: a model's matrix products in lower precision, written as ONNX that ONNX Runtime runs too.
#include <sys/stat.h>

#include <cstdio>

#include "analysis/model_preparation.h"
#include "analysis/shape_inference.h"
#include "common/error.h"
#include "onnx/model_io.h"
#include "passes/dynamic_quantization.h"
#include "tools/commands.h"

namespace kiln::tools {

namespace {

struct QuantizeArgs {
  std::string input;
  std::string output;
  std::string mode;
  bool per_channel = false;
  std::vector<std::string> exclude;
  bool report = false;
};

double file_mb(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 ? static_cast<double>(st.st_size) / (1 << 20) : 0.0;
}

int run(const QuantizeArgs& args) {
  // Prepared, checked and typed as a Session would, so that an invalid model fails here with the same
  // message. The file written is the prepared model (local functions inlined, Constant nodes as
  // initializers) with the quantization; no graph optimization, so ONNX Runtime optimizes it as its own.
  ir::Model model = onnx_io::load_model(args.input);
  analysis::prepare_model(model);
  analysis::infer_types(model, model.graph, {}, ops::Limits{});
  passes::DynamicQuantizeOptions options;
  options.per_channel = args.per_channel;
  options.exclude = args.exclude;
  const passes::DynamicQuantizeReport report = passes::quantize_dynamic(model, options);
  if (report.quantized.empty()) {
    for (const auto& s : report.skipped) std::fprintf(stderr, "  left in float32: %s: %s\n", s.node.c_str(), s.reason.c_str());
    fail(args.input, ": no MatMul or Gemm with constant float32 weights to quantize");
  }
  onnx_io::save_model(model, args.output);
  const int64_t products = static_cast<int64_t>(report.quantized.size()) - report.tables;
  std::printf("wrote %s: %s, %lld MatMul/Gemm node(s) in int8 (%s weights) and %lld embedding table(s), %zu "
              "product(s) left in float32\n",
              args.output.c_str(), args.mode.c_str(), static_cast<long long>(products),
              args.per_channel ? "per-column" : "per-tensor", static_cast<long long>(report.tables),
              report.skipped.size());
  std::printf("weights of the quantized nodes: %.1f MB float32 -> %.1f MB int8; file %.1f MB -> %.1f MB (%.2fx)\n",
              static_cast<double>(report.float_weight_bytes) / (1 << 20),
              static_cast<double>(report.int8_weight_bytes) / (1 << 20), file_mb(args.input), file_mb(args.output),
              file_mb(args.input) > 0 ? file_mb(args.output) / file_mb(args.input) : 0.0);
  std::printf("check its accuracy: kiln validate %s %s%s\n", args.input.c_str(), args.output.c_str(),
              args.per_channel ? ""
                               : "  (per-tensor scales: on trained models --per-channel is usually much closer to "
                                 "float32, e.g. all-MiniLM-L6-v2's cosine 0.992 against 0.952)");
  if (args.report) {
    for (const auto& q : report.quantized) std::printf("  int8: %s\n", q.c_str());
    for (const auto& s : report.skipped) std::printf("  float32: %s: %s\n", s.node.c_str(), s.reason.c_str());
  }
  return 0;
}

}  // namespace

Command quantize_command() {
  auto args = std::make_shared<QuantizeArgs>();
  return {[args](CLI::App& app) {
            auto* c = app.add_subcommand(
                "quantize",
                "Write a model with its matrix products in lower precision, in a format ONNX Runtime runs too");
            c->add_option("model", args->input, "Input ONNX model (float32)")->required();
            c->add_option("-o,--output", args->output, "Output ONNX model")->required();
            c->add_option("--mode", args->mode,
                          "int8-dynamic: each MatMul and Gemm with constant weights as ONNX Runtime's "
                          "quantize_dynamic writes it: int8 weights (symmetric, zero point 0) and uint8 "
                          "activations quantized on every call from their range (DynamicQuantizeLinear -> "
                          "MatMulInteger -> Cast -> Mul), and embedding tables of 64 Ki values or more as int8 "
                          "rows (Gather -> DequantizeLinear); kiln runs each product as one int8 kernel")
                ->required()
                ->check(CLI::IsMember({"int8-dynamic"}));
            c->add_flag("--per-channel", args->per_channel,
                        "A scale per column of the weights (per output channel) instead of one per tensor: "
                        "closer to float32 when the columns' ranges differ, as in most trained models "
                        "(all-MiniLM-L6-v2: cosine 0.992 against 0.952 per tensor); the same speed");
            c->add_option("--exclude", args->exclude,
                          "Node names or op types to leave in float32 (repeatable), e.g. a sensitive "
                          "classifier head");
            c->add_flag("--report", args->report, "List every node quantized, and every one left with the reason");
            return c;
          },
          [args] { return run(*args); }};
}

}  // namespace kiln::tools
