// MatMul and Gemm whose B is not a constant: the products of unfused attention (Q·Kᵀ and the weights
// times V, both operands computed), and Gemm with A transposed or B computed. Each product is one call to
// oneDNN's sgemm, which packs its operands per call; batches of a batched MatMul are split across the
// threads, each product then running on one thread (an inner sgemm inside an OpenMP region runs serially).
#include "kernels/cpu/dynamic_gemm_kernel.h"

#include <oneapi/dnnl/dnnl.h>
#include <omp.h>

#include <algorithm>
#include <array>
#include <cstring>

#include "kernels/cpu/fast_kernel_util.h"

namespace kiln::kernels::cpu {

namespace {

// Y = A x B under numpy's matmul rules, on [..., M, K] x [..., K, N], the batch dims broadcasting. 1-D
// operands (a vector on either side) stay with the reference: they are rare in the graphs this serves.
class BatchedMatMulKernel : public FastKernel {
 public:
  bool run(ops::KernelContext& ctx) const override {
    if (!is_f32(ctx, 0) || !is_f32(ctx, 1)) return false;
    const ir::Tensor& a = ctx.input(0);
    const ir::Tensor& b = ctx.input(1);
    const ir::Dims& as = a.shape();
    const ir::Dims& bs = b.shape();
    if (as.size() < 2 || bs.size() < 2) return false;
    const size_t rank = std::max(as.size(), bs.size());
    if (rank - 2 > kMaxBatchDims) return false;
    const int64_t m = as[as.size() - 2], k = as.back(), n = bs.back();
    if (bs[bs.size() - 2] != k) return false;  // the reference says why

    // Output batch dims, and each operand's element stride per batch dim (0 where it broadcasts).
    ir::Dims out_shape(rank, 0);
    std::array<int64_t, kMaxBatchDims> batch{}, a_stride{}, b_stride{};
    const size_t batch_dims = rank - 2;
    int64_t a_step = m * k, b_step = k * n;
    for (size_t i = batch_dims; i-- > 0;) {
      const size_t from_end = batch_dims - i;  // 1 = the innermost batch dim
      const int64_t ad = as.size() - 2 >= from_end ? as[as.size() - 2 - from_end] : 1;
      const int64_t bd = bs.size() - 2 >= from_end ? bs[bs.size() - 2 - from_end] : 1;
      if (ad != bd && ad != 1 && bd != 1) return false;
      batch[i] = std::max(ad, bd);
      if (ad == 0 || bd == 0) batch[i] = 0;
      a_stride[i] = ad == 1 ? 0 : a_step;
      b_stride[i] = bd == 1 ? 0 : b_step;
      a_step *= ad;
      b_step *= bd;
      out_shape[i] = batch[i];
    }
    out_shape[rank - 2] = m;
    out_shape[rank - 1] = n;
    int64_t batches = 1;
    for (size_t i = 0; i < batch_dims; ++i) batches *= batch[i];

    ir::Tensor y = ctx.make_tensor(ir::DType::kFloat32, out_shape);
    float* yp = y.data<float>();
    const float* ap = a.data<float>();
    const float* bp = b.data<float>();
    if (k == 0) {
      std::fill(yp, yp + y.numel(), 0.0f);
    } else if (batches > 0 && m > 0 && n > 0) {
      auto product = [&](int64_t index) {
        int64_t a_off = 0, b_off = 0, rest = index;
        for (size_t i = batch_dims; i-- > 0;) {
          const int64_t d = rest % batch[i];
          rest /= batch[i];
          a_off += d * a_stride[i];
          b_off += d * b_stride[i];
        }
        dnnl_sgemm('N', 'N', m, n, k, 1.0f, ap + a_off, k, bp + b_off, n, 0.0f, yp + index * m * n, n);
      };
      parallel_for_dynamic(batches > 1 && omp_get_max_threads() > 1 && !omp_in_parallel(), batches, product);
    }
    ctx.set_output(0, std::move(y));
    return true;
  }
  std::string implementation() const override { return "onednn sgemm"; }

 private:
  static constexpr size_t kMaxBatchDims = 8;
};

// Gemm: Y = alpha op(A) op(B) + beta C, A and B 2-D, C broadcasting to [M, N] (absent, a scalar, [N],
// [M, 1], [1, N] or [M, N]). Serves the Gemms the constant-B kernel (matmul_kernel.cc) does not take.
class DynamicGemmKernel : public FastKernel {
 public:
  DynamicGemmKernel(bool trans_a, bool trans_b, float alpha, float beta)
      : trans_a_(trans_a), trans_b_(trans_b), alpha_(alpha), beta_(beta) {}

  bool run(ops::KernelContext& ctx) const override {
    if (!is_f32(ctx, 0) || !is_f32(ctx, 1)) return false;
    const bool has_c = ctx.has_input(2);
    if (has_c && !is_f32(ctx, 2)) return false;
    const ir::Dims& as = ctx.input(0).shape();
    const ir::Dims& bs = ctx.input(1).shape();
    if (as.size() != 2 || bs.size() != 2) return false;
    const int64_t m = trans_a_ ? as[1] : as[0], k = trans_a_ ? as[0] : as[1];
    const int64_t n = trans_b_ ? bs[0] : bs[1];
    if ((trans_b_ ? bs[1] : bs[0]) != k) return false;
    // C's rows and columns: each 1 (broadcast) or the output's.
    int64_t c_rows = 1, c_cols = 1;
    if (has_c) {
      const ir::Dims& cs = ctx.input(2).shape();
      if (cs.size() > 2) return false;
      if (!cs.empty()) c_cols = cs.back();
      if (cs.size() == 2) c_rows = cs[0];
      if ((c_rows != 1 && c_rows != m) || (c_cols != 1 && c_cols != n)) return false;
    }
    ir::Tensor y = ctx.make_tensor(ir::DType::kFloat32, ir::Dims{m, n});
    float* yp = y.data<float>();
    const bool add_c = has_c && beta_ != 0.0f;
    if (add_c) {
      const float* c = ctx.input(2).data<float>();
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j)
          yp[i * n + j] = beta_ * c[(c_rows == 1 ? 0 : i * c_cols) + (c_cols == 1 ? 0 : j)];
    }
    if (m > 0 && n > 0) {
      if (k == 0) {
        if (!add_c) std::fill(yp, yp + m * n, 0.0f);
      } else {
        dnnl_sgemm(trans_a_ ? 'T' : 'N', trans_b_ ? 'T' : 'N', m, n, k, alpha_, ctx.input(0).data<float>(), as[1],
                   ctx.input(1).data<float>(), bs[1], add_c ? 1.0f : 0.0f, yp, n);
      }
    }
    ctx.set_output(0, std::move(y));
    return true;
  }
  std::string implementation() const override { return "onednn sgemm"; }

 private:
  bool trans_a_, trans_b_;
  float alpha_, beta_;
};

}  // namespace

std::unique_ptr<FastKernel> make_batched_matmul_kernel() { return std::make_unique<BatchedMatMulKernel>(); }

std::unique_ptr<FastKernel> make_dynamic_gemm_kernel(bool trans_a, bool trans_b, float alpha, float beta) {
  return std::make_unique<DynamicGemmKernel>(trans_a, trans_b, alpha, beta);
}

}  // namespace kiln::kernels::cpu
