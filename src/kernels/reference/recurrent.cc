// Reference kernels for the recurrent ops RNN, GRU and LSTM: one loop over time per direction and batch
// row, so that each row stops at its own sequence length.
//
// Conventions shared by the three (ONNX spec, matching ONNX Runtime where the spec is loose):
//  - gates are stacked in W/R/B in the spec's order: GRU z,r,h; LSTM i,o,f,c; peepholes P i,o,f;
//  - `clip` bounds every gate pre-activation (not the cell state fed to LSTM's h);
//  - activation_alpha/beta are consumed, in order, only by activations that take them;
//  - steps past a row's sequence length leave Y at 0; Y_h/Y_c hold the state after the row's last step
//    (the initial state when its length is 0).
#include <algorithm>
#include <cctype>
#include <cmath>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "kernels/reference/common.h"
#include "ops/registry.h"

namespace kiln::ops {
namespace {

using ir::DType;
using ir::Tensor;

enum class CellKind { kRnn, kGru, kLstm };

int64_t num_gates(CellKind k) { return k == CellKind::kRnn ? 1 : k == CellKind::kGru ? 3 : 4; }

std::vector<std::string> default_activations(CellKind k) {
  if (k == CellKind::kRnn) return {"Tanh"};
  if (k == CellKind::kGru) return {"Sigmoid", "Tanh"};
  return {"Sigmoid", "Tanh", "Tanh"};
}

struct Activation {
  enum class Kind {
    kRelu,
    kTanh,
    kSigmoid,
    kAffine,
    kLeakyRelu,
    kThresholdedRelu,
    kScaledTanh,
    kHardSigmoid,
    kElu,
    kSoftsign,
    kSoftplus
  };
  Kind kind = Kind::kTanh;
  double alpha = 0, beta = 0;

  template <class A>
  A operator()(A x) const {
    A a = static_cast<A>(alpha), b = static_cast<A>(beta);
    switch (kind) {
      case Kind::kRelu:
        return x > A(0) ? x : A(0);
      case Kind::kTanh:
        return std::tanh(x);
      case Kind::kSigmoid:
        return A(1) / (A(1) + std::exp(-x));
      case Kind::kAffine:
        return a * x + b;
      case Kind::kLeakyRelu:
        return x >= A(0) ? x : a * x;
      case Kind::kThresholdedRelu:
        return x > a ? x : A(0);
      case Kind::kScaledTanh:
        return a * std::tanh(b * x);
      case Kind::kHardSigmoid:
        return std::max(A(0), std::min(A(1), a * x + b));
      case Kind::kElu:
        return x >= A(0) ? x : a * (std::exp(x) - A(1));
      case Kind::kSoftsign:
        return x / (A(1) + std::fabs(x));
      case Kind::kSoftplus:
        return x > A(0) ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x));
    }
    return x;
  }
};

struct ActivationSpec {
  const char* name;  // lower case; attribute values are matched case-insensitively
  Activation::Kind kind;
  bool uses_alpha, uses_beta;
  double alpha, beta;  // defaults, as the standalone ONNX ops have them
};

using AK = Activation::Kind;
constexpr ActivationSpec kActivationSpecs[] = {
    {"relu", AK::kRelu, false, false, 0, 0},
    {"tanh", AK::kTanh, false, false, 0, 0},
    {"sigmoid", AK::kSigmoid, false, false, 0, 0},
    {"affine", AK::kAffine, true, true, 1, 0},
    {"leakyrelu", AK::kLeakyRelu, true, false, 0.01, 0},
    {"thresholdedrelu", AK::kThresholdedRelu, true, false, 1, 0},
    {"scaledtanh", AK::kScaledTanh, true, true, 1, 1},
    {"hardsigmoid", AK::kHardSigmoid, true, true, 0.2, 0.5},
    {"elu", AK::kElu, true, false, 1, 0},
    {"softsign", AK::kSoftsign, false, false, 0, 0},
    {"softplus", AK::kSoftplus, false, false, 0, 0},
};

// Parses the activations attribute: one list of the cell's functions per direction (a single list is
// reused for both directions of a bidirectional op).
std::vector<Activation> read_activations(const NodeView& ctx, CellKind kind, int64_t dirs) {
  std::vector<std::string> names;
  size_t per_dir = default_activations(kind).size();
  std::vector<std::string> given = ctx.attr_strings("activations");
  if (given.empty()) {
    for (int64_t d = 0; d < dirs; ++d)
      for (const std::string& n : default_activations(kind)) names.push_back(n);
  } else if (given.size() == per_dir * static_cast<size_t>(dirs)) {
    names = given;
  } else if (given.size() == per_dir && dirs == 2) {
    names = given;
    names.insert(names.end(), given.begin(), given.end());
  } else {
    ctx.fail("activations has ", given.size(), " functions, expected ", per_dir * static_cast<size_t>(dirs), " (",
             per_dir, " per direction)");
  }
  std::vector<float> alphas = ctx.attr_floats("activation_alpha");
  std::vector<float> betas = ctx.attr_floats("activation_beta");
  size_t ai = 0, bi = 0;
  std::vector<Activation> acts;
  for (const std::string& name : names) {
    std::string lower = name;
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    const ActivationSpec* spec = nullptr;
    for (const ActivationSpec& sp : kActivationSpecs)
      if (lower == sp.name) spec = &sp;
    if (!spec) ctx.fail("unknown activation function \"", name, "\"");
    Activation a;
    a.kind = spec->kind;
    a.alpha = spec->uses_alpha && ai < alphas.size() ? alphas[ai++] : spec->alpha;
    a.beta = spec->uses_beta && bi < betas.size() ? betas[bi++] : spec->beta;
    acts.push_back(a);
  }
  return acts;
}

int64_t num_directions(const NodeView& ctx) {
  std::string d = ctx.attr_string("direction", "forward");
  if (d == "forward" || d == "reverse") return 1;
  if (d == "bidirectional") return 2;
  ctx.fail("direction must be forward, reverse or bidirectional, got \"", d, "\"");
}

int64_t read_layout(const NodeView& ctx) {
  int64_t layout = ctx.opset() >= 14 ? ctx.attr_int("layout", 0) : 0;
  if (layout != 0 && layout != 1) ctx.fail("layout must be 0 or 1, got ", layout);
  return layout;
}

// Optional inputs: 4 sequence_lens, 5 initial_h, 6 initial_c (LSTM), 7 P (LSTM).
constexpr size_t kSeqLens = 4, kInitialH = 5, kInitialC = 6, kPeepholes = 7;

void infer_recurrent(InferenceContext& ctx, CellKind kind) {
  const ir::Type& x = ctx.input_type(0);
  if (!ir::is_float(x.dtype)) ctx.fail("X must be a float tensor, got ", ir::dtype_name(x.dtype));
  int64_t dirs = num_directions(ctx);
  int64_t layout = read_layout(ctx);
  int64_t gates = num_gates(kind);
  read_activations(ctx, kind, dirs);
  for (size_t i : {size_t{1}, size_t{2}}) {
    const ir::Type& t = ctx.input_type(i);
    const char* name = i == 1 ? "W" : "R";
    if (t.dtype != x.dtype)
      ctx.fail(name, " has type ", ir::dtype_name(t.dtype), " but X has ", ir::dtype_name(x.dtype));
    if (!t.shape) continue;
    if (t.shape->rank() != 3) ctx.fail(name, " must have rank 3, got ", ir::to_string(*t.shape));
    const ir::Dim& d0 = t.shape->dims[0];
    if (d0.is_static() && d0.value != dirs)
      ctx.fail(name, " has ", d0.value, " directions but the direction attribute implies ", dirs);
  }
  if (x.shape && x.shape->rank() != 3) ctx.fail("X must have rank 3, got ", ir::to_string(*x.shape));

  ir::Dim hidden;
  if (ctx.has_attr("hidden_size")) {
    int64_t h = ctx.attr_int("hidden_size");
    if (h <= 0) ctx.fail("hidden_size must be positive, got ", h);
    hidden = ir::Dim(h);
  } else if (const ir::Type& r = ctx.input_type(2); r.shape && r.shape->dims[2].is_static()) {
    hidden = r.shape->dims[2];
  } else if (const ir::Type& w = ctx.input_type(1); w.shape && w.shape->dims[1].is_static()) {
    hidden = ir::Dim(w.shape->dims[1].value / gates);
  }
  ir::Dim seq, batch;
  if (x.shape) {
    seq = x.shape->dims[layout == 0 ? 0 : 1];
    batch = x.shape->dims[layout == 0 ? 1 : 0];
  }
  ir::Shape y =
      layout == 0 ? ir::Shape({seq, ir::Dim(dirs), batch, hidden}) : ir::Shape({batch, seq, ir::Dim(dirs), hidden});
  ir::Shape state = layout == 0 ? ir::Shape({ir::Dim(dirs), batch, hidden}) : ir::Shape({batch, ir::Dim(dirs), hidden});
  ctx.set_output(0, x.dtype, y);
  ctx.set_output(1, x.dtype, state);
  if (kind == CellKind::kLstm) ctx.set_output(2, x.dtype, state);
}

template <class A>
std::vector<A> read_values(const Tensor& t) {
  std::vector<A> v(static_cast<size_t>(t.numel()));
  ir::visit_float_dtype(t.dtype(), [&]<class T>() {
    const T* p = t.data<T>();
    for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<A>(p[i]);
  });
  return v;
}

void check_shape(const NodeView& ctx, const Tensor& t, const char* name, const std::vector<int64_t>& want) {
  if (t.shape() != want) ctx.fail(name, " has shape ", ir::to_string(t.shape()), ", expected ", ir::to_string(want));
}

// A = float for float, float16 and bfloat16 inputs; double for double.
template <class A>
void run_recurrent(KernelContext& ctx, CellKind kind) {
  const Tensor& xt = ctx.input(0);
  const Tensor& wt = ctx.input(1);
  const Tensor& rt = ctx.input(2);
  DType dtype = xt.dtype();
  int64_t dirs = num_directions(ctx);
  bool reverse_only = ctx.attr_string("direction", "forward") == "reverse";
  int64_t layout = read_layout(ctx);
  int64_t g = num_gates(kind);
  std::vector<Activation> acts = read_activations(ctx, kind, dirs);
  size_t acts_per_dir = default_activations(kind).size();

  if (xt.rank() != 3) ctx.fail("X must have rank 3, got ", ir::to_string(xt.shape()));
  int64_t seq = xt.dim(layout == 0 ? 0 : 1), batch = xt.dim(layout == 0 ? 1 : 0), in = xt.dim(2);
  if (rt.rank() != 3) ctx.fail("R must have rank 3, got ", ir::to_string(rt.shape()));
  int64_t hidden = ctx.attr_int("hidden_size", rt.dim(2));
  if (hidden <= 0) ctx.fail("hidden_size must be positive, got ", hidden);
  if (hidden != rt.dim(2))
    ctx.fail("hidden_size is ", hidden, " but R ", ir::to_string(rt.shape()), " has ", rt.dim(2));
  check_shape(ctx, wt, "W", {dirs, g * hidden, in});
  check_shape(ctx, rt, "R", {dirs, g * hidden, hidden});
  auto same_type = [&](const Tensor& t, const char* name) {
    if (t.dtype() != dtype)
      ctx.fail(name, " has type ", ir::dtype_name(t.dtype()), " but X has ", ir::dtype_name(dtype));
  };
  same_type(wt, "W");
  same_type(rt, "R");

  std::vector<A> x = read_values<A>(xt), w = read_values<A>(wt), r = read_values<A>(rt);
  std::vector<A> bias(static_cast<size_t>(dirs * 2 * g * hidden), A(0));
  if (ctx.has_input(3)) {
    const Tensor& bt = ctx.input(3);
    same_type(bt, "B");
    check_shape(ctx, bt, "B", {dirs, 2 * g * hidden});
    bias = read_values<A>(bt);
  }
  std::vector<int64_t> lens(static_cast<size_t>(batch), seq);
  if (ctx.has_input(kSeqLens)) {
    const Tensor& st = ctx.input(kSeqLens);
    if (!ir::is_integer(st.dtype())) ctx.fail("sequence_lens must be int32, got ", ir::dtype_name(st.dtype()));
    check_shape(ctx, st, "sequence_lens", {batch});
    lens = st.to_int64_vector();
    for (int64_t l : lens)
      if (l < 0 || l > seq) ctx.fail("sequence_lens value ", l, " is outside [0, ", seq, "]");
  }
  std::vector<int64_t> state_shape =
      layout == 0 ? std::vector<int64_t>{dirs, batch, hidden} : std::vector<int64_t>{batch, dirs, hidden};
  auto read_state = [&](size_t i, const char* name) {
    std::vector<A> v(static_cast<size_t>(dirs * batch * hidden), A(0));
    if (ctx.has_input(i)) {
      const Tensor& t = ctx.input(i);
      same_type(t, name);
      check_shape(ctx, t, name, state_shape);
      v = read_values<A>(t);
    }
    return v;
  };
  std::vector<A> h0 = read_state(kInitialH, "initial_h");
  std::vector<A> c0, peep;
  bool has_peep = false;
  if (kind == CellKind::kLstm) {
    c0 = read_state(kInitialC, "initial_c");
    if (ctx.has_input(kPeepholes)) {
      const Tensor& pt = ctx.input(kPeepholes);
      same_type(pt, "P");
      check_shape(ctx, pt, "P", {dirs, 3 * hidden});
      peep = read_values<A>(pt);
      has_peep = true;
    }
  }
  bool has_clip = ctx.has_attr("clip");
  A clip = static_cast<A>(ctx.attr_float("clip", 0));
  if (has_clip && !(clip > A(0))) ctx.fail("clip must be positive, got ", ctx.attr_float("clip"));
  bool linear_before_reset = kind == CellKind::kGru && ctx.attr_int("linear_before_reset", 0) != 0;
  bool input_forget = kind == CellKind::kLstm && ctx.attr_int("input_forget", 0) != 0;

  std::vector<int64_t> y_shape =
      layout == 0 ? std::vector<int64_t>{seq, dirs, batch, hidden} : std::vector<int64_t>{batch, seq, dirs, hidden};
  Tensor y_t = ctx.has_output(0) ? ctx.make_tensor(dtype, y_shape) : Tensor();
  std::vector<A> y(ctx.has_output(0) ? static_cast<size_t>(y_t.numel()) : 0, A(0));
  std::vector<A> yh(static_cast<size_t>(dirs * batch * hidden)), yc(yh.size());

  auto x_at = [&](int64_t t, int64_t b) { return x.data() + (layout == 0 ? t * batch + b : b * seq + t) * in; };
  auto state_off = [&](int64_t d, int64_t b) { return (layout == 0 ? d * batch + b : b * dirs + d) * hidden; };
  auto y_off = [&](int64_t t, int64_t d, int64_t b) {
    return (layout == 0 ? (t * dirs + d) * batch + b : (b * seq + t) * dirs + d) * hidden;
  };
  auto clipped = [&](A v) { return has_clip ? std::clamp(v, -clip, clip) : v; };

  size_t gh = static_cast<size_t>(g * hidden);
  std::vector<A> xw(gh), hr(gh), h(static_cast<size_t>(hidden)), c(h.size()), hn(h.size()), rg(h.size()),
      reset_h(h.size());
  for (int64_t d = 0; d < dirs; ++d) {
    bool backward = reverse_only || d == 1;
    const Activation* act = acts.data() + static_cast<size_t>(d) * acts_per_dir;
    const A* wd = w.data() + d * g * hidden * in;
    const A* rd = r.data() + d * g * hidden * hidden;
    const A* wb = bias.data() + d * 2 * g * hidden;
    const A* rb = wb + g * hidden;
    const A* pd = has_peep ? peep.data() + d * 3 * hidden : nullptr;
    // row j of a gate-stacked matrix times a vector
    auto dot = [](const A* row, const A* v, int64_t n) {
      A s = 0;
      for (int64_t k = 0; k < n; ++k) s += row[k] * v[k];
      return s;
    };
    for (int64_t b = 0; b < batch; ++b) {
      int64_t off = state_off(d, b);
      std::copy_n(h0.begin() + off, hidden, h.begin());
      if (kind == CellKind::kLstm) std::copy_n(c0.begin() + off, hidden, c.begin());
      int64_t len = lens[static_cast<size_t>(b)];
      for (int64_t step = 0; step < len; ++step) {
        int64_t t = backward ? len - 1 - step : step;
        const A* xv = x_at(t, b);
        for (size_t j = 0; j < gh; ++j) {
          xw[j] = dot(wd + static_cast<int64_t>(j) * in, xv, in) + wb[j];
          hr[j] = dot(rd + static_cast<int64_t>(j) * hidden, h.data(), hidden) + rb[j];
        }
        size_t hs = static_cast<size_t>(hidden);
        if (kind == CellKind::kRnn) {
          for (size_t u = 0; u < hs; ++u) hn[u] = act[0](clipped(xw[u] + hr[u]));
        } else if (kind == CellKind::kGru) {
          // z, r, h gates. The reset gate is needed for every unit before the candidate state.
          for (size_t u = 0; u < hs; ++u) {
            rg[u] = act[0](clipped(xw[hs + u] + hr[hs + u]));
            reset_h[u] = rg[u] * h[u];
          }
          for (size_t u = 0; u < hs; ++u) {
            A z = act[0](clipped(xw[u] + hr[u]));
            A pre = linear_before_reset
                        ? xw[2 * hs + u] + rg[u] * hr[2 * hs + u]
                        : xw[2 * hs + u] + dot(rd + (2 * hs + u) * hs, reset_h.data(), hidden) + rb[2 * hs + u];
            A hh = act[1](clipped(pre));
            hn[u] = (A(1) - z) * hh + z * h[u];
          }
        } else {
          for (size_t u = 0; u < hs; ++u) {
            // i, o, f, c gates; peepholes i, o, f
            A i_pre = xw[u] + hr[u] + (pd ? pd[u] * c[u] : A(0));
            A ig = act[0](clipped(i_pre));
            A fg;
            if (input_forget) {
              fg = A(1) - ig;
            } else {
              A f_pre = xw[2 * hs + u] + hr[2 * hs + u] + (pd ? pd[2 * hs + u] * c[u] : A(0));
              fg = act[0](clipped(f_pre));
            }
            A cg = act[1](clipped(xw[3 * hs + u] + hr[3 * hs + u]));
            A cn = fg * c[u] + ig * cg;
            A o_pre = xw[hs + u] + hr[hs + u] + (pd ? pd[hs + u] * cn : A(0));
            A og = act[0](clipped(o_pre));
            c[u] = cn;
            hn[u] = og * act[2](cn);
          }
        }
        h = hn;
        if (!y.empty()) std::copy(h.begin(), h.end(), y.begin() + y_off(t, d, b));
      }
      std::copy(h.begin(), h.end(), yh.begin() + off);
      if (kind == CellKind::kLstm) std::copy(c.begin(), c.end(), yc.begin() + off);
    }
  }

  auto store = [&](size_t i, const std::vector<A>& v, Tensor t) {
    ir::visit_float_dtype(dtype, [&]<class T>() {
      T* p = t.data<T>();
      for (size_t k = 0; k < v.size(); ++k) p[k] = static_cast<T>(v[k]);
    });
    ctx.set_output(i, std::move(t));
  };
  if (ctx.has_output(0)) store(0, y, y_t);
  if (ctx.has_output(1)) store(1, yh, ctx.make_tensor(dtype, state_shape));
  if (kind == CellKind::kLstm && ctx.has_output(2)) store(2, yc, ctx.make_tensor(dtype, state_shape));
}

void recurrent_kernel(KernelContext& ctx, CellKind kind) {
  ir::visit_float_dtype(ctx.input(0).dtype(), [&]<class T>() {
    using A = std::conditional_t<std::is_same_v<T, double>, double, float>;
    run_recurrent<A>(ctx, kind);
  });
}

}  // namespace

void register_recurrent_ops(OpRegistry& r) {
  r.add(OpDef{"", "RNN", 1, kMaxOnnxOpset, [](InferenceContext& c) { infer_recurrent(c, CellKind::kRnn); },
              [](KernelContext& c) { recurrent_kernel(c, CellKind::kRnn); }});
  r.add(OpDef{"", "GRU", 1, kMaxOnnxOpset, [](InferenceContext& c) { infer_recurrent(c, CellKind::kGru); },
              [](KernelContext& c) { recurrent_kernel(c, CellKind::kGru); }});
  r.add(OpDef{"", "LSTM", 1, kMaxOnnxOpset, [](InferenceContext& c) { infer_recurrent(c, CellKind::kLstm); },
              [](KernelContext& c) { recurrent_kernel(c, CellKind::kLstm); }});
}

}  // namespace kiln::ops
