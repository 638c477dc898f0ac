// Fuses torch's nn.MultiheadAttention as torch.onnx.export writes it for torchvision's ViT (sequence-first,
// one packed in_proj for Q, K and V) into one com.microsoft.Attention, then the out_proj as MatMul + Add:
//
//   before (per layer)                                             after
//
//   x [B,S,D] -> Transpose 1,0,2 -> MatMul(W [D,3D]) -> Add(b [3D])     x [B,S,D]
//     -> Reshape [S,B,3,D] -> Unsqueeze 0 -> Transpose 3,1,2,0,4        Attention(x, W, b), num_heads = N
//     -> Squeeze 3 = P [3,S,B,D]                                         (scale only if not 1/sqrt(H))
//   Q, K, V = Gather(P, 0 | 1 | 2) -> Reshape [S,B*N,H]                  -> MatMul(Wo^T) -> Add(bo)
//     -> Transpose 1,0,2 -> Reshape [B,N,S,H]                             -> its output is the block's
//   K: Transpose 0,1,3,2; Q and K^T: Mul by scalar factors
//   MatMul(Q, K^T) [-> Mul | Div] -> Softmax -> MatMul(·, V)
//     -> Transpose 2,0,1,3 -> Reshape [S*B,D] -> Gemm(Wo, bo, transB) (or MatMul [+ Add])
//     -> Reshape [S,B,D] -> Transpose 1,0,2 -> out [B,S,D]
//
// Sequence-first attention on batch-first x is batch-first attention: every step between the first and the
// last Transpose works per (s, b) token except the scores, which the Reshapes lay out per (b, head) as
// the batch-first form does. The match is on static shapes (read from inference): the Reshapes must split
// D into [N, H] and join it back, and the Gathers must pick Q, K and V in that order. No mask (the
// exporter's key_padding_mask / attn_mask paths are rejected by name: a Softmax whose scores pass through
// an Add is not this pattern). Every intermediate value must be read inside the block only.
//
// Reported: "Attention (packed in_proj)" per fused block; candidates (a Softmax between two MatMuls whose Q
// operand comes from a Gather) left alone are rejected with the reason at the Softmax.
#include <cmath>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "analysis/shape_inference.h"
#include "ops/node_view.h"
#include "passes/graph_edit.h"
#include "passes/graph_index.h"
#include "passes/passes.h"
#include "passes/pattern_util.h"

namespace kiln::passes {

namespace {

constexpr const char* kPackedPattern = "packed attention";

struct PackedReject {
  std::string reason;
};

[[noreturn]] void packed_reject(std::string reason) { throw PackedReject{std::move(reason)}; }

std::string q(const std::string& s) { return "\"" + s + "\""; }

struct PackedMatch {
  int softmax = -1;
  std::string x, weight, bias, output;  // bias "" when the in_proj has none
  std::string out_weight, out_bias;     // out_bias "" when none
  bool out_weight_transposed = false;   // Gemm transB = 1: out_weight is [D_out, D]
  int64_t heads = 0, head_size = 0;
  double scale = 1;
  std::set<int> nodes;
};

class PackedMatcher {
 public:
  PackedMatcher(const ir::Graph& g, const GraphIndex& index, const analysis::InferredTypes& types, int64_t opset)
      : g_(g), index_(index), types_(types), opset_(opset) {}

  // nullopt: no candidate; throws PackedReject for a candidate that cannot be fused.
  std::optional<PackedMatch> match(int softmax) {
    const ir::Node& sm = g_.nodes[softmax];
    if (!is_op(sm, "Softmax")) return std::nullopt;
    PackedMatch m;
    m.softmax = softmax;
    // Scores: MatMul(Q, K^T), then an optional scalar scaling.
    std::string scores = sm.inputs[0];
    const ir::Node* p = index_.producer_node(scores);
    double scale = 1;
    if ((is_op(p, "Mul") || is_op(p, "Div")) && p->inputs.size() == 2) {
      std::optional<std::string> data = scaled_operand(*p, scale);
      if (!data) return std::nullopt;
      take(p);
      p = index_.producer_node(*data);
    }
    if (!is_op(p, "MatMul")) return std::nullopt;
    const ir::Node& qk = *p;
    // Only a candidate when Q comes from a Gather (of the packed projection), through its layout nodes.
    if (!reaches_gather(qk.inputs[0])) return std::nullopt;
    take(&qk);
    int64_t axis = ops::NodeView(sm, opset_).attr_int("axis", opset_ >= 13 ? -1 : 1);
    if (axis != -1 && axis != 3) packed_reject("Softmax is over axis " + std::to_string(axis) + ", not the last");
    take(&sm);
    const ir::Node* pv = only_reader(sm.outputs[0], "MatMul", 0);
    if (!pv) packed_reject("the Softmax output is not multiplied with V by one MatMul");
    take(pv);

    Head qh = head(qk.inputs[0], false, scale), kh = head(qk.inputs[1], true, scale), vh = head(pv->inputs[1], false, scale);
    if (qh.packed != kh.packed || qh.packed != vh.packed)
      packed_reject("Q, K and V are not gathered from one packed projection");
    if (qh.index != 0 || kh.index != 1 || vh.index != 2)
      packed_reject("Q, K and V are not gathered at 0, 1 and 2 of the packed projection");
    if (qh.heads != kh.heads || qh.heads != vh.heads || qh.head_size != kh.head_size || qh.head_size != vh.head_size)
      packed_reject("heads and head size differ between Q, K and V");
    m.heads = qh.heads;
    m.head_size = qh.head_size;
    m.scale = scale;
    packed_projection(qh.packed, m);
    output_projection(pv->outputs[0], m);
    check_readers(m);
    return m;
  }

 private:
  struct Head {
    std::string packed;  // the [3,S,B,D] value the Gather reads
    int64_t index = -1, heads = 0, head_size = 0;
  };

  void take(const ir::Node* n) { nodes_.insert(static_cast<int>(n - g_.nodes.data())); }

  std::vector<int64_t> static_shape(const std::string& v) const {
    const ir::Type* t = tensor_type_with_shape(types_, v);
    if (!t || !t->shape->is_static()) packed_reject(q(v) + " has no static shape");
    return t->shape->values();
  }

  // Mul(data, c) / Mul(c, data) / Div(data, c) with c a scalar constant: data, with `scale` multiplied by
  // the factor; nullopt when it is no such scaling.
  std::optional<std::string> scaled_operand(const ir::Node& n, double& scale) const {
    const bool c0 = index_.scalar(n.inputs[0]).has_value(), c1 = index_.scalar(n.inputs[1]).has_value();
    if (c0 == c1) return std::nullopt;
    if (n.op_type == "Div" && c0) return std::nullopt;
    const double f = *index_.scalar(c1 ? n.inputs[1] : n.inputs[0]);
    if (n.op_type == "Div" && f == 0) return std::nullopt;
    scale *= n.op_type == "Div" ? 1.0 / f : f;
    return c1 ? n.inputs[0] : n.inputs[1];
  }

  bool reaches_gather(std::string v) const {
    for (int step = 0; step < 6; ++step) {
      const ir::Node* n = index_.producer_node(v);
      if (!n || n->inputs.empty()) return false;
      if (is_op(n, "Gather")) return true;
      if (!is_op(n, "Mul") && !is_op(n, "Div") && !is_op(n, "Reshape") && !is_op(n, "Transpose")) return false;
      if (is_op(n, "Mul") || is_op(n, "Div")) {
        double unused = 1;
        std::optional<std::string> d = scaled_operand(*n, unused);
        if (!d) return false;
        v = *d;
      } else {
        v = n->inputs[0];
      }
    }
    return false;
  }

  const ir::Node* only_reader(const std::string& v, const char* op, int slot) const {
    const auto& uses = index_.uses(v);
    if (uses.size() != 1 || index_.is_graph_output(v)) return nullptr;
    const ir::Node& n = g_.nodes[uses[0].node];
    return is_op(n, op) && uses[0].input == slot ? &n : nullptr;
  }

  const ir::Node* producer(const std::string& v, const char* op, const std::string& what) {
    const ir::Node* n = index_.producer_node(v);
    if (!is_op(n, op)) packed_reject(what + " is not a " + std::string(op));
    take(n);
    return n;
  }

  void expect_perm(const ir::Node& t, const std::vector<int64_t>& want, const std::string& what) const {
    std::vector<int64_t> perm = ops::NodeView(t, opset_).attr_ints("perm");
    if (perm != want) packed_reject(what + " " + q(t.name) + " has perm " + ir::to_string(perm) + ", not " + ir::to_string(want));
  }

  // Q, K or V operand down to its Gather: [Mul] -> (K: Transpose 0,1,3,2 -> [Mul]) -> Reshape [B,N,S,H]
  // -> Transpose 1,0,2 -> Reshape [S,B*N,H] -> Gather(P, i).
  Head head(std::string v, bool key, double& scale) {
    auto strip = [&] {
      const ir::Node* n = index_.producer_node(v);
      if ((is_op(n, "Mul") || is_op(n, "Div")) && n->inputs.size() == 2) {
        if (std::optional<std::string> d = scaled_operand(*n, scale)) {
          take(n);
          v = *d;
        }
      }
    };
    strip();
    if (key) {
      expect_perm(*producer(v, "Transpose", "K^T"), {0, 1, 3, 2}, "the K Transpose");
      v = index_.producer_node(v)->inputs[0];
      strip();
    }
    const ir::Node* split4 = producer(v, "Reshape", "a Q/K/V operand");
    const std::vector<int64_t> bnsh = static_shape(split4->outputs[0]);
    if (bnsh.size() != 4) packed_reject(q(split4->name) + " does not reshape to [batch, heads, sequence, head size]");
    const ir::Node* t = producer(split4->inputs[0], "Transpose", "the input of " + q(split4->name));
    expect_perm(*t, {1, 0, 2}, "the head Transpose");
    const ir::Node* split3 = producer(t->inputs[0], "Reshape", "the input of " + q(t->name));
    const std::vector<int64_t> snh = static_shape(split3->outputs[0]);
    if (snh != std::vector<int64_t>{bnsh[2], bnsh[0] * bnsh[1], bnsh[3]})
      packed_reject(q(split3->name) + " does not split [S,B,D] into [S, B * heads, head size]");
    const ir::Node* gather = producer(split3->inputs[0], "Gather", "the input of " + q(split3->name));
    std::optional<ir::Tensor> idx = gather->inputs.size() == 2 ? index_.constant(gather->inputs[1]) : std::nullopt;
    if (!idx || idx->numel() != 1 || idx->rank() != 0 || ops::NodeView(*gather, opset_).attr_int("axis", 0) != 0)
      packed_reject(q(gather->name) + " does not pick one slice of axis 0 by a constant scalar");
    Head h;
    h.packed = gather->inputs[0];
    h.index = static_cast<int64_t>(idx->as_double(0));
    h.heads = bnsh[1];
    h.head_size = bnsh[3];
    return h;
  }

  std::vector<int64_t> axes_of(const ir::Node& n) const {
    if (n.inputs.size() > 1) {
      std::optional<ir::Tensor> t = index_.constant(n.inputs[1]);
      if (!t) packed_reject("the axes of " + q(n.name) + " are not a constant");
      return t->to_int64_vector();
    }
    return ops::NodeView(n, opset_).attr_ints("axes");
  }

  // P [3,S,B,D] = Squeeze 3 (Transpose 3,1,2,0,4 (Unsqueeze 0 (Reshape [S,B,3,D] (Add(b, MatMul(Transpose
  // 1,0,2 (x), W))))))
  void packed_projection(const std::string& packed, PackedMatch& m) {
    const ir::Node* sq = producer(packed, "Squeeze", "the packed projection");
    std::vector<int64_t> axes = axes_of(*sq);
    if (axes != std::vector<int64_t>{3} && axes != std::vector<int64_t>{-2})
      packed_reject(q(sq->name) + " does not squeeze axis 3");
    const ir::Node* t = producer(sq->inputs[0], "Transpose", "the input of " + q(sq->name));
    expect_perm(*t, {3, 1, 2, 0, 4}, "the packed projection's Transpose");
    const ir::Node* un = producer(t->inputs[0], "Unsqueeze", "the input of " + q(t->name));
    if (axes_of(*un) != std::vector<int64_t>{0}) packed_reject(q(un->name) + " does not unsqueeze axis 0");
    const ir::Node* rs = producer(un->inputs[0], "Reshape", "the input of " + q(un->name));
    const std::vector<int64_t> sb3d = static_shape(rs->outputs[0]);
    const int64_t d = m.heads * m.head_size;
    if (sb3d.size() != 4 || sb3d[2] != 3 || sb3d[3] != d)
      packed_reject(q(rs->name) + " does not reshape the projection to [S, B, 3, " + std::to_string(d) + "]");
    std::string proj = rs->inputs[0];
    const ir::Node* n = index_.producer_node(proj);
    if (is_op(n, "Add")) {
      take(n);
      const bool b0 = index_.constant(n->inputs[0]).has_value();
      m.bias = b0 ? n->inputs[0] : n->inputs[1];
      proj = b0 ? n->inputs[1] : n->inputs[0];
      std::optional<ir::Tensor> b = index_.constant(m.bias);
      if (!b || b->dtype() != ir::DType::kFloat32 || b->shape() != std::vector<int64_t>{3 * d})
        packed_reject("the in_proj bias " + q(m.bias) + " is not a constant float [" + std::to_string(3 * d) + "]");
    }
    const ir::Node* mm = producer(proj, "MatMul", "the packed projection");
    std::optional<ir::Tensor> w = index_.constant(mm->inputs[1]);
    if (!w || w->dtype() != ir::DType::kFloat32 || w->shape() != std::vector<int64_t>{d, 3 * d})
      packed_reject("the in_proj weight " + q(mm->inputs[1]) + " is not a constant float [" + std::to_string(d) + ", " +
                    std::to_string(3 * d) + "]");
    m.weight = mm->inputs[1];
    const ir::Node* xt = producer(mm->inputs[0], "Transpose", "the in_proj input");
    expect_perm(*xt, {1, 0, 2}, "the sequence-first Transpose");
    m.x = xt->inputs[0];
    const std::vector<int64_t> bsd = static_shape(m.x);
    if (bsd.size() != 3 || bsd[0] != sb3d[1] || bsd[1] != sb3d[0] || bsd[2] != d)
      packed_reject(q(m.x) + " is not [B, S, " + std::to_string(d) + "]");
  }

  // context -> Transpose 2,0,1,3 -> Reshape [S*B,D] -> Gemm (or MatMul [+ Add]) -> Reshape [S,B,D] ->
  // Transpose 1,0,2.
  void output_projection(const std::string& context, PackedMatch& m) {
    const int64_t d = m.heads * m.head_size;
    const ir::Node* t = only_reader(context, "Transpose", 0);
    if (!t) packed_reject("the attention context is not transposed back to sequence-first");
    take(t);
    expect_perm(*t, {2, 0, 1, 3}, "the context Transpose");
    const ir::Node* rs = only_reader(t->outputs[0], "Reshape", 0);
    if (!rs) packed_reject("the context is not reshaped to [S * B, D]");
    take(rs);
    const std::vector<int64_t> sbd = static_shape(rs->outputs[0]);
    if (sbd.size() != 2 || sbd[1] != d) packed_reject(q(rs->name) + " does not join the heads into [S * B, D]");
    std::string proj;
    if (const ir::Node* gemm = only_reader(rs->outputs[0], "Gemm", 0)) {
      take(gemm);
      ops::NodeView v(*gemm, opset_);
      if (v.attr_int("transA", 0) != 0 || v.attr_float("alpha", 1.0f) != 1.0f || v.attr_float("beta", 1.0f) != 1.0f)
        packed_reject(q(gemm->name) + " is not a plain x * W + b");
      m.out_weight = gemm->inputs[1];
      m.out_weight_transposed = v.attr_int("transB", 0) != 0;
      if (gemm->inputs.size() > 2) m.out_bias = gemm->inputs[2];
      proj = gemm->outputs[0];
    } else if (const ir::Node* mm = only_reader(rs->outputs[0], "MatMul", 0)) {
      take(mm);
      m.out_weight = mm->inputs[1];
      proj = mm->outputs[0];
      const auto& uses = index_.uses(proj);
      if (uses.size() == 1 && is_op(g_.nodes[uses[0].node], "Add") && !index_.is_graph_output(proj)) {
        const ir::Node& add = g_.nodes[uses[0].node];
        const std::string& other = add.inputs[0] == proj ? add.inputs[1] : add.inputs[0];
        std::optional<ir::Tensor> b = index_.constant(other);
        if (b && b->rank() == 1) {
          take(&add);
          m.out_bias = other;
          proj = add.outputs[0];
        }
      }
    } else {
      packed_reject("the joined context is not projected by a Gemm or MatMul");
    }
    std::optional<ir::Tensor> w = index_.constant(m.out_weight);
    if (!w || w->dtype() != ir::DType::kFloat32 || w->rank() != 2 || w->dim(m.out_weight_transposed ? 1 : 0) != d)
      packed_reject("the out_proj weight " + q(m.out_weight) + " is not a constant float matrix over D");
    if (!m.out_bias.empty()) {
      std::optional<ir::Tensor> b = index_.constant(m.out_bias);
      if (!b || b->dtype() != ir::DType::kFloat32 || b->rank() != 1)
        packed_reject("the out_proj bias is not a constant float vector");
    }
    const ir::Node* back = only_reader(proj, "Reshape", 0);
    if (!back) packed_reject("the projection is not reshaped back to [S, B, D]");
    take(back);
    const ir::Node* last = only_reader(back->outputs[0], "Transpose", 0);
    if (!last) packed_reject("the projection is not transposed back to batch-first");
    take(last);
    expect_perm(*last, {1, 0, 2}, "the batch-first Transpose");
    const std::vector<int64_t> out = static_shape(last->outputs[0]);
    const std::vector<int64_t> in = static_shape(m.x);
    if (out.size() != 3 || out[0] != in[0] || out[1] != in[1])
      packed_reject(q(last->outputs[0]) + " is not [B, S, D_out]");
    m.output = last->outputs[0];
  }

  // Every value written inside the block is read inside it only (the block's output aside).
  void check_readers(PackedMatch& m) const {
    for (int i : nodes_)
      for (const std::string& o : g_.nodes[i].outputs) {
        if (o.empty() || o == m.output) continue;
        if (index_.is_graph_output(o) || index_.is_read_by_subgraph(o))
          packed_reject(q(o) + " is read outside the attention block");
        for (const Use& u : index_.uses(o))
          if (!nodes_.count(u.node)) packed_reject(q(o) + " is read outside the attention block");
      }
    m.nodes = nodes_;
  }

  const ir::Graph& g_;
  const GraphIndex& index_;
  const analysis::InferredTypes& types_;
  int64_t opset_;
  std::set<int> nodes_;
};

ir::Tensor transposed(const ir::Tensor& w) {
  const int64_t rows = w.dim(0), cols = w.dim(1);
  ir::Tensor t(ir::DType::kFloat32, {cols, rows});
  const float* src = w.data<float>();
  float* dst = t.data<float>();
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) dst[c * rows + r] = src[r * cols + c];
  return t;
}

}  // namespace

bool fuse_packed_attention(ir::Graph& g, PassContext& ctx) {
  analysis::InferredTypes types = analysis::infer_types(ctx.model(), g, {}, ctx.options().limits);
  GraphIndex index(g);
  std::vector<PackedMatch> matches;
  std::set<int> claimed;
  for (int i = 0; i < static_cast<int>(g.nodes.size()); ++i) {
    try {
      PackedMatcher matcher(g, index, types, ctx.opset());
      std::optional<PackedMatch> m = matcher.match(i);
      if (!m) continue;
      bool overlaps = false;
      for (int n : m->nodes) overlaps |= claimed.count(n) > 0;
      if (overlaps) continue;
      claimed.insert(m->nodes.begin(), m->nodes.end());
      matches.push_back(std::move(*m));
    } catch (const PackedReject& r) {
      ctx.rejected(kPackedPattern, g.nodes[i], r.reason);
    }
  }
  if (matches.empty()) return false;
  ctx.import_contrib_domain();
  std::vector<ir::Node> added;
  std::vector<int> removed;
  for (const PackedMatch& m : matches) {
    const std::string scope = scope_of(g.nodes[m.softmax].name);
    const int64_t d = m.heads * m.head_size;
    std::string bias = m.bias;
    if (bias.empty()) {
      bias = ctx.fresh_name(scope + "qkv_bias");
      ir::Tensor zeros(ir::DType::kFloat32, {3 * d});
      std::fill(zeros.data<float>(), zeros.data<float>() + 3 * d, 0.0f);
      g.add_initializer(bias, zeros);
    }
    ir::Node att;
    att.name = ctx.fresh_name(scope + "Attention");
    att.op_type = "Attention";
    att.domain = "com.microsoft";
    att.inputs = {m.x, m.weight, bias};
    const std::string context = ctx.fresh_name(scope + "attention_context");
    att.outputs = {context};
    ir::Attribute heads;
    heads.name = "num_heads";
    heads.kind = ir::Attribute::Kind::kInt;
    heads.i = m.heads;
    att.attributes.push_back(heads);
    const double default_scale = 1.0 / std::sqrt(static_cast<double>(m.head_size));
    if (std::fabs(m.scale - default_scale) > 1e-6 * default_scale) {
      ir::Attribute scale;
      scale.name = "scale";
      scale.kind = ir::Attribute::Kind::kFloat;
      scale.f = static_cast<float>(m.scale);
      att.attributes.push_back(scale);
    }
    added.push_back(std::move(att));

    std::string w = m.out_weight;
    if (m.out_weight_transposed) {
      w = ctx.fresh_name(scope + "out_proj_weight");
      g.add_initializer(w, transposed(*index.constant(m.out_weight)));
    }
    ir::Node mm;
    mm.name = ctx.fresh_name(scope + "out_proj");
    mm.op_type = "MatMul";
    mm.inputs = {context, w};
    mm.outputs = {m.out_bias.empty() ? m.output : ctx.fresh_name(scope + "out_proj_output")};
    if (!m.out_bias.empty()) {
      ir::Node add;
      add.name = ctx.fresh_name(scope + "out_proj_bias");
      add.op_type = "Add";
      add.inputs = {mm.outputs[0], m.out_bias};
      add.outputs = {m.output};
      added.push_back(std::move(mm));
      added.push_back(std::move(add));
    } else {
      added.push_back(std::move(mm));
    }
    removed.insert(removed.end(), m.nodes.begin(), m.nodes.end());
    ctx.changed("Attention (packed in_proj)");
  }
  remove_nodes(g, removed);
  for (ir::Node& n : added) g.nodes.push_back(std::move(n));
  return true;
}

}  // namespace kiln::passes
