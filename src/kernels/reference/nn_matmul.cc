// MatMul (numpy matmul semantics) and Gemm. Floating types accumulate in double; integer types
// accumulate in wrapping 64-bit arithmetic, which gives the same low bits as the type's own
// two's-complement wrap.
#include <cmath>
#include <type_traits>

#include "kernels/reference/common.h"
#include "kernels/reference/nn_common.h"

namespace kiln::ops::nn {
namespace {

using ir::DType;

template <class T>
using AccOf = std::conditional_t<std::is_integral_v<T>, uint64_t, double>;

template <class T>
AccOf<T> to_acc(T v) {
  if constexpr (std::is_integral_v<T>) {
    return static_cast<uint64_t>(static_cast<int64_t>(v));
  } else {
    return static_cast<double>(v);
  }
}

// One [M,K] x [K,N] product; `a_rs`/`a_cs` are A's row and column strides (so transposes are free).
template <class T>
void gemm_block(const T* a, int64_t a_rs, int64_t a_cs, const T* b, int64_t b_rs, int64_t b_cs, int64_t m, int64_t k,
                int64_t n, std::vector<AccOf<T>>& out) {
  out.assign(static_cast<size_t>(m * n), AccOf<T>(0));
  for (int64_t i = 0; i < m; ++i) {
    AccOf<T>* row = out.data() + i * n;
    for (int64_t p = 0; p < k; ++p) {
      AccOf<T> av = to_acc(a[i * a_rs + p * a_cs]);
      const T* brow = b + p * b_rs;
      for (int64_t j = 0; j < n; ++j) row[j] += av * to_acc(brow[j * b_cs]);
    }
  }
}

// ---- MatMul -------------------------------------------------------------------------------------

void infer_matmul(InferenceContext& ctx) {
  const ir::Type& a = ctx.input_type(0);
  const ir::Type& b = ctx.input_type(1);
  if (a.dtype != b.dtype) ctx.fail("inputs have different element types ", a.dtype, " and ", b.dtype);
  if (!a.shape || !b.shape) return ctx.set_output(0, a.dtype, std::nullopt);
  ir::Shape as = *a.shape, bs = *b.shape;
  if (as.rank() == 0 || bs.rank() == 0) ctx.fail("MatMul inputs must have rank >= 1, got scalars");
  bool a_vec = as.rank() == 1, b_vec = bs.rank() == 1;
  if (a_vec) as.dims.insert(as.dims.begin(), ir::Dim(1));
  if (b_vec) bs.dims.push_back(ir::Dim(1));
  const ir::Dim& ka = as.dims[as.rank() - 1];
  const ir::Dim& kb = bs.dims[bs.rank() - 2];
  if (ka.is_static() && kb.is_static() && ka.value != kb.value)
    ctx.fail("inner dimensions differ: ", ir::to_string(*a.shape), " x ", ir::to_string(*b.shape));
  ir::Shape batch_a(std::vector<ir::Dim>(as.dims.begin(), as.dims.end() - 2));
  ir::Shape batch_b(std::vector<ir::Dim>(bs.dims.begin(), bs.dims.end() - 2));
  std::optional<ir::Shape> out = broadcast_shapes(ctx, std::vector<std::optional<ir::Shape>>{batch_a, batch_b});
  if (!a_vec) out->dims.push_back(as.dims[as.rank() - 2]);
  if (!b_vec) out->dims.push_back(bs.dims[bs.rank() - 1]);
  ctx.set_output(0, a.dtype, out);
}

void run_matmul(KernelContext& ctx) {
  const ir::Tensor& a = ctx.input(0);
  const ir::Tensor& b = ctx.input(1);
  require_dtype(ctx, a.dtype(), kFloatAndIntTypes, "input A");
  if (b.dtype() != a.dtype()) ctx.fail("inputs have different element types ", a.dtype(), " and ", b.dtype());
  if (a.rank() == 0 || b.rank() == 0) ctx.fail("MatMul inputs must have rank >= 1, got scalars");
  std::vector<int64_t> as = a.shape(), bs = b.shape();
  bool a_vec = as.size() == 1, b_vec = bs.size() == 1;
  if (a_vec) as.insert(as.begin(), 1);
  if (b_vec) bs.push_back(1);
  int64_t m = as[as.size() - 2], k = as.back(), n = bs.back();
  if (bs[bs.size() - 2] != k)
    ctx.fail("inner dimensions differ: ", ir::to_string(a.shape()), " x ", ir::to_string(b.shape()));
  std::vector<int64_t> batch_a(as.begin(), as.end() - 2), batch_b(bs.begin(), bs.end() - 2);
  std::vector<int64_t> batch = broadcast_shapes(ctx, {batch_a, batch_b});
  std::vector<int64_t> out_shape = batch;
  if (!a_vec) out_shape.push_back(m);
  if (!b_vec) out_shape.push_back(n);
  ir::Tensor y = ctx.make_tensor(a.dtype(), out_shape);
  if (y.numel() == 0) return ctx.set_output(0, y);
  std::vector<int64_t> off_a = broadcast_offsets(batch_a, batch), off_b = broadcast_offsets(batch_b, batch);
  ir::visit_numeric_dtype(a.dtype(), [&]<class T>() {
    if constexpr (!std::is_same_v<T, bool>) {
      const T* pa = a.data<T>();
      const T* pb = b.data<T>();
      T* py = y.data<T>();
      std::vector<AccOf<T>> acc;
      for (size_t bi = 0; bi < off_a.size(); ++bi) {
        gemm_block<T>(pa + off_a[bi] * m * k, k, 1, pb + off_b[bi] * k * n, n, 1, m, k, n, acc);
        T* dst = py + static_cast<int64_t>(bi) * m * n;
        for (size_t i = 0; i < acc.size(); ++i) dst[i] = static_cast<T>(acc[i]);
      }
    }
  });
  ctx.set_output(0, y);
}

// ---- Gemm ---------------------------------------------------------------------------------------

void infer_gemm(InferenceContext& ctx) {
  const ir::Type& a = ctx.input_type(0);
  const ir::Type& b = ctx.input_type(1);
  bool ta = ctx.attr_int("transA", 0) != 0, tb = ctx.attr_int("transB", 0) != 0;
  ir::Dim m, n, ka, kb;
  if (a.shape) {
    if (a.shape->rank() != 2) ctx.fail("input A must have rank 2, got ", ir::to_string(*a.shape));
    m = (*a.shape)[ta ? 1 : 0];
    ka = (*a.shape)[ta ? 0 : 1];
  }
  if (b.shape) {
    if (b.shape->rank() != 2) ctx.fail("input B must have rank 2, got ", ir::to_string(*b.shape));
    n = (*b.shape)[tb ? 0 : 1];
    kb = (*b.shape)[tb ? 1 : 0];
  }
  if (ka.is_static() && kb.is_static() && ka.value != kb.value)
    ctx.fail("inner dimensions differ: A is ", ir::to_string(*a.shape), " (transA=", ta, "), B is ",
             ir::to_string(*b.shape), " (transB=", tb, ")");
  ctx.set_output(0, a.dtype, ir::Shape({m, n}));
}

void run_gemm(KernelContext& ctx) {
  const ir::Tensor& a = ctx.input(0);
  const ir::Tensor& b = ctx.input(1);
  require_dtype(ctx, a.dtype(), kFloatAndIntTypes, "input A");
  if (b.dtype() != a.dtype()) ctx.fail("inputs A and B have different element types ", a.dtype(), " and ", b.dtype());
  if (a.rank() != 2) ctx.fail("input A must have rank 2, got ", ir::to_string(a.shape()));
  if (b.rank() != 2) ctx.fail("input B must have rank 2, got ", ir::to_string(b.shape()));
  bool ta = ctx.attr_int("transA", 0) != 0, tb = ctx.attr_int("transB", 0) != 0;
  double alpha = ctx.attr_float("alpha", 1.0f), beta = ctx.attr_float("beta", 1.0f);
  int64_t m = a.dim(ta ? 1 : 0), k = a.dim(ta ? 0 : 1);
  int64_t kb = b.dim(tb ? 1 : 0), n = b.dim(tb ? 0 : 1);
  if (k != kb)
    ctx.fail("inner dimensions differ: A is ", ir::to_string(a.shape()), " (transA=", ta, "), B is ",
             ir::to_string(b.shape()), " (transB=", tb, ")");
  const ir::Tensor* c = ctx.has_input(2) ? &ctx.input(2) : nullptr;
  std::vector<int64_t> c_off;
  if (c) {
    if (c->dtype() != a.dtype()) ctx.fail("input C has element type ", c->dtype(), ", A has ", a.dtype());
    // C broadcasts one way, to [M, N] (numpy rules; opsets < 7 spelled this with a "broadcast" attr).
    const auto& cs = c->shape();
    bool ok = cs.size() <= 2;
    for (size_t i = 0; ok && i < cs.size(); ++i) {
      int64_t want = (cs.size() == 2 && i == 0) ? m : n;
      ok = cs[i] == 1 || cs[i] == want;
    }
    if (!ok) ctx.fail("input C of shape ", ir::to_string(cs), " does not broadcast to [", m, ",", n, "]");
    c_off = broadcast_offsets(cs, {m, n});
  }
  ir::Tensor y = ctx.make_tensor(a.dtype(), {m, n});
  ir::visit_numeric_dtype(a.dtype(), [&]<class T>() {
    if constexpr (!std::is_same_v<T, bool>) {
      std::vector<AccOf<T>> acc;
      gemm_block<T>(a.data<T>(), ta ? 1 : k, ta ? m : 1, b.data<T>(), tb ? 1 : n, tb ? k : 1, m, k, n, acc);
      T* py = y.data<T>();
      const T* pc = c ? c->data<T>() : nullptr;
      bool exact_int = std::is_integral_v<T> && alpha == std::trunc(alpha) && beta == std::trunc(beta) &&
                       std::fabs(alpha) < 9e18 && std::fabs(beta) < 9e18;
      for (int64_t i = 0; i < m * n; ++i) {
        if constexpr (std::is_integral_v<T>) {
          if (exact_int) {
            uint64_t v = static_cast<uint64_t>(static_cast<int64_t>(alpha)) * acc[i];
            if (pc) v += static_cast<uint64_t>(static_cast<int64_t>(beta)) * to_acc(pc[c_off[i]]);
            py[i] = static_cast<T>(v);
            continue;
          }
          double v = alpha * static_cast<double>(static_cast<std::make_signed_t<T>>(acc[i]));
          if (pc) v += beta * static_cast<double>(pc[c_off[i]]);
          py[i] = saturate_from_double<T>(v);
        } else {
          double v = alpha * acc[i];
          if (pc) v += beta * static_cast<double>(pc[c_off[i]]);
          py[i] = static_cast<T>(v);
        }
      }
    }
  });
  ctx.set_output(0, y);
}

}  // namespace

void register_matmul_ops(OpRegistry& r) {
  r.add(OpDef{"", "MatMul", 1, kNoMaxOpset, infer_matmul, run_matmul});
  r.add(OpDef{"", "Gemm", 1, kNoMaxOpset, infer_gemm, run_gemm});
}

}  // namespace kiln::ops::nn
