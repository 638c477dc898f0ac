#include "kernels/cpu/attention_kernel.h"

#include <dnnl.h>
#include <omp.h>

#include <cmath>
#include <vector>

#include "kernels/cpu/fast_kernel_util.h"
#include "kernels/cpu/onednn_matmul.h"
#include "kernels/cpu/vector_kernels.h"
#include "ops/node_view.h"

namespace kiln::kernels::cpu {

namespace {

// com.microsoft.Attention as the optimizer writes it: input [B, S, D_in], packed weights [D_in, 3D] and
// bias [3D] constants, no mask or a raw [B, S] mask, bidirectional, no past state or attention bias.
class AttentionKernel : public FastKernel {
 public:
  AttentionKernel(const MatMulSpec& spec, const float* w, const float* bias, int64_t heads, float scale,
                  float mask_filter_value)
      : qkv_(spec, w, bias), heads_(heads), scale_(scale), mask_filter_value_(mask_filter_value) {}

  bool run(ops::KernelContext& ctx) const override {
    if (!is_f32(ctx, 0)) return false;
    for (size_t i = 4; i < ctx.num_inputs(); ++i)
      if (ctx.has_input(i)) return false;
    if (ctx.num_outputs() > 1 && ctx.has_output(1)) return false;  // present state
    const ir::Tensor& x = ctx.input(0);
    const std::vector<int64_t>& s = x.shape();
    const int64_t hidden3 = qkv_.spec().n, d = hidden3 / 3, hs = d / heads_;
    if (s.size() != 3 || s[2] != qkv_.spec().k) return false;
    const int64_t batch = s[0], seq = s[1];
    const int32_t* raw_mask = nullptr;
    if (ctx.has_input(3)) {
      const ir::Tensor& m = ctx.input(3);
      if (m.dtype() != ir::DType::kInt32 || m.shape() != std::vector<int64_t>{batch, seq}) return false;
      raw_mask = m.data<int32_t>();
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
    const int threads = omp_get_max_threads();
    ir::Tensor scores = ctx.make_tensor(ir::DType::kFloat32, {threads, seq, seq});
    float* out = y.data<float>();
    const float* base = qkv.data<float>();
    float* score_base = scores.data<float>();
    const float* mask_base = raw_mask ? add_mask.data<float>() : nullptr;
    const int64_t tasks = batch * heads_;
#pragma omp parallel for schedule(static) if (tasks > 1 && seq * seq * hs > 4096)
    for (int64_t t = 0; t < tasks; ++t) {
      const int64_t b = t / heads_, h = t % heads_;
      float* sc = score_base + static_cast<size_t>(omp_get_thread_num()) * seq * seq;
      const float* q = base + b * seq * hidden3 + h * hs;
      const float* k = q + d;
      const float* v = q + 2 * d;
      dnnl_sgemm('N', 'T', seq, seq, hs, scale, q, hidden3, k, hidden3, 0.0f, sc, seq);
      SoftmaxArgs sm;
      sm.rows = seq;
      sm.n = seq;
      sm.x = sc;
      sm.y = sc;
      if (raw_mask) {
        sm.mask = mask_base + b * seq;
        sm.mask_group = seq;  // every query row reads this batch's one mask row
      }
      softmax_f32(sm);
      dnnl_sgemm('N', 'N', seq, hs, seq, 1.0f, sc, seq, v, hidden3, 0.0f, out + b * seq * d + h * hs, d);
    }
    ctx.set_output(0, std::move(y));
    return true;
  }

 private:
  PackedMatMul qkv_;
  int64_t heads_;
  float scale_;
  float mask_filter_value_;
};

}  // namespace

std::unique_ptr<FastKernel> make_attention_kernel(const ir::Node& n, const ir::Graph& g, int64_t opset) {
  ops::NodeView v(n, opset);
  int64_t heads = v.attr_int("num_heads", 0);
  if (heads <= 0 || v.attr_int("unidirectional", 0) != 0 || v.attr_int("do_rotary", 0) != 0 ||
      !v.attr_ints("qkv_hidden_sizes").empty())
    return nullptr;
  const ir::Tensor* w = float_constant(g, n, 1);
  const ir::Tensor* bias = float_constant(g, n, 2);
  if (!w || !bias || w->shape().size() != 2 || w->shape()[1] % 3 != 0 || bias->numel() != w->shape()[1]) return nullptr;
  if ((w->shape()[1] / 3) % heads != 0 || w->shape()[1] == 0) return nullptr;
  MatMulSpec spec;
  spec.k = w->shape()[0];
  spec.n = w->shape()[1];
  spec.has_bias = true;
  return std::make_unique<AttentionKernel>(spec, w->data<float>(), bias->data<float>(), heads,
                                           v.attr_float("scale", 0.0f), v.attr_float("mask_filter_value", -10000.0f));
}

}  // namespace kiln::kernels::cpu
