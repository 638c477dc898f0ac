// Fuses BERT's embeddings into one com.microsoft.EmbedLayerNormalization (ONNX Runtime's contrib op):
//
//   before                                                    after
//
//   input_ids   token_type_ids   arange buffer [1, P]         input_ids  token_type_ids
//      │             │           Slice [0, S)                 Cast(int32) Cast(int32)
//   Gather(Wword) Gather(Wtype)  Gather(Wpos)                     │          │
//      └──── Add ────┘               │                        EmbedLayerNormalization(ids, segment_ids,
//            └──────── Add ──────────┘                            Wword, Wpos, Wtype, gamma, beta)
//                LayerNormalization(gamma, beta, epsilon)         epsilon
//                       │                                          │
//                       ▼ [B,S,D]                                  ▼ [B,S,D] (the same value name)
//
// The sum may be an Add tree of the Gathers in any order. The position ids must be 0..S-1: the Slice
// [0, S) (step 1) of a constant buffer holding 0, 1, 2, ..., or a constant 0..S-1 when S is static; any
// other position ids (an input, an offset) are rejected, since the fused op uses 0..S-1. Without a
// token-type Gather (DistilBERT) the segment inputs are omitted. The word table is the larger of the two
// non-position tables.
//
// The LayerNormalization must already be one node (layer_norm_fusion runs first). The op's second output,
// mask_index, is written under a fresh name and not used: it is a 1-D count of ones per row, valid only
// for right padding, so Attention takes the raw 2-D mask instead.
//
// Reported: "EmbedLayerNormalization"; LayerNormalizations fed by an Add of embedding Gathers that
// cannot be fused are rejected with the reason, at the LayerNormalization.
#include <algorithm>
#include <map>
#include <optional>
#include <set>
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

constexpr const char* kPattern = "EmbedLayerNorm";

std::string quoted(const std::string& s) { return "\"" + s + "\""; }

struct Reject {
  std::string reason;
};

[[noreturn]] void reject(std::string reason) { throw Reject{std::move(reason)}; }

struct Lookup {
  int gather = -1;
  std::string table, ids;
  int64_t rows = 0;
};

struct Match {
  int ln = -1;
  Lookup word, position, segment;  // segment.gather < 0 when absent
  std::string gamma, beta;         // beta "" when the LayerNormalization has none
  float epsilon = 1e-5f;
  int64_t hidden = 0;
  std::vector<int> remove;
};

class Matcher {
 public:
  Matcher(const ir::Graph& g, const GraphIndex& index, const analysis::InferredTypes& types, int64_t opset)
      : g_(g), index_(index), types_(types), opset_(opset) {}

  std::optional<Match> match(int ln_index) {
    const ir::Node& ln = g_.nodes[ln_index];
    if (!is_op(&ln, "LayerNormalization") || ln.inputs.size() < 2) return std::nullopt;
    const ir::Node* top = index_.producer_node(ln.inputs[0]);
    if (!is_op(top, "Add")) return std::nullopt;
    // The leaves of the Add tree, each Add read only inside the tree.
    std::vector<int> adds;
    std::vector<std::string> leaves;
    bool shared = false;
    collect_leaves(ln.inputs[0], adds, leaves, true, shared);
    std::vector<const ir::Node*> gathers;
    for (const std::string& v : leaves) {
      const ir::Node* n = index_.producer_node(v);
      if (is_op(n, "Gather") && index_.constant(n->inputs[0])) gathers.push_back(n);
    }
    if (gathers.empty()) return std::nullopt;  // no embedding lookup: not a candidate
    if (shared) reject("the embedding sum " + quoted(ln.inputs[0]) + " has other readers");
    if (gathers.size() != leaves.size())
      reject("the sum before the LayerNormalization has terms that are not embedding Gathers");
    if (leaves.size() != 2 && leaves.size() != 3)
      reject("the sum has " + std::to_string(leaves.size()) + " embedding terms, not 2 or 3");

    Match m;
    m.ln = ln_index;
    m.remove = adds;
    m.remove.push_back(ln_index);
    ops::NodeView view(ln, opset_);
    std::optional<ir::Tensor> gamma = index_.constant(ln.inputs[1]);
    if (!gamma || gamma->rank() != 1) reject("gamma " + quoted(ln.inputs[1]) + " is not a constant vector");
    m.hidden = gamma->dim(0);
    const ir::Type* x = type_of(ln.inputs[0]);
    int64_t axis = view.attr_int("axis", -1);
    if (axis != -1 && !(x && axis == static_cast<int64_t>(x->shape->rank()) - 1))
      reject("LayerNormalization is over axis " + std::to_string(axis) + ", not the last");
    for (size_t i = 1; i < ln.outputs.size(); ++i)
      if (!ln.outputs[i].empty() && index_.use_count(ln.outputs[i]) > 0)
        reject("LayerNormalization's Mean/InvStdDev output is read");
    m.gamma = ln.inputs[1];
    m.beta = ln.inputs.size() > 2 ? ln.inputs[2] : "";
    if (!m.beta.empty()) {
      std::optional<ir::Tensor> beta = index_.constant(m.beta);
      if (!beta || beta->rank() != 1 || beta->dim(0) != m.hidden)
        reject("beta " + quoted(m.beta) + " is not a constant vector of " + std::to_string(m.hidden));
    }
    m.epsilon = view.attr_float("epsilon", 1e-5f);

    std::vector<Lookup> lookups;
    std::string position_reason;
    int position = -1;
    for (const ir::Node* n : gathers) {
      Lookup l = lookup(n);
      if (position < 0) {
        std::string why;
        int kind = position_kind(l.ids, why);
        if (kind == 1) {
          position = static_cast<int>(lookups.size());
        } else if (kind == 0) {
          reject("position ids are not 0..S-1: " + why);
        }
      }
      lookups.push_back(l);
    }
    if (position < 0) reject("no Gather reads position ids 0..S-1 (a Slice of a constant arange buffer)");
    m.position = lookups[position];
    lookups.erase(lookups.begin() + position);
    std::sort(lookups.begin(), lookups.end(), [](const Lookup& a, const Lookup& b) { return a.rows > b.rows; });
    m.word = lookups[0];
    if (lookups.size() > 1) m.segment = lookups[1];
    check_ids(m.word.ids, "input_ids");
    if (m.segment.gather >= 0) {
      check_ids(m.segment.ids, "token type ids");
      const ir::Type* a = type_of(m.word.ids);
      const ir::Type* b = type_of(m.segment.ids);
      if (a && b && !(*a->shape == *b->shape))
        reject("token type ids " + ir::to_string(*b) + " do not have the shape of input_ids " + ir::to_string(*a));
    }
    check_position_length(m);
    for (const Lookup* l : {&m.word, &m.position, &m.segment}) {
      if (l->gather < 0) continue;
      m.remove.push_back(l->gather);
      const std::string& out = g_.nodes[l->gather].outputs[0];
      if (index_.is_graph_output(out) || index_.uses(out).size() != 1)
        reject("the embedding " + quoted(out) + " has other readers");
    }
    return m;
  }

 private:
  const ir::Type* type_of(const std::string& v) const {
    auto it = types_.types.find(v);
    return it == types_.types.end() || !it->second.is_tensor() || !it->second.shape ? nullptr : &it->second;
  }

  int index_of(const ir::Node* n) const { return static_cast<int>(n - g_.nodes.data()); }

  // The leaves of the Add tree below `v`; an inner Add joins the tree only when the tree is its one
  // reader. `shared` is set when the root sum has other readers.
  void collect_leaves(const std::string& v, std::vector<int>& adds, std::vector<std::string>& leaves, bool root,
                      bool& shared) const {
    const ir::Node* n = index_.producer_node(v);
    bool inner = is_op(n, "Add") && (root || (index_.only_consumer(v) >= 0 && !index_.is_graph_output(v)));
    if (!inner || adds.size() > 4) {
      leaves.push_back(v);
      return;
    }
    if (root) shared = index_.uses(v).size() != 1 || index_.is_graph_output(v) || index_.is_read_by_subgraph(v);
    adds.push_back(index_of(n));
    collect_leaves(n->inputs[0], adds, leaves, false, shared);
    collect_leaves(n->inputs[1], adds, leaves, false, shared);
  }

  Lookup lookup(const ir::Node* n) const {
    Lookup l;
    l.gather = index_of(n);
    l.table = n->inputs[0];
    l.ids = n->inputs[1];
    if (ops::NodeView(*n, opset_).attr_int("axis", 0) != 0) reject("Gather " + quoted(n->name) + " is not on axis 0");
    std::optional<ir::Tensor> t = index_.constant(l.table);
    if (t->dtype() != ir::DType::kFloat32 || t->rank() != 2)
      reject("embedding table " + quoted(l.table) + " is not a float32 matrix");
    // The tables' width is checked against gamma by the caller through hidden; done here for the message.
    l.rows = t->dim(0);
    return l;
  }

  // 1: position ids 0..S-1; 0: position-like but not 0..S-1 (why says how); -1: not position ids at all.
  int position_kind(const std::string& ids, std::string& why) const {
    std::optional<ir::Tensor> c = index_.constant(ids);
    const ir::Node* slice = index_.producer_node(ids);
    if (!c && !is_op(slice, "Slice")) {
      if (index_.is_graph_input(ids) && ids.find("position") != std::string::npos) {
        why = "they are the model input " + quoted(ids);
        return 0;
      }
      return -1;
    }
    auto is_arange = [](const ir::Tensor& t) {
      if (!ir::is_integer(t.dtype()) || t.rank() < 1 || t.rank() > 2 || (t.rank() == 2 && t.dim(0) != 1)) return false;
      for (int64_t i = 0; i < t.numel(); ++i)
        if (t.as_int64(i) != i) return false;
      return true;
    };
    if (c) {
      if (!is_arange(*c)) {
        why = "the constant " + quoted(ids) + " is not 0, 1, 2, ...";
        return 0;
      }
      return 1;
    }
    std::optional<ir::Tensor> buffer = index_.constant(slice->inputs[0]);
    if (!buffer) return -1;
    if (!is_arange(*buffer)) {
      why = "the buffer " + quoted(slice->inputs[0]) + " sliced by " + quoted(slice->name) + " is not 0, 1, 2, ...";
      return 0;
    }
    // Slice(buffer, starts, ends, axes?, steps?): every start 0, every step 1.
    std::optional<ir::Tensor> starts = slice->inputs.size() > 1 ? index_.constant(slice->inputs[1]) : std::nullopt;
    if (!starts) {
      why = "the starts of " + quoted(slice->name) + " are not constant";
      return 0;
    }
    for (int64_t s : starts->to_int64_vector())
      if (s != 0) {
        why = quoted(slice->name) + " starts at " + std::to_string(s) + ", not 0";
        return 0;
      }
    if (slice->inputs.size() > 4 && !slice->inputs[4].empty()) {
      std::optional<ir::Tensor> steps = index_.constant(slice->inputs[4]);
      bool ones = steps.has_value();
      if (steps)
        for (int64_t s : steps->to_int64_vector()) ones = ones && s == 1;
      if (!ones) {
        why = "the steps of " + quoted(slice->name) + " are not 1";
        return 0;
      }
    }
    return 1;
  }

  void check_ids(const std::string& ids, const char* what) const {
    auto it = types_.types.find(ids);
    ir::DType dt = it == types_.types.end() ? ir::DType::kUndefined : it->second.dtype;
    if (dt != ir::DType::kInt64 && dt != ir::DType::kInt32)
      reject(std::string(what) + " " + quoted(ids) + " are not int64 or int32");
    const ir::Type* t = type_of(ids);
    if (!t || t->shape->rank() != 2) reject(std::string(what) + " " + quoted(ids) + " are not 2-D [batch, sequence]");
  }

  // The position ids must have S = input_ids' sequence length elements ([1, S] or [S]). Inference may
  // not know a Slice's length when its end is computed (Shape -> Gather -> Unsqueeze); then the end itself
  // must be S, along the buffer's last axis.
  void check_position_length(const Match& m) const {
    const ir::Type* ids = type_of(m.word.ids);
    if (!ids) reject("cannot tell the shape of input_ids " + quoted(m.word.ids));
    const ir::Dim& want = (*ids->shape)[1];
    const ir::Type* pos = type_of(m.position.ids);
    if (pos && (pos->shape->rank() < 1 || pos->shape->rank() > 2 ||
                (pos->shape->rank() == 2 && !((*pos->shape)[0] == ir::Dim(1)))))
      reject("position ids " + ir::to_string(*pos) + " are not [1, sequence]");
    ir::Dim length = pos ? (*pos->shape)[pos->shape->rank() - 1] : ir::Dim();
    const ir::Node* slice = index_.producer_node(m.position.ids);
    if (!length.is_static() && !length.is_symbolic() && is_op(slice, "Slice")) {
      std::optional<ir::Tensor> buffer = index_.constant(slice->inputs[0]);
      int64_t last = static_cast<int64_t>(buffer->rank()) - 1;
      std::vector<int64_t> axes = {0};
      if (slice->inputs.size() > 3 && !slice->inputs[3].empty()) {
        std::optional<ir::Tensor> a = index_.constant(slice->inputs[3]);
        if (!a) reject("the axes of " + quoted(slice->name) + " are not constant");
        axes = a->to_int64_vector();
      }
      if (axes.size() != 1 || (axes[0] != last && axes[0] != -1))
        reject(quoted(slice->name) + " does not slice only the buffer's last axis");
      const std::string& ends = slice->inputs[2];
      auto dv = types_.dim_values.find(ends);
      if (dv != types_.dim_values.end() && dv->second.size() == 1)
        length = dv->second[0];
      else if (std::optional<ir::Tensor> e = index_.constant(ends); e && e->numel() == 1)
        length = ir::Dim(std::min(e->as_int64(0), buffer->dim(last)));
    }
    if (!(length == want))
      reject("position ids have length " + ir::to_string(length) + ", not input_ids' sequence length " +
             ir::to_string(want));
    for (const Lookup* l : {&m.word, &m.position, &m.segment})
      if (l->gather >= 0 && index_.constant(l->table)->dim(1) != m.hidden)
        reject("embedding table " + quoted(l->table) + " is not " + std::to_string(m.hidden) + " wide");
  }

  const ir::Graph& g_;
  const GraphIndex& index_;
  const analysis::InferredTypes& types_;
  int64_t opset_;
};

}  // namespace

bool fuse_embed_layer_norm(ir::Graph& g, PassContext& ctx) {
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
  // int32 ids, reusing a Cast to int32 already in the graph.
  Int32Casts int32(g, types, ctx);
  std::vector<ir::Node> added;
  auto as_int32 = [&](const std::string& v) { return int32.of(v, added); };

  std::vector<int> removed;
  for (Match& m : matches) {
    const ir::Node& ln = g.nodes[m.ln];
    const std::string scope = scope_of(ln.name);
    if (m.beta.empty()) {
      m.beta = ctx.fresh_name(scope + "embed_beta");
      g.add_initializer(m.beta, ir::Tensor(ir::DType::kFloat32, {m.hidden}));
    }
    ir::Node e;
    e.name = ctx.fresh_name(scope + "EmbedLayerNormalization");
    e.op_type = "EmbedLayerNormalization";
    e.domain = kContribDomain;
    const bool segments = m.segment.gather >= 0;
    e.inputs = {as_int32(m.word.ids),
                segments ? as_int32(m.segment.ids) : "",
                m.word.table,
                m.position.table,
                segments ? m.segment.table : "",
                m.gamma,
                m.beta};
    e.outputs = {ln.outputs[0], ctx.fresh_name(scope + "mask_index")};
    ir::Attribute eps;
    eps.name = "epsilon";
    eps.kind = ir::Attribute::Kind::kFloat;
    eps.f = m.epsilon;
    e.attributes.push_back(eps);
    added.push_back(std::move(e));
    removed.insert(removed.end(), m.remove.begin(), m.remove.end());
    ctx.changed("EmbedLayerNormalization");
  }
  remove_nodes(g, removed);
  for (ir::Node& n : added) g.nodes.push_back(std::move(n));
  return true;
}

}  // namespace kiln::passes
