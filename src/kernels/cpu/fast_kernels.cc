#include "kernels/cpu/fast_kernels.h"

#include <dnnl.h>
#include <omp.h>

#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "common/error.h"
#include "kernels/cpu/onednn_matmul.h"
#include "kernels/cpu/vector_kernels.h"
#include "ops/node_view.h"

namespace kiln::kernels::cpu {

namespace {

constexpr const char* kMs = "com.microsoft";

const ir::Tensor* float_constant(const ir::Graph& g, const ir::Node& n, size_t i) {
  if (i >= n.inputs.size() || n.inputs[i].empty()) return nullptr;
  const ir::Tensor* t = g.find_initializer(n.inputs[i]);
  return t && t->dtype() == ir::DType::kFloat32 ? t : nullptr;
}

bool is_f32(const ops::KernelContext& ctx, size_t i) {
  return ctx.has_input(i) && ctx.input(i).dtype() == ir::DType::kFloat32;
}

int64_t rows_of(const std::vector<int64_t>& shape) {
  int64_t r = 1;
  for (size_t i = 0; i + 1 < shape.size(); ++i) r *= shape[i];
  return r;
}

// ---- MatMul / Gemm ---------------------------------------------------------------------------------

// A[..., K] x B[K, N] (MatMul), or Gemm's alpha * A[M, K] x B (+ beta * C[N]) with B as given or transposed.
class MatMulKernel : public FastKernel {
 public:
  MatMulKernel(const MatMulSpec& spec, const float* b, const float* bias, bool gemm)
      : mm_(spec, b, bias), gemm_(gemm) {}

  bool run(ops::KernelContext& ctx) const override {
    if (!is_f32(ctx, 0)) return false;
    const ir::Tensor& a = ctx.input(0);
    const std::vector<int64_t>& s = a.shape();
    if (s.size() < 2 || s.back() != mm_.spec().k || (gemm_ && s.size() != 2)) return false;
    std::vector<int64_t> out_shape = s;
    out_shape.back() = mm_.spec().n;
    ir::Tensor y = ctx.make_tensor(ir::DType::kFloat32, out_shape);
    mm_.run(rows_of(s), a.data<float>(), mm_.spec().k, y.data<float>(), mm_.spec().n);
    ctx.set_output(0, std::move(y));
    return true;
  }

 private:
  PackedMatMul mm_;
  bool gemm_;
};

std::unique_ptr<FastKernel> make_matmul(const ir::Node& n, const ir::Graph& g) {
  const ir::Tensor* b = float_constant(g, n, 1);
  if (!b || b->shape().size() != 2 || b->numel() == 0) return nullptr;
  MatMulSpec spec;
  spec.k = b->shape()[0];
  spec.n = b->shape()[1];
  return std::make_unique<MatMulKernel>(spec, b->data<float>(), nullptr, false);
}

std::unique_ptr<FastKernel> make_gemm(const ir::Node& n, const ir::Graph& g, int64_t opset) {
  ops::NodeView v(n, opset);
  if (v.attr_int("transA", 0) != 0) return nullptr;
  const ir::Tensor* b = float_constant(g, n, 1);
  if (!b || b->shape().size() != 2 || b->numel() == 0) return nullptr;
  MatMulSpec spec;
  spec.trans_b = v.attr_int("transB", 0) != 0;
  spec.k = b->shape()[spec.trans_b ? 1 : 0];
  spec.n = b->shape()[spec.trans_b ? 0 : 1];
  spec.alpha = v.attr_float("alpha", 1.0f);
  std::vector<float> bias;
  if (n.inputs.size() > 2 && !n.inputs[2].empty()) {
    const ir::Tensor* c = float_constant(g, n, 2);
    // A row bias only: C of [N] or [1, N] (a full [M, N] C depends on M; the reference handles it).
    if (!c || c->numel() != spec.n || (c->shape().size() == 2 && c->shape()[0] != 1) || c->shape().size() > 2)
      return nullptr;
    float beta = v.attr_float("beta", 1.0f);
    bias.resize(static_cast<size_t>(spec.n));
    for (int64_t i = 0; i < spec.n; ++i) bias[i] = beta * c->data<float>()[i];
    spec.has_bias = true;
  }
  return std::make_unique<MatMulKernel>(spec, b->data<float>(), spec.has_bias ? bias.data() : nullptr, true);
}

// ---- Attention ---------------------------------------------------------------------------------------

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
    std::vector<float> qkv(static_cast<size_t>(batch * seq * hidden3));
    qkv_.run(batch * seq, x.data<float>(), qkv_.spec().k, qkv.data(), hidden3);
    // The additive mask per batch row: 0 where the raw mask attends (> 0), mask_filter_value elsewhere.
    std::vector<float> add_mask;
    if (raw_mask) {
      add_mask.resize(static_cast<size_t>(batch * seq));
      for (int64_t i = 0; i < batch * seq; ++i) add_mask[i] = raw_mask[i] > 0 ? 0.0f : mask_filter_value_;
    }
    const float scale = scale_ != 0.0f ? scale_ : 1.0f / std::sqrt(static_cast<float>(hs));
    const int threads = omp_get_max_threads();
    std::vector<float> scores(static_cast<size_t>(threads) * seq * seq);
    float* out = y.data<float>();
    const float* base = qkv.data();
    const int64_t tasks = batch * heads_;
#pragma omp parallel for schedule(static) if (tasks > 1 && seq * seq * hs > 4096)
    for (int64_t t = 0; t < tasks; ++t) {
      const int64_t b = t / heads_, h = t % heads_;
      float* sc = scores.data() + static_cast<size_t>(omp_get_thread_num()) * seq * seq;
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
        sm.mask = add_mask.data() + b * seq;
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

std::unique_ptr<FastKernel> make_attention(const ir::Node& n, const ir::Graph& g, int64_t opset) {
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

// ---- Layer norms ---------------------------------------------------------------------------------------

// LayerNormalization over the last dim (axis -1), or com.microsoft.SkipLayerNormalization with a skip of
// the input's shape; the mean / inverse-std outputs are left to the reference kernel.
class LayerNormKernel : public FastKernel {
 public:
  LayerNormKernel(bool skip, float epsilon) : skip_(skip), epsilon_(epsilon) {}

  bool run(ops::KernelContext& ctx) const override {
    // Inputs: LayerNormalization (X, Scale, B); SkipLayerNormalization (input, skip, gamma, beta, bias).
    const size_t gamma_i = skip_ ? 2 : 1, beta_i = skip_ ? 3 : 2;
    if (!is_f32(ctx, 0) || !is_f32(ctx, gamma_i)) return false;
    if (ctx.has_output(1) || ctx.has_output(2)) return false;
    const ir::Tensor& x = ctx.input(0);
    const std::vector<int64_t>& s = x.shape();
    if (s.empty()) return false;
    const int64_t n = s.back();
    if (ctx.input(gamma_i).numel() != n) return false;
    LayerNormArgs a;
    a.rows = rows_of(s);
    a.n = n;
    a.x = x.data<float>();
    a.gamma = ctx.input(gamma_i).data<float>();
    if (ctx.has_input(beta_i)) {
      if (!is_f32(ctx, beta_i) || ctx.input(beta_i).numel() != n) return false;
      a.beta = ctx.input(beta_i).data<float>();
    }
    a.epsilon = epsilon_;
    ir::Tensor sum;
    if (skip_) {
      if (!is_f32(ctx, 1) || ctx.input(1).shape() != s) return false;
      a.skip = ctx.input(1).data<float>();
      if (ctx.has_input(4)) {
        if (!is_f32(ctx, 4) || ctx.input(4).numel() != n) return false;
        a.bias = ctx.input(4).data<float>();
      }
      if (ctx.has_output(3)) {
        sum = ctx.make_tensor(ir::DType::kFloat32, s);
        a.sum = sum.data<float>();
      }
    }
    ir::Tensor y = ctx.make_tensor(ir::DType::kFloat32, s);
    a.y = y.data<float>();
    if (a.rows > 0 && n > 0) layer_norm_f32(a);
    ctx.set_output(0, std::move(y));
    if (sum.defined()) ctx.set_output(3, std::move(sum));
    return true;
  }

 private:
  bool skip_;
  float epsilon_;
};

std::unique_ptr<FastKernel> make_layer_norm(const ir::Node& n, int64_t opset, bool skip) {
  ops::NodeView v(n, opset);
  if (!skip && v.attr_int("axis", -1) != -1) return nullptr;
  if (!skip && v.attr_int("stash_type", 1) != 1) return nullptr;
  return std::make_unique<LayerNormKernel>(skip, v.attr_float("epsilon", skip ? 1e-12f : 1e-5f));
}

// ---- GELU ----------------------------------------------------------------------------------------------

// Gelu(X), FastGelu(X [, bias]), BiasGelu(A, bias): y = gelu(x + bias), the bias a row over the last dim.
class GeluKernel : public FastKernel {
 public:
  explicit GeluKernel(GeluKind kind) : kind_(kind) {}

  bool run(ops::KernelContext& ctx) const override {
    if (!is_f32(ctx, 0)) return false;
    const ir::Tensor& x = ctx.input(0);
    const std::vector<int64_t>& s = x.shape();
    const int64_t n = s.empty() ? 1 : s.back();
    const float* bias = nullptr;
    if (ctx.has_input(1)) {
      if (!is_f32(ctx, 1) || ctx.input(1).shape().size() != 1 || ctx.input(1).numel() != n) return false;
      bias = ctx.input(1).data<float>();
    }
    ir::Tensor y = ctx.make_tensor(ir::DType::kFloat32, s);
    if (x.numel() > 0) gelu_f32(kind_, x.data<float>(), bias, y.data<float>(), x.numel() / n, n);
    ctx.set_output(0, std::move(y));
    return true;
  }

 private:
  GeluKind kind_;
};

}  // namespace

std::unique_ptr<FastKernel> make_fast_kernel(const ir::Node& n, const ir::Graph& g, int64_t opset) {
  if (ir::is_default_domain(n.domain)) {
    if (n.op_type == "MatMul") return make_matmul(n, g);
    if (n.op_type == "Gemm") return make_gemm(n, g, opset);
    if (n.op_type == "LayerNormalization") return make_layer_norm(n, opset, false);
    return nullptr;
  }
  if (n.domain != kMs) return nullptr;
  if (n.op_type == "Attention") return make_attention(n, g, opset);
  if (n.op_type == "SkipLayerNormalization") return make_layer_norm(n, opset, true);
  if (n.op_type == "Gelu" || n.op_type == "BiasGelu") return std::make_unique<GeluKernel>(GeluKind::kErf);
  if (n.op_type == "FastGelu") return std::make_unique<GeluKernel>(GeluKind::kTanh);
  return nullptr;
}

}  // namespace kiln::kernels::cpu
