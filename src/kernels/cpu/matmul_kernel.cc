// MatMul with a constant B, and Gemm with a constant B (and row-bias C): B packed once into a PackedMatMul
// (oneDNN or kiln's panel GEMM, onednn_matmul.h), A read in place. The others go to dynamic_gemm_kernel.h.
#include <string>
#include <utility>
#include <vector>

#include "kernels/cpu/dynamic_gemm_kernel.h"
#include "kernels/cpu/fast_kernel_table.h"
#include "kernels/cpu/fast_kernel_util.h"
#include "kernels/cpu/onednn_matmul.h"
#include "ops/node_view.h"

namespace kiln::kernels::cpu {

namespace {

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
  std::string implementation() const override {
    return gemm_engine_implementation(mm_.engine()) + (mm_.spec().bf16 ? " bf16" : "");
  }

 private:
  PackedMatMul mm_;
  bool gemm_;
  std::vector<int64_t> b_shape_;  // for messages
};

std::unique_ptr<FastKernel> make_matmul(const ir::Node& n, const ir::Graph& g, int64_t,
                                        const FastKernelOptions& options) {
  const ir::Tensor* b = float_constant(g, n, 1);
  if (!b || b->shape().size() != 2) return make_batched_matmul_kernel();
  if (b->numel() == 0) return nullptr;
  MatMulSpec spec;
  spec.k = b->shape()[0];
  spec.n = b->shape()[1];
  spec.bf16 = options.bf16_matmul;
  return std::make_unique<MatMulKernel>(spec, b->data<float>(), nullptr, false, b->shape());
}

std::unique_ptr<FastKernel> make_gemm(const ir::Node& n, const ir::Graph& g, int64_t opset,
                                      const FastKernelOptions& options) {
  ops::NodeView v(n, opset);
  const bool trans_a = v.attr_int("transA", 0) != 0, trans_b = v.attr_int("transB", 0) != 0;
  auto dynamic = [&] {
    return make_dynamic_gemm_kernel(trans_a, trans_b, v.attr_float("alpha", 1.0f), v.attr_float("beta", 1.0f));
  };
  const ir::Tensor* b = float_constant(g, n, 1);
  if (trans_a || !b || b->shape().size() != 2) return dynamic();
  if (b->numel() == 0) return nullptr;
  MatMulSpec spec;
  spec.trans_b = trans_b;
  spec.k = b->shape()[spec.trans_b ? 1 : 0];
  spec.n = b->shape()[spec.trans_b ? 0 : 1];
  spec.alpha = v.attr_float("alpha", 1.0f);
  spec.bf16 = options.bf16_matmul;
  std::vector<float> bias;
  if (n.inputs.size() > 2 && !n.inputs[2].empty()) {
    const ir::Tensor* c = float_constant(g, n, 2);
    // A row bias only: C of [N] or [1, N] (a full [M, N] C depends on M; the reference handles it).
    if (!c || c->numel() != spec.n || (c->shape().size() == 2 && c->shape()[0] != 1) || c->shape().size() > 2)
      return dynamic();
    float beta = v.attr_float("beta", 1.0f);
    bias.resize(static_cast<size_t>(spec.n));
    for (int64_t i = 0; i < spec.n; ++i) bias[i] = beta * c->data<float>()[i];
    spec.has_bias = true;
  }
  return std::make_unique<MatMulKernel>(spec, b->data<float>(), spec.has_bias ? bias.data() : nullptr, true,
                                        b->shape());
}

}  // namespace

std::span<const FastKernelEntry> matmul_kernel_entries() {
  static const FastKernelEntry kEntries[] = {
      {"", "MatMul", 1, kLatestOpset, dtype_set({ir::DType::kFloat32}),
       [](const ir::Node& n, const ir::Graph& g, int64_t opset) { return make_matmul(n, g, opset, {}); }, make_matmul},
      // Gemm before 7 had a `broadcast` attribute; from 7 on C broadcasts unidirectionally.
      {"", "Gemm", 7, kLatestOpset, dtype_set({ir::DType::kFloat32}),
       [](const ir::Node& n, const ir::Graph& g, int64_t opset) { return make_gemm(n, g, opset, {}); }, make_gemm},
  };
  return kEntries;
}

}  // namespace kiln::kernels::cpu
