#include "kernels/cpu/fast_kernels.h"

#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "common/error.h"
#include "kernels/cpu/attention_kernel.h"
#include "kernels/cpu/conv_kernel.h"
#include "kernels/cpu/fast_kernel_util.h"
#include "kernels/cpu/onednn_matmul.h"
#include "kernels/cpu/pool_kernel.h"
#include "kernels/cpu/vector_kernels.h"
#include "ops/node_view.h"

namespace kiln::kernels::cpu {

namespace {

constexpr const char* kMs = "com.microsoft";

// ---- MatMul / Gemm ---------------------------------------------------------------------------------

// A[..., K] x B[K, N] (MatMul), or Gemm's alpha * A[M, K] x B (+ beta * C[N]) with B as given or transposed.
// B (and Gemm's C) are absorbed: every call is answered here, a bad A with the reference's message.
class MatMulKernel : public FastKernel {
 public:
  MatMulKernel(const MatMulSpec& spec, const float* b, const float* bias, bool gemm, std::vector<int64_t> b_shape)
      : mm_(spec, b, bias), gemm_(gemm), b_shape_(std::move(b_shape)) {}

  bool run(ops::KernelContext& ctx) const override {
    const ir::Tensor& a = ctx.input(0);
    if (a.dtype() != ir::DType::kFloat32)
      ctx.fail("inputs have different element types ", ir::dtype_name(a.dtype()), " and float32");
    const ir::Dims& s = a.shape();
    if (gemm_ && s.size() != 2) ctx.fail("A must be 2-D, got ", ir::to_string(s));
    if (s.empty()) ctx.fail("MatMul inputs must have rank >= 1, got scalars");
    if (s.back() != mm_.spec().k)
      ctx.fail("inner dimensions differ: ", ir::to_string(s), " x ", ir::to_string(b_shape_));
    ir::Dims out_shape = s;
    if (s.size() == 1)
      out_shape = {mm_.spec().n};  // [K] x [K, N] -> [N]: one row
    else
      out_shape.back() = mm_.spec().n;
    ir::Tensor y = ctx.make_tensor(ir::DType::kFloat32, out_shape);
    mm_.run(rows_of(s.size() == 1 ? ir::Dims{1, s[0]} : s), a.data<float>(), mm_.spec().k,
            y.data<float>(), mm_.spec().n);
    ctx.set_output(0, std::move(y));
    return true;
  }
  std::vector<size_t> absorbed_inputs() const override {
    return gemm_ && mm_.spec().has_bias ? std::vector<size_t>{1, 2} : std::vector<size_t>{1};
  }

 private:
  PackedMatMul mm_;
  bool gemm_;
  std::vector<int64_t> b_shape_;  // for messages
};

std::unique_ptr<FastKernel> make_matmul(const ir::Node& n, const ir::Graph& g) {
  const ir::Tensor* b = float_constant(g, n, 1);
  if (!b || b->shape().size() != 2 || b->numel() == 0) return nullptr;
  MatMulSpec spec;
  spec.k = b->shape()[0];
  spec.n = b->shape()[1];
  return std::make_unique<MatMulKernel>(spec, b->data<float>(), nullptr, false, b->shape());
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
  return std::make_unique<MatMulKernel>(spec, b->data<float>(), spec.has_bias ? bias.data() : nullptr, true,
                                        b->shape());
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
    const ir::Dims& s = x.shape();
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
  // layer_norm_f32 writes a row of y after reading that row of x (and skip): y may be either.
  std::vector<size_t> in_place_inputs() const override { return skip_ ? std::vector<size_t>{0, 1} : std::vector<size_t>{0}; }

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
    const ir::Dims& s = x.shape();
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
  std::vector<size_t> in_place_inputs() const override { return {0}; }

 private:
  GeluKind kind_;
};

std::unique_ptr<FastKernel> make_gelu(GeluKind kind) { return std::make_unique<GeluKernel>(kind); }

// ONNX Gelu (opset 20): approximate "none" is the erf form, "tanh" the tanh form; one input, no bias.
std::unique_ptr<FastKernel> make_onnx_gelu(const ir::Node& n, const ir::Graph&, int64_t opset) {
  if (n.inputs.size() != 1) return nullptr;
  std::string approximate = ops::NodeView(n, opset).attr_string("approximate", "none");
  if (approximate == "none") return make_gelu(GeluKind::kErf);
  if (approximate == "tanh") return make_gelu(GeluKind::kTanh);
  return nullptr;  // the reference kernel refuses it with its message
}

// ---- Softmax -------------------------------------------------------------------------------------------

// ONNX Softmax over the last axis: opset 13's per-axis softmax, or an older opset's softmax over the
// dims flattened from `axis` on, when that is the last dim alone. Other axes stay with the reference.
// (Attention fused by the optimizer has its own softmax; this serves graphs where it was not fused.)
class SoftmaxKernel : public FastKernel {
 public:
  explicit SoftmaxKernel(int64_t axis) : axis_(axis) {}

  bool run(ops::KernelContext& ctx) const override {
    if (!is_f32(ctx, 0)) return false;
    const ir::Tensor& x = ctx.input(0);
    const ir::Dims& s = x.shape();
    const auto rank = static_cast<int64_t>(s.size());
    if (rank == 0 || (axis_ < 0 ? axis_ + rank : axis_) != rank - 1) return false;
    ir::Tensor y = ctx.make_tensor(ir::DType::kFloat32, s);
    SoftmaxArgs a;
    a.rows = rows_of(s);
    a.n = s.back();
    a.x = x.data<float>();
    a.y = y.data<float>();
    if (a.rows > 0 && a.n > 0) softmax_f32(a);
    ctx.set_output(0, std::move(y));
    return true;
  }
  std::vector<size_t> in_place_inputs() const override { return {0}; }  // softmax_f32: y may be x

 private:
  int64_t axis_;
};

std::unique_ptr<FastKernel> make_softmax(const ir::Node& n, const ir::Graph&, int64_t opset) {
  return std::make_unique<SoftmaxKernel>(ops::NodeView(n, opset).attr_int("axis", opset >= 13 ? -1 : 1));
}

}  // namespace

std::unique_ptr<FastKernel> make_fast_kernel(const ir::Node& n, const ir::Graph& g, int64_t opset) {
  // The one list of fast kernels: (domain, op) -> its factory, which may still decline the node
  // (nullptr) for attributes or constants it does not cover. FusedConv is declared in com.microsoft
  // and in ai.kiln, one kernel for both.
  using Factory = std::unique_ptr<FastKernel> (*)(const ir::Node&, const ir::Graph&, int64_t);
  struct Entry {
    const char* domain;  // "" : ai.onnx
    const char* op;
    Factory make;
  };
  static const Entry kTable[] = {
      {"", "MatMul", [](const ir::Node& n, const ir::Graph& g, int64_t) { return make_matmul(n, g); }},
      {"", "Gemm", make_gemm},
      {"", "Conv", make_conv_kernel},
      {kMs, "FusedConv", make_conv_kernel},
      {"ai.kiln", "FusedConv", make_conv_kernel},
      {kMs, "Attention", make_attention_kernel},
      {"", "LayerNormalization",
       [](const ir::Node& n, const ir::Graph&, int64_t opset) { return make_layer_norm(n, opset, false); }},
      {kMs, "SkipLayerNormalization",
       [](const ir::Node& n, const ir::Graph&, int64_t opset) { return make_layer_norm(n, opset, true); }},
      {"", "Gelu", make_onnx_gelu},
      {kMs, "Gelu", [](const ir::Node&, const ir::Graph&, int64_t) { return make_gelu(GeluKind::kErf); }},
      {kMs, "BiasGelu", [](const ir::Node&, const ir::Graph&, int64_t) { return make_gelu(GeluKind::kErf); }},
      {kMs, "FastGelu", [](const ir::Node&, const ir::Graph&, int64_t) { return make_gelu(GeluKind::kTanh); }},
      {"", "Softmax", make_softmax},
      {"", "MaxPool", [](const ir::Node& n, const ir::Graph&, int64_t opset) { return make_pool_kernel(n, opset); }},
      {"", "GlobalAveragePool",
       [](const ir::Node& n, const ir::Graph&, int64_t opset) { return make_pool_kernel(n, opset); }},
  };
  const bool onnx = ir::is_default_domain(n.domain);
  for (const Entry& e : kTable)
    if (n.op_type == e.op && (onnx ? *e.domain == '\0' : n.domain == e.domain)) return e.make(n, g, opset);
  return nullptr;
}

}  // namespace kiln::kernels::cpu
