#include "passes/float16_weights.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>

#include "common/half.h"
#include "passes/graph_index.h"
#include "passes/model_metadata.h"
#include "passes/pattern_util.h"

namespace kiln::passes {

namespace {

constexpr const char* kFloat16Pattern = "fp16";
constexpr double kLargestFloat16 = 65504.0;

ir::Node cast_to_float(std::string name, std::string input, std::string output) {
  ir::Node n;
  n.name = std::move(name);
  n.op_type = "Cast";
  n.inputs = {std::move(input)};
  n.outputs = {std::move(output)};
  ir::Attribute to;
  to.name = "to";
  to.kind = ir::Attribute::Kind::kInt;
  to.i = static_cast<int64_t>(ir::DType::kFloat32);
  n.attributes.push_back(std::move(to));
  return n;
}

std::string short_number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", v);
  return buf;
}

// Why `t` must stay float32, or "" when float16 holds it well enough.
std::string unfit_for_float16(const ir::Tensor& t) {
  const float* v = t.data<float>();
  double largest = 0, error = 0, norm = 0;
  for (int64_t i = 0; i < t.numel(); ++i) {
    if (!std::isfinite(v[i])) continue;  // float16 has the same infinities and NaN
    largest = std::max(largest, std::fabs(static_cast<double>(v[i])));
    const double d = static_cast<double>(static_cast<float>(Float16(v[i]))) - v[i];
    error += d * d;
    norm += static_cast<double>(v[i]) * v[i];
  }
  if (largest > kLargestFloat16)
    return "holds values beyond float16's range (largest |x| " + short_number(largest) +
           " > 65504, which would become infinity)";
  if (norm > 0 && std::sqrt(error / norm) > kMaxFloat16Error)
    return "float16 would change it by " + short_number(100.0 * std::sqrt(error / norm)) +
           "% (relative RMS error): its values lie below float16's normal range (6.1e-5), where it keeps few bits";
  return "";
}

bool excluded_from_float16(const ir::Node& n, const Float16WeightsOptions& options) {
  return std::any_of(options.exclude.begin(), options.exclude.end(),
                     [&](const std::string& e) { return e == n.name || e == n.op_type; });
}

}  // namespace

Float16WeightsReport store_weights_in_float16(ir::Model& model, const Float16WeightsOptions& options) {
  ir::Graph& g = model.graph;
  Float16WeightsReport report;
  OptimizeOptions optimize_options;
  PassReport pass_report;
  PassContext ctx(model, optimize_options, pass_report);
  const GraphIndex index(g);

  std::vector<ir::Node> weight_casts;          // at the top of the graph: they read initializers only
  std::map<int, std::string> gathered_tables;  // Gather node index -> its table's float16 initializer
  std::set<std::string> converted;
  // A copy: add_initializer appends to g.initializer_names, which would move the vector under the loop.
  const std::vector<std::string> names = g.initializer_names;
  for (const std::string& name : names) {
    const ir::Tensor& t = g.initializers.at(name);
    if (t.dtype() != ir::DType::kFloat32 || index.use_count(name) == 0) continue;
    auto skip = [&](std::string reason) { report.skipped.push_back({kFloat16Pattern, name, std::move(reason)}); };
    if (index.is_graph_input(name)) {
      skip("also a graph input (a default the caller may replace)");
      continue;
    }
    if (index.is_read_by_subgraph(name)) {
      skip("read inside a subgraph");
      continue;
    }
    const std::vector<Use>& uses = index.uses(name);
    const auto excluded_use = std::find_if(
        uses.begin(), uses.end(), [&](const Use& u) { return excluded_from_float16(g.nodes[u.node], options); });
    if (excluded_use != uses.end()) {
      skip("read by " + g.nodes[excluded_use->node].label() + " (--exclude)");
      continue;
    }
    if (t.numel() < kMinFloat16Values) {
      skip("fewer than " + std::to_string(kMinFloat16Values) + " values");
      continue;
    }
    if (std::string why = unfit_for_float16(t); !why.empty()) {
      skip(std::move(why));
      continue;
    }
    ir::Tensor half(ir::DType::kFloat16, t.shape());
    for (int64_t i = 0; i < t.numel(); ++i) half.data<Float16>()[i] = Float16(t.data<float>()[i]);
    const std::string stored = ctx.fresh_name(name + "_float16");
    const bool table = !index.is_graph_output(name) && std::all_of(uses.begin(), uses.end(), [&](const Use& u) {
      return is_op(g.nodes[u.node], "Gather") && u.input == 0;
    });
    if (table) {
      for (const Use& u : uses) gathered_tables[u.node] = stored;
      ++report.tables;
    } else {
      weight_casts.push_back(cast_to_float(ctx.fresh_name(name + "_cast_to_float"), stored, name));
    }
    report.float_bytes += static_cast<int64_t>(t.nbytes());
    report.float16_bytes += static_cast<int64_t>(half.nbytes());
    report.converted.push_back(name);
    converted.insert(name);
    g.add_initializer(stored, std::move(half));
  }
  if (report.converted.empty()) return report;

  std::vector<ir::Node> nodes = std::move(weight_casts);
  nodes.reserve(nodes.size() + g.nodes.size() + gathered_tables.size());
  for (int i = 0; i < static_cast<int>(g.nodes.size()); ++i) {
    auto table = gathered_tables.find(i);
    if (table == gathered_tables.end()) {
      nodes.push_back(std::move(g.nodes[i]));
      continue;
    }
    ir::Node gather = std::move(g.nodes[i]);
    const std::string rows = gather.outputs[0];
    const std::string half_rows = ctx.fresh_name(rows + "_float16");
    gather.inputs[0] = table->second;
    gather.outputs[0] = half_rows;
    const std::string cast_name = ctx.fresh_name(gather.name + "_cast_to_float");
    nodes.push_back(std::move(gather));
    nodes.push_back(cast_to_float(cast_name, half_rows, rows));
  }
  g.nodes = std::move(nodes);
  // The float32 originals go: their names are now the Casts' outputs (or no longer read at all).
  for (const std::string& name : converted) g.initializers.erase(name);
  std::erase_if(g.initializer_names, [&](const std::string& name) { return converted.count(name) > 0; });
  set_model_metadata(model, kQuantizationMetadataKey, "fp16");
  return report;
}

}  // namespace kiln::passes
