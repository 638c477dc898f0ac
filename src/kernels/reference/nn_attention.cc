// ONNX's transformer ops of opset 23, as newer exporters write them:
//
//   Attention (23, 24)   Y = softmax(softcap(Q K^T * scale) + bias) V, per head; 3-D [batch, seq, heads*size] or
//                        4-D [batch, heads, seq, size] inputs; a KV cache (past_* in, present_* out); grouped
//                        query attention (kv_num_heads dividing q_num_heads, each KV head serving
//                        q_num_heads / kv_num_heads consecutive query heads); a causal mask aligned to the
//                        upper left after the past; a bool or additive mask broadcast to
//                        [batch, q_heads, q_seq, total_seq] whose last dim may be short (the rest is masked);
//                        from opset 24 nonpad_kv_seqlen, the valid KV length per batch.
//   RotaryEmbedding (23) rotates the first rotary_embedding_dim of each head by the cos/sin caches, in
//                        halves or interleaved pairs; 3-D [batch, seq, heads*size] or 4-D [batch, heads, seq,
//                        size] input; caches [batch, seq, dim/2], or [max_pos, dim/2] read at position_ids.
//
// and the recurrent-state ops of opset 27 that linear-attention models (gated delta nets) are written with:
//
//   LinearAttention (27) per step t: S = S * exp(decay_t) (gated rules), v_t = beta_t * (v_t - S^T k_t)
//                        (delta rules), S = S + k_t v_t^T, output_t = scale * q_t^T S; the state S
//                        [batch, kv_heads, d_k, d_v] starts at past_state (or 0) and is returned as
//                        present_state; 3-D inputs [batch, seq, heads * size], grouped query heads.
//   CausalConvWithState  a depthwise causal 1-D convolution over [batch, channels, length] whose left
//   (27)                 padding is the previous call's last kernel-1 inputs (past_state, or zeros), with
//                        an optional SiLU; present_state is the last kernel-1 positions of the padded input.
//
// and ai.onnx.preview's FlexAttention (1): 4-D attention whose scores [batch, heads, q_seq, kv_seq] pass
// through an optional score_mod graph before the softmax and whose probabilities pass through an optional
// prob_mod graph after it; both graphs see and return the whole tensor, in the compute type (float32 for
// float16 and bfloat16 inputs, else the input's, or softmax_precision).
//
// Computed in double, rounded once on store, as ONNX's reference (onnx/reference/ops/op_attention.py,
// op_rotary_embedding.py, op_linear_attention.py, op_causal_conv_with_state.py) defines them. qk_matmul_output follows
// that reference: mode 0 and 1 the scaled (and soft-capped) Q K^T, mode 2 with the mask added, mode 3 after the
// softmax.
#include <cmath>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "kernels/reference/common.h"
#include "kernels/reference/nn_common.h"
#include "ops/registry.h"

// A namespace of its own: in a unity build this file shares a translation unit with its neighbours.
namespace kiln::ops::onnx_attention {

namespace {

using nn::kFloatTypes;
using nn::require_dtype;
using nn::store_doubles;
using nn::to_doubles;

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

// ---- Attention -----------------------------------------------------------------------------------------

// The geometry of one call, from the inputs' shapes and the head-count attributes.
struct AttentionDims {
  bool three_d = false;
  int64_t batch = 0, q_heads = 0, kv_heads = 0, q_seq = 0, kv_seq = 0, past = 0, head = 0, v_head = 0;
  int64_t total() const { return past + kv_seq; }
};

// Shape inference works on dims that may be unknown (-1); the kernel's dims are all known.
struct AttentionShapes {
  std::vector<int64_t> q, k, v, past_key, past_value;  // empty when absent
};

int64_t divide_heads(const NodeView& node, int64_t hidden, int64_t heads, const char* what) {
  if (hidden < 0) return -1;
  if (heads <= 0 || hidden % heads != 0)
    node.fail(what, " hidden size ", hidden, " is not a multiple of its head count ", heads);
  return hidden / heads;
}

AttentionDims attention_dims(const NodeView& node, const AttentionShapes& s) {
  AttentionDims d;
  if (s.q.size() != s.k.size() || s.q.size() != s.v.size() || (s.q.size() != 3 && s.q.size() != 4))
    node.fail("Q, K and V must all be 3-D or all 4-D, got ranks ", s.q.size(), ", ", s.k.size(), ", ", s.v.size());
  d.three_d = s.q.size() == 3;
  d.batch = s.q[0];
  if (d.three_d) {
    d.q_heads = node.attr_int("q_num_heads", 0);
    d.kv_heads = node.attr_int("kv_num_heads", 0);
    if (d.q_heads <= 0 || d.kv_heads <= 0)
      node.fail("3-D inputs need attributes q_num_heads and kv_num_heads (> 0), got ", d.q_heads, " and ", d.kv_heads);
    d.q_seq = s.q[1];
    d.kv_seq = s.k[1];
    d.head = divide_heads(node, s.q[2], d.q_heads, "Q");
    int64_t k_head = divide_heads(node, s.k[2], d.kv_heads, "K");
    if (d.head >= 0 && k_head >= 0 && k_head != d.head)
      node.fail("Q and K head sizes differ: ", d.head, " and ", k_head);
    if (d.head < 0) d.head = k_head;
    d.v_head = divide_heads(node, s.v[2], d.kv_heads, "V");
  } else {
    d.q_heads = s.q[1];
    d.kv_heads = s.k[1];
    d.q_seq = s.q[2];
    d.kv_seq = s.k[2];
    d.head = s.q[3];
    if (d.head >= 0 && s.k[3] >= 0 && s.k[3] != d.head)
      node.fail("Q and K head sizes differ: ", d.head, " and ", s.k[3]);
    d.v_head = s.v[3];
  }
  if (d.q_heads > 0 && d.kv_heads > 0 && d.q_heads % d.kv_heads != 0)
    node.fail("q_num_heads ", d.q_heads, " is not a multiple of kv_num_heads ", d.kv_heads);
  if (!s.past_key.empty()) {
    if (s.past_key.size() != 4) node.fail("past_key must be 4-D, got rank ", s.past_key.size());
    d.past = s.past_key[2];
  }
  if (!s.past_value.empty() && s.past_value.size() != 4)
    node.fail("past_value must be 4-D, got rank ", s.past_value.size());
  if (s.past_key.empty() != s.past_value.empty()) node.fail("past_key and past_value must be given together");
  return d;
}

ir::Dim dim_or_unknown(int64_t v) { return v >= 0 ? ir::Dim(v) : ir::Dim(); }

void attention_infer(InferenceContext& ctx) {
  const ir::Type& q = ctx.input_type(0);
  const ir::Type& k = ctx.input_type(1);
  const ir::Type& v = ctx.input_type(2);
  require_dtype(ctx, q.dtype, kFloatTypes, "input Q");
  for (size_t i = 0; i < 4; ++i)
    if (ctx.has_output(i)) ctx.set_output(i, i == 1 ? k.dtype : i == 2 ? v.dtype : q.dtype, std::nullopt);
  if (!q.shape || !k.shape || !v.shape) return;
  auto values = [](const ir::Type& t) { return t.shape ? t.shape->values() : std::vector<int64_t>{}; };
  AttentionShapes s{q.shape->values(), k.shape->values(), v.shape->values(), {}, {}};
  if (ctx.has_input(4)) s.past_key = values(ctx.input_type(4));
  if (ctx.has_input(5)) s.past_value = values(ctx.input_type(5));
  bool past_unknown = (ctx.has_input(4) && !ctx.input_type(4).shape) || (ctx.has_input(5) && !ctx.input_type(5).shape);
  if (past_unknown) s.past_key = s.past_value = {};
  AttentionDims d = attention_dims(ctx, s);
  const ir::Dim batch = q.shape->dims[0];
  auto total = [&]() -> ir::Dim {
    if (past_unknown) return ir::Dim();
    if (!ctx.has_input(4)) return k.shape->dims[d.three_d ? 1 : 2];  // total = kv_seq: keep K's symbol
    return d.kv_seq >= 0 && d.past >= 0 ? ir::Dim(d.total()) : ir::Dim();
  };
  ir::Shape y;
  if (d.three_d)
    y.dims = {batch, q.shape->dims[1], dim_or_unknown(d.v_head >= 0 ? d.q_heads * d.v_head : -1)};
  else
    y.dims = {batch, q.shape->dims[1], q.shape->dims[2], v.shape->dims[3]};
  ctx.set_output(0, q.dtype, y);
  const ir::Dim kv_heads = d.three_d ? ir::Dim(d.kv_heads) : k.shape->dims[1];
  const ir::Dim head = d.three_d ? dim_or_unknown(d.head) : k.shape->dims[3];
  if (ctx.has_output(1)) ctx.set_output(1, k.dtype, ir::Shape{{batch, kv_heads, total(), head}});
  if (ctx.has_output(2))
    ctx.set_output(2, v.dtype,
                   ir::Shape{{batch, d.three_d ? ir::Dim(d.kv_heads) : v.shape->dims[1], total(),
                              d.three_d ? dim_or_unknown(d.v_head) : v.shape->dims[3]}});
  if (ctx.has_output(3)) {
    ir::Dim q_heads = d.three_d ? ir::Dim(d.q_heads) : q.shape->dims[1];
    ir::Dim q_seq = q.shape->dims[d.three_d ? 1 : 2];
    ctx.set_output(3, q.dtype, ir::Shape{{batch, q_heads, q_seq, total()}});
  }
}

// The additive bias for score (b, h, i, j), from attn_mask broadcast to [batch, q_heads, q_seq, total]
// with its last dim padded (masked) to total.
class MaskBias {
 public:
  MaskBias(const KernelContext& ctx, const AttentionDims& d) {
    if (!ctx.has_input(3)) return;
    const ir::Tensor& m = ctx.input(3);
    if (m.rank() < 1 || m.rank() > 4) ctx.fail("attn_mask must have rank 1 to 4, got ", ir::to_string(m.shape()));
    present_ = true;
    const int64_t full[4] = {d.batch, d.q_heads, d.q_seq, d.total()};
    dims_.assign(4, 1);
    for (size_t i = 0; i < m.rank(); ++i) dims_[4 - m.rank() + i] = m.dim(i);
    for (size_t i = 0; i < 3; ++i)
      if (dims_[i] != 1 && dims_[i] != full[i])
        ctx.fail("attn_mask of shape ", ir::to_string(m.shape()), " does not broadcast to [", full[0], ",", full[1],
                 ",", full[2], ",", full[3], "]");
    if (dims_[3] > full[3]) ctx.fail("attn_mask's last dim ", dims_[3], " is longer than the total sequence ", full[3]);
    if (m.dtype() == ir::DType::kBool) {
      const bool* p = m.data<bool>();
      values_.resize(static_cast<size_t>(m.numel()));
      for (size_t i = 0; i < values_.size(); ++i) values_[i] = p[i] ? 0.0 : kNegInf;
    } else {
      require_dtype(ctx, m.dtype(), kFloatTypes, "attn_mask");
      values_ = to_doubles(m);
    }
    // A last dim of 1 broadcasts; a shorter one is padded with masked positions.
    broadcast_last_ = dims_[3] == 1 && full[3] != 1;
  }
  double at(int64_t b, int64_t h, int64_t i, int64_t j) const {
    if (!present_) return 0;
    if (!broadcast_last_ && j >= dims_[3]) return kNegInf;
    int64_t off = dims_[0] == 1 ? 0 : b;
    off = off * dims_[1] + (dims_[1] == 1 ? 0 : h);
    off = off * dims_[2] + (dims_[2] == 1 ? 0 : i);
    off = off * dims_[3] + (broadcast_last_ ? 0 : j);
    return values_[static_cast<size_t>(off)];
  }

 private:
  bool present_ = false, broadcast_last_ = false;
  std::vector<int64_t> dims_;
  std::vector<double> values_;
};

void attention_kernel(KernelContext& ctx) {
  const ir::Tensor& q_t = ctx.input(0);
  const ir::Tensor& k_t = ctx.input(1);
  const ir::Tensor& v_t = ctx.input(2);
  require_dtype(ctx, q_t.dtype(), kFloatTypes, "input Q");
  require_dtype(ctx, k_t.dtype(), kFloatTypes, "input K");
  require_dtype(ctx, v_t.dtype(), kFloatTypes, "input V");
  AttentionShapes s{q_t.shape(), k_t.shape(), v_t.shape(), {}, {}};
  if (ctx.has_input(4)) s.past_key = ctx.input(4).shape();
  if (ctx.has_input(5)) s.past_value = ctx.input(5).shape();
  const AttentionDims d = attention_dims(ctx, s);
  const int64_t B = d.batch, Hq = d.q_heads, Hkv = d.kv_heads, Sq = d.q_seq, Skv = d.kv_seq, P = d.past, T = d.total(),
                D = d.head, Dv = d.v_head;
  if (d.three_d) {
    if (s.k[0] != B || s.v[0] != B || s.v[1] != Skv)
      ctx.fail("K ", ir::to_string(s.k), " and V ", ir::to_string(s.v), " do not match Q ", ir::to_string(s.q));
  } else if (s.k[0] != B || s.v[0] != B || s.v[1] != Hkv || s.v[2] != Skv) {
    ctx.fail("K ", ir::to_string(s.k), " and V ", ir::to_string(s.v), " do not match Q ", ir::to_string(s.q));
  }
  if (!s.past_key.empty()) {
    const std::vector<int64_t> pk{B, Hkv, P, D}, pv{B, Hkv, P, Dv};
    if (s.past_key != pk || s.past_value != pv)
      ctx.fail("past_key ", ir::to_string(s.past_key), " and past_value ", ir::to_string(s.past_value), " must be ",
               ir::to_string(pk), " and ", ir::to_string(pv));
  }

  // Q, K, V as [batch, heads, seq, size] doubles; K and V with the past in front.
  auto heads_first = [&](const ir::Tensor& t, int64_t heads, int64_t seq, int64_t size, const ir::Tensor* past,
                         int64_t past_len) {
    std::vector<double> in = to_doubles(t), pst;
    if (past) pst = to_doubles(*past);
    const int64_t len = past_len + seq;
    std::vector<double> out(static_cast<size_t>(B * heads * len * size));
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = 0; h < heads; ++h)
        for (int64_t s_ = 0; s_ < len; ++s_)
          for (int64_t e = 0; e < size; ++e) {
            double x;
            if (s_ < past_len) {
              x = pst[static_cast<size_t>(((b * heads + h) * past_len + s_) * size + e)];
            } else {
              int64_t t_ = s_ - past_len;
              size_t off = d.three_d ? static_cast<size_t>(((b * seq + t_) * heads + h) * size + e)
                                     : static_cast<size_t>(((b * heads + h) * seq + t_) * size + e);
              x = in[off];
            }
            out[static_cast<size_t>(((b * heads + h) * len + s_) * size + e)] = x;
          }
    return out;
  };
  const std::vector<double> q = heads_first(q_t, Hq, Sq, D, nullptr, 0);
  const std::vector<double> k = heads_first(k_t, Hkv, Skv, D, ctx.has_input(4) ? &ctx.input(4) : nullptr, P);
  const std::vector<double> v = heads_first(v_t, Hkv, Skv, Dv, ctx.has_input(5) ? &ctx.input(5) : nullptr, P);

  MaskBias mask(ctx, d);
  std::vector<int64_t> nonpad;
  if (ctx.has_input(6)) {
    const ir::Tensor& n = ctx.input(6);
    if (n.dtype() != ir::DType::kInt64 || n.numel() != B)
      ctx.fail("nonpad_kv_seqlen must be int64 of shape [", B, "], got ", n.dtype(), ir::to_string(n.shape()));
    nonpad.assign(n.data<int64_t>(), n.data<int64_t>() + B);
  }
  const bool causal = ctx.attr_int("is_causal", 0) != 0;
  const double scale = ctx.has_attr("scale") ? ctx.attr_float("scale") : 1.0 / std::sqrt(static_cast<double>(D));
  const double softcap = ctx.attr_float("softcap", 0.0f);
  const int64_t mode = ctx.attr_int("qk_matmul_output_mode", 0);
  if (mode < 0 || mode > 3) ctx.fail("qk_matmul_output_mode must be 0 to 3, got ", mode);

  std::vector<double> y(static_cast<size_t>(B * Hq * Sq * Dv)), qk_out;
  if (ctx.has_output(3)) qk_out.resize(static_cast<size_t>(B * Hq * Sq * T));
  std::vector<double> raw(static_cast<size_t>(T)), biased(static_cast<size_t>(T));
  // K and V may come with 0 heads (4-D inputs carry their own count): refuse rather than divide by it.
  if (Hq > 0 && (Hkv <= 0 || Hq % Hkv != 0)) ctx.fail("K and V have ", Hkv, " heads, which do not divide Q's ", Hq);
  const int64_t group = Hkv > 0 ? Hq / Hkv : 1;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < Hq; ++h) {
      const int64_t kh = h / group;
      for (int64_t i = 0; i < Sq; ++i) {
        const double* qr = &q[static_cast<size_t>(((b * Hq + h) * Sq + i) * D)];
        double max = kNegInf;
        for (int64_t j = 0; j < T; ++j) {
          const double* kr = &k[static_cast<size_t>(((b * Hkv + kh) * T + j) * D)];
          double dot = 0;
          for (int64_t e = 0; e < D; ++e) dot += qr[e] * kr[e];
          double x = dot * scale;
          if (softcap > 0) x = softcap * std::tanh(x / softcap);
          raw[j] = x;
          double bias = mask.at(b, h, i, j);
          if (causal && j - P > i) bias = kNegInf;
          if (!nonpad.empty() && j >= nonpad[static_cast<size_t>(b)]) bias += kNegInf;
          biased[j] = x + bias;
          max = std::max(max, biased[j]);
        }
        double* qo = qk_out.empty() ? nullptr : &qk_out[static_cast<size_t>(((b * Hq + h) * Sq + i) * T)];
        if (qo && mode <= 1)
          std::copy(raw.begin(), raw.end(), qo);
        else if (qo && mode == 2)
          std::copy(biased.begin(), biased.end(), qo);
        // A row masked everywhere gives NaN (-inf - -inf), as the ONNX reference's softmax does.
        double sum = 0;
        for (int64_t j = 0; j < T; ++j) sum += (biased[j] = std::exp(biased[j] - max));
        for (int64_t j = 0; j < T; ++j) biased[j] /= sum;
        if (qo && mode == 3) std::copy(biased.begin(), biased.end(), qo);
        double* yr = &y[static_cast<size_t>(((b * Hq + h) * Sq + i) * Dv)];
        for (int64_t j = 0; j < T; ++j) {
          const double* vr = &v[static_cast<size_t>(((b * Hkv + kh) * T + j) * Dv)];
          for (int64_t e = 0; e < Dv; ++e) yr[e] += biased[j] * vr[e];
        }
      }
    }

  if (d.three_d) {  // [batch, heads, seq, size] -> [batch, seq, heads * size]
    std::vector<double> t(y.size());
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = 0; h < Hq; ++h)
        for (int64_t i = 0; i < Sq; ++i)
          for (int64_t e = 0; e < Dv; ++e)
            t[static_cast<size_t>(((b * Sq + i) * Hq + h) * Dv + e)] =
                y[static_cast<size_t>(((b * Hq + h) * Sq + i) * Dv + e)];
    y.swap(t);
  }
  ir::Tensor y_t = ctx.make_tensor(
      q_t.dtype(), d.three_d ? std::vector<int64_t>{B, Sq, Hq * Dv} : std::vector<int64_t>{B, Hq, Sq, Dv});
  store_doubles(y_t, y.data());
  ctx.set_output(0, std::move(y_t));
  if (ctx.has_output(1)) {
    ir::Tensor t = ctx.make_tensor(k_t.dtype(), {B, Hkv, T, D});
    store_doubles(t, k.data());
    ctx.set_output(1, std::move(t));
  }
  if (ctx.has_output(2)) {
    ir::Tensor t = ctx.make_tensor(v_t.dtype(), {B, Hkv, T, Dv});
    store_doubles(t, v.data());
    ctx.set_output(2, std::move(t));
  }
  if (ctx.has_output(3)) {
    ir::Tensor t = ctx.make_tensor(q_t.dtype(), {B, Hq, Sq, T});
    store_doubles(t, qk_out.data());
    ctx.set_output(3, std::move(t));
  }
}

// ---- RotaryEmbedding -----------------------------------------------------------------------------------

void rotary_infer(InferenceContext& ctx) {
  const ir::Type& x = ctx.input_type(0);
  require_dtype(ctx, x.dtype, kFloatTypes, "input X");
  if (x.shape && x.shape->rank() != 3 && x.shape->rank() != 4)
    ctx.fail("input must be 3-D or 4-D, got ", ir::to_string(*x.shape));
  ctx.set_output_type(0, x);
}

void rotary_kernel(KernelContext& ctx) {
  const ir::Tensor& x_t = ctx.input(0);
  require_dtype(ctx, x_t.dtype(), kFloatTypes, "input X");
  const ir::Dims& s = x_t.shape();
  if (s.size() != 3 && s.size() != 4) ctx.fail("input must be 3-D or 4-D, got ", ir::to_string(s));
  const bool three_d = s.size() == 3;
  const int64_t B = s[0], S = three_d ? s[1] : s[2];
  int64_t H, D;
  if (three_d) {
    H = ctx.attr_int("num_heads", 0);
    if (H <= 0 || s[2] % H != 0)
      ctx.fail("3-D input needs num_heads dividing its hidden size ", s[2], ", got num_heads ", H);
    D = s[2] / H;
  } else {
    H = s[1];
    D = s[3];
  }
  int64_t rot = ctx.attr_int("rotary_embedding_dim", 0);
  if (rot == 0) rot = D;
  if (rot < 0 || rot > D || rot % 2 != 0)
    ctx.fail("rotary_embedding_dim ", rot, " must be even and at most the head size ", D);
  const int64_t half = rot / 2;
  const bool interleaved = ctx.attr_int("interleaved", 0) != 0;

  const ir::Tensor& cos_t = ctx.input(1);
  const ir::Tensor& sin_t = ctx.input(2);
  if (cos_t.shape() != sin_t.shape())
    ctx.fail("cos_cache ", ir::to_string(cos_t.shape()), " and sin_cache ", ir::to_string(sin_t.shape()), " differ");
  if (cos_t.rank() < 1 || cos_t.shape().back() != half)
    ctx.fail("the caches' last dim must be rotary_embedding_dim / 2 = ", half, ", got ", ir::to_string(cos_t.shape()));
  const std::vector<double> cos_c = to_doubles(cos_t), sin_c = to_doubles(sin_t);
  // Row of the caches for (b, s).
  std::vector<int64_t> row(static_cast<size_t>(B * S));
  if (ctx.has_input(3)) {
    const ir::Tensor& p = ctx.input(3);
    if (p.shape() != std::vector<int64_t>{B, S})
      ctx.fail("position_ids must be [", B, ",", S, "], got ", ir::to_string(p.shape()));
    if (cos_t.rank() != 2) ctx.fail("with position_ids the caches must be 2-D, got ", ir::to_string(cos_t.shape()));
    for (int64_t i = 0; i < B * S; ++i) {
      int64_t pos = p.as_int64(i);
      if (pos < 0 || pos >= cos_t.dim(0))
        ctx.fail("position id ", pos, " is outside the caches' ", cos_t.dim(0), " rows");
      row[static_cast<size_t>(i)] = pos;
    }
  } else {
    if (cos_t.shape() != std::vector<int64_t>{B, S, half})
      ctx.fail("without position_ids the caches must be [", B, ",", S, ",", half, "], got ",
               ir::to_string(cos_t.shape()));
    for (int64_t i = 0; i < B * S; ++i) row[static_cast<size_t>(i)] = i;
  }

  const std::vector<double> x = to_doubles(x_t);
  std::vector<double> y = x;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t t = 0; t < S; ++t) {
        const size_t base =
            three_d ? static_cast<size_t>(((b * S + t) * H + h) * D) : static_cast<size_t>(((b * H + h) * S + t) * D);
        const size_t c = static_cast<size_t>(row[static_cast<size_t>(b * S + t)] * half);
        for (int64_t e = 0; e < half; ++e) {
          const size_t i1 = base + static_cast<size_t>(interleaved ? 2 * e : e);
          const size_t i2 = base + static_cast<size_t>(interleaved ? 2 * e + 1 : e + half);
          const double co = cos_c[c + static_cast<size_t>(e)], si = sin_c[c + static_cast<size_t>(e)];
          y[i1] = co * x[i1] - si * x[i2];
          y[i2] = si * x[i1] + co * x[i2];
        }
      }
  ir::Tensor y_t = ctx.make_tensor(x_t.dtype(), s);
  store_doubles(y_t, y.data());
  ctx.set_output(0, std::move(y_t));
}

// ---- LinearAttention -----------------------------------------------------------------------------------

struct LinearAttentionDims {
  int64_t batch = -1, seq = -1, q_heads = 0, kv_heads = 0, d_k = -1, d_v = -1;
};

LinearAttentionDims linear_attention_dims(const NodeView& node, const std::vector<int64_t>& q,
                                          const std::vector<int64_t>& k, const std::vector<int64_t>& v) {
  if (q.size() != 3 || k.size() != 3 || v.size() != 3)
    node.fail("query, key and value must be 3-D [batch, seq, heads * size], got ranks ", q.size(), ", ", k.size(), ", ",
              v.size());
  LinearAttentionDims d;
  d.q_heads = node.attr_int("q_num_heads");
  d.kv_heads = node.attr_int("kv_num_heads");
  if (d.q_heads <= 0 || d.kv_heads <= 0 || d.q_heads % d.kv_heads != 0)
    node.fail("q_num_heads ", d.q_heads, " must be a positive multiple of kv_num_heads ", d.kv_heads);
  d.batch = q[0];
  d.seq = q[1];
  d.d_k = divide_heads(node, q[2], d.q_heads, "query");
  int64_t k_size = divide_heads(node, k[2], d.kv_heads, "key");
  if (d.d_k >= 0 && k_size >= 0 && k_size != d.d_k)
    node.fail("query and key head sizes differ: ", d.d_k, " and ", k_size);
  d.d_v = divide_heads(node, v[2], d.kv_heads, "value");
  return d;
}

void linear_attention_infer(InferenceContext& ctx) {
  const ir::Type& q = ctx.input_type(0);
  require_dtype(ctx, q.dtype, kFloatTypes, "input query");
  const ir::Type& k = ctx.input_type(1);
  const ir::Type& v = ctx.input_type(2);
  ir::DType state_dtype = ctx.has_input(3) ? ctx.input_type(3).dtype : q.dtype;
  ctx.set_output(0, q.dtype, std::nullopt);
  if (ctx.has_output(1)) ctx.set_output(1, state_dtype, std::nullopt);
  if (!q.shape || !k.shape || !v.shape) return;
  LinearAttentionDims d = linear_attention_dims(ctx, q.shape->values(), k.shape->values(), v.shape->values());
  ctx.set_output(0, q.dtype,
                 ir::Shape{{q.shape->dims[0], q.shape->dims[1], dim_or_unknown(d.d_v >= 0 ? d.q_heads * d.d_v : -1)}});
  if (ctx.has_output(1))
    ctx.set_output(1, state_dtype,
                   ir::Shape{{q.shape->dims[0], ir::Dim(d.kv_heads), dim_or_unknown(d.d_k), dim_or_unknown(d.d_v)}});
}

void linear_attention_kernel(KernelContext& ctx) {
  const ir::Tensor& q_t = ctx.input(0);
  const ir::Tensor& k_t = ctx.input(1);
  const ir::Tensor& v_t = ctx.input(2);
  for (size_t i = 0; i < 3; ++i) require_dtype(ctx, ctx.input(i).dtype(), kFloatTypes, "input " + std::to_string(i));
  const LinearAttentionDims d = linear_attention_dims(ctx, q_t.shape(), k_t.shape(), v_t.shape());
  const int64_t B = d.batch, T = d.seq, Hq = d.q_heads, Hkv = d.kv_heads, Dk = d.d_k, Dv = d.d_v;
  if (k_t.dim(0) != B || v_t.dim(0) != B || k_t.dim(1) != T || v_t.dim(1) != T)
    ctx.fail("key ", ir::to_string(k_t.shape()), " and value ", ir::to_string(v_t.shape()), " do not match query ",
             ir::to_string(q_t.shape()));
  const std::string rule = ctx.attr_string("update_rule", "gated_delta");
  if (rule != "linear" && rule != "gated" && rule != "delta" && rule != "gated_delta")
    ctx.fail("update_rule must be linear, gated, delta or gated_delta, got \"", rule, "\"");
  const bool gating = rule == "gated" || rule == "gated_delta";
  const bool delta = rule == "delta" || rule == "gated_delta";
  if (gating != ctx.has_input(4)) ctx.fail("update_rule \"", rule, gating ? "\" needs" : "\" forbids", " input decay");
  if (delta != ctx.has_input(5)) ctx.fail("update_rule \"", rule, delta ? "\" needs" : "\" forbids", " input beta");

  // Per (b, h, t): q [Dk], k [Dk], v [Dv] of [batch, seq, heads * size] tensors.
  const std::vector<double> q = to_doubles(q_t), k = to_doubles(k_t), v = to_doubles(v_t);
  auto at = [&](const std::vector<double>& x, int64_t heads, int64_t size, int64_t b, int64_t h, int64_t t) {
    return &x[static_cast<size_t>(((b * T + t) * heads + h) * size)];
  };
  std::vector<double> decay, beta;
  int64_t decay_per = 0;  // decay values per (b, t, kv head): 1 or Dk
  int64_t beta_per = 0;   // beta values per (b, t): Hkv, or 1 shared by every head
  bool beta_shared = false;
  if (gating) {
    const ir::Tensor& g = ctx.input(4);
    if (g.rank() != 3 || g.dim(0) != B || g.dim(1) != T || (g.dim(2) != Hkv && g.dim(2) != Hkv * Dk))
      ctx.fail("decay must be [", B, ",", T, ",", Hkv, "] or [", B, ",", T, ",", Hkv * Dk, "], got ",
               ir::to_string(g.shape()));
    decay = to_doubles(g);
    decay_per = g.dim(2) == Hkv ? 1 : Dk;
  }
  if (delta) {
    const ir::Tensor& be = ctx.input(5);
    if (be.rank() != 3 || be.dim(0) != B || be.dim(1) != T || (be.dim(2) != Hkv && be.dim(2) != 1))
      ctx.fail("beta must be [", B, ",", T, ",", Hkv, "] or [", B, ",", T, ",1], got ", ir::to_string(be.shape()));
    beta = to_doubles(be);
    beta_shared = be.dim(2) == 1 && Hkv != 1;
    beta_per = be.dim(2);
  }
  std::vector<double> state(static_cast<size_t>(B * Hkv * Dk * Dv), 0.0);
  ir::DType state_dtype = q_t.dtype();
  if (ctx.has_input(3)) {
    const ir::Tensor& p = ctx.input(3);
    if (p.shape() != std::vector<int64_t>{B, Hkv, Dk, Dv})
      ctx.fail("past_state must be [", B, ",", Hkv, ",", Dk, ",", Dv, "], got ", ir::to_string(p.shape()));
    require_dtype(ctx, p.dtype(), kFloatTypes, "past_state");
    state = to_doubles(p);
    state_dtype = p.dtype();
  }
  const double scale_attr = ctx.attr_float("scale", 0.0f);
  const double scale = scale_attr == 0 ? 1.0 / std::sqrt(static_cast<double>(Dk)) : scale_attr;
  // K and V may come with 0 heads (4-D inputs carry their own count): refuse rather than divide by it.
  if (Hq > 0 && (Hkv <= 0 || Hq % Hkv != 0)) ctx.fail("K and V have ", Hkv, " heads, which do not divide Q's ", Hq);
  const int64_t group = Hkv > 0 ? Hq / Hkv : 1;
  std::vector<double> out(static_cast<size_t>(B * T * Hq * Dv)), vt(static_cast<size_t>(Dv));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) {
      for (int64_t h = 0; h < Hkv; ++h) {
        double* S = &state[static_cast<size_t>((b * Hkv + h) * Dk * Dv)];  // [Dk, Dv]
        const double* kr = at(k, Hkv, Dk, b, h, t);
        const double* vr = at(v, Hkv, Dv, b, h, t);
        if (gating) {
          const size_t g0 = static_cast<size_t>(((b * T + t) * Hkv + h) * decay_per);
          for (int64_t i = 0; i < Dk; ++i) {
            double f = std::exp(decay[g0 + static_cast<size_t>(decay_per == 1 ? 0 : i)]);
            for (int64_t j = 0; j < Dv; ++j) S[i * Dv + j] *= f;
          }
        }
        for (int64_t j = 0; j < Dv; ++j) vt[static_cast<size_t>(j)] = vr[j];
        if (delta) {
          const double bt = beta[static_cast<size_t>((b * T + t) * beta_per + (beta_shared ? 0 : h))];
          for (int64_t j = 0; j < Dv; ++j) {
            double retrieved = 0;
            for (int64_t i = 0; i < Dk; ++i) retrieved += S[i * Dv + j] * kr[i];
            vt[static_cast<size_t>(j)] = bt * (vr[j] - retrieved);
          }
        }
        for (int64_t i = 0; i < Dk; ++i)
          for (int64_t j = 0; j < Dv; ++j) S[i * Dv + j] += kr[i] * vt[static_cast<size_t>(j)];
      }
      for (int64_t h = 0; h < Hq; ++h) {
        const double* S = &state[static_cast<size_t>((b * Hkv + h / group) * Dk * Dv)];
        const double* qr = at(q, Hq, Dk, b, h, t);
        double* o = &out[static_cast<size_t>(((b * T + t) * Hq + h) * Dv)];
        for (int64_t j = 0; j < Dv; ++j) {
          double sum = 0;
          for (int64_t i = 0; i < Dk; ++i) sum += qr[i] * S[i * Dv + j];
          o[j] = scale * sum;
        }
      }
    }
  ir::Tensor y = ctx.make_tensor(q_t.dtype(), {B, T, Hq * Dv});
  store_doubles(y, out.data());
  ctx.set_output(0, std::move(y));
  if (ctx.has_output(1)) {
    ir::Tensor st = ctx.make_tensor(state_dtype, {B, Hkv, Dk, Dv});
    store_doubles(st, state.data());
    ctx.set_output(1, std::move(st));
  }
}

// ---- CausalConvWithState -------------------------------------------------------------------------------

void causal_conv_infer(InferenceContext& ctx) {
  const ir::Type& x = ctx.input_type(0);
  require_dtype(ctx, x.dtype, kFloatTypes, "input");
  ctx.set_output(0, x.dtype, x.shape);
  if (!ctx.has_output(1)) return;
  const ir::Type& w = ctx.input_type(1);
  std::optional<ir::Shape> state;
  if (x.shape && x.shape->rank() == 3) {
    ir::Dim k1 = w.shape && w.shape->rank() == 3 && w.shape->dims[2].is_static() ? ir::Dim(w.shape->dims[2].value - 1)
                                                                                 : ir::Dim();
    state = ir::Shape{{x.shape->dims[0], x.shape->dims[1], k1}};
  }
  ctx.set_output(1, x.dtype, state);
}

void causal_conv_kernel(KernelContext& ctx) {
  const ir::Tensor& x_t = ctx.input(0);
  const ir::Tensor& w_t = ctx.input(1);
  require_dtype(ctx, x_t.dtype(), kFloatTypes, "input");
  if (x_t.rank() != 3) ctx.fail("input must be 3-D [batch, channels, length], got ", ir::to_string(x_t.shape()));
  const int64_t B = x_t.dim(0), C = x_t.dim(1), L = x_t.dim(2);
  if (w_t.rank() != 3 || w_t.dim(0) != C || w_t.dim(1) != 1 || w_t.dim(2) < 1)
    ctx.fail("weight must be [", C, ",1,kernel], got ", ir::to_string(w_t.shape()));
  const int64_t K = w_t.dim(2), P = K - 1;
  const std::string activation = ctx.attr_string("activation", "none");
  if (activation != "none" && activation != "silu" && activation != "swish")
    ctx.fail("activation must be none, silu or swish, got \"", activation, "\"");
  std::vector<double> bias;
  if (ctx.has_input(2)) {
    if (ctx.input(2).numel() != C) ctx.fail("bias must have ", C, " values, got ", ir::to_string(ctx.input(2).shape()));
    bias = to_doubles(ctx.input(2));
  }
  // The padded input [B, C, P + L]: the past (or zeros), then the input.
  const std::vector<double> x = to_doubles(x_t), w = to_doubles(w_t);
  std::vector<double> padded(static_cast<size_t>(B * C * (P + L)), 0.0);
  std::vector<double> past;
  if (ctx.has_input(3)) {
    const ir::Tensor& p = ctx.input(3);
    if (p.shape() != std::vector<int64_t>{B, C, P})
      ctx.fail("past_state must be [", B, ",", C, ",", P, "], got ", ir::to_string(p.shape()));
    past = to_doubles(p);
  }
  for (int64_t bc = 0; bc < B * C; ++bc) {
    double* row = &padded[static_cast<size_t>(bc * (P + L))];
    for (int64_t i = 0; i < P && !past.empty(); ++i) row[i] = past[static_cast<size_t>(bc * P + i)];
    for (int64_t i = 0; i < L; ++i) row[P + i] = x[static_cast<size_t>(bc * L + i)];
  }
  std::vector<double> y(static_cast<size_t>(B * C * L));
  for (int64_t bc = 0; bc < B * C; ++bc) {
    const int64_t c = bc % C;
    const double* row = &padded[static_cast<size_t>(bc * (P + L))];
    for (int64_t i = 0; i < L; ++i) {
      double sum = bias.empty() ? 0.0 : bias[static_cast<size_t>(c)];
      for (int64_t j = 0; j < K; ++j) sum += row[i + j] * w[static_cast<size_t>(c * K + j)];
      if (activation != "none") sum = sum / (1.0 + std::exp(-sum));
      y[static_cast<size_t>(bc * L + i)] = sum;
    }
  }
  ir::Tensor y_t = ctx.make_tensor(x_t.dtype(), x_t.shape());
  store_doubles(y_t, y.data());
  ctx.set_output(0, std::move(y_t));
  if (ctx.has_output(1)) {
    std::vector<double> state(static_cast<size_t>(B * C * P));
    for (int64_t bc = 0; bc < B * C; ++bc)
      for (int64_t i = 0; i < P; ++i)
        state[static_cast<size_t>(bc * P + i)] = padded[static_cast<size_t>(bc * (P + L) + L + i)];
    ir::Tensor s_t = ctx.make_tensor(x_t.dtype(), {B, C, P});
    if (!state.empty()) store_doubles(s_t, state.data());
    ctx.set_output(1, std::move(s_t));
  }
}

// ---- FlexAttention (ai.onnx.preview) -------------------------------------------------------------------

ir::DType flex_compute_dtype(const NodeView& node, ir::DType q) {
  if (node.has_attr("softmax_precision")) {
    int64_t code = node.attr_int("softmax_precision");
    if (!ir::dtype_is_valid(static_cast<int32_t>(code)) || !ir::is_float(static_cast<ir::DType>(code)))
      node.fail("softmax_precision ", code, " is not a floating-point type");
    return static_cast<ir::DType>(code);
  }
  return q == ir::DType::kFloat16 || q == ir::DType::kBFloat16 ? ir::DType::kFloat32 : q;
}

void flex_attention_infer(InferenceContext& ctx) {
  const ir::Type& q = ctx.input_type(0);
  const ir::Type& v = ctx.input_type(2);
  require_dtype(ctx, q.dtype, kFloatTypes, "input Q");
  std::optional<ir::Shape> y;
  if (q.shape && v.shape && q.shape->rank() == 4 && v.shape->rank() == 4)
    y = ir::Shape{{q.shape->dims[0], q.shape->dims[1], q.shape->dims[2], v.shape->dims[3]}};
  ctx.set_output(0, v.dtype, y);
}

// Runs a score_mod / prob_mod graph on x (in dtype, of shape) and reads its one output back.
void apply_mod(KernelContext& ctx, const char* name, ir::DType dtype, const std::vector<int64_t>& shape,
               std::vector<double>& x) {
  const ir::Graph* g = ctx.attr_graph(name);
  if (!g) return;
  ir::Tensor in = ctx.make_tensor(dtype, shape);
  store_doubles(in, x.data());
  std::vector<ir::Datum> outs = ctx.run_subgraph(*g, {ir::Datum(std::move(in))});
  if (outs.size() != 1 || !outs[0].is_tensor() || outs[0].tensor.shape() != shape)
    ctx.fail(name, " must return one tensor of shape ", ir::to_string(shape));
  x = to_doubles(outs[0].tensor);
}

void flex_attention_kernel(KernelContext& ctx) {
  const ir::Tensor& q_t = ctx.input(0);
  const ir::Tensor& k_t = ctx.input(1);
  const ir::Tensor& v_t = ctx.input(2);
  for (size_t i = 0; i < 3; ++i) require_dtype(ctx, ctx.input(i).dtype(), kFloatTypes, "input " + std::to_string(i));
  if (q_t.rank() != 4 || k_t.rank() != 4 || v_t.rank() != 4)
    ctx.fail("Q, K and V must be 4-D, got ", ir::to_string(q_t.shape()), ", ", ir::to_string(k_t.shape()), ", ",
             ir::to_string(v_t.shape()));
  const int64_t B = q_t.dim(0), Hq = q_t.dim(1), L = q_t.dim(2), E = q_t.dim(3);
  const int64_t Hkv = k_t.dim(1), S = k_t.dim(2), Ev = v_t.dim(3);
  if (k_t.dim(0) != B || v_t.dim(0) != B || v_t.dim(1) != Hkv || v_t.dim(2) != S || k_t.dim(3) != E)
    ctx.fail("K ", ir::to_string(k_t.shape()), " and V ", ir::to_string(v_t.shape()), " do not match Q ",
             ir::to_string(q_t.shape()));
  if (Hkv <= 0 || Hq % Hkv != 0) ctx.fail("Q's ", Hq, " heads are not a multiple of K's ", Hkv);
  const double scale = ctx.has_attr("scale") ? ctx.attr_float("scale") : 1.0 / std::sqrt(static_cast<double>(E));
  const ir::DType compute = flex_compute_dtype(ctx, q_t.dtype());
  const std::vector<double> q = to_doubles(q_t), k = to_doubles(k_t), v = to_doubles(v_t);
  // K and V may come with 0 heads (4-D inputs carry their own count): refuse rather than divide by it.
  if (Hq > 0 && (Hkv <= 0 || Hq % Hkv != 0)) ctx.fail("K and V have ", Hkv, " heads, which do not divide Q's ", Hq);
  const int64_t group = Hkv > 0 ? Hq / Hkv : 1;
  const std::vector<int64_t> score_shape{B, Hq, L, S};
  std::vector<double> p(static_cast<size_t>(B * Hq * L * S));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < Hq; ++h)
      for (int64_t i = 0; i < L; ++i)
        for (int64_t j = 0; j < S; ++j) {
          const double* qr = &q[static_cast<size_t>(((b * Hq + h) * L + i) * E)];
          const double* kr = &k[static_cast<size_t>(((b * Hkv + h / group) * S + j) * E)];
          double dot = 0;
          for (int64_t e = 0; e < E; ++e) dot += qr[e] * kr[e];
          p[static_cast<size_t>(((b * Hq + h) * L + i) * S + j)] = dot * scale;
        }
  apply_mod(ctx, "score_mod", compute, score_shape, p);
  for (int64_t row = 0; row < B * Hq * L; ++row) {
    double* r = &p[static_cast<size_t>(row * S)];
    double max = kNegInf, sum = 0;
    for (int64_t j = 0; j < S; ++j) max = std::max(max, r[j]);
    for (int64_t j = 0; j < S; ++j) sum += (r[j] = std::exp(r[j] - max));
    for (int64_t j = 0; j < S; ++j) r[j] /= sum;
  }
  apply_mod(ctx, "prob_mod", compute, score_shape, p);
  std::vector<double> y(static_cast<size_t>(B * Hq * L * Ev), 0.0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < Hq; ++h)
      for (int64_t i = 0; i < L; ++i) {
        double* yr = &y[static_cast<size_t>(((b * Hq + h) * L + i) * Ev)];
        for (int64_t j = 0; j < S; ++j) {
          const double pr = p[static_cast<size_t>(((b * Hq + h) * L + i) * S + j)];
          const double* vr = &v[static_cast<size_t>(((b * Hkv + h / group) * S + j) * Ev)];
          for (int64_t e = 0; e < Ev; ++e) yr[e] += pr * vr[e];
        }
      }
  ir::Tensor y_t = ctx.make_tensor(v_t.dtype(), {B, Hq, L, Ev});
  store_doubles(y_t, y.data());
  ctx.set_output(0, std::move(y_t));
}

}  // namespace

void register_ops(OpRegistry& r) {
  // Opset 24 added input 6 (nonpad_kv_seqlen); one kernel reads it when given.
  r.add(OpDef{"", "Attention", 23, kMaxOnnxOpset, attention_infer, attention_kernel});
  r.add(OpDef{"", "RotaryEmbedding", 23, kMaxOnnxOpset, rotary_infer, rotary_kernel});
  r.add(OpDef{"", "LinearAttention", 27, kMaxOnnxOpset, linear_attention_infer, linear_attention_kernel});
  r.add(OpDef{"", "CausalConvWithState", 27, kMaxOnnxOpset, causal_conv_infer, causal_conv_kernel});
  r.add(OpDef{"ai.onnx.preview", "FlexAttention", 1, 1, flex_attention_infer, flex_attention_kernel});
}

}  // namespace kiln::ops::onnx_attention
