// The fast kernel for com.microsoft.Attention with packed QKV weights and bias as initializers and no
// past state or attention_bias: the QKV projection through PackedMatMul with the weights packed once (and
// released from the model: the kernel answers every call), then per (batch, head, block of queries) the
// tiled attention of kernels/cpu/attention_tile.h, which never holds more than one tile of scores. The raw
// (batch, sequence) mask kiln's optimizer writes is expanded per batch row; any other mask_index (lengths,
// 3-D) and unidirectional use the reference's mask builder.
//
// The same kernel runs com.microsoft.QAttention (int8 weights with zero point 0, one scale or one per
// column; the input quantized to uint8 (or int8) before it, its scale and zero point given per call): the
// projection through Int8MatMul (int8_matmul.h); the attention itself is the same float32 code.
#include "kernels/cpu/fast_kernel_table.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/attention_tile.h"
#include "kernels/cpu/fast_kernel_util.h"
#include "kernels/cpu/int8_matmul.h"
#include "kernels/cpu/onednn_matmul.h"
#include "kernels/reference/attention_mask.h"
#include "ops/node_view.h"

namespace kiln::kernels::cpu {

namespace {

// com.microsoft.Attention as the optimizer writes it: input [B, S, D_in], packed weights [D_in, 3D] and
// bias [3D] constants, no mask or a raw [B, S] mask, bidirectional, no past state or attention bias.
class AttentionKernel : public FastKernel {
 public:
  struct Options {
    int64_t heads = 0;
    float scale = 0.0f;
    float mask_filter_value = -10000.0f;
    bool unidirectional = false;
    // The products of the attention itself in bfloat16 (AttentionHeadArgs::bf16): the session asked for
    // bf16 products (FastKernelOptions), for the projection of Attention and for this of both ops.
    bool bf16 = false;
    std::vector<int64_t> w_shape;  // for messages
  };

  // Attention: float32 weights [K, N] and bias [N].
  AttentionKernel(const MatMulSpec& spec, const float* w, const float* bias, Options o)
      : f32_(std::make_unique<PackedMatMul>(spec, w, bias)), k_(spec.k), n_(spec.n), o_(std::move(o)) {}
  // QAttention: int8 weights [K, N] (zero point 0), their scale (1 or N values), float32 bias [N].
  AttentionKernel(int64_t k, int64_t n, const int8_t* w, const std::vector<float>& w_scale, const float* bias,
                  std::vector<size_t> absorbed, Options o)
      : int8_(std::make_unique<Int8MatMul>(k, n, w, w_scale, bias)),
        k_(k),
        n_(n),
        absorbed_(std::move(absorbed)),
        o_(std::move(o)) {}

  // The weights and bias live packed here; every call is answered (the factories leave past state and
  // attention_bias to the reference), bad inputs with the reference's messages.
  std::vector<size_t> absorbed_inputs() const override {
    return int8_ ? absorbed_ : std::vector<size_t>{1, 2};
  }
  // The QKV projection's engine; the attention itself runs at kiln's selected ISA.
  std::string implementation() const override {
    const std::string projection = int8_ ? int8_->implementation()
                                         : gemm_engine_implementation(f32_->engine()) + (f32_->spec().bf16 ? " bf16" : "");
    const bool core_bf16 = o_.bf16 && attention_head_runs_bf16(n_ / 3 / o_.heads);
    return projection + " + " + FastKernel::implementation() + (core_bf16 ? " bf16" : "");
  }

  bool run(ops::KernelContext& ctx) const override {
    const bool quantized = int8_ != nullptr;
    const ir::Tensor& x = ctx.input(0);
    if (!quantized && x.dtype() != ir::DType::kFloat32) ctx.fail("input must be float32, got ", ir::dtype_name(x.dtype()));
    if (quantized && x.dtype() != ir::DType::kUInt8 && x.dtype() != ir::DType::kInt8)
      ctx.fail("input must be uint8 or int8, got ", ir::dtype_name(x.dtype()));
    const ir::Dims& s = x.shape();
    if (s.size() != 3) ctx.fail("input must be 3-D (batch, sequence, input_hidden), got ", ir::to_string(s));
    if (s[2] != k_)
      ctx.fail("weights of shape ", ir::to_string(o_.w_shape), " must be 2-D with ", s[2],
               " rows (input_hidden of input ", ir::to_string(s), ")");
    const int64_t hidden3 = n_, d = hidden3 / 3, hs = d / o_.heads;
    const size_t mask_input = quantized ? ops::contrib::kQAttentionMaskIndex : ops::contrib::kAttentionMaskIndex;
    const int64_t batch = s[0], seq = s[1];
    // The common mask, a raw (batch, sequence) int32 one, is expanded per batch row here; any other
    // (lengths, 3-D, causal) is built as the reference builds it, one row per query.
    const int32_t* raw_mask = nullptr;
    std::vector<float> full_mask;
    if (ctx.has_input(mask_input) && !o_.unidirectional && ctx.input(mask_input).dtype() == ir::DType::kInt32 &&
        ctx.input(mask_input).shape() == ir::Dims{batch, seq}) {
      raw_mask = ctx.input(mask_input).data<int32_t>();
    } else if (ctx.has_input(mask_input) || o_.unidirectional) {
      full_mask = ops::contrib::attention_mask(ctx, batch, seq, mask_input);
    }
    ir::Tensor y = ctx.make_tensor(ir::DType::kFloat32, {batch, seq, d});
    if (batch * seq == 0) {
      ctx.set_output(0, std::move(y));
      return true;
    }
    // Scratch from make_tensor: in a planned run it is a slice of the arena, not a heap allocation.
    ir::Tensor qkv = ctx.make_tensor(ir::DType::kFloat32, {batch * seq, hidden3});
    if (!quantized) {
      f32_->run(batch * seq, x.data<float>(), k_, qkv.data<float>(), hidden3);
    } else {
      const ir::Tensor& x_scale = ctx.input(ops::contrib::kQAttentionInputScale);
      if (x_scale.dtype() != ir::DType::kFloat32 || x_scale.numel() != 1)
        ctx.fail("input_scale must be one float32 value, got ", ir::dtype_name(x_scale.dtype()), " ",
                 ir::to_string(x_scale.shape()));
      int zp = 0;
      if (ctx.has_input(ops::contrib::kQAttentionInputZeroPoint)) {
        const ir::Tensor& z = ctx.input(ops::contrib::kQAttentionInputZeroPoint);
        if (z.dtype() != x.dtype() || z.numel() != 1)
          ctx.fail("input_zero_point must be one value of the input's type ", ir::dtype_name(x.dtype()), ", got ",
                   ir::dtype_name(z.dtype()), " ", ir::to_string(z.shape()));
        zp = z.dtype() == ir::DType::kUInt8 ? z.data<uint8_t>()[0] : z.data<int8_t>()[0];
      }
      const uint8_t* q = nullptr;
      ir::Tensor shifted;
      if (x.dtype() == ir::DType::kInt8) {
        // int8 as uint8: x - zp == (x + 128) - (zp + 128), and x + 128 is x's bits with the top one flipped.
        shifted = ctx.make_tensor(ir::DType::kUInt8, x.shape());
        const auto* in = reinterpret_cast<const uint8_t*>(x.data<int8_t>());
        uint8_t* out = shifted.data<uint8_t>();
        for (int64_t i = 0; i < x.numel(); ++i) out[i] = in[i] ^ 0x80u;
        q = out;
        zp += 128;
      } else {
        q = x.data<uint8_t>();
      }
      int8_->run(batch * seq, q, x_scale.data<float>()[0], static_cast<uint8_t>(zp), qkv.data<float>());
    }
    // The additive mask per batch row: 0 where the raw mask attends (> 0), mask_filter_value elsewhere.
    ir::Tensor add_mask;
    if (raw_mask) {
      add_mask = ctx.make_tensor(ir::DType::kFloat32, {batch, seq});
      float* am = add_mask.data<float>();
      for (int64_t i = 0; i < batch * seq; ++i) am[i] = raw_mask[i] > 0 ? 0.0f : o_.mask_filter_value;
    }
    const float scale = o_.scale != 0.0f ? o_.scale : 1.0f / std::sqrt(static_cast<float>(hs));
    float* out = y.data<float>();
    const float* base = qkv.data<float>();
    const float* mask_base = raw_mask ? add_mask.data<float>() : full_mask.empty() ? nullptr : full_mask.data();
    // One task per batch row, head and block of queries (equal blocks of at most kAttentionQueryBlock);
    // each streams its keys tile by tile.
    const int64_t query_blocks = (seq + kAttentionQueryBlock - 1) / kAttentionQueryBlock;
    const int64_t block = (seq + query_blocks - 1) / std::max<int64_t>(query_blocks, 1);
    const int64_t tasks = batch * o_.heads * query_blocks;
    parallel_for_dynamic(tasks > 1 && seq * seq * hs > 4096, tasks, [&](int64_t t) {
      const int64_t b = t / (o_.heads * query_blocks), h = t / query_blocks % o_.heads;
      const int64_t q0 = t % query_blocks * block;
      const float* rows = base + b * seq * hidden3 + h * hs;  // this batch row's q of head h; k and v follow
      AttentionHeadArgs a;
      a.queries = std::min(block, seq - q0);
      a.keys = seq;
      a.head_size = hs;
      a.q = rows + q0 * hidden3;
      a.k = rows + d;
      a.v = rows + 2 * d;
      a.ldq = a.ldk = a.ldv = hidden3;
      a.scale = scale;
      a.bf16 = o_.bf16;
      if (raw_mask) {
        a.mask = mask_base + b * seq;  // one mask row for every query of this batch row
      } else if (mask_base) {
        a.mask = mask_base + (b * seq + q0) * seq;  // a mask row per query
        a.mask_stride = seq;
      }
      a.out = out + (b * seq + q0) * d + h * hs;
      a.ldo = d;
      attention_head(a);
    });
    ctx.set_output(0, std::move(y));
    return true;
  }

 private:
  std::unique_ptr<PackedMatMul> f32_;  // Attention
  std::unique_ptr<Int8MatMul> int8_;   // QAttention
  int64_t k_, n_;
  std::vector<size_t> absorbed_;
  Options o_;
};

AttentionKernel::Options options(const ops::NodeView& v, int64_t heads, const ir::Dims& w_shape,
                                 const FastKernelOptions& fast_options) {
  AttentionKernel::Options o;
  o.bf16 = fast_options.bf16_matmul;
  o.heads = heads;
  o.scale = v.attr_float("scale", 0.0f);
  o.mask_filter_value = v.attr_float("mask_filter_value", -10000.0f);
  o.unidirectional = v.attr_int("unidirectional", 0) != 0;
  o.w_shape = w_shape;
  return o;
}

std::unique_ptr<FastKernel> make_attention_kernel(const ir::Node& n, const ir::Graph& g, int64_t opset,
                                                  const FastKernelOptions& fast_options) {
  ops::NodeView v(n, opset);
  int64_t heads = v.attr_int("num_heads", 0);
  if (heads <= 0 || v.attr_int("do_rotary", 0) != 0 || !v.attr_ints("qkv_hidden_sizes").empty()) return nullptr;
  // Past / present state and attention_bias stay with the reference (which refuses the state).
  for (size_t i = 4; i < n.inputs.size(); ++i)
    if (!n.inputs[i].empty()) return nullptr;
  for (size_t i = 1; i < n.outputs.size(); ++i)
    if (!n.outputs[i].empty()) return nullptr;
  const ir::Tensor* w = float_constant(g, n, 1);
  const ir::Tensor* bias = float_constant(g, n, 2);
  if (!w || !bias || w->shape().size() != 2 || w->shape()[1] % 3 != 0 || bias->numel() != w->shape()[1]) return nullptr;
  if ((w->shape()[1] / 3) % heads != 0 || w->shape()[1] == 0) return nullptr;
  MatMulSpec spec;
  spec.k = w->shape()[0];
  spec.n = w->shape()[1];
  spec.has_bias = true;
  spec.bf16 = fast_options.bf16_matmul;
  return std::make_unique<AttentionKernel>(spec, w->data<float>(), bias->data<float>(),
                                           options(v, heads, w->shape(), fast_options));
}

// QAttention: int8 weights [K, 3D] with zero point 0 (absent, or zeros), a float32 weight scale (1 or 3D
// values) and bias [3D], all constants; input_scale and input_zero_point come with each call. No past.
std::unique_ptr<FastKernel> make_qattention_kernel(const ir::Node& n, const ir::Graph& g, int64_t opset,
                                                   const FastKernelOptions& fast_options) {
  ops::NodeView v(n, opset);
  int64_t heads = v.attr_int("num_heads", 0);
  if (heads <= 0 || v.attr_int("do_rotary", 0) != 0 || !v.attr_ints("qkv_hidden_sizes").empty()) return nullptr;
  if (n.inputs.size() > 8 && !n.inputs[8].empty()) return nullptr;  // past state
  for (size_t i = 1; i < n.outputs.size(); ++i)
    if (!n.outputs[i].empty()) return nullptr;
  auto constant = [&](size_t i) -> const ir::Tensor* {
    return i < n.inputs.size() && !n.inputs[i].empty() ? g.find_initializer(n.inputs[i]) : nullptr;
  };
  const ir::Tensor* w = constant(1);
  const ir::Tensor* bias = float_constant(g, n, 2);
  const ir::Tensor* scale = float_constant(g, n, 4);
  if (!w || w->dtype() != ir::DType::kInt8 || w->shape().size() != 2 || w->shape()[1] % 3 != 0 || w->numel() == 0)
    return nullptr;
  const int64_t cols = w->shape()[1];
  if ((cols / 3) % heads != 0 || !bias || bias->shape() != ir::Dims{cols}) return nullptr;
  if (!scale || (scale->numel() != 1 && scale->shape() != ir::Dims{cols})) return nullptr;
  std::vector<size_t> absorbed = {1, 2, 4};
  if (n.inputs.size() > 7 && !n.inputs[7].empty()) {
    const ir::Tensor* zp = constant(7);
    if (!zp || zp->dtype() != ir::DType::kInt8) return nullptr;
    for (int64_t i = 0; i < zp->numel(); ++i)
      if (zp->data<int8_t>()[i] != 0) return nullptr;
    absorbed.push_back(7);
  }
  std::vector<float> scales(scale->data<float>(), scale->data<float>() + scale->numel());
  return std::make_unique<AttentionKernel>(w->shape()[0], cols, w->data<int8_t>(), scales, bias->data<float>(),
                                           std::move(absorbed), options(v, heads, w->shape(), fast_options));
}

}  // namespace

std::span<const FastKernelEntry> attention_kernel_entries() {
  static const FastKernelEntry kEntries[] = {
      {"com.microsoft", "Attention", 1, kLatestOpset, dtype_set({ir::DType::kFloat32}),
       [](const ir::Node& n, const ir::Graph& g, int64_t opset) { return make_attention_kernel(n, g, opset, {}); },
       make_attention_kernel},
      {"com.microsoft", "QAttention", 1, kLatestOpset, dtype_set({ir::DType::kUInt8, ir::DType::kInt8}),
       [](const ir::Node& n, const ir::Graph& g, int64_t opset) { return make_qattention_kernel(n, g, opset, {}); },
       make_qattention_kernel},
  };
  return kEntries;
}

}  // namespace kiln::kernels::cpu
