// 2-D convolutions move to channels-last activations, where oneDNN's fastest CPU kernels want them:
//
//   x [N, C, H, W] -> Conv | FusedConv (W, B[, Z]) -> y
//     =>
//   x -> Transpose(0, 2, 3, 1) -> ai.kiln.FusedConv(W, B[, Transpose(Z)], channels_last = 1)
//     -> Transpose(0, 3, 1, 2) -> y
//
// Alone this only moves the layout change that oneDNN would otherwise do around every convolution (its
// reorders) into the graph; push_transposes (transpose_pushing.cc), which runs next, then carries each
// Transpose back to NCHW down through the elementwise ops, pools, concats and resizes that follow, and
// cancels it against the next convolution's Transpose to NHWC. A chain of CNN layers then stays
// channels-last from its first convolution to its last (ONNX Runtime's NCHWc transformer does the same
// with its blocked layout).
//
// Target kiln only (ai.kiln.FusedConv), level all. Taken: ai.onnx Conv, com.microsoft.FusedConv and
// ai.kiln.FusedConv with float32 constant 4-D weights (the convolutions the fast conv kernel runs).
#include "passes/graph_edit.h"
#include "passes/graph_index.h"
#include "passes/passes.h"
#include "passes/pattern_util.h"

namespace kiln::passes {

namespace {


bool is_channels_last_candidate(const ir::Node& n, const GraphIndex& index) {
  const bool conv = is_op(n, "Conv");
  const bool fused = n.op_type == "FusedConv" && (n.domain == kContribDomain || n.domain == kKilnDomain);
  if (!(conv || fused) || n.inputs.size() < 2 || n.outputs.empty() || n.outputs[0].empty()) return false;
  if (n.inputs.size() > (fused ? 4u : 3u)) return false;
  if (const ir::Attribute* a = n.find_attribute("channels_last"); a && a->i != 0) return false;
  std::optional<ir::Tensor> w = index.constant(n.inputs[1]);
  return w && w->dtype() == ir::DType::kFloat32 && w->rank() == 4;
}

ir::Node layout_transpose(std::string name, std::string in, std::string out, std::vector<int64_t> perm) {
  ir::Node t;
  t.op_type = "Transpose";
  t.name = std::move(name);
  t.inputs = {std::move(in)};
  t.outputs = {std::move(out)};
  ir::Attribute a;
  a.name = "perm";
  a.kind = ir::Attribute::Kind::kInts;
  a.ints = std::move(perm);
  t.attributes.push_back(std::move(a));
  return t;
}

}  // namespace

bool convert_convs_to_channels_last(ir::Graph& g, PassContext& ctx) {
  if (ctx.options().target != Target::kKiln) return false;
  GraphIndex index(g);
  std::vector<ir::Node> added;
  bool changed = false;
  for (ir::Node& n : g.nodes) {
    if (!is_channels_last_candidate(n, index)) continue;
    const std::string base = n.name.empty() ? n.outputs[0] : n.name;
    std::string x = ctx.fresh_name(base + "_nhwc_input");
    added.push_back(layout_transpose(ctx.fresh_name(base + "_to_nhwc"), n.inputs[0], x, {0, 2, 3, 1}));
    n.inputs[0] = x;
    if (n.inputs.size() > 3 && !n.inputs[3].empty()) {
      std::string z = ctx.fresh_name(base + "_nhwc_z");
      added.push_back(layout_transpose(ctx.fresh_name(base + "_z_to_nhwc"), n.inputs[3], z, {0, 2, 3, 1}));
      n.inputs[3] = z;
    }
    std::string y = ctx.fresh_name(base + "_nhwc_output");
    added.push_back(layout_transpose(ctx.fresh_name(base + "_to_nchw"), y, n.outputs[0], {0, 3, 1, 2}));
    n.outputs[0] = y;
    if (n.domain != kKilnDomain) {
      n.domain = kKilnDomain;
      n.op_type = "FusedConv";
    }
    ir::Attribute a;
    a.name = "channels_last";
    a.kind = ir::Attribute::Kind::kInt;
    a.i = 1;
    std::erase_if(n.attributes, [](const ir::Attribute& at) { return at.name == "channels_last"; });
    n.attributes.push_back(std::move(a));
    ctx.changed("Conv to channels-last");
    changed = true;
  }
  if (changed) ctx.import_kiln_domain();
  for (ir::Node& t : added) g.nodes.push_back(std::move(t));
  return changed;
}

}  // namespace kiln::passes
