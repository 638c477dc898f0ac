// Fuses BERT/ViT self-attention, as torch.onnx.export writes it (eager attention or
// scaled_dot_product_attention), into one com.microsoft.Attention (ONNX Runtime's contrib op, so that the
// optimized model also runs in ONNX Runtime):
//
//   before (per layer)                                      after
//
//          x ──────────┬─────────────┐                       x   mask (int64 [B,S], model input)
//          │           │             │                       │     │
//   MatMul(x,Wq)  MatMul(x,Wk)  MatMul(x,Wv)                 │   Cast(to=int32)   (one per model)
//   Add(bq,·)     Add(bk,·)     Add(bv,·)                    │     │
//   Reshape       Reshape       Reshape   [B,S,N,H]          Attention(x, [Wq|Wk|Wv], [bq|bk|bv], mask)
//   Transpose     Transpose     Transpose                      num_heads=N, mask_filter_value=C
//    0,2,1,3       0,2,3,1       0,2,1,3                       (scale only if not 1/sqrt(H))
//   [Mul(·, s1)]  [Mul(·, s2)]      │                          │
//          └─ MatMul ─┘             │                          ▼ [B,S,N*H]
//          [Div(·, c) or Mul(·, c)] │
//          [Add(·, additive mask)]  │
//          Softmax(axis=-1)         │
//               └──── MatMul ───────┘
//                Transpose 0,2,1,3
//                Reshape [B,S,N*H]       -> its output is now written by Attention
//
// Exporter drift absorbed, each form matched on what it computes rather than how it is spelled:
// - Q and K^T reach their Reshapes through Transposes and scalar Mul/Div nodes in any order (a scalar
//   factor commutes with a transpose): the perms are composed, so K^T may be one Transpose 0,2,3,1 or,
//   as torch's SDPA export writes key.transpose(-2, -1), 0,2,1,3 then 0,1,3,2. The scale is the product
//   s1 * s2 * c of every factor; SDPA scales Q and K^T by sqrt(1/sqrt(H)) each before the MatMul, eager
//   attention divides the scores by sqrt(H) after it.
// - The additive mask may be any arithmetic (Unsqueeze, Expand, Cast, Not, Neg, Add, Sub, Mul, Where) of
//   one 2-D [B,S] 0/1 mask and scalar constants whose result is 0 where the mask is 1, one constant C
//   where it is 0, and laid out as [B,1,1,S] (expanded or not) against the [B,N,S,S] scores. The matcher
//   evaluates that arithmetic on the two values a mask element can hold, so torch's
//   (1 - Cast(Unsqueeze(Unsqueeze(mask)))) * C, transformers' SDPA mask Where(Cast(inv, bool), lowest,
//   inv) with inv = 1 - Cast(Expand(Unsqueeze(Unsqueeze(mask)))), and torch's bool-mask Where(mask, 0,
//   -inf) all match, and a form that computes something else (NaN from 0 * -inf, C where the mask is 1)
//   does not. And/Or count as arithmetic, and a constant holding one value throughout acts as a scalar.
// - On static shapes the mask's elements may also be moved (Flatten, Reshape, Squeeze, Unsqueeze, Gather
//   with constant indices): transformers 5 indexes the flattened mask at b * S + k and And-s it with an
//   all-true [1,1,S,1]. The matcher follows which mask element each element holds and accepts the result
//   where it is the [B,1,1,S] (or expanded) layout again.
// - No mask at all (ViT) and no scaling at all (scale 1, written) are fine too.
// Attention takes the raw 2-D mask and builds mask_filter_value where mask <= 0 and 0 where mask > 0
// itself, which is the same for a 0/1 mask. The Cast to int32 is written once and read by every layer.
// No mask means no mask input. The output projection MatMul+Add stays as it is.
//
// int8 models (ONNX Runtime's quantize_dynamic, or `kiln quantize --mode int8-dynamic`, once their
// products are folded into DynamicQuantizeMatMul): when Q, K and V are all DynamicQuantizeMatMul of one
// input (int8 weights with zero point 0), the block becomes DynamicQuantizeLinear(x) -> com.microsoft.
// QAttention, ONNX Runtime's int8 Attention, with the three int8 weights packed and one scale per column.
//
// Not fused, with that reason: masks not built from a 2-D mask input, i.e. a causal triangle (a constant,
// or Where over a bool buffer), a custom float mask, or scores masked by Where (GPT-2). Matching causal
// masks onto Attention's unidirectional=1 is left for when decoder models need it.
//
// The Reshapes are matched on what they do (split the last dim into [heads, head_size] and join it back),
// read from inferred shapes, so a Shape/Gather/Concat target and a folded constant ([0,0,2,64]) match
// alike. Shape nodes reading an intermediate value, and the shape arithmetic after them that feeds only
// the block's own nodes, are removed with the block; the constants they read die later (dead-code
// elimination).
//
// Reported: "Attention" (or "QAttention") per fused block; candidates (a MatMul of two Transposes, or of scaled ones, that
// reaches a Softmax) left alone are rejected with the reason, at the Q.K^T MatMul where the match started.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "ops/node_view.h"
#include "passes/graph_edit.h"
#include "passes/graph_index.h"
#include "passes/passes.h"
#include "passes/pattern_util.h"
#include "analysis/shape_inference.h"

namespace kiln::passes {

namespace {

constexpr const char* kPattern = "attention";

std::string quoted(const std::string& s) { return "\"" + s + "\""; }

std::string number(double v) {
  if (std::isnan(v)) return "NaN";  // whatever its sign bit
  std::ostringstream s;
  s << (v == 0 ? 0.0 : v);  // no "-0"
  return s.str();
}

int64_t element_count(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::vector<int64_t> row_major_strides(const std::vector<int64_t>& shape) {
  std::vector<int64_t> strides(shape.size(), 1);
  for (size_t i = shape.size(); i-- > 1;) strides[i - 1] = strides[i] * shape[i];
  return strides;
}

// Thrown inside the matcher to reject a candidate with a reason; caught per candidate.
struct Reject {
  std::string reason;
};

[[noreturn]] void reject(std::string reason) { throw Reject{std::move(reason)}; }

[[noreturn]] void reject_mask(const std::string& why) {
  reject("mask is not built from a 2-D attention mask input (causal or custom masks are not fused): " + why);
}

// One of Q, K, V: x -> MatMul(W) -> [Add(b)] -> Reshape [B,S,N,H] -> Transposes and scalings.
struct Head {
  int matmul = -1, add = -1, reshape = -1;
  std::vector<int> layout;      // the Transposes and (Q, K only) scalar Mul/Div nodes after the Reshape
  double scale = 1;             // the product of those Mul/Div factors
  std::string x, weight, bias;  // bias "" when there is no Add
  int64_t heads = 0, head_size = 0;
  // A com.microsoft.DynamicQuantizeMatMul (int8 weights, zero point 0) instead of a MatMul: its scale.
  bool quantized = false;
  std::string weight_scale;
};

struct Match {
  int qk = -1;
  Head q, k, v;
  int scale_node = -1, mask_add = -1, softmax = -1, pv = -1, out_transpose = -1, out_reshape = -1;
  double scale = 1;      // every factor on the scores: before the Q.K^T MatMul (Q, K) and after it
  std::string raw_mask;  // the 2-D [B,S] integer or bool mask the additive mask was built from; "" when none
  float mask_filter_value = 0;
  std::set<int> remove;  // every node of the block, plus the shape arithmetic that only fed it
};

// A value of the additive mask's arithmetic, evaluated where the 0/1 mask is 1 (`on`) and where it is 0
// (`off`). `raw` is the 2-D mask it derives from ("" for a constant, which is the same on both sides);
// the mask's batch and key dims sit at `batch_axis` and `key_axis` of `rank` dims once Unsqueezed.
struct MaskValue {
  float on = 0, off = 0;
  std::string raw;
  int64_t rank = 0, batch_axis = 0, key_axis = 1;
  // Set when the mask's elements were moved (Flatten, Reshape, Gather) into no [.., batch, .., key] layout
  // yet: which mask element (b * S + k) each element of the value holds, and the value's shape.
  std::vector<int64_t> held, held_shape;
};

class Matcher {
 public:
  Matcher(const ir::Graph& g, const GraphIndex& index, const analysis::InferredTypes& types, int64_t opset)
      : g_(g), index_(index), types_(types), opset_(opset) {}

  // The block whose Q.K^T MatMul is node `qk`; nullopt when it is no attention candidate at all; throws
  // Reject when it is one that cannot be fused.
  std::optional<Match> match(int qk) {
    const ir::Node& mm = g_.nodes[qk];
    if (!is_op(&mm, "MatMul") || mm.inputs.size() != 2) return std::nullopt;
    if (!from_transpose(mm.inputs[0]) || !from_transpose(mm.inputs[1])) return std::nullopt;
    Match m;
    m.qk = qk;
    // MatMul -> [Div|Mul by c] -> [Add mask] -> Softmax. A Where on the way (GPT-2's causal masking of the
    // scores) is walked only to say why the candidate is left alone.
    std::string cur = mm.outputs[0];
    int scores_where = -1;
    for (int step = 0; step < 4 && m.softmax < 0; ++step) {
      int next = -1;
      for (const Use& u : index_.uses(cur)) {
        const ir::Node& n = g_.nodes[u.node];
        bool fits =
            is_op(&n, "Softmax") ||
            ((is_op(&n, "Div") || is_op(&n, "Mul")) && m.scale_node < 0 && m.mask_add < 0 && scores_where < 0) ||
            (is_op(&n, "Add") && m.mask_add < 0) || (is_op(&n, "Where") && scores_where < 0 && u.input > 0);
        if (fits) {
          next = u.node;
          break;
        }
      }
      if (next < 0) break;
      const ir::Node& n = g_.nodes[next];
      if (is_op(&n, "Softmax"))
        m.softmax = next;
      else if (is_op(&n, "Add"))
        m.mask_add = next;
      else if (is_op(&n, "Where"))
        scores_where = next;
      else
        m.scale_node = next;
      cur = n.outputs[0];
    }
    if (m.softmax < 0) return std::nullopt;
    if (scores_where >= 0) reject_mask("the scores pass through Where " + quoted(g_.nodes[scores_where].name));

    if (m.scale_node >= 0) m.scale = factor_of(g_.nodes[m.scale_node], mm.outputs[0], "the scores");
    if (m.mask_add >= 0) read_mask(m);
    const ir::Node& sm = g_.nodes[m.softmax];
    int64_t axis = ops::NodeView(sm, opset_).attr_int("axis", opset_ >= 13 ? -1 : 1);
    if (axis != -1 && axis != 3) reject("Softmax is over axis " + std::to_string(axis) + ", not the last");

    m.pv = reader(sm.outputs[0], "MatMul", 0);
    if (m.pv < 0) reject("the Softmax output is not multiplied with V by a MatMul");
    m.out_transpose = reader(g_.nodes[m.pv].outputs[0], "Transpose", 0);
    if (m.out_transpose < 0) reject("the attention context is not transposed back");
    check_perm(g_.nodes[m.out_transpose], {0, 2, 1, 3}, "the context Transpose");
    m.out_reshape = reader(g_.nodes[m.out_transpose].outputs[0], "Reshape", 0);
    if (m.out_reshape < 0) reject("the attention context is not reshaped back to [batch, sequence, hidden]");

    m.q = head(mm.inputs[0], {0, 2, 1, 3}, "Q", true);
    m.k = head(mm.inputs[1], {0, 2, 3, 1}, "K", true);
    m.v = head(g_.nodes[m.pv].inputs[1], {0, 2, 1, 3}, "V", false);
    m.scale *= m.q.scale * m.k.scale;
    if (m.q.quantized != m.k.quantized || m.q.quantized != m.v.quantized)
      reject("Q, K and V are not all int8 (DynamicQuantizeMatMul) or all float32 (MatMul) projections");
    if (m.q.x != m.k.x || m.q.x != m.v.x)
      reject("Q, K and V do not read the same input (" + quoted(m.q.x) + ", " + quoted(m.k.x) + ", " + quoted(m.v.x) +
             ")");
    if (m.q.heads != m.k.heads || m.q.heads != m.v.heads || m.q.head_size != m.k.head_size ||
        m.q.head_size != m.v.head_size)
      reject("heads and head size do not agree between the Q, K and V Reshapes ([" + std::to_string(m.q.heads) + "," +
             std::to_string(m.q.head_size) + "], [" + std::to_string(m.k.heads) + "," + std::to_string(m.k.head_size) +
             "], [" + std::to_string(m.v.heads) + "," + std::to_string(m.v.head_size) + "])");
    check_input(m.q);
    check_output_reshape(m);
    check_weights(m);
    collect_and_check_readers(m);
    return m;
  }

 private:
  // The first reader of `value` that is `op` and reads it at input `slot`; -1 when none.
  int reader(const std::string& value, const char* op, int slot) const {
    for (const Use& u : index_.uses(value))
      if (u.input == slot && is_op(g_.nodes[u.node], op)) return u.node;
    return -1;
  }

  // A Q.K^T operand of a candidate: a Transpose, or a Mul/Div of one (SDPA scales Q and K^T first).
  bool from_transpose(const std::string& value) const {
    const ir::Node* n = index_.producer_node(value);
    if (is_op(n, "Mul") || is_op(n, "Div")) {
      for (const std::string& in : n->inputs)
        if (is_op(index_.producer_node(in), "Transpose")) return true;
      return false;
    }
    return is_op(n, "Transpose");
  }

  const ir::Type* type_of(const std::string& v) const {
    auto it = types_.types.find(v);
    return it == types_.types.end() || !it->second.is_tensor() || !it->second.shape ? nullptr : &it->second;
  }

  ir::DType dtype_of(const std::string& v) const {
    auto it = types_.types.find(v);
    return it == types_.types.end() ? ir::DType::kUndefined : it->second.dtype;
  }

  int index_of(const ir::Node* n) const { return static_cast<int>(n - g_.nodes.data()); }

  void check_perm(const ir::Node& t, const std::vector<int64_t>& want, const std::string& what) const {
    std::vector<int64_t> perm = ops::NodeView(t, opset_).attr_ints("perm");
    if (perm != want)
      reject(what + " " + quoted(t.name) + " has perm " + ir::to_string(perm) + ", not " + ir::to_string(want));
  }

  // The factor a scaling node multiplies `data` by: Mul(data, c), Mul(c, data) or Div(data, c), with c a
  // float scalar constant.
  double factor_of(const ir::Node& n, const std::string& data, const std::string& what) const {
    const bool div = n.op_type == "Div";
    if (div && n.inputs[0] != data) reject(what + " is the divisor of " + quoted(n.name));
    const std::string& c = n.inputs[0] == data ? n.inputs[1] : n.inputs[0];
    std::optional<double> s = index_.scalar(c);
    std::optional<ir::Tensor> t = index_.constant(c);
    if (!s || !t || !ir::is_float(t->dtype()) || t->rank() > 4)
      reject("the scaling " + quoted(n.name) + " is not by a scalar constant");
    if (div && *s == 0) reject("the scaling " + quoted(n.name) + " divides by zero");
    return div ? 1.0 / *s : *s;
  }

  // Add(scores, additive) with `additive` 0 where the 2-D mask is 1 and C where it is 0, as [B,1,1,S].
  void read_mask(Match& m) const {
    const ir::Node& add = g_.nodes[m.mask_add];
    const std::string& scores = m.scale_node >= 0 ? g_.nodes[m.scale_node].outputs[0] : g_.nodes[m.qk].outputs[0];
    const std::string& additive = add.inputs[0] == scores ? add.inputs[1] : add.inputs[0];
    MaskValue v = eval_mask(additive, 0);
    if (v.raw.empty()) reject_mask(quoted(additive) + " is a constant");
    if (!v.held.empty()) reject_mask(quoted(v.raw) + "'s elements end in no [batch, ..., sequence] layout");
    if (v.rank != 4 || v.batch_axis != 0 || v.key_axis != 3)
      reject_mask(quoted(v.raw) + " is not laid out as [batch, 1, 1, sequence] (its dims land at " +
                  std::to_string(v.batch_axis) + " and " + std::to_string(v.key_axis) + " of " +
                  std::to_string(v.rank) + ")");
    if (v.on != 0 || std::isnan(v.off))
      reject("the additive mask is not (1 - mask) * C: it is " + number(v.on) + " where the mask " + quoted(v.raw) +
             " is 1 and " + number(v.off) + " where it is 0");
    m.raw_mask = v.raw;
    m.mask_filter_value = v.off;
  }

  MaskValue eval_mask(const std::string& value, int depth) const {
    constexpr int kMaxDepth = 24;
    if (depth > kMaxDepth) reject_mask("its arithmetic is more than " + std::to_string(kMaxDepth) + " nodes deep");
    if (std::optional<ir::Tensor> t = index_.constant(value)) {
      // One value repeated (transformers 5's all-true bidirectional mask, And-ed with the padding mask) acts
      // as a scalar that broadcasts; anything else (a causal triangle) is no padding mask.
      if (!uniform(*t)) reject_mask(quoted(value) + " is a constant " + ir::to_string(t->shape()) + " tensor");
      MaskValue c;
      c.on = c.off = static_cast<float>(t->as_double(0));
      c.rank = static_cast<int64_t>(t->rank());
      return c;
    }
    const ir::Node* n = index_.producer_node(value);
    auto operand = [&](size_t i) {
      if (i >= n->inputs.size() || n->inputs[i].empty()) reject_mask(n->label() + " lacks input " + std::to_string(i));
      return eval_mask(n->inputs[i], depth + 1);
    };
    if (is_op(n, "Unsqueeze")) {
      MaskValue in = operand(0);
      if (!in.held.empty()) return moved(*n, in);
      std::vector<int64_t> axes;
      if (n->inputs.size() > 1) {
        std::optional<ir::Tensor> t = index_.constant(n->inputs[1]);
        if (!t) reject_mask("the axes of " + n->label() + " are not a constant");
        axes = t->to_int64_vector();
      } else {
        axes = ops::NodeView(*n, opset_).attr_ints("axes");
      }
      const int64_t rank = in.rank + static_cast<int64_t>(axes.size());
      for (int64_t& a : axes) {
        if (a < 0) a += rank;
        if (a < 0 || a >= rank) reject_mask(n->label() + " has an axis out of range");
      }
      std::vector<int64_t> kept;  // where the input's dims land
      for (int64_t d = 0; d < rank; ++d)
        if (std::find(axes.begin(), axes.end(), d) == axes.end()) kept.push_back(d);
      if (!in.raw.empty()) {
        in.batch_axis = kept[in.batch_axis];
        in.key_axis = kept[in.key_axis];
      }
      in.rank = rank;
      return in;
    }
    if (is_op(n, "Expand")) {
      // Broadcasting repeats the mask's values; only dims it prepends move the mask's own.
      MaskValue in = operand(0);
      if (!in.held.empty()) reject_mask(n->label() + " expands the mask in no [batch, ..., sequence] layout");
      const ir::Type* t = type_of(n->outputs[0]);
      if (!t) reject_mask("the rank of " + n->label() + "'s output is not known");
      const int64_t shift = static_cast<int64_t>(t->shape->rank()) - in.rank;
      if (shift < 0) reject_mask(n->label() + " lowers the rank");
      in.batch_axis += shift;
      in.key_axis += shift;
      in.rank += shift;
      return in;
    }
    if (is_op(n, "Cast")) {
      MaskValue in = operand(0);
      const auto to = static_cast<ir::DType>(ops::NodeView(*n, opset_).attr_int("to", 0));
      if (to == ir::DType::kBool) {
        in.on = in.on != 0;
        in.off = in.off != 0;
      } else if (ir::is_integer(to) && (in.on != std::trunc(in.on) || in.off != std::trunc(in.off))) {
        reject_mask(n->label() + " truncates " + number(in.on) + " or " + number(in.off) + " to an integer");
      } else if (!ir::is_integer(to) && !ir::is_float(to)) {
        reject_mask(n->label() + " casts to " + std::string(ir::dtype_name(to)));
      }
      return in;
    }
    if (is_op(n, "Not") || is_op(n, "Neg")) {
      MaskValue in = operand(0);
      in.on = n->op_type == "Not" ? in.on == 0 : -in.on;
      in.off = n->op_type == "Not" ? in.off == 0 : -in.off;
      return in;
    }
    if (is_op(n, "Add") || is_op(n, "Sub") || is_op(n, "Mul")) {
      MaskValue a = operand(0), b = operand(1);
      MaskValue out = broadcast(*n, {&a, &b});
      auto f = [&](float x, float y) { return n->op_type == "Add" ? x + y : n->op_type == "Sub" ? x - y : x * y; };
      out.on = f(a.on, b.on);
      out.off = f(a.off, b.off);
      return out;
    }
    if (is_op(n, "And") || is_op(n, "Or")) {
      MaskValue a = operand(0), b = operand(1);
      MaskValue out = broadcast(*n, {&a, &b});
      const bool conj = n->op_type == "And";
      auto f = [&](float x, float y) -> float { return conj ? (x != 0 && y != 0) : (x != 0 || y != 0); };
      out.on = f(a.on, b.on);
      out.off = f(a.off, b.off);
      return out;
    }
    if (is_op(n, "Flatten") || is_op(n, "Reshape") || is_op(n, "Gather") || is_op(n, "Squeeze")) return moved(*n, operand(0));
    if (is_op(n, "Where")) {
      MaskValue c = operand(0), x = operand(1), y = operand(2);
      MaskValue out = broadcast(*n, {&c, &x, &y});
      out.on = c.on != 0 ? x.on : y.on;
      out.off = c.off != 0 ? x.off : y.off;
      return out;
    }
    if (is_op(n, "Trilu")) reject_mask(n->label() + " is a triangle");
    // Anything else must be the mask itself.
    const ir::Type* t = type_of(value);
    const ir::DType dt = dtype_of(value);
    if (!(ir::is_integer(dt) || dt == ir::DType::kBool) || (t && t->shape->rank() != 2))
      reject_mask(quoted(value) + (n ? " (" + n->label() + ")" : "") + " is " +
                  (t ? ir::to_string(*t) : std::string(ir::dtype_name(dt))) + ", not a 2-D integer or bool mask");
    MaskValue raw;
    raw.on = 1;
    raw.off = 0;
    raw.raw = value;
    raw.rank = 2;
    return raw;
  }

  static bool uniform(const ir::Tensor& t) {
    constexpr int64_t kMaxElements = int64_t{1} << 22;
    if (t.numel() == 0 || t.numel() > kMaxElements) return false;
    const double first = t.as_double(0);
    for (int64_t i = 1; i < t.numel(); ++i)
      if (t.as_double(i) != first) return false;
    return !std::isnan(first);
  }

  // A Flatten, Reshape or Gather (with constant indices) of a mask value: the elements move, which the
  // matcher follows on static shapes. transformers 5 writes its padding mask as
  //   Reshape(Gather(Flatten(Cast(mask, bool)), batch * S + key), [B, 1, 1, S])
  // (a vmap of an index function, traced). Each element of `in` reads the mask at [b, k] (its batch and
  // key axes); after the op, the matcher looks for batch and key axes that give every element the mask
  // element it now holds, which is the layout the rest of the match needs.
  MaskValue moved(const ir::Node& n, const MaskValue& in) const {
    constexpr int64_t kMaxElements = int64_t{1} << 20;
    if (in.raw.empty()) reject_mask(n.label() + " moves a constant");
    const ir::Type* raw_t = type_of(in.raw);
    const ir::Type* in_t = type_of(n.inputs[0]);
    const ir::Type* out_t = type_of(n.outputs[0]);
    if (!raw_t || !in_t || !out_t || !raw_t->shape->is_static() || !in_t->shape->is_static() ||
        !out_t->shape->is_static())
      reject_mask(n.label() + " moves the mask's elements, which is followed on static shapes only");
    const std::vector<int64_t> raw_shape = raw_t->shape->values(), in_shape = in_t->shape->values(),
                               out_shape = out_t->shape->values();
    const int64_t batch = raw_shape[0], seq = raw_shape[1];
    if (static_cast<int64_t>(in_shape.size()) != in.rank) reject_mask(n.label() + "'s input rank is not known");
    const int64_t in_count = element_count(in_shape), out_count = element_count(out_shape);
    if (in_count > kMaxElements || out_count > kMaxElements) reject_mask(n.label() + " is too large to follow");
    // Which mask element (b * S + k) each element of the input holds.
    std::vector<int64_t> held = in.held;
    const std::vector<int64_t> in_strides = row_major_strides(in_shape);
    if (held.empty()) {
      held.resize(static_cast<size_t>(in_count));
      for (int64_t i = 0; i < in_count; ++i) {
        const int64_t b = i / in_strides[in.batch_axis] % in_shape[in.batch_axis];
        const int64_t k = i / in_strides[in.key_axis] % in_shape[in.key_axis];
        held[i] = b * seq + k;
      }
    } else if (in.held_shape != in_shape) {
      reject_mask(n.label() + "'s input shape is not the one followed");
    }
    std::vector<int64_t> out_held;
    if (n.op_type == "Gather") {
      std::optional<ir::Tensor> idx = index_.constant(n.inputs.size() > 1 ? n.inputs[1] : std::string());
      if (!idx || !ir::is_integer(idx->dtype())) reject_mask("the indices of " + n.label() + " are not a constant");
      const int64_t rank = static_cast<int64_t>(in_shape.size());
      int64_t axis = ops::NodeView(n, opset_).attr_int("axis", 0);
      if (axis < 0) axis += rank;
      if (axis < 0 || axis >= rank) reject_mask(n.label() + " has an axis out of range");
      const int64_t outer = element_count(std::vector<int64_t>(in_shape.begin(), in_shape.begin() + axis));
      const int64_t inner = in_strides[axis], dim = in_shape[axis], picks = idx->numel();
      if (outer * picks * inner != out_count) reject_mask(n.label() + "'s output shape is not what it gathers");
      out_held.reserve(static_cast<size_t>(out_count));
      for (int64_t o = 0; o < outer; ++o)
        for (int64_t p = 0; p < picks; ++p) {
          int64_t j = static_cast<int64_t>(idx->as_double(p));
          if (j < 0) j += dim;
          if (j < 0 || j >= dim) reject_mask(n.label() + " gathers out of range");
          for (int64_t r = 0; r < inner; ++r) out_held.push_back(held[(o * dim + j) * inner + r]);
        }
    } else {
      if (in_count != out_count) reject_mask(n.label() + " changes the element count");
      out_held = std::move(held);  // Flatten and Reshape keep the row-major order
    }
    // The batch and key axes of the output that explain every element, [.., batch, .., key] last first.
    const int64_t rank = static_cast<int64_t>(out_shape.size());
    const std::vector<int64_t> out_strides = row_major_strides(out_shape);
    auto explains = [&](int64_t ba, int64_t ka) {
      if (out_shape[ba] != batch || out_shape[ka] != seq) return false;
      for (int64_t i = 0; i < out_count; ++i)
        if (out_held[i] != (i / out_strides[ba] % batch) * seq + i / out_strides[ka] % seq) return false;
      return true;
    };
    MaskValue out = in;
    out.rank = rank;
    out.held.clear();
    out.held_shape.clear();
    for (int64_t ka = rank - 1; ka > 0; --ka)
      for (int64_t ba = 0; ba < ka; ++ba)
        if (explains(ba, ka)) {
          out.batch_axis = ba;
          out.key_axis = ka;
          return out;
        }
    out.held = std::move(out_held);  // an intermediate arrangement ([B * S, 1] after Flatten): followed on
    out.held_shape = out_shape;
    return out;
  }

  // The layout of an elementwise op's output: its mask operands must be one mask laid out alike once
  // right-aligned, as broadcasting aligns them.
  MaskValue broadcast(const ir::Node& n, std::vector<const MaskValue*> args) const {
    MaskValue out;
    for (const MaskValue* a : args) out.rank = std::max(out.rank, a->rank);
    bool first = true;
    for (const MaskValue* a : args) {
      if (a->raw.empty()) continue;
      if (!a->held.empty()) reject_mask(n.label() + " reads the mask in no [batch, ..., sequence] layout");
      const int64_t shift = out.rank - a->rank;
      if (first) {
        out.raw = a->raw;
        out.batch_axis = a->batch_axis + shift;
        out.key_axis = a->key_axis + shift;
        first = false;
      } else if (a->raw != out.raw || a->batch_axis + shift != out.batch_axis || a->key_axis + shift != out.key_axis) {
        reject_mask(n.label() + " combines different masks or layouts");
      }
    }
    return out;
  }

  // From a Q.K^T or V operand down to the Reshape that splits the heads, through Transposes (their perms
  // composed into `want`) and, for Q and K, scalar Mul/Div nodes: a scalar factor commutes with a
  // transpose, so every order of the two computes the same.
  Head head(const std::string& value, const std::vector<int64_t>& want, const std::string& what, bool scaled) const {
    Head h;
    std::vector<int64_t> perm = {0, 1, 2, 3};  // the operand's dim i is the Reshape output's dim perm[i]
    std::vector<std::string> transposes;
    std::string cur = value;
    for (;;) {
      const ir::Node* n = index_.producer_node(cur);
      if (is_op(n, "Transpose")) {
        std::vector<int64_t> p = ops::NodeView(*n, opset_).attr_ints("perm");
        if (p.size() != 4)
          reject(what + " Transpose " + quoted(n->name) + " has perm " + ir::to_string(p) + ", not 4-D");
        for (int64_t& d : perm) d = p[d];
        transposes.push_back(quoted(n->name));
        cur = n->inputs[0];
      } else if (scaled && (is_op(n, "Mul") || is_op(n, "Div")) && n->inputs.size() == 2) {
        const bool c0 = index_.constant(n->inputs[0]).has_value(), c1 = index_.constant(n->inputs[1]).has_value();
        if (c0 == c1) reject("the scaling " + quoted(n->name) + " of " + what + " is not by a scalar constant");
        const std::string data = c1 ? n->inputs[0] : n->inputs[1];
        h.scale *= factor_of(*n, data, what);
        cur = data;
      } else {
        break;
      }
      h.layout.push_back(index_of(n));
    }
    if (transposes.empty()) reject(what + " is not a Transpose");
    if (perm != want) {
      std::string names;  // in graph order, the Reshape's reader first
      for (auto it = transposes.rbegin(); it != transposes.rend(); ++it) names += (names.empty() ? "" : ", ") + *it;
      reject(what + (transposes.size() == 1 ? " Transpose " : " Transposes ") + names + " ha" +
             (transposes.size() == 1 ? "s" : "ve") + " perm " + ir::to_string(perm) + ", not " + ir::to_string(want));
    }
    const ir::Node* r = index_.producer_node(cur);
    if (!r || !is_op(*r, "Reshape")) reject(what + " is not split into heads by a Reshape");
    h.reshape = index_of(r);
    const ir::Type* in = type_of(r->inputs[0]);
    const ir::Type* out = type_of(r->outputs[0]);
    if (!in || !out || in->shape->rank() != 3 || out->shape->rank() != 4)
      reject("cannot tell that the " + what + " Reshape " + quoted(r->name) +
             " splits the last dim into [heads, head_size] (shapes " + (in ? ir::to_string(*in) : "?") + " -> " +
             (out ? ir::to_string(*out) : "?") + ")");
    const ir::Shape &si = *in->shape, &so = *out->shape;
    bool split = so[2].is_static() && so[3].is_static() && si[2].is_static() &&
                 so[2].value * so[3].value == si[2].value && so[0] == si[0] && so[1] == si[1];
    if (!split)
      reject("the " + what + " Reshape " + quoted(r->name) + " does not split the last dim into [heads, head_size] (" +
             ir::to_string(si) + " -> " + ir::to_string(so) + ")");
    h.heads = so[2].value;
    h.head_size = so[3].value;
    // [Add(bias, ·)] after MatMul(x, W)
    std::string proj = r->inputs[0];
    const ir::Node* p = index_.producer_node(proj);
    if (p && is_op(*p, "Add")) {
      h.add = index_of(p);
      const ir::Node* a = index_.producer_node(p->inputs[0]);
      const ir::Node* b = index_.producer_node(p->inputs[1]);
      int mm_side = is_projection(a) ? 0 : (is_projection(b) ? 1 : -1);
      if (mm_side < 0) reject(what + " is not a MatMul plus bias");
      h.bias = p->inputs[1 - mm_side];
      p = mm_side == 0 ? a : b;
      std::optional<ir::Tensor> bias = index_.constant(h.bias);
      if (!bias) reject("the " + what + " bias " + quoted(h.bias) + " is not a constant");
      if (bias->dtype() != ir::DType::kFloat32 || bias->rank() != 1 || bias->dim(0) != h.heads * h.head_size)
        reject("the " + what + " bias " + quoted(h.bias) + " is not float32 [" + std::to_string(h.heads * h.head_size) +
               "]");
    }
    if (p && is_dynamic_quantize_matmul(*p)) return quantized_head(h, *p, what);
    if (!p || !is_op(*p, "MatMul")) reject(what + " is not computed by a MatMul");
    h.matmul = index_of(p);
    h.x = p->inputs[0];
    h.weight = p->inputs[1];
    std::optional<ir::Tensor> w = index_.constant(h.weight);
    if (!w) reject("the " + what + " weights " + quoted(h.weight) + " are not a constant");
    if (w->dtype() != ir::DType::kFloat32 || w->rank() != 2 || w->dim(1) != h.heads * h.head_size)
      reject("the " + what + " weights " + quoted(h.weight) + " are not float32 [in, " +
             std::to_string(h.heads * h.head_size) + "]");
    return h;
  }

  static bool is_dynamic_quantize_matmul(const ir::Node& n) {
    return n.domain == kContribDomain && n.op_type == "DynamicQuantizeMatMul" && n.inputs.size() >= 3;
  }
  static bool is_projection(const ir::Node* n) { return n && (is_op(*n, "MatMul") || is_dynamic_quantize_matmul(*n)); }

  // An int8 projection: B int8 [in, D] with zero point 0, its scale per tensor or per column, its bias
  // (an input of the op, or the Add after it, not both).
  Head quantized_head(Head h, const ir::Node& p, const std::string& what) const {
    h.quantized = true;
    h.matmul = index_of(&p);
    h.x = p.inputs[0];
    h.weight = p.inputs[1];
    h.weight_scale = p.inputs[2];
    const int64_t d = h.heads * h.head_size;
    std::optional<ir::Tensor> w = index_.constant(h.weight);
    if (!w || w->dtype() != ir::DType::kInt8 || w->rank() != 2 || w->dim(1) != d)
      reject("the " + what + " weights " + quoted(h.weight) + " are not an int8 constant [in, " + std::to_string(d) + "]");
    std::optional<ir::Tensor> scale = index_.constant(h.weight_scale);
    if (!scale || scale->dtype() != ir::DType::kFloat32 || (scale->numel() != 1 && scale->shape() != ir::Dims{d}))
      reject("the " + what + " weight scale " + quoted(h.weight_scale) + " is not a float32 constant, one or " +
             std::to_string(d) + " values");
    if (p.inputs.size() > 3 && !p.inputs[3].empty()) {
      std::optional<ir::Tensor> zp = index_.constant(p.inputs[3]);
      bool zero = zp.has_value() && zp->dtype() == ir::DType::kInt8;
      for (int64_t i = 0; zero && i < zp->numel(); ++i) zero = zp->data<int8_t>()[i] == 0;
      if (!zero) reject("the " + what + " weights' zero point is not 0");
    }
    if (p.inputs.size() > 4 && !p.inputs[4].empty()) {
      if (!h.bias.empty()) reject("the " + what + " projection has a bias input and a bias Add");
      h.bias = p.inputs[4];
      std::optional<ir::Tensor> bias = index_.constant(h.bias);
      if (!bias || bias->dtype() != ir::DType::kFloat32 || bias->rank() != 1 || bias->dim(0) != d)
        reject("the " + what + " bias " + quoted(h.bias) + " is not a float32 constant [" + std::to_string(d) + "]");
    }
    return h;
  }

  void check_input(const Head& q) const {
    const ir::Type* x = type_of(q.x);
    if (x && x->shape->rank() != 3) reject("the input " + quoted(q.x) + " is not 3-D [batch, sequence, hidden]");
    auto it = types_.types.find(q.x);
    if (it != types_.types.end() && it->second.dtype != ir::DType::kFloat32)
      reject("the input " + quoted(q.x) + " is not float32");
  }

  void check_output_reshape(const Match& m) const {
    const ir::Node& r = g_.nodes[m.out_reshape];
    const ir::Type* in = type_of(r.inputs[0]);
    const ir::Type* out = type_of(r.outputs[0]);
    const int64_t hidden = m.q.heads * m.q.head_size;
    if (!in || !out || in->shape->rank() != 4 || out->shape->rank() != 3)
      reject("cannot tell that the context Reshape " + quoted(r.name) + " joins the heads back");
    const ir::Shape &si = *in->shape, &so = *out->shape;
    bool join = so[0] == si[0] && so[1] == si[1] && so[2].is_static() && so[2].value == hidden;
    if (!join)
      reject("the context Reshape " + quoted(r.name) + " does not join the heads into " + std::to_string(hidden) +
             " (" + ir::to_string(si) + " -> " + ir::to_string(so) + ")");
  }

  void check_weights(const Match& m) const {
    int64_t rows = index_.constant(m.q.weight)->dim(0);
    if (index_.constant(m.k.weight)->dim(0) != rows || index_.constant(m.v.weight)->dim(0) != rows)
      reject("the Q, K and V weights have different input sizes");
    const ir::Type* x = type_of(m.q.x);
    if (x && (*x->shape)[2].is_static() && (*x->shape)[2].value != rows)
      reject("the input's last dim does not match the weights' " + std::to_string(rows) + " rows");
  }

  // Every value inside the block is read only inside it, except by Shape nodes whose shape arithmetic
  // feeds only the block's own Reshapes; those are removed with it.
  void collect_and_check_readers(Match& m) const {
    std::vector<int> block = {m.qk,        m.softmax,  m.pv,        m.out_transpose, m.out_reshape, m.q.matmul,
                              m.q.reshape, m.k.matmul, m.k.reshape, m.v.matmul,      m.v.reshape};
    for (int n : {m.scale_node, m.mask_add, m.q.add, m.k.add, m.v.add})
      if (n >= 0) block.push_back(n);
    for (const Head* h : {&m.q, &m.k, &m.v}) block.insert(block.end(), h->layout.begin(), h->layout.end());
    std::set<int> nodes(block.begin(), block.end());
    if (nodes.size() != block.size()) reject("Q, K and V share nodes");
    std::set<int> shape_nodes;
    std::vector<int> frontier;
    for (int n : nodes) {
      if (n == m.out_reshape) continue;
      for (const std::string& v : g_.nodes[n].outputs) {
        if (v.empty()) continue;
        if (index_.is_graph_output(v) || index_.is_read_by_subgraph(v))
          reject("the intermediate value " + quoted(v) + " is a graph output or read by a subgraph");
        for (const Use& u : index_.uses(v)) {
          if (nodes.count(u.node) || shape_nodes.count(u.node)) continue;
          if (!is_op(&g_.nodes[u.node], "Shape"))
            reject("the intermediate value " + quoted(v) + " has other readers (" + g_.nodes[u.node].label() + ")");
          shape_nodes.insert(u.node);
          frontier.push_back(u.node);
        }
      }
    }
    // Forward from the Shape nodes: shape arithmetic that must end in the block's Reshapes. Collected
    // first, then checked: every input of it is a constant or computed by it (or, for the Shape nodes,
    // a value of the block).
    constexpr size_t kMaxShapeNodes = 256;
    while (!frontier.empty()) {
      int n = frontier.back();
      frontier.pop_back();
      for (const std::string& v : g_.nodes[n].outputs) {
        if (v.empty()) continue;
        if (index_.is_graph_output(v) || index_.is_read_by_subgraph(v))
          reject("the shape value " + quoted(v) + " is a graph output");
        for (const Use& u : index_.uses(v)) {
          if (nodes.count(u.node) || shape_nodes.count(u.node)) continue;
          shape_nodes.insert(u.node);
          frontier.push_back(u.node);
          if (shape_nodes.size() > kMaxShapeNodes)
            reject("the shape of an intermediate value is used outside the attention block");
        }
      }
    }
    for (int n : shape_nodes) {
      const ir::Node& r = g_.nodes[n];
      if (is_op(&r, "Shape")) continue;
      for (const std::string& in : r.inputs) {
        if (in.empty() || index_.constant(in)) continue;
        int p = index_.producer(in);
        if (p < 0 || !shape_nodes.count(p))
          reject("the shape of an intermediate value is used outside the attention block (" + r.label() + ")");
      }
    }
    m.remove = nodes;
    m.remove.insert(shape_nodes.begin(), shape_nodes.end());
  }

  const ir::Graph& g_;
  const GraphIndex& index_;
  const analysis::InferredTypes& types_;
  int64_t opset_;
};

// [in, D] x 3 -> [in, 3D], Q | K | V along the columns (float32, or int8 for QAttention).
ir::Tensor pack_weights(const ir::Tensor& q, const ir::Tensor& k, const ir::Tensor& v) {
  const int64_t rows = q.dim(0), d = q.dim(1);
  ir::Tensor w(q.dtype(), {rows, 3 * d});
  const size_t size = ir::dtype_size(q.dtype());
  auto* out = static_cast<std::byte*>(w.raw());
  const ir::Tensor* src[3] = {&q, &k, &v};
  for (int64_t r = 0; r < rows; ++r)
    for (int part = 0; part < 3; ++part)
      std::memcpy(out + static_cast<size_t>(r * 3 * d + part * d) * size,
                  static_cast<const std::byte*>(src[part]->raw()) + static_cast<size_t>(r * d) * size,
                  static_cast<size_t>(d) * size);
  return w;
}

// QAttention's weight scale: [3D], each projection's scale (one, or one per column) in its columns.
ir::Tensor pack_weight_scales(const GraphIndex& index, const Head& q, const Head& k, const Head& v, int64_t d) {
  ir::Tensor s(ir::DType::kFloat32, {3 * d});
  float* out = s.data<float>();
  const Head* heads[3] = {&q, &k, &v};
  for (int part = 0; part < 3; ++part) {
    const ir::Tensor t = *index.constant(heads[part]->weight_scale);
    for (int64_t c = 0; c < d; ++c) out[part * d + c] = t.data<float>()[t.numel() == 1 ? 0 : c];
  }
  return s;
}

ir::Tensor pack_bias(const GraphIndex& index, const Head& q, const Head& k, const Head& v, int64_t d) {
  ir::Tensor b(ir::DType::kFloat32, {3 * d});  // zeros where a projection has no bias
  float* out = b.data<float>();
  const Head* heads[3] = {&q, &k, &v};
  for (int part = 0; part < 3; ++part) {
    if (heads[part]->bias.empty()) continue;
    ir::Tensor t = *index.constant(heads[part]->bias);
    for (int64_t c = 0; c < d; ++c) out[part * d + c] = t.data<float>()[c];
  }
  return b;
}

}  // namespace

bool fuse_attention(ir::Graph& g, PassContext& ctx) {
  analysis::InferredTypes types = analysis::infer_types(ctx.model(), g, {}, ctx.options().limits);
  GraphIndex index(g);
  Matcher matcher(g, index, types, ctx.opset());
  std::vector<Match> matches;
  std::set<int> claimed;
  for (int i = 0; i < static_cast<int>(g.nodes.size()); ++i) {
    try {
      std::optional<Match> m = matcher.match(i);
      if (!m) continue;
      bool overlaps = false;
      for (int n : m->remove) overlaps |= claimed.count(n) > 0;
      if (overlaps) continue;
      claimed.insert(m->remove.begin(), m->remove.end());
      matches.push_back(std::move(*m));
    } catch (const Reject& r) {
      ctx.rejected(kPattern, g.nodes[i], r.reason);
    }
  }
  if (matches.empty()) return false;

  ctx.import_contrib_domain();
  // The int32 raw mask: one Cast per mask for the whole model (an existing Cast to int32 is reused).
  Int32Casts int32(g, types, ctx);
  std::vector<ir::Node> added;
  auto mask_int32 = [&](const std::string& raw) { return int32.of(raw, added); };

  std::vector<int> removed;
  for (const Match& m : matches) {
    const std::string scope = scope_of(g.nodes[m.qk].name);
    const int64_t d = m.q.heads * m.q.head_size;
    std::string w = ctx.fresh_name(scope + "qkv_weight");
    g.add_initializer(
        w, pack_weights(*index.constant(m.q.weight), *index.constant(m.k.weight), *index.constant(m.v.weight)));
    std::string b = ctx.fresh_name(scope + "qkv_bias");
    g.add_initializer(b, pack_bias(index, m.q, m.k, m.v, d));

    ir::Node att;
    att.outputs = {g.nodes[m.out_reshape].outputs[0]};
    att.domain = kContribDomain;
    if (!m.q.quantized) {
      att.name = ctx.fresh_name(scope + "Attention");
      att.op_type = "Attention";
      att.inputs = {m.q.x, w, b};
      if (!m.raw_mask.empty()) att.inputs.push_back(mask_int32(m.raw_mask));
    } else {
      // int8: the input quantized once by a DynamicQuantizeLinear, then ONNX Runtime's QAttention with the
      // packed int8 weights and one scale per column.
      const std::string x = m.q.x;
      std::vector<std::string> q = {ctx.fresh_name(x + "_quantized"), ctx.fresh_name(x + "_scale"),
                                    ctx.fresh_name(x + "_zero_point")};
      ir::Node dql;
      dql.name = ctx.fresh_name(scope + "QuantizeLinear");
      dql.op_type = "DynamicQuantizeLinear";
      dql.inputs = {x};
      dql.outputs = q;
      added.push_back(std::move(dql));
      std::string ws = ctx.fresh_name(scope + "qkv_weight_scale");
      g.add_initializer(ws, pack_weight_scales(index, m.q, m.k, m.v, d));
      att.name = ctx.fresh_name(scope + "QAttention");
      att.op_type = "QAttention";
      att.inputs = {q[0], w, b, q[1], ws, m.raw_mask.empty() ? "" : mask_int32(m.raw_mask), q[2]};
    }
    ir::Attribute heads;
    heads.name = "num_heads";
    heads.kind = ir::Attribute::Kind::kInt;
    heads.i = m.q.heads;
    att.attributes.push_back(heads);
    // SDPA's two factors are each sqrt(1/sqrt(H)) rounded to float32, so their product lands a few float
    // ulps off the default: that is still the default.
    const double default_scale = 1.0 / std::sqrt(static_cast<double>(m.q.head_size));
    if (std::fabs(m.scale - default_scale) > 1e-6 * default_scale) {
      ir::Attribute scale;
      scale.name = "scale";
      scale.kind = ir::Attribute::Kind::kFloat;
      scale.f = static_cast<float>(m.scale);
      att.attributes.push_back(scale);
    }
    if (!m.raw_mask.empty()) {
      ir::Attribute filter;
      filter.name = "mask_filter_value";
      filter.kind = ir::Attribute::Kind::kFloat;
      filter.f = m.mask_filter_value;
      att.attributes.push_back(filter);
    }
    added.push_back(std::move(att));
    removed.insert(removed.end(), m.remove.begin(), m.remove.end());
    ctx.changed(m.q.quantized ? "QAttention" : "Attention");
  }
  remove_nodes(g, removed);
  for (ir::Node& n : added) g.nodes.push_back(std::move(n));
  return true;
}

}  // namespace kiln::passes
