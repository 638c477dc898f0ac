// Transposes move down the graph, through the ops that do not care about axis order, until they meet
// their inverse and both vanish:
//
//   T_p(x) -> Relu -> ...                     =>  x -> Relu -> T_p -> ...
//   T_p(a) + T_p(b)                           =>  T_p(a + b)
//   T_p(a) * c      (c a constant)            =>  T_p(a * c')       c' = c unsqueezed to a's rank, then T_p^-1
//   Concat(T_p(a), T_p(b), axis)              =>  T_p(Concat(a, b, axis = p[axis]))   (also where some
//                                                 inputs are readers of T_p(a) that take it first)
//   Split(T_p(a), axis)                       =>  T_p of each output of Split(a, axis = p[axis])
//   GlobalAveragePool(T_p(a))                 =>  T_p(ReduceMean(a, axes = p[2:], keepdims))   (also Max)
//   MaxPool(T_p(a)), p = (0, 3, 1, 2)         =>  T_p(ai.kiln.MaxPool(a, channels_last = 1))   (also Average;
//                                                 2-D, no Indices; target kiln only)
//   Resize(T_p(a), scales | sizes)            =>  T_p(Resize(a, scales or sizes permuted))   (not an enlarging
//                                                 one that writes a graph output nothing else reads: T_p
//                                                 would stay on its larger output)
//   Reshape(T_p(x), s), s only splitting axes =>  T_p'(Reshape(x, s'))  s' splits x's axes alike, p' moves
//                                                 the split axes as p moved theirs (static shapes only):
//                                                 ssdlite's box heads, [1,20,20,546] -> [1,546,20,20] ->
//                                                 [1,6,91,20,20] -> [1,20,20,6,91], become one Reshape
//   Transpose_q(T_p(x)), q after p identity   =>  x                 (else one Transpose, p then q)
//
// with T_p = Transpose(perm = p): a = [N, H, W, C] for the pools, which then pool channels-last
// (kernels/reference/contrib_pool.cc). A Transpose moves only when every reader of its output takes it (so it
// never runs twice, once for the readers left behind), and not when its output is a graph output (where
// only a following Transpose merges with it); each push leaves one Transpose on the pushed
// node's output, whose readers are tried in turn. This is what makes convert_convs_to_channels_last pay:
// the Transpose back to NCHW after each convolution travels down to the next convolution's Transpose to
// NHWC and cancels, and only the Transposes at the edges of a CNN region remain.
//
// Exact: no value changes, only where the axis order is changed. Level all (with the channels-last
// conversion that needs it).
#include <algorithm>
#include <unordered_map>

#include "analysis/shape_inference.h"
#include "common/error.h"
#include "passes/graph_edit.h"
#include "passes/graph_index.h"
#include "passes/passes.h"
#include "passes/pattern_util.h"

namespace kiln::passes {

namespace {

using PushedPerm = std::vector<int64_t>;

bool is_layout_free_unary(const std::string& op) {
  static const char* const kOps[] = {"Relu",  "Sigmoid", "Tanh",     "HardSigmoid", "HardSwish", "LeakyRelu",
                                     "Elu",   "Selu",    "Exp",      "Log",         "Abs",       "Neg",
                                     "Sqrt",  "Erf",     "Softplus", "Softsign",    "Identity",  "Floor",
                                     "Ceil",  "Round",   "Sign",     "Not",         "Reciprocal", "Cast",
                                     "Clip",  "Mish",    "Gelu",     "IsNaN",       "Sin",       "Cos"};
  return std::any_of(std::begin(kOps), std::end(kOps), [&](const char* o) { return op == o; });
}

bool is_layout_free_binary(const std::string& op) {
  static const char* const kOps[] = {"Add", "Sub",     "Mul",  "Div",     "Pow", "Max",  "Min",   "Sum",
                                     "Mean", "PRelu",  "Equal", "Greater", "Less", "And", "Or",   "Where",
                                     "GreaterOrEqual", "LessOrEqual", "Xor", "BitShift", "Mod"};
  return std::any_of(std::begin(kOps), std::end(kOps), [&](const char* o) { return op == o; });
}

std::optional<PushedPerm> pushed_perm_of(const ir::Node& t) {
  if (!is_op(t, "Transpose") || t.inputs.size() != 1 || t.outputs.size() != 1) return std::nullopt;
  const ir::Attribute* a = t.find_attribute("perm");
  if (!a || a->ints.empty()) return std::nullopt;  // the default (reversed dims) needs the rank
  return a->ints;
}

PushedPerm inverse_perm(const PushedPerm& p) {
  PushedPerm inv(p.size());
  for (size_t i = 0; i < p.size(); ++i) inv[static_cast<size_t>(p[i])] = static_cast<int64_t>(i);
  return inv;
}

bool is_identity_perm(const PushedPerm& p) {
  for (size_t i = 0; i < p.size(); ++i)
    if (p[i] != static_cast<int64_t>(i)) return false;
  return true;
}

// c unsqueezed at the front to `rank` dims, then transposed by `perm` (out dim i = in dim perm[i]).
std::optional<ir::Tensor> permute_pushed_constant(const ir::Tensor& c, const PushedPerm& perm) {
  const size_t rank = perm.size();
  if (c.rank() > rank) return std::nullopt;
  ir::Dims in(rank - c.rank(), 1);
  for (int64_t d : c.shape()) in.push_back(d);
  ir::Dims out(rank, 0);
  for (size_t i = 0; i < rank; ++i) out[i] = in[static_cast<size_t>(perm[i])];
  ir::Tensor t(c.dtype(), out);
  const size_t elem = ir::dtype_size(c.dtype());
  if (elem == 0) return std::nullopt;  // strings
  // Row-major strides of the input, read in the output's order.
  std::vector<int64_t> in_stride(rank, 1);
  for (size_t i = rank; i-- > 1;) in_stride[i - 1] = in_stride[i] * in[i];
  std::vector<int64_t> idx(rank, 0);
  const auto* src = static_cast<const uint8_t*>(c.raw());
  auto* dst = static_cast<uint8_t*>(t.raw());
  for (int64_t k = 0; k < t.numel(); ++k) {
    int64_t off = 0;
    for (size_t i = 0; i < rank; ++i) off += idx[i] * in_stride[static_cast<size_t>(perm[i])];
    std::copy_n(src + off * elem, elem, dst + k * elem);
    for (size_t i = rank; i-- > 0;) {
      if (++idx[i] < out[i]) break;
      idx[i] = 0;
    }
  }
  return t;
}

// Reshape(T_p(x)) to `s` when the Reshape only splits axes: each axis of T_p(x) becomes a run of consecutive
// axes of s (size-1 axes of s may join a run; an axis of size 1 may become none). Then the same split
// applied to x's axes, s', and a Transpose p' of it give the same tensor.
struct SplitThrough {
  std::vector<int64_t> x_shape;  // s'
  PushedPerm perm;               // p'
};

std::optional<SplitThrough> split_through(const std::vector<int64_t>& x, const PushedPerm& p,
                                          const std::vector<int64_t>& s) {
  const size_t rank = p.size();
  if (x.size() != rank) return std::nullopt;
  for (int64_t d : x)
    if (d <= 0) return std::nullopt;
  for (int64_t d : s)
    if (d <= 0) return std::nullopt;
  // Run i of s, [begin[i], end[i]), holds transposed axis i (x's axis p[i]).
  std::vector<size_t> begin(rank), end(rank);
  size_t j = 0;
  for (size_t i = 0; i < rank; ++i) {
    const int64_t a = x[static_cast<size_t>(p[i])];
    begin[i] = j;
    if (a == 1) {
      if (j < s.size() && s[j] == 1) ++j;
      continue;
    }
    int64_t product = 1;
    while (j < s.size() && product < a) product *= s[j++];
    if (product != a) return std::nullopt;
  }
  while (j < s.size() && s[j] == 1) ++j;  // trailing 1s join the last run
  if (j != s.size() || rank == 0) return std::nullopt;
  end.back() = j;
  for (size_t i = 0; i + 1 < rank; ++i) end[i] = begin[i + 1];
  SplitThrough r;
  const PushedPerm inv = inverse_perm(p);
  std::vector<size_t> offset(rank);  // where x's axis k's run starts in s'
  for (size_t k = 0; k < rank; ++k) {
    const auto i = static_cast<size_t>(inv[k]);
    offset[k] = r.x_shape.size();
    r.x_shape.insert(r.x_shape.end(), s.begin() + static_cast<int64_t>(begin[i]),
                     s.begin() + static_cast<int64_t>(end[i]));
  }
  for (size_t i = 0; i < rank; ++i)
    for (size_t t = begin[i]; t < end[i]; ++t)
      r.perm.push_back(static_cast<int64_t>(offset[static_cast<size_t>(p[i])] + (t - begin[i])));
  return r;
}

ir::Attribute pushing_int_attr(const char* name, int64_t v) {
  ir::Attribute a;
  a.name = name;
  a.kind = ir::Attribute::Kind::kInt;
  a.i = v;
  return a;
}

ir::Attribute pushing_ints_attr(const char* name, std::vector<int64_t> v) {
  ir::Attribute a;
  a.name = name;
  a.kind = ir::Attribute::Kind::kInts;
  a.ints = std::move(v);
  return a;
}

int64_t pushing_axis_attr(const ir::Node& n, int64_t dflt) {
  const ir::Attribute* a = n.find_attribute("axis");
  return a ? a->i : dflt;
}

void pushing_set_attr(ir::Node& n, ir::Attribute a) {
  for (ir::Attribute& old : n.attributes)
    if (old.name == a.name) {
      old = std::move(a);
      return;
    }
  n.attributes.push_back(std::move(a));
}

class Pusher {
 public:
  Pusher(ir::Graph& g, PassContext& ctx) : g_(g), ctx_(ctx) {
    index_.emplace(g);
    // Shapes, for the Reshapes a Transpose may pass: inferred now, while the graph is in order (the
    // Transposes this pass adds go at the end of the node list).
    if (std::any_of(g.nodes.begin(), g.nodes.end(), [](const ir::Node& n) { return is_op(n, "Reshape"); })) {
      try {
        types_ = analysis::infer_types(ctx.model(), g, {}, ctx.options().limits);
      } catch (const Error&) {
        // no shapes: no Reshape takes a Transpose
      }
    }
  }

  // Pushes one Transpose (or cancels one pair); false when none moves.
  bool step() {
    for (int i = 0; i < static_cast<int>(g_.nodes.size()); ++i) {
      std::optional<PushedPerm> p = pushed_perm_of(g_.nodes[i]);
      if (!p) continue;
      const std::string out = g_.nodes[i].outputs[0];
      if (index_->is_read_by_subgraph(out)) continue;
      const std::vector<Use>& uses = index_->uses(out);
      if (uses.empty()) continue;
      if (index_->is_graph_output(out)) {
        // The Transpose stays for the graph output; a reader that transposes again still merges with it.
        for (const Use& u : uses)
          if (pushed_perm_of(g_.nodes[u.node]) && takes(u.node, out, *p)) {
            rewrite(u.node, g_.nodes[i].inputs[0], *p);
            return true;
          }
        continue;
      }
      // Every reader takes it, or is a Concat that will once the other readers have: it goes first to
      // one that takes it now.
      bool all = true;
      int first = -1;
      for (const Use& u : uses) {
        if (takes(u.node, out, *p)) {
          if (first < 0) first = u.node;
        } else {
          all = all && concat_takes_after_its_inputs(u.node, out, *p);
        }
      }
      if (!all || first < 0) continue;
      rewrite(first, g_.nodes[i].inputs[0], *p);
      return true;
    }
    return false;
  }

 private:
  // Whether node r, reading `t_out` = T_p(x), can take the Transpose.
  bool takes(int r, const std::string& t_out, const PushedPerm& p) {
    const ir::Node& n = g_.nodes[r];
    if (!ir::is_default_domain(n.domain) || n.outputs.empty()) return false;
    const size_t rank = p.size();
    if (std::optional<PushedPerm> q = pushed_perm_of(n)) return q->size() == rank;
    if (is_layout_free_unary(n.op_type)) {
      if (n.inputs.empty() || n.inputs[0] != t_out) return false;
      for (size_t k = 1; k < n.inputs.size(); ++k)  // Clip's bounds: scalars
        if (!n.inputs[k].empty() && (n.inputs[k] == t_out || !is_scalar(n.inputs[k]))) return false;
      return n.outputs.size() == 1;
    }
    if (is_layout_free_binary(n.op_type)) {
      for (const std::string& in : n.inputs) {
        if (in.empty() || same_transpose(in, p) || is_scalar(in)) continue;
        std::optional<ir::Tensor> c = index_->constant(in);
        if (!c || c->rank() > rank || ir::dtype_size(c->dtype()) == 0) return false;
      }
      return n.outputs.size() == 1;
    }
    if (n.op_type == "Concat") {
      for (const std::string& in : n.inputs)
        if (!same_transpose(in, p)) return false;
      const int64_t axis = pushing_axis_attr(n, 0);
      return axis >= -static_cast<int64_t>(rank) && axis < static_cast<int64_t>(rank);
    }
    if (n.op_type == "Split") {
      if (n.inputs[0] != t_out) return false;
      const int64_t axis = pushing_axis_attr(n, 0);
      return axis >= -static_cast<int64_t>(rank) && axis < static_cast<int64_t>(rank);
    }
    if (n.op_type == "Reshape") return n.inputs.size() == 2 && n.inputs[0] == t_out && reshape_split(n, p).has_value();
    if (n.op_type == "GlobalAveragePool" || n.op_type == "GlobalMaxPool") return rank >= 3;
    if (n.op_type == "MaxPool" || n.op_type == "AveragePool") return takes_pool(n, t_out, p);
    if (n.op_type == "Resize") {
      if (ctx_.opset() < 11 || n.inputs[0] != t_out || n.find_attribute("axes")) return false;
      if (index_->is_graph_output(n.outputs[0]) && index_->uses(n.outputs[0]).empty() && enlarges(n)) return false;
      if (const ir::Attribute* m = n.find_attribute("coordinate_transformation_mode");
          m && m->s == "tf_crop_and_resize")
        return false;
      for (size_t k = 2; k < 4; ++k) {
        if (k >= n.inputs.size() || n.inputs[k].empty()) continue;
        std::optional<ir::Tensor> c = index_->constant(n.inputs[k]);
        if (!c || c->numel() != static_cast<int64_t>(rank) || c->rank() != 1) return false;
      }
      return true;
    }
    return false;
  }

  // A Concat r of t_out = T_p(x) and of the outputs of other readers of t_out that take it and feed only
  // the Concat: once those have taken it, every input of r is T_p of something, and r takes it too. A
  // YOLO SPP block, three MaxPools of one value concatenated with it, so stays channels-last.
  bool concat_takes_after_its_inputs(int r, const std::string& t_out, const PushedPerm& p) {
    const ir::Node& n = g_.nodes[r];
    if (!is_op(n, "Concat") || !ir::is_default_domain(n.domain)) return false;
    const int64_t axis = pushing_axis_attr(n, 0), rank = static_cast<int64_t>(p.size());
    if (axis < -rank || axis >= rank) return false;
    for (const std::string& in : n.inputs) {
      if (in == t_out || same_transpose(in, p)) continue;
      const int producer = index_->producer(in);
      if (producer < 0 || index_->only_consumer(in) != r || is_op(g_.nodes[producer], "Concat")) return false;
      const ir::Node& m = g_.nodes[producer];
      if (m.inputs.empty() || m.inputs[0] != t_out || !takes(producer, t_out, p)) return false;
    }
    return true;
  }

  // The split a Reshape n of T_p(x) is, when x's and n's output shapes are static (see split_through).
  std::optional<SplitThrough> reshape_split(const ir::Node& n, const PushedPerm& p) {
    const ir::Node* t = index_->producer_node(n.inputs[0]);
    if (!t || n.inputs[1] == n.inputs[0]) return std::nullopt;
    std::optional<std::vector<int64_t>> x = static_shape(t->inputs[0]), s = static_shape(n.outputs[0]);
    if (!x || !s) return std::nullopt;
    return split_through(*x, p, *s);
  }

  // A value's shape when every dim is known: from the types inferred before the first edit (values keep
  // their shapes while Transposes move), or for a value this pass made, from the value it stands for.
  std::optional<std::vector<int64_t>> static_shape(const std::string& v) const {
    if (auto it = made_shapes_.find(v); it != made_shapes_.end()) return it->second;
    if (!types_) return std::nullopt;
    const ir::Type* t = tensor_type_with_shape(*types_, v);
    if (!t || !t->shape->is_static()) return std::nullopt;
    std::vector<int64_t> dims;
    for (size_t i = 0; i < t->shape->rank(); ++i) dims.push_back((*t->shape)[i].value);
    return dims;
  }

  // Whether Resize n makes its input larger: scales multiplying to more than 1, or sizes (an upsampling's,
  // mostly). A Transpose pushed through such a Resize whose output is only a graph output stays behind it,
  // on the larger tensor: lraspp-mobilenetv3's last Resize, 21x64x64 -> 21x512x512, then cost a 1.6 ms Transpose
  // where one of its input costs ~0.02 (AMD EPYC Zen 4, 2 threads).
  bool enlarges(const ir::Node& n) const {
    if (n.inputs.size() > 3 && !n.inputs[3].empty()) return true;
    if (n.inputs.size() < 3 || n.inputs[2].empty()) return false;
    std::optional<ir::Tensor> c = index_->constant(n.inputs[2]);
    if (!c || c->dtype() != ir::DType::kFloat32) return true;
    double product = 1;
    for (int64_t i = 0; i < c->numel(); ++i) product *= c->data<float>()[i];
    return product > 1;
  }

  // A 2-D pool of the channels-first view of NHWC data, whose channels-last twin kiln has.
  bool takes_pool(const ir::Node& n, const std::string& t_out, const PushedPerm& p) const {
    if (ctx_.options().target != Target::kKiln || p != PushedPerm{0, 3, 1, 2}) return false;
    if (n.inputs.size() != 1 || n.inputs[0] != t_out) return false;
    if (n.outputs.size() > 1 && !n.outputs[1].empty()) return false;  // Indices: channels-first positions
    const ir::Attribute* k = n.find_attribute("kernel_shape");
    return k && k->ints.size() == 2;
  }

  bool same_transpose(const std::string& value, const PushedPerm& p) const {
    const ir::Node* t = index_->producer_node(value);
    if (!t) return false;
    std::optional<PushedPerm> q = pushed_perm_of(*t);
    return q && *q == p && !index_->is_graph_output(value);
  }

  bool is_scalar(const std::string& value) const {
    std::optional<ir::Tensor> c = index_->constant(value);
    return c && c->numel() == 1 && c->rank() <= 1;
  }

  std::string transposed_input(const std::string& value) const { return index_->producer_node(value)->inputs[0]; }

  // Rewrites reader r of t_out = T_p(x).
  void rewrite(int r, const std::string& x, const PushedPerm& p) {
    ir::Node n = g_.nodes[r];
    const size_t rank = p.size();
    if (std::optional<PushedPerm> q = pushed_perm_of(n)) {
      // T_q(T_p(x)): out dim i = x dim p[q[i]].
      PushedPerm c(rank);
      for (size_t i = 0; i < rank; ++i) c[i] = p[static_cast<size_t>((*q)[i])];
      if (is_identity_perm(c) && redirect_value(g_, *index_, n.outputs[0], x)) {
        remove_nodes(g_, {r});
        ctx_.changed("Transpose pair cancelled");
      } else {
        g_.nodes[r].inputs[0] = x;
        pushing_set_attr(g_.nodes[r], pushing_ints_attr("perm", c));
        ctx_.changed("Transposes merged");
      }
      index_.emplace(g_);
      return;
    }
    const PushedPerm inv = inverse_perm(p);
    PushedPerm out_perm = p;  // the Transpose each output gets
    if (n.op_type == "Reshape") {
      const SplitThrough split = *reshape_split(n, p);
      std::string name = ctx_.fresh_name(n.inputs[1] + "_split");
      g_.add_initializer(name,
                         ir::Tensor::from_vector<int64_t>(split.x_shape, {static_cast<int64_t>(split.x_shape.size())}));
      n.inputs = {x, name};
      out_perm = split.perm;
    } else if (is_layout_free_unary(n.op_type)) {
      n.inputs[0] = x;
    } else if (is_layout_free_binary(n.op_type)) {
      for (std::string& in : n.inputs) {
        if (in.empty()) continue;
        if (same_transpose(in, p)) {
          in = transposed_input(in);
        } else if (!is_scalar(in)) {
          std::optional<ir::Tensor> c = permute_pushed_constant(*index_->constant(in), inv);
          std::string name = ctx_.fresh_name(in + "_permuted");
          g_.add_initializer(name, *c);
          in = name;
        }
      }
    } else if (n.op_type == "Concat" || n.op_type == "Split") {
      int64_t axis = pushing_axis_attr(n, 0);
      if (axis < 0) axis += static_cast<int64_t>(rank);
      pushing_set_attr(n, pushing_int_attr("axis", p[static_cast<size_t>(axis)]));
      if (n.op_type == "Concat") {
        for (std::string& in : n.inputs) in = transposed_input(in);
      } else {
        n.inputs[0] = x;
      }
    } else if (n.op_type == "GlobalAveragePool" || n.op_type == "GlobalMaxPool") {
      std::vector<int64_t> axes(p.begin() + 2, p.end());
      std::sort(axes.begin(), axes.end());
      n.op_type = n.op_type == "GlobalAveragePool" ? "ReduceMean" : "ReduceMax";
      n.attributes.clear();
      n.attributes.push_back(pushing_int_attr("keepdims", 1));
      n.inputs = {x};
      const bool axes_input = ctx_.opset() >= 18;
      if (axes_input) {
        std::string name = ctx_.fresh_name(n.name + "_axes");
        g_.add_initializer(name, ir::Tensor::from_vector<int64_t>(axes, {static_cast<int64_t>(axes.size())}));
        n.inputs.push_back(name);
      } else {
        n.attributes.push_back(pushing_ints_attr("axes", axes));
      }
    } else if (n.op_type == "MaxPool" || n.op_type == "AveragePool") {
      n.domain = kKilnDomain;
      n.inputs[0] = x;
      n.outputs.resize(1);
      pushing_set_attr(n, pushing_int_attr("channels_last", 1));
      ctx_.import_kiln_domain();
    } else if (n.op_type == "Resize") {
      n.inputs[0] = x;
      for (size_t k = 2; k < 4; ++k) {
        if (k >= n.inputs.size() || n.inputs[k].empty()) continue;
        std::optional<ir::Tensor> c = index_->constant(n.inputs[k]);
        // scales'[p[j]] = scales[j]: the per-axis values follow their axes.
        ir::Tensor permuted = c->clone();
        const size_t elem = ir::dtype_size(c->dtype());
        const auto* src = static_cast<const uint8_t*>(c->raw());
        auto* dst = static_cast<uint8_t*>(permuted.raw());
        for (size_t j = 0; j < rank; ++j) std::copy_n(src + j * elem, elem, dst + static_cast<size_t>(p[j]) * elem);
        std::string name = ctx_.fresh_name(n.inputs[k] + "_permuted");
        g_.add_initializer(name, permuted);
        n.inputs[k] = name;
      }
    }
    // Each output now holds x's axis order; a Transpose after it gives the readers what they read before.
    for (std::string& out : n.outputs) {
      if (out.empty()) continue;
      std::string inner = ctx_.fresh_name(out + "_before_transpose");
      // T_out_perm(inner) = out: out dim i is inner dim out_perm[i].
      if (std::optional<std::vector<int64_t>> dims = static_shape(out); dims && dims->size() == out_perm.size()) {
        std::vector<int64_t> inner_dims(dims->size());
        for (size_t i = 0; i < dims->size(); ++i) inner_dims[static_cast<size_t>(out_perm[i])] = (*dims)[i];
        made_shapes_[inner] = std::move(inner_dims);
      }
      ir::Node t;
      t.op_type = "Transpose";
      t.name = ctx_.fresh_name(n.name + "_transpose");
      t.inputs = {inner};
      t.outputs = {out};
      t.attributes.push_back(pushing_ints_attr("perm", out_perm));
      out = inner;
      g_.nodes.push_back(std::move(t));
    }
    g_.nodes[r] = std::move(n);
    ctx_.changed("Transpose pushed down");
    index_.emplace(g_);
  }

  ir::Graph& g_;
  PassContext& ctx_;
  std::optional<GraphIndex> index_;  // rebuilt after each edit
  // For Reshapes: the graph's types as the pass found it, and the static shapes of values made since.
  std::optional<analysis::InferredTypes> types_;
  std::unordered_map<std::string, std::vector<int64_t>> made_shapes_;
};

}  // namespace

bool push_transposes(ir::Graph& g, PassContext& ctx) {
  Pusher pusher(g, ctx);
  bool changed = false;
  // Each push moves a Transpose past one node (or removes one), so this ends; the bound is a guard.
  for (size_t steps = 0; steps < 16 * g.nodes.size() + 64 && pusher.step(); ++steps) changed = true;
  return changed;
}

}  // namespace kiln::passes
