// A residual Add in front of a LayerNormalization becomes ONNX Runtime's com.microsoft.SkipLayerNormalization,
// taking along the bias Add of the MatMul that feeds it:
//
//   MatMul -> Add(bias) -> Add(skip) -> LayerNormalization(gamma, beta)
//     =>  com.microsoft.SkipLayerNormalization(matmul_out, skip, gamma, beta, bias)
//
//   a -> Add(b) -> LayerNormalization(gamma, beta)
//     =>  com.microsoft.SkipLayerNormalization(a, b, gamma, beta)
//
// The two operands of the residual Add must have the same shape (from shape inference; symbolic dims
// compare by name), be float32 and 2-D or 3-D, as the op requires. An embeddings Add ([B,S,H] + [1,S,H])
// is left to the EmbedLayerNormalization fusion. The LayerNormalization must normalize over the last axis
// only, with 1-D gamma and beta and no Mean/InvStdDev outputs read. The bias is folded when it is a
// constant vector over the last dim and its Add is read only by the residual Add.
//
// When the residual sum is read elsewhere too (pre-norm transformers such as ViT: the sum feeds the next
// LayerNorm and the next residual Add), the fused node writes it as its optional 4th output
// input_skip_bias_sum (= input + skip + bias, as ONNX Runtime defines it), under the sum's own name.
#include <optional>

#include "ops/node_view.h"
#include "passes/graph_edit.h"
#include "passes/graph_index.h"
#include "passes/passes.h"
#include "passes/pattern_util.h"
#include "analysis/shape_inference.h"

namespace kiln::passes {

namespace {

constexpr const char* kPattern = "SkipLayerNormalization";

bool is_vector_of(const ir::Type* t, const ir::Dim& h) {
  return t && t->dtype == ir::DType::kFloat32 && t->shape->rank() == 1 && (*t->shape)[0] == h;
}

struct Fusion {
  std::string input, skip, bias;
  std::vector<int> removed;
  bool sum_read_elsewhere = false;
};

// nullopt with a reason: the candidate is left alone.
std::optional<Fusion> match(const ir::Graph& g, int ln_index, const GraphIndex& index,
                            const analysis::InferredTypes& types, int64_t opset, std::string& reason) {
  const ir::Node& ln = g.nodes[ln_index];
  const ir::Node* add = ln.inputs.empty() ? nullptr : index.producer_node(ln.inputs[0]);
  if (!is_op(add, "Add") || add->inputs.size() != 2) return std::nullopt;
  const ir::Type *x = tensor_type_with_shape(types, ln.inputs[0]), *a = tensor_type_with_shape(types, add->inputs[0]),
                 *b = tensor_type_with_shape(types, add->inputs[1]);
  if (!x || !a || !b) {
    reason = "the shapes of the Add's operands are unknown";
    return std::nullopt;
  }
  if (!known_and_equal(*a->shape, *b->shape)) {
    reason = "operands have different shapes (" + ir::to_string(*a->shape) + " and " + ir::to_string(*b->shape) +
             "): not a residual Add";
    return std::nullopt;
  }
  const int64_t rank = static_cast<int64_t>(a->shape->rank());
  if (rank != 2 && rank != 3) {
    reason = "the input is " + std::to_string(rank) + "-D; SkipLayerNormalization takes 2-D or 3-D";
    return std::nullopt;
  }
  if (a->dtype != ir::DType::kFloat32 || b->dtype != ir::DType::kFloat32) {
    reason = "the input is not float32";
    return std::nullopt;
  }
  const int64_t axis = ops::NodeView(ln, opset).attr_int("axis", -1);
  if (axis != -1 && axis != rank - 1) {
    reason = "the LayerNormalization normalizes from axis " + std::to_string(axis) + ", not the last axis alone";
    return std::nullopt;
  }
  for (size_t k = 1; k < ln.outputs.size(); ++k)
    if (!ln.outputs[k].empty() && index.use_count(ln.outputs[k]) > 0) {
      reason = "the LayerNormalization's Mean or InvStdDev output is read";
      return std::nullopt;
    }
  const ir::Dim& h = a->shape->dims.back();
  auto vector_input = [&](size_t i) { return is_vector_of(tensor_type_with_shape(types, ln.inputs[i]), h); };
  if (ln.inputs.size() < 2 || !vector_input(1) || (ln.inputs.size() > 2 && !ln.inputs[2].empty() && !vector_input(2))) {
    reason = "gamma or beta is not a float32 vector over the last dim";
    return std::nullopt;
  }
  if (index.is_read_by_subgraph(add->outputs[0])) {
    reason = "the sum is read by a subgraph";
    return std::nullopt;
  }

  Fusion f;
  f.input = add->inputs[0];
  f.skip = add->inputs[1];
  f.removed = {ln_index, index.producer(ln.inputs[0])};
  f.sum_read_elsewhere = index.use_count(add->outputs[0]) > 1 || index.is_graph_output(add->outputs[0]);
  // Fold the bias of a MatMul feeding either operand.
  for (int k = 0; k < 2; ++k) {
    const std::string& operand = add->inputs[k];
    const int p = index.producer(operand);
    const ir::Node* bias_add = p < 0 ? nullptr : &g.nodes[p];
    if (!is_op(bias_add, "Add") || bias_add->inputs.size() != 2 || index.only_consumer(operand) < 0 ||
        &g.nodes[index.only_consumer(operand)] != add)
      continue;
    for (int j = 0; j < 2; ++j) {
      const ir::Node* mm = index.producer_node(bias_add->inputs[j]);
      std::optional<ir::Tensor> bias = index.constant(bias_add->inputs[1 - j]);
      const ir::Type* mt = tensor_type_with_shape(types, bias_add->inputs[j]);
      if (!is_op(mm, "MatMul") || !bias || bias->dtype() != ir::DType::kFloat32 || bias->rank() != 1 ||
          !h.is_static() || bias->dim(0) != h.value || !mt || !known_and_equal(*mt->shape, *a->shape))
        continue;
      f.input = bias_add->inputs[j];
      f.skip = add->inputs[1 - k];
      f.bias = bias_add->inputs[1 - j];
      f.removed.push_back(p);
      return f;
    }
  }
  return f;
}

}  // namespace

bool fuse_skip_layer_norm(ir::Graph& g, PassContext& ctx) {
  std::optional<analysis::InferredTypes> types;
  GraphIndex index(g);
  std::vector<bool> taken(g.nodes.size(), false);
  std::vector<int> removed;
  std::vector<ir::Node> fused;
  int64_t sums_kept = 0;
  for (int i = 0; i < static_cast<int>(g.nodes.size()); ++i) {
    const ir::Node& ln = g.nodes[i];
    if (!is_op(&ln, "LayerNormalization")) continue;
    if (!types) types = analysis::infer_types(ctx.model(), g, {}, ctx.options().limits);
    std::string reason;
    std::optional<Fusion> f = match(g, i, index, *types, ctx.opset(), reason);
    if (!f) {
      if (!reason.empty()) ctx.rejected(kPattern, ln, reason);
      continue;
    }
    bool overlaps = false;
    for (int k : f->removed) overlaps = overlaps || taken[k];
    if (overlaps) continue;
    for (int k : f->removed) taken[k] = true;
    removed.insert(removed.end(), f->removed.begin(), f->removed.end());

    ir::Node skip;
    const std::string& sum = g.nodes[f->removed[1]].outputs[0];
    size_t slash = ln.name.rfind('/');
    skip.name = ctx.fresh_name((slash == std::string::npos ? ln.name + "/" : ln.name.substr(0, slash + 1)) +
                               "SkipLayerNormalization");
    skip.op_type = "SkipLayerNormalization";
    skip.domain = kContribDomain;
    const std::string beta = ln.inputs.size() > 2 ? ln.inputs[2] : "";
    skip.inputs = {f->input, f->skip, ln.inputs[1], beta};
    if (!f->bias.empty()) skip.inputs.push_back(f->bias);
    while (skip.inputs.back().empty()) skip.inputs.pop_back();
    skip.outputs = {ln.outputs[0]};
    if (f->sum_read_elsewhere) {
      skip.outputs = {ln.outputs[0], "", "", sum};
      ++sums_kept;
    }
    ir::Attribute epsilon;
    epsilon.name = "epsilon";
    epsilon.kind = ir::Attribute::Kind::kFloat;
    epsilon.f = ops::NodeView(ln, ctx.opset()).attr_float("epsilon", 1e-5f);
    skip.attributes = {epsilon};
    fused.push_back(std::move(skip));
    ctx.changed("SkipLayerNormalization");
    if (!f->bias.empty()) ctx.changed("SkipLayerNormalization bias folded");
  }
  if (sums_kept) ctx.changed("SkipLayerNormalization sum output kept", sums_kept);
  if (fused.empty()) return false;
  ctx.import_contrib_domain();
  remove_nodes(g, removed);
  for (auto& n : fused) g.nodes.push_back(std::move(n));
  return true;
}

}  // namespace kiln::passes
