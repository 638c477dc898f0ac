// kiln inspect: what is in a model.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "onnx/model_io.h"
#include "analysis/model_summary.h"
#include "analysis/shape_inference.h"
#include "tools/commands.h"
#include "tools/parse_util.h"

namespace kiln::tools {

namespace {

struct InspectArgs {
  std::string model;
  bool json = false;
  std::vector<std::string> dims;
  bool types = false;
};

nlohmann::json value_json(const ir::ValueInfo& v) {
  nlohmann::json j;
  j["name"] = v.name;
  if (v.type.is_tensor()) {
    j["dtype"] = std::string(ir::dtype_name(v.type.dtype));
    if (v.type.shape) {
      nlohmann::json shape = nlohmann::json::array();
      for (const auto& d : v.type.shape->dims) {
        if (d.is_static())
          shape.push_back(d.value);
        else
          shape.push_back(d.symbol.empty() ? "?" : d.symbol);
      }
      j["shape"] = shape;
    } else {
      j["shape"] = nullptr;
    }
  } else {
    j["type"] = ir::to_string(v.type);
  }
  return j;
}

std::string human_count(double n) {
  const char* units[] = {"", "K", "M", "G", "T"};
  int u = 0;
  while (n >= 1000 && u < 4) {
    n /= 1000;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u ? "%.2f %s" : "%.0f%s", n, units[u]);
  return buf;
}

int run(const InspectArgs& args) {
  ir::Model model = onnx_io::load_model(args.model);
  if (args.types) {
    // Every node's outputs with the types inferred from the declared inputs: where shapes get lost.
    analysis::InferredTypes inferred = analysis::infer_types(model, model.graph, {}, ops::Limits{});
    for (const auto& n : model.graph.nodes)
      for (const auto& o : n.outputs) {
        if (o.empty()) continue;
        auto it = inferred.types.find(o);
        std::printf("%-40s %-28s %s\n", n.label().c_str(), o.c_str(),
                    it == inferred.types.end() ? "?" : ir::to_string(it->second).c_str());
      }
    return 0;
  }
  analysis::ModelSummary s = analysis::summarize(model, parse_dims(args.dims));
  if (args.json) {
    nlohmann::json j;
    j["model"] = args.model;
    j["ir_version"] = s.ir_version;
    j["producer"] = s.producer;
    j["opsets"] = s.opsets;
    j["inputs"] = nlohmann::json::array();
    for (const auto& v : s.inputs) j["inputs"].push_back(value_json(v));
    j["outputs"] = nlohmann::json::array();
    for (const auto& v : s.outputs) j["outputs"].push_back(value_json(v));
    j["node_count"] = s.node_count;
    j["op_histogram"] = s.op_histogram;
    j["parameter_count"] = s.parameter_count;
    j["parameter_bytes"] = s.parameter_bytes;
    j["model_size_bytes"] = s.file_bytes;
    j["flops"] = s.flops >= 0 ? nlohmann::json(s.flops) : nlohmann::json(nullptr);
    j["flops_dims"] = s.dims_assumed;
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  std::printf("model        %s\n", args.model.c_str());
  std::printf("producer     %s (IR version %lld)\n", s.producer.c_str(), static_cast<long long>(s.ir_version));
  std::string opsets;
  for (const auto& [d, v] : s.opsets) opsets += (opsets.empty() ? "" : ", ") + d + " " + std::to_string(v);
  std::printf("opsets       %s\n", opsets.c_str());
  std::printf("inputs\n");
  for (const auto& v : s.inputs) std::printf("  %-28s %s\n", v.name.c_str(), ir::to_string(v.type).c_str());
  std::printf("outputs\n");
  for (const auto& v : s.outputs) std::printf("  %-28s %s\n", v.name.c_str(), ir::to_string(v.type).c_str());
  std::printf("nodes        %lld\n", static_cast<long long>(s.node_count));
  std::printf("parameters   %s (%s bytes)\n", human_count(static_cast<double>(s.parameter_count)).c_str(),
              human_count(static_cast<double>(s.parameter_bytes)).c_str());
  std::printf("file size    %lld bytes\n", static_cast<long long>(s.file_bytes));
  std::string assumed;
  for (const auto& [d, v] : s.dims_assumed) assumed += (assumed.empty() ? "" : ", ") + d + "=" + std::to_string(v);
  if (s.flops >= 0)
    std::printf("FLOPs        %s per inference%s%s%s\n", human_count(static_cast<double>(s.flops)).c_str(),
                assumed.empty() ? "" : " (", assumed.c_str(), assumed.empty() ? "" : ")");
  else
    std::printf("FLOPs        unknown (shapes not inferable)\n");
  std::printf("ops\n");
  for (const auto& [op, n] : s.op_histogram) std::printf("  %-34s %lld\n", op.c_str(), static_cast<long long>(n));
  return 0;
}

}  // namespace

Command inspect_command() {
  auto args = std::make_shared<InspectArgs>();
  return {[args](CLI::App& app) {
            auto* c = app.add_subcommand("inspect",
                                         "Show a model's inputs, outputs, opsets, ops, parameters, size and FLOPs");
            c->add_option("model", args->model, "ONNX model file")->required();
            c->add_flag("--json", args->json, "Print JSON instead of text");
            c->add_flag("--types", args->types, "Print every node output with its inferred type and shape");
            c->add_option("--dim", args->dims,
                          "Value of a symbolic dim for the FLOPs estimate, e.g. sequence=128 (default 1)");
            return c;
          },
          [args] { return run(*args); }};
}

}  // namespace kiln::tools
