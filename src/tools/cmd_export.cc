// kiln export: build a BERT / DistilBERT / ViT ONNX model from a Hugging Face checkpoint or from a preset
// with seeded random weights, or a ResNet-50 / MobileNetV3-Small image classifier with seeded random weights.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>

#include "common/error.h"
#include "export/cnn_export.h"
#include "export/exporter.h"
#include "onnx/model_io.h"
#include "tools/commands.h"

namespace kiln::tools {

namespace {

struct ExportArgs {
  std::string family;
  std::string config;
  std::string weights;
  std::string preset;
  bool random_weights = false;
  uint64_t seed = 0;
  std::string output;
  int64_t opset = 14;
  int64_t image_size = 224;
  bool image_size_given = false;
  bool quiet = false;
};

exporter::Family family_of(const std::string& name) {
  if (name == "bert") return exporter::Family::kBert;
  if (name == "distilbert") return exporter::Family::kDistilBert;
  if (name == "vit") return exporter::Family::kVit;
  fail("unknown model family \"", name, "\" (bert, distilbert or vit)");
}

// The family a preset or command argument names; "distilbert" is exported by `kiln export bert` too.
bool same_command_family(exporter::Family a, exporter::Family b) {
  auto text = [](exporter::Family f) { return f == exporter::Family::kVit; };
  return text(a) == text(b);
}

void make_parent_folder(const std::string& output) {
  if (auto parent = std::filesystem::path(output).parent_path(); !parent.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(parent, ec);
    if (ec) fail("cannot create the folder ", parent.string(), " for ", output, ": ", ec.message());
  }
}

// resnet50 / mobilenetv3: built from the architecture alone, with seeded random weights.
int run_cnn(const ExportArgs& args, exporter::CnnFamily family, std::chrono::steady_clock::time_point start) {
  const char* name = exporter::cnn_family_name(family);
  if (!args.config.empty() || !args.weights.empty() || !args.preset.empty())
    fail(name, " is built with seeded random weights: --config, --weights and --preset do not apply");
  exporter::CnnOptions options;
  options.opset = args.opset;
  options.seed = args.seed;
  options.image_size = args.image_size;
  ir::Model model = exporter::export_cnn(family, options);
  make_parent_folder(args.output);
  onnx_io::save_model(model, args.output);
  int64_t parameters = 0;
  for (const auto& [n, t] : model.graph.initializers) parameters += t.numel();
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("wrote %s: %s, %.2f M parameters, %zu nodes, input [batch, 3, %lld, %lld], opset %lld, in %.1f s\n",
              args.output.c_str(), name, parameters / 1e6, model.graph.nodes.size(),
              static_cast<long long>(args.image_size), static_cast<long long>(args.image_size),
              static_cast<long long>(args.opset), seconds);
  return 0;
}

int run(const ExportArgs& args) {
  const auto start = std::chrono::steady_clock::now();
  if (args.output.empty()) fail("give the output file with -o OUT.onnx");
  if (auto cnn = exporter::cnn_family_of(args.family)) return run_cnn(args, *cnn, start);
  if (args.image_size_given)
    fail("--image-size is for resnet50 and mobilenetv3 (a ViT's comes with its --config or --preset)");
  if (args.config.empty() && args.preset.empty())
    fail("give the model's sizes with --config config.json or --preset NAME");
  if (!args.config.empty() && !args.preset.empty()) fail("give --config or --preset, not both");
  if (args.weights.empty() && !args.random_weights && args.preset.empty())
    fail("give the weights with --weights model.safetensors, or use --random-weights");
  if (!args.weights.empty() && args.random_weights) fail("give --weights or --random-weights, not both");

  exporter::TransformerConfig config;
  if (!args.preset.empty()) {
    config = exporter::preset_config(args.preset);
    if (!args.family.empty() && !same_command_family(family_of(args.family), config.family))
      fail("preset ", args.preset, " is a ", exporter::family_name(config.family), " model, not ", args.family);
  } else {
    exporter::Family asked = args.family.empty() ? exporter::Family::kBert : family_of(args.family);
    config = exporter::read_config(args.config, asked);
  }

  std::unique_ptr<exporter::WeightSource> weights;
  exporter::ExportOptions options;
  options.opset = args.opset;
  if (!args.weights.empty()) {
    weights = exporter::checkpoint_weights(args.weights, config.family);
    options.weights_description = std::filesystem::path(args.weights).filename().string();
  } else {
    weights = exporter::random_weights(args.seed);
    options.weights_description = "random, seed " + std::to_string(args.seed);
  }

  // Progress goes to a terminal only, so that in scripts and logs an error stays a single line.
  const bool show_progress = !args.quiet && isatty(fileno(stderr));
  if (show_progress) {
    std::fprintf(stderr, "exporting %s (%s, %lld layers, hidden %lld) with %s weights\n",
                 exporter::family_name(config.family), config.name.c_str(), static_cast<long long>(config.num_layers),
                 static_cast<long long>(config.hidden_size), options.weights_description.c_str());
    options.progress = [](int64_t done, int64_t total) {
      std::fprintf(stderr, "\r  layer %lld/%lld%s", static_cast<long long>(done), static_cast<long long>(total),
                   done == total ? "\n" : "");
    };
  }
  exporter::ExportResult result = exporter::export_model(config, *weights, options);
  if (!result.skipped_tensors.empty() && !args.quiet) {
    std::string names;
    for (size_t i = 0; i < result.skipped_tensors.size(); ++i) {
      if (i == 8) {
        names += ", ... (" + std::to_string(result.skipped_tensors.size() - 8) + " more)";
        break;
      }
      names += (i ? ", " : "") + result.skipped_tensors[i];
    }
    std::fprintf(stderr, "skipped %zu checkpoint tensor(s) that are not part of the %s encoder: %s\n",
                 result.skipped_tensors.size(), exporter::family_name(config.family), names.c_str());
  }
  if (config.pooler && !result.has_pooler && !args.quiet)
    std::fprintf(stderr, "the checkpoint has no pooler weights: the model has no pooler_output\n");

  if (show_progress) std::fprintf(stderr, "writing %s\n", args.output.c_str());
  make_parent_folder(args.output);
  onnx_io::save_model(result.model, args.output);

  int64_t parameters = 0;
  for (const auto& [name, t] : result.model.graph.initializers) parameters += t.numel();
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("wrote %s: %s, %.2f M parameters, %zu nodes, opset %lld, in %.1f s\n", args.output.c_str(),
              exporter::family_name(config.family), parameters / 1e6, result.model.graph.nodes.size(),
              static_cast<long long>(args.opset), seconds);
  return 0;
}

}  // namespace

Command export_command() {
  auto args = std::make_shared<ExportArgs>();
  return {[args](CLI::App& app) {
            auto* c = app.add_subcommand(
                "export",
                "Build an ONNX model of a BERT, DistilBERT or ViT encoder from a Hugging Face checkpoint "
                "(config.json + model.safetensors) or from a preset with seeded random weights; or a "
                "torchvision-shaped ResNet-50 or MobileNetV3-Small with seeded random weights");
            c->add_option("family", args->family,
                          "bert (also DistilBERT checkpoints), vit, resnet50 or mobilenetv3 (MobileNetV3-Small)")
                ->check(CLI::IsMember({"bert", "distilbert", "vit", "resnet50", "mobilenetv3"}));
            c->add_option("--config", args->config, "Hugging Face config.json");
            c->add_option("--weights", args->weights, "model.safetensors (f32, f16 or bf16)");
            std::string presets;
            for (const auto& n : exporter::preset_names()) presets += (presets.empty() ? "" : "|") + n;
            c->add_option("--preset", args->preset, "Sizes of a known model: " + presets);
            c->add_flag("--random-weights", args->random_weights,
                        "Seeded random weights (the default with --preset and no --weights)");
            c->add_option("--seed", args->seed, "Seed for random weights")->capture_default_str();
            c->add_option("-o,--output", args->output, "Output .onnx file")->required();
            c->add_option("--opset", args->opset,
                          "ONNX opset, 13 to 21 (LayerNormalization from 17; resnet50 and mobilenetv3 from 14)")
                ->capture_default_str();
            c->add_option("--image-size", args->image_size, "resnet50, mobilenetv3: input height and width")
                ->capture_default_str()
                ->each([args](const std::string&) { args->image_size_given = true; });
            c->add_flag("-q,--quiet", args->quiet, "Only the final line");
            return c;
          },
          [args] { return run(*args); }};
}

}  // namespace kiln::tools
