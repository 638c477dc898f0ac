#include "passes/optimizer.h"

#include <nlohmann/json.hpp>
#include <sstream>

#include "common/error.h"
#include "ir/graph_check.h"
#include "passes/passes.h"

namespace kiln::passes {

// The order matters:
// - basic passes first and to a fixed point: folding exposes identities, removing identities exposes
//   dead code, and the fusions below then match fewer, cleaner shapes;
// - canonicalization right after the folding passes, whose constants it must see (a Div by a folded
//   sqrt(64) is a Div by a constant), and before the rest: with the constant operand always second,
//   CSE finds Add(c, x) and Add(x, c) equal, and the fusions see one form (Mul by 1/c, Add of -c);
// - dead-code elimination last in every round, so that each pass sees only live nodes.
const std::vector<Pass>& pipeline() {
  static const std::vector<Pass> passes = {
      // QDQ int8 products first, before constant folding turns DequantizeLinear(int8 weights) into float32
      // weights and the product back into a float32 one.
      {"fuse_qdq_matmul", Level::kExtended, fuse_qdq_matmul},
      {"fold_constants", Level::kBasic, fold_constants},
      {"fold_shapes", Level::kBasic, fold_shapes},
      {"canonicalize", Level::kBasic, canonicalize},
      {"eliminate_identities", Level::kBasic, eliminate_identities},
      {"eliminate_common_subexpressions", Level::kBasic, eliminate_common_subexpressions},
      {"simplify_transpose_reshape_chains", Level::kBasic, simplify_transpose_reshape_chains},
      {"fold_conv_batch_norm", Level::kBasic, fold_conv_batch_norm},
      {"fuse_matmul_add_into_gemm", Level::kBasic, fuse_matmul_add_into_gemm},
      // int8 MatMuls first: their bias Add is theirs, not a SkipLayerNormalization's or a BiasGelu's.
      {"fuse_dynamic_quantize_matmul", Level::kExtended, fuse_dynamic_quantize_matmul},
      // HardSwish before the Conv fusions, which take it as an activation.
      {"fuse_hard_swish", Level::kExtended, fuse_hard_swish},
      {"fuse_conv_activation", Level::kExtended, fuse_conv_activation},
      {"fuse_conv_add_activation", Level::kExtended, fuse_conv_add_activation},
      // LayerNorm first: the embeddings and SkipLayerNormalization fusions match LayerNormalization
      // nodes. Embeddings before SkipLayerNormalization, which must not take the embeddings' Add;
      // attention before anything that could take its Q/K/V MatMul+Add. BiasGelu needs the Gelu nodes.
      {"fuse_layer_norm", Level::kExtended, fuse_layer_norm},
      {"fuse_embed_layer_norm", Level::kExtended, fuse_embed_layer_norm},
      {"fuse_attention", Level::kExtended, fuse_attention},
      {"fuse_packed_attention", Level::kExtended, fuse_packed_attention},
      {"fuse_gelu", Level::kExtended, fuse_gelu},
      {"fuse_bias_gelu", Level::kExtended, fuse_bias_gelu},
      {"fuse_skip_layer_norm", Level::kExtended, fuse_skip_layer_norm},
      // Layout last, on the fused convolutions: each to channels-last with Transposes around it, then the
      // Transposes pushed down until consecutive ones cancel.
      {"convert_convs_to_channels_last", Level::kAll, convert_convs_to_channels_last},
      {"push_transposes", Level::kAll, push_transposes},
      {"eliminate_dead_code", Level::kBasic, eliminate_dead_code},
  };
  return passes;
}

// Run once after the pipeline's fixed point: fusions that would hide nodes from the passes above (an
// elementwise chain holds Adds and Muls that the Conv, LayerNorm and layout passes look for).
const std::vector<Pass>& finishing_passes() {
  static const std::vector<Pass> passes = {
      // On the channels-last convolutions the layout passes wrote, before the chains take any Mul.
      {"fuse_channel_scale_into_conv", Level::kAll, fuse_channel_scale_into_conv},
      {"fuse_elementwise_chains", Level::kExtended, fuse_elementwise_chains},
      {"eliminate_dead_code", Level::kBasic, eliminate_dead_code},
  };
  return passes;
}

std::map<std::string, int64_t> op_histogram(const ir::Graph& g) {
  std::map<std::string, int64_t> h;
  for (const auto& n : g.nodes) ++h[ir::is_default_domain(n.domain) ? n.op_type : n.domain + "." + n.op_type];
  return h;
}

OptimizationReport optimize(ir::Model& model, const OptimizeOptions& options) {
  OptimizationReport report;
  report.level = options.level;
  report.nodes_before = static_cast<int64_t>(model.graph.nodes.size());
  report.ops_before = op_histogram(model.graph);
  std::map<std::string, size_t> slot;  // pass name -> its PassReport
  constexpr int kMaxRounds = 4;
  // Runs one pass and merges what it did into the report; true when it changed the graph.
  auto run_pass = [&](const Pass& pass) {
    if (!slot.count(pass.name)) {
      slot[pass.name] = report.passes.size();
      report.passes.push_back({pass.name, {}, {}});
    }
    PassReport this_round{pass.name, {}, {}};
    PassContext ctx(model, options, this_round);
    const bool changed = pass.run(model.graph, ctx);
    if (changed) {
      // Each pass must leave a valid graph; checking after each one names the pass at fault.
      try {
        ir::check_and_sort_graph(model.graph, {}, "graph");
      } catch (const Error& e) {
        fail("internal error: optimization pass ", pass.name, " left an invalid graph: ", e.what());
      }
    }
    PassReport& total = report.passes[slot[pass.name]];
    for (const auto& [kind, n] : this_round.changes) total.changes[kind] += n;
    // The last round's view: a candidate rejected early may fuse once other passes have run.
    total.rejections = this_round.rejections;
    return changed;
  };
  auto runs_at_level = [&](const Pass& pass) { return static_cast<int>(pass.level) <= static_cast<int>(options.level); };
  for (int round = 0; round < kMaxRounds && options.level != Level::kNone; ++round) {
    bool changed = false;
    for (const Pass& pass : pipeline())
      if (runs_at_level(pass)) changed |= run_pass(pass);
    if (!changed) break;
  }
  if (options.level != Level::kNone)
    for (const Pass& pass : finishing_passes())
      if (runs_at_level(pass)) run_pass(pass);
  ir::check_and_sort_graph(model.graph, {}, model.path.empty() ? "optimized model" : model.path);
  report.nodes_after = static_cast<int64_t>(model.graph.nodes.size());
  report.ops_after = op_histogram(model.graph);
  return report;
}

int64_t OptimizationReport::count(const std::string& kind) const {
  int64_t total = 0;
  for (const auto& p : passes)
    if (auto it = p.changes.find(kind); it != p.changes.end()) total += it->second;
  return total;
}

std::string OptimizationReport::to_text() const {
  std::ostringstream out;
  out << "optimize (level " << level_name(level) << "): " << nodes_before << " nodes -> " << nodes_after << " nodes\n";
  for (const auto& p : passes) {
    out << "  " << p.pass << ":";
    if (p.changes.empty()) out << " nothing to do";
    bool first = true;
    for (const auto& [kind, n] : p.changes) {
      out << (first ? " " : ", ") << kind << " " << n;
      first = false;
    }
    out << "\n";
    for (const auto& r : p.rejections)
      out << "    not done: " << r.pattern << " at " << r.node << ": " << r.reason << "\n";
  }
  auto histogram = [&](const char* title, const std::map<std::string, int64_t>& h) {
    out << title;
    bool first = true;
    for (const auto& [op, n] : h) {
      out << (first ? " " : ", ") << op << " " << n;
      first = false;
    }
    out << "\n";
  };
  histogram("ops before:", ops_before);
  histogram("ops after:", ops_after);
  return out.str();
}

std::string OptimizationReport::to_json() const {
  nlohmann::json j;
  j["level"] = level_name(level);
  j["nodes_before"] = nodes_before;
  j["nodes_after"] = nodes_after;
  j["ops_before"] = ops_before;
  j["ops_after"] = ops_after;
  j["passes"] = nlohmann::json::array();
  for (const auto& p : passes) {
    nlohmann::json jp;
    jp["pass"] = p.pass;
    jp["changes"] = p.changes;
    jp["rejections"] = nlohmann::json::array();
    for (const auto& r : p.rejections)
      jp["rejections"].push_back({{"pattern", r.pattern}, {"node", r.node}, {"reason", r.reason}});
    j["passes"].push_back(jp);
  }
  return j.dump(2);
}

}  // namespace kiln::passes
