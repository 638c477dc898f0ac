// MatMul + Add on 2-D activations becomes one Gemm, which kernels run with the bias fused:
//   Add(MatMul(a [M,K], W [K,N]), c)  ->  Gemm(a, W, c)      c constant: [N], [1,N] or [M,N]
// Only for a 2-D `a` (Gemm is 2-D). The 3-D activations of transformers ([batch, sequence, hidden]) keep
// MatMul + Add, which the attention / SkipLayerNormalization / BiasGelu fusions absorb, and which
// kernels/cpu fuses at kernel selection (issue #5).
#include "passes/graph_edit.h"
#include "passes/graph_index.h"
#include "passes/passes.h"
#include "analysis/shape_inference.h"

namespace kiln::passes {

bool fuse_matmul_add_into_gemm(ir::Graph& g, PassContext& ctx) {
  analysis::InferredTypes types = analysis::infer_types(ctx.model(), g, {}, ctx.options().limits);
  auto rank_of = [&](const std::string& v) -> int64_t {
    auto it = types.types.find(v);
    if (it == types.types.end() || !it->second.is_tensor() || !it->second.shape) return -1;
    return static_cast<int64_t>(it->second.shape->rank());
  };
  bool changed = false;
  GraphIndex index(g);
  std::vector<int> removed;
  for (int i = 0; i < static_cast<int>(g.nodes.size()); ++i) {
    const ir::Node& mm = g.nodes[i];
    if (!ir::is_default_domain(mm.domain) || mm.op_type != "MatMul" || mm.inputs.size() != 2) continue;
    int reader = index.only_consumer(mm.outputs[0]);
    if (reader < 0) continue;
    const ir::Node& add = g.nodes[reader];
    if (!ir::is_default_domain(add.domain) || add.op_type != "Add") continue;
    if (rank_of(mm.inputs[0]) != 2 || rank_of(mm.inputs[1]) != 2) continue;
    const std::string& c = add.inputs[0] == mm.outputs[0] ? add.inputs[1] : add.inputs[0];
    std::optional<ir::Tensor> bias = index.constant(c);
    std::optional<ir::Tensor> w = index.constant(mm.inputs[1]);
    if (!bias || !w || bias->dtype() != ir::DType::kFloat32 || w->dtype() != ir::DType::kFloat32) {
      if (w) ctx.rejected("MatMul+Add", mm, "the added value is not a float32 constant");
      continue;
    }
    const int64_t n = w->dim(1);
    const bool row =
        (bias->rank() == 1 && bias->dim(0) == n) || (bias->rank() == 2 && bias->dim(0) == 1 && bias->dim(1) == n);
    if (!row && bias->numel() != 1) {
      ctx.rejected("MatMul+Add", mm, "the bias does not broadcast along the rows");
      continue;
    }
    ir::Node gemm;
    gemm.name = ctx.fresh_name(mm.name.empty() ? "Gemm" : mm.name + "_gemm");
    gemm.op_type = "Gemm";
    gemm.inputs = {mm.inputs[0], mm.inputs[1], c};
    gemm.outputs = {add.outputs[0]};
    g.nodes.push_back(std::move(gemm));
    removed.push_back(i);
    removed.push_back(reader);
    ctx.changed("Gemm");
    changed = true;
  }
  remove_nodes(g, removed);
  return changed;
}

}  // namespace kiln::passes
