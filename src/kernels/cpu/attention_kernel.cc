// The fast kernel for com.microsoft.Attention with packed QKV weights and bias as initializers and no
// past state or attention_bias: the QKV projection through PackedMatMul with the weights packed once (and
// released from the model: the kernel answers every call), then per (batch, head, block of queries) the
// tiled attention of kernels/cpu/attention_tile.h, which never holds more than one tile of scores. The raw
// (batch, sequence) mask kiln's optimizer writes is expanded per batch row; any other mask_index (lengths,
// 3-D) and unidirectional use the reference's mask builder.
#include "kernels/cpu/fast_kernel_table.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/attention_tile.h"
#include "kernels/cpu/fast_kernel_util.h"
#include "kernels/cpu/onednn_matmul.h"
#include "kernels/reference/attention_mask.h"
#include "ops/node_view.h"

namespace kiln::kernels::cpu {

namespace {

// com.microsoft.Attention as the optimizer writes it: input [B, S, D_in], packed weights [D_in, 3D] and
// bias [3D] constants, no mask or a raw [B, S] mask, bidirectional, no past state or attention bias.
class AttentionKernel : public FastKernel {
 public:
  AttentionKernel(const MatMulSpec& spec, const float* w, const float* bias, int64_t heads, float scale,
                  float mask_filter_value, bool unidirectional, std::vector<int64_t> w_shape)
      : qkv_(spec, w, bias),
        heads_(heads),
        scale_(scale),
        mask_filter_value_(mask_filter_value),
        unidirectional_(unidirectional),
        w_shape_(std::move(w_shape)) {}

  // The weights and bias live packed here; every call is answered (make_attention_kernel leaves past
  // state and attention_bias to the reference), bad inputs with the reference's messages.
  std::vector<size_t> absorbed_inputs() const override { return {1, 2}; }
  // The QKV projection's engine; the attention itself runs at kiln's selected ISA.
  std::string implementation() const override {
    return gemm_engine_implementation(qkv_.engine()) + " + " + FastKernel::implementation();
  }

  bool run(ops::KernelContext& ctx) const override {
    const ir::Tensor& x = ctx.input(0);
    if (x.dtype() != ir::DType::kFloat32) ctx.fail("input must be float32, got ", ir::dtype_name(x.dtype()));
    const ir::Dims& s = x.shape();
    if (s.size() != 3) ctx.fail("input must be 3-D (batch, sequence, input_hidden), got ", ir::to_string(s));
    if (s[2] != qkv_.spec().k)
      ctx.fail("weights of shape ", ir::to_string(w_shape_), " must be 2-D with ", s[2],
               " rows (input_hidden of input ", ir::to_string(s), ")");
    const int64_t hidden3 = qkv_.spec().n, d = hidden3 / 3, hs = d / heads_;
    const int64_t batch = s[0], seq = s[1];
    // The common mask, a raw (batch, sequence) int32 one, is expanded per batch row here; any other
    // (lengths, 3-D, causal) is built as the reference builds it, one row per query.
    const int32_t* raw_mask = nullptr;
    std::vector<float> full_mask;
    if (ctx.has_input(3) && !unidirectional_ && ctx.input(3).dtype() == ir::DType::kInt32 &&
        ctx.input(3).shape() == ir::Dims{batch, seq}) {
      raw_mask = ctx.input(3).data<int32_t>();
    } else if (ctx.has_input(3) || unidirectional_) {
      full_mask = ops::contrib::attention_mask(ctx, batch, seq);
    }
    ir::Tensor y = ctx.make_tensor(ir::DType::kFloat32, {batch, seq, d});
    if (batch * seq == 0) {
      ctx.set_output(0, std::move(y));
      return true;
    }
    // Scratch from make_tensor: in a planned run it is a slice of the arena, not a heap allocation.
    ir::Tensor qkv = ctx.make_tensor(ir::DType::kFloat32, {batch * seq, hidden3});
    qkv_.run(batch * seq, x.data<float>(), qkv_.spec().k, qkv.data<float>(), hidden3);
    // The additive mask per batch row: 0 where the raw mask attends (> 0), mask_filter_value elsewhere.
    ir::Tensor add_mask;
    if (raw_mask) {
      add_mask = ctx.make_tensor(ir::DType::kFloat32, {batch, seq});
      float* am = add_mask.data<float>();
      for (int64_t i = 0; i < batch * seq; ++i) am[i] = raw_mask[i] > 0 ? 0.0f : mask_filter_value_;
    }
    const float scale = scale_ != 0.0f ? scale_ : 1.0f / std::sqrt(static_cast<float>(hs));
    float* out = y.data<float>();
    const float* base = qkv.data<float>();
    const float* mask_base = raw_mask ? add_mask.data<float>() : full_mask.empty() ? nullptr : full_mask.data();
    // One task per batch row, head and block of queries (equal blocks of at most kAttentionQueryBlock);
    // each streams its keys tile by tile.
    const int64_t query_blocks = (seq + kAttentionQueryBlock - 1) / kAttentionQueryBlock;
    const int64_t block = (seq + query_blocks - 1) / std::max<int64_t>(query_blocks, 1);
    const int64_t tasks = batch * heads_ * query_blocks;
    parallel_for_dynamic(tasks > 1 && seq * seq * hs > 4096, tasks, [&](int64_t t) {
      const int64_t b = t / (heads_ * query_blocks), h = t / query_blocks % heads_;
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
  PackedMatMul qkv_;
  int64_t heads_;
  float scale_;
  float mask_filter_value_;
  bool unidirectional_;
  std::vector<int64_t> w_shape_;  // for messages
};

std::unique_ptr<FastKernel> make_attention_kernel(const ir::Node& n, const ir::Graph& g, int64_t opset) {
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
  return std::make_unique<AttentionKernel>(spec, w->data<float>(), bias->data<float>(), heads,
                                           v.attr_float("scale", 0.0f), v.attr_float("mask_filter_value", -10000.0f),
                                           v.attr_int("unidirectional", 0) != 0, w->shape());
}

}  // namespace

std::span<const FastKernelEntry> attention_kernel_entries() {
  static const FastKernelEntry kEntries[] = {
      {"com.microsoft", "Attention", 1, kLatestOpset, dtype_set({ir::DType::kFloat32}), make_attention_kernel},
  };
  return kEntries;
}

}  // namespace kiln::kernels::cpu
