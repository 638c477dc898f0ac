// com.microsoft Attention (multi-head self-attention with packed Q|K|V weights), as ONNX Runtime's CPU
// kernel computes it (and QAttention, its int8 twin, below):
//
//   input (B,S,D_in) x weights (D_in, D+D+D_v) + bias  ->  Q | K | V, split into num_heads heads
//   score[b,n,i,j] = scale * Q[b,i,n] . K[b,j,n]  (+ attention_bias[b,n,i,j])  (+ mask[b,i,j])
//   output[b,i,n]  = sum_j softmax_j(score[b,n,i,:]) * V[b,j,n]            -> (B, S, D_v)
//
// scale defaults to 1/sqrt(head_size) (an explicit 0 also means the default). The additive mask, built
// as ONNX Runtime builds it from mask_index:
//   absent                  no mask
//   (B)                     key j >= end[b] gets mask_filter_value (right padding); end < 0 is an error
//   (2B)                    also key j < start[b] (left padding); start is the second half
//   (B, T)                  raw mask: value > 0 attends, anything else gets mask_filter_value
//   (B, 1) or (1, 1)        a broadcast constant, which changes nothing: ignored
//   (B, S, T)               raw mask per query position
// unidirectional=1 then sets key j > i to the lowest float (replacing, not adding). Scores are rounded
// to float32 and the mask added in float32 as ONNX Runtime does, so a row whose keys are all masked
// comes out as ONNX Runtime's does (softmax over the shifted scores, not a uniform row).
// Not supported (refused with a message): past / present state, past_sequence_length, 4-D masks (ONNX
// Runtime's CPU kernel refuses them too), do_rotary.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/reference/attention_mask.h"
#include "kernels/reference/contrib_common.h"

namespace kiln::ops::contrib {
namespace {

enum AttentionInput : size_t {
  kInput = 0,
  kWeights = 1,
  kBias = 2,
  kMaskIndex = kAttentionMaskIndex,
  kPast = 4,
  kAttentionBias = 5,
  kPastSequenceLength = 6,
};

struct AttentionConfig {
  int64_t num_heads = 0;
  bool unidirectional = false;
  float mask_filter_value = -10000.0f;
  float scale = 0;  // 0: 1/sqrt(head_size)
  std::vector<int64_t> qkv_hidden_sizes;
};

AttentionConfig read_config(const NodeView& node) {
  AttentionConfig c;
  c.num_heads = node.attr_int("num_heads");
  if (c.num_heads <= 0) node.fail("num_heads must be positive, got ", c.num_heads);
  int64_t uni = node.attr_int("unidirectional", 0);
  if (uni != 0 && uni != 1) node.fail("unidirectional must be 0 or 1, got ", uni);
  c.unidirectional = uni == 1;
  if (node.attr_int("do_rotary", 0) != 0) node.fail("do_rotary=1 (rotary position embedding) is not supported");
  c.mask_filter_value = node.attr_float("mask_filter_value", -10000.0f);
  c.scale = node.attr_float("scale", 0.0f);
  c.qkv_hidden_sizes = node.attr_ints("qkv_hidden_sizes");
  if (!c.qkv_hidden_sizes.empty()) {
    const auto& q = c.qkv_hidden_sizes;
    if (q.size() != 3) node.fail("qkv_hidden_sizes ", ir::to_string(q), " must have 3 values");
    if (q[0] != q[1]) node.fail("qkv_hidden_sizes ", ir::to_string(q), ": Q and K must have the same hidden size");
    for (int64_t v : q)
      if (v <= 0 || v % c.num_heads != 0)
        node.fail("qkv_hidden_sizes ", ir::to_string(q), ": each size must be a positive multiple of num_heads ",
                  c.num_heads);
  }
  return c;
}

struct HiddenSizes {
  int64_t qk = 0;  // D: hidden size of Q and of K
  int64_t v = 0;   // D_v
};

// Hidden sizes from the weights' column count (D + D + D_v).
HiddenSizes hidden_sizes(const NodeView& node, const AttentionConfig& c, int64_t columns) {
  HiddenSizes h;
  if (!c.qkv_hidden_sizes.empty()) {
    const auto& q = c.qkv_hidden_sizes;
    if (q[0] + q[1] + q[2] != columns)
      node.fail("qkv_hidden_sizes ", ir::to_string(q), " do not add up to the ", columns, " columns of weights");
    return {q[0], q[2]};
  }
  if (columns % 3 != 0) node.fail("weights has ", columns, " columns, not 3 * hidden_size (packed Q|K|V)");
  h.qk = h.v = columns / 3;
  if (h.qk == 0) node.fail("weights has no columns");
  if (h.qk % c.num_heads != 0) node.fail("hidden_size ", h.qk, " is not divisible by num_heads ", c.num_heads);
  return h;
}

// State carried between calls (past / present) is not supported.
void refuse_state(const NodeView& node, bool past, bool past_sequence_length, bool present) {
  if (past) node.fail("input 4 (past) is given: attention with past state is not supported");
  if (past_sequence_length) node.fail("input 6 (past_sequence_length) is given: past state is not supported");
  if (present) node.fail("output 1 (present) is requested: attention with present state is not supported");
}

// The output's shape: the input's (batch, sequence) and D_v from the weights' columns, when known.
std::optional<ir::Shape> output_shape(const InferenceContext& ctx, const AttentionConfig& c, const ir::Type& x,
                                      size_t weights_input) {
  if (!x.shape) return std::nullopt;
  if (x.shape->rank() != 3) ctx.fail("input must be 3-D (batch, sequence, input_hidden), got ", ir::to_string(*x.shape));
  std::optional<ir::Shape> out = x.shape;
  out->dims[2] = ir::Dim();
  auto w = input_shape(ctx, weights_input);
  if (w && w->rank() != 2) ctx.fail("weights must be 2-D, got ", ir::to_string(*w));
  if (w && (*w)[1].is_static()) out->dims[2] = ir::Dim(hidden_sizes(ctx, c, (*w)[1].value).v);
  return out;
}

void infer_attention(InferenceContext& ctx) {
  AttentionConfig c = read_config(ctx);
  refuse_state(ctx, ctx.has_input(kPast), ctx.has_input(kPastSequenceLength), ctx.has_output(1));
  require_float32_input(ctx, kInput, "input");
  require_float32_input(ctx, kWeights, "weights");
  require_float32_input(ctx, kBias, "bias");
  require_int32_input(ctx, kMaskIndex, "mask_index");
  require_float32_input(ctx, kAttentionBias, "attention_bias");
  const ir::Type& x = ctx.input_type(kInput);
  ctx.set_output(0, x.dtype, output_shape(ctx, c, x, kWeights));
}

// The additive mask (B, S, T) built from mask_index and unidirectional; empty when nothing is masked.
std::vector<float> build_mask(const KernelContext& ctx, const AttentionConfig& c, int64_t batch, int64_t seq,
                              size_t mask_input) {
  int64_t total = seq;  // no past state: T = S
  bool causal = c.unidirectional && seq > 1;
  const ir::Tensor* m = ctx.has_input(mask_input) ? &ctx.input(mask_input) : nullptr;
  if (m) {
    require_int32(ctx, m->dtype(), "mask_index");
    const auto& d = m->shape();
    bool raw_2d = d.size() == 2 && d[0] == batch && d[1] == total;
    bool dummy = d.size() == 2 && !raw_2d && (d[0] == batch || d[0] == 1) && d[1] == 1;
    bool ok = (d.size() == 1 && (d[0] == batch || d[0] == 2 * batch)) || raw_2d || dummy ||
              (d.size() == 3 && d[0] == batch && d[1] == seq && d[2] == total);
    if (d.size() == 4)
      ctx.fail("mask_index of shape ", ir::to_string(d),
               " (4-D, Megatron style) is not supported (nor by ONNX Runtime's CPU kernel)");
    if (!ok)
      ctx.fail("mask_index of shape ", ir::to_string(d), " must be (batch)=[", batch, "], (2*batch)=[", 2 * batch,
               "], (batch, total_sequence)=[", batch, ",", total, "] or (batch, sequence, total_sequence)=[", batch,
               ",", seq, ",", total, "]");
    if (dummy) m = nullptr;
    // As ONNX Runtime: a negative end position is an error (a negative start masks nothing).
    for (int64_t b = 0; m && d.size() == 1 && b < batch; ++b)
      if (m->data<int32_t>()[b] < 0)
        ctx.fail("mask_index value ", m->data<int32_t>()[b], " at index ", b,
                 " is negative: end positions must be >= 0");
  }
  if (!m && !causal) return {};

  std::vector<float> mask(static_cast<size_t>(batch * seq * total), 0.0f);
  const float filter = c.mask_filter_value;
  if (m) {
    const int32_t* v = m->data<int32_t>();
    const auto& d = m->shape();
    for (int64_t b = 0; b < batch; ++b) {
      for (int64_t i = 0; i < seq; ++i) {
        float* row = mask.data() + (b * seq + i) * total;
        for (int64_t j = 0; j < total; ++j) {
          bool attend = true;
          if (d.size() == 3) {
            attend = v[(b * seq + i) * total + j] > 0;
          } else if (d.size() == 2) {
            attend = v[b * total + j] > 0;
          } else {
            attend = j < v[b];                                   // end position (exclusive)
            if (d[0] == 2 * batch) attend &= j >= v[batch + b];  // start position (inclusive)
          }
          if (!attend) row[j] = filter;
        }
      }
    }
  }
  if (causal)
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t i = 0; i < seq; ++i)
        for (int64_t j = i + 1; j < total; ++j) mask[(b * seq + i) * total + j] = std::numeric_limits<float>::lowest();
  return mask;
}

// The input is 3-D and the weights 2-D with as many rows as the input's last dim.
void check_input_and_weights(const NodeView& node, const ir::Tensor& x, const ir::Tensor& w, const char* weights) {
  if (x.rank() != 3) node.fail("input must be 3-D (batch, sequence, input_hidden), got ", ir::to_string(x.shape()));
  if (w.rank() != 2 || w.dim(0) != x.dim(2))
    node.fail(weights, " of shape ", ir::to_string(w.shape()), " must be 2-D with ", x.dim(2),
              " rows (input_hidden of input ", ir::to_string(x.shape()), ")");
}

// Scores, softmax and the weighted sum of V from the Q | K | V projections, (B*S, columns) floats.
void attend(KernelContext& ctx, const AttentionConfig& c, const std::vector<float>& qkv, int64_t batch, int64_t seq,
            int64_t columns, const HiddenSizes& hs, const ir::Tensor* attn_bias, size_t mask_input) {
  const int64_t total = seq;
  const int64_t heads = c.num_heads, head = hs.qk / heads, v_head = hs.v / heads;
  if (attn_bias) {
    require_float32(ctx, attn_bias->dtype(), "attention_bias");
    const auto& d = attn_bias->shape();
    if (d.size() != 4 || (d[0] != batch && d[0] != 1) || (d[1] != heads && d[1] != 1) || d[2] != seq || d[3] != total)
      ctx.fail("attention_bias of shape ", ir::to_string(d), " must be (batch or 1, num_heads or 1, sequence, ",
               "total_sequence) = ([", batch, " or 1], [", heads, " or 1], ", seq, ", ", total, ")");
  }
  std::vector<float> mask = build_mask(ctx, c, batch, seq, mask_input);
  const float scale = c.scale == 0.0f ? static_cast<float>(1.0 / std::sqrt(static_cast<double>(head))) : c.scale;
  auto q_at = [&](int64_t b, int64_t i, int64_t n) { return qkv.data() + (b * seq + i) * columns + n * head; };
  auto k_at = [&](int64_t b, int64_t j, int64_t n) { return qkv.data() + (b * seq + j) * columns + hs.qk + n * head; };
  auto v_at = [&](int64_t b, int64_t j, int64_t n) {
    return qkv.data() + (b * seq + j) * columns + 2 * hs.qk + n * v_head;
  };

  ir::Tensor y = ctx.make_tensor(ir::DType::kFloat32, {batch, seq, hs.v});
  float* out = y.data<float>();
  std::vector<float> score(static_cast<size_t>(total));
  std::vector<double> prob(static_cast<size_t>(total));
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t n = 0; n < heads; ++n)
      for (int64_t i = 0; i < seq; ++i) {
        const float* q = q_at(b, i, n);
        for (int64_t j = 0; j < total; ++j) {
          const float* k = k_at(b, j, n);
          double dot = 0;
          for (int64_t h = 0; h < head; ++h) dot += static_cast<double>(q[h]) * k[h];
          float s = static_cast<float>(dot) * scale;
          if (attn_bias) {
            const auto& d = attn_bias->shape();
            int64_t ab = ((d[0] == 1 ? 0 : b) * d[1] + (d[1] == 1 ? 0 : n)) * seq * total + i * total + j;
            s += attn_bias->data<float>()[ab];
          }
          if (!mask.empty()) s += mask[(b * seq + i) * total + j];
          score[j] = s;
        }
        float max = -std::numeric_limits<float>::infinity();
        for (float s : score) max = std::max(max, s);
        double sum = 0;
        for (int64_t j = 0; j < total; ++j) sum += prob[j] = std::exp(static_cast<double>(score[j]) - max);
        for (int64_t h = 0; h < v_head; ++h) {
          double acc = 0;
          for (int64_t j = 0; j < total; ++j) acc += prob[j] / sum * v_at(b, j, n)[h];
          out[(b * seq + i) * hs.v + n * v_head + h] = static_cast<float>(acc);
        }
      }
  ctx.set_output(0, std::move(y));
}

void attention_kernel(KernelContext& ctx) {
  AttentionConfig c = read_config(ctx);
  refuse_state(ctx, ctx.has_input(kPast), ctx.has_input(kPastSequenceLength), ctx.has_output(1));
  const ir::Tensor& x = ctx.input(kInput);
  const ir::Tensor& w = ctx.input(kWeights);
  require_float32(ctx, x.dtype(), "input");
  require_float32(ctx, w.dtype(), "weights");
  check_input_and_weights(ctx, x, w, "weights");
  const int64_t batch = x.dim(0), seq = x.dim(1), in_hidden = x.dim(2), columns = w.dim(1);
  HiddenSizes hs = hidden_sizes(ctx, c, columns);
  const float* bias = nullptr;
  if (ctx.has_input(kBias)) {
    const ir::Tensor& b = ctx.input(kBias);
    require_float32(ctx, b.dtype(), "bias");
    require_vector(ctx, b, columns, "bias");
    bias = b.data<float>();
  }
  // Q | K | V projections, (B*S, columns), kept in float32 as ONNX Runtime keeps them (the bias added in
  // float32 to the rounded product, as its GEMM does).
  std::vector<float> qkv(static_cast<size_t>(batch * seq * columns));
  const float* xp = x.data<float>();
  const float* wp = w.data<float>();
  for (int64_t r = 0; r < batch * seq; ++r)
    for (int64_t col = 0; col < columns; ++col) {
      double acc = 0;
      for (int64_t k = 0; k < in_hidden; ++k) acc += static_cast<double>(xp[r * in_hidden + k]) * wp[k * columns + col];
      qkv[r * columns + col] = static_cast<float>(acc) + (bias ? bias[col] : 0.0f);
    }
  attend(ctx, c, qkv, batch, seq, columns, hs, ctx.has_input(kAttentionBias) ? &ctx.input(kAttentionBias) : nullptr,
         kMaskIndex);
}

// com.microsoft.QAttention: Attention on a quantized input and quantized weights (what ONNX Runtime's
// quantize_dynamic writes for an Attention node, after a DynamicQuantizeLinear of its input):
//   inputs: 0 input (uint8 or int8), 1 weight (int8 or uint8), 2 bias (float), 3 input_scale (scalar),
//   4 weight_scale (scalar or per column), 5 mask_index, 6 input_zero_point, 7 weight_zero_point (scalar
//   or per column), 8 past (refused).
// The projections are float(sum_k (x - x_zp)(w - w_zp)) * (input_scale * weight_scale) + bias, then
// everything as Attention.
enum QAttentionInput : size_t {
  kQInput = 0,
  kQWeights = 1,
  kQBias = 2,
  kQInputScale = kQAttentionInputScale,
  kQWeightScale = 4,
  kQMaskIndex = kQAttentionMaskIndex,
  kQInputZeroPoint = kQAttentionInputZeroPoint,
  kQWeightZeroPoint = 7,
  kQPast = 8,
};

bool is_8bit(ir::DType t) { return t == ir::DType::kUInt8 || t == ir::DType::kInt8; }

void infer_qattention(InferenceContext& ctx) {
  AttentionConfig c = read_config(ctx);
  refuse_state(ctx, ctx.has_input(kQPast), false, ctx.has_output(1));
  if (!is_8bit(ctx.input_type(kQInput).dtype)) ctx.fail("input must be uint8 or int8");
  if (!is_8bit(ctx.input_type(kQWeights).dtype)) ctx.fail("weight must be uint8 or int8");
  require_float32_input(ctx, kQBias, "bias");
  require_float32_input(ctx, kQInputScale, "input_scale");
  require_float32_input(ctx, kQWeightScale, "weight_scale");
  require_int32_input(ctx, kQMaskIndex, "mask_index");
  ctx.set_output(0, ir::DType::kFloat32, output_shape(ctx, c, ctx.input_type(kQInput), kQWeights));
}

// A scale or zero point: one value, or `n` (per column). Returns the values as double, one per column.
std::vector<double> per_column(const KernelContext& ctx, const ir::Tensor& t, int64_t n, const char* what) {
  if (t.numel() != 1 && !(t.rank() == 1 && t.dim(0) == n))
    ctx.fail(what, " of shape ", ir::to_string(t.shape()), " must be a scalar or ", n, " values (one per column)");
  std::vector<double> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = t.as_double(t.numel() == 1 ? 0 : i);
  return v;
}

void qattention_kernel(KernelContext& ctx) {
  AttentionConfig c = read_config(ctx);
  refuse_state(ctx, ctx.has_input(kQPast), false, ctx.has_output(1));
  const ir::Tensor& x = ctx.input(kQInput);
  const ir::Tensor& w = ctx.input(kQWeights);
  if (!is_8bit(x.dtype())) ctx.fail("input must be uint8 or int8, got ", ir::dtype_name(x.dtype()));
  if (!is_8bit(w.dtype())) ctx.fail("weight must be uint8 or int8, got ", ir::dtype_name(w.dtype()));
  check_input_and_weights(ctx, x, w, "weight");
  const int64_t batch = x.dim(0), seq = x.dim(1), in_hidden = x.dim(2), columns = w.dim(1);
  HiddenSizes hs = hidden_sizes(ctx, c, columns);
  if (!ctx.has_input(kQBias)) ctx.fail("bias (input 2) is required");
  if (!ctx.has_input(kQInputScale)) ctx.fail("input_scale (input 3) is required");
  if (!ctx.has_input(kQWeightScale)) ctx.fail("weight_scale (input 4) is required");
  const ir::Tensor& b = ctx.input(kQBias);
  require_float32(ctx, b.dtype(), "bias");
  require_vector(ctx, b, columns, "bias");
  const ir::Tensor& xs = ctx.input(kQInputScale);
  require_float32(ctx, xs.dtype(), "input_scale");
  if (xs.numel() != 1) ctx.fail("input_scale must be a scalar, got shape ", ir::to_string(xs.shape()));
  const ir::Tensor& ws = ctx.input(kQWeightScale);
  require_float32(ctx, ws.dtype(), "weight_scale");
  const std::vector<double> w_scale = per_column(ctx, ws, columns, "weight_scale");
  int64_t x_zp = 0;
  if (ctx.has_input(kQInputZeroPoint)) {
    const ir::Tensor& z = ctx.input(kQInputZeroPoint);
    if (z.dtype() != x.dtype() || z.numel() != 1)
      ctx.fail("input_zero_point must be one value of the input's type ", ir::dtype_name(x.dtype()));
    x_zp = static_cast<int64_t>(z.as_double(0));
  }
  std::vector<double> w_zp(static_cast<size_t>(columns), 0.0);
  if (ctx.has_input(kQWeightZeroPoint)) {
    const ir::Tensor& z = ctx.input(kQWeightZeroPoint);
    if (z.dtype() != w.dtype()) ctx.fail("weight_zero_point must have the weight's type ", ir::dtype_name(w.dtype()));
    w_zp = per_column(ctx, z, columns, "weight_zero_point");
  }
  const float input_scale = xs.data<float>()[0];
  std::vector<float> qkv(static_cast<size_t>(batch * seq * columns));
  for (int64_t r = 0; r < batch * seq; ++r)
    for (int64_t col = 0; col < columns; ++col) {
      int64_t acc = 0;
      for (int64_t k = 0; k < in_hidden; ++k)
        acc += (static_cast<int64_t>(x.as_double(r * in_hidden + k)) - x_zp) *
               (static_cast<int64_t>(w.as_double(k * columns + col)) - static_cast<int64_t>(w_zp[col]));
      const float scale = input_scale * static_cast<float>(w_scale[col]);
      qkv[r * columns + col] = static_cast<float>(static_cast<int32_t>(acc)) * scale + b.data<float>()[col];
    }
  attend(ctx, c, qkv, batch, seq, columns, hs, nullptr, kQMaskIndex);
}

}  // namespace

std::vector<float> attention_mask(const KernelContext& ctx, int64_t batch, int64_t seq, size_t mask_input) {
  return build_mask(ctx, read_config(ctx), batch, seq, mask_input);
}

void register_attention_ops(OpRegistry& r) {
  r.add(OpDef{kMsDomain, "Attention", kMsMinOpset, kMsMaxOpset, infer_attention, attention_kernel});
  r.add(OpDef{kMsDomain, "QAttention", kMsMinOpset, kMsMaxOpset, infer_qattention, qattention_kernel});
}

}  // namespace kiln::ops::contrib
