// com.microsoft FusedMatMul, as ONNX Runtime defines it: Y = alpha * op(A) @ op(B) with numpy matmul
// semantics (vector promotion, broadcast batch dims). For an input of rank n >= 2:
//   transBatchA=1 moves A's first dim behind its batch dims: A[m, b1..b_{n-2}, k] is read as
//                 A'[b1..b_{n-2}, m, k] (a Transpose with perm [1, ..., n-2, 0, n-1]);
//   transA=1      then swaps the last two dims of that.
// and the same for B (transBatch* need both inputs of the same rank, at least 3, as in ONNX Runtime).
// A 1-D input is never transposed.
#include <numeric>
#include <vector>

#include "kernels/reference/common.h"
#include "kernels/reference/contrib_common.h"

namespace kiln::ops::contrib {
namespace {

struct MatMulAttrs {
  float alpha;
  bool trans_a, trans_b, trans_batch_a, trans_batch_b;
};

// ONNX Runtime's rule: transBatchA / transBatchB need both inputs of the same rank, at least 3.
void check_trans_batch(const NodeView& node, const MatMulAttrs& at, size_t rank_a, size_t rank_b) {
  if ((at.trans_batch_a || at.trans_batch_b) && (rank_a < 3 || rank_a != rank_b))
    node.fail("transBatchA / transBatchB need inputs of the same rank, at least 3; got ranks ", rank_a, " and ",
              rank_b);
}

MatMulAttrs read_attrs(const NodeView& node) {
  auto flag = [&](const char* name) {
    int64_t v = node.attr_int(name, 0);
    if (v != 0 && v != 1) node.fail("attribute ", name, " must be 0 or 1, got ", v);
    return v == 1;
  };
  return {node.attr_float("alpha", 1.0f), flag("transA"), flag("transB"), flag("transBatchA"), flag("transBatchB")};
}

// The permutation that turns an operand of this rank into its effective (batch..., rows, cols) layout.
std::vector<size_t> effective_perm(size_t rank, bool trans, bool trans_batch) {
  std::vector<size_t> perm(rank);
  std::iota(perm.begin(), perm.end(), 0);
  if (rank < 2) return perm;
  if (trans_batch) {
    // [1, ..., n-2, 0, n-1]
    for (size_t i = 0; i + 2 < rank; ++i) perm[i] = i + 1;
    perm[rank - 2] = 0;
    perm[rank - 1] = rank - 1;
  }
  if (trans) std::swap(perm[rank - 2], perm[rank - 1]);
  return perm;
}

template <class D>
std::vector<D> permuted_dims(const std::vector<D>& dims, const std::vector<size_t>& perm) {
  std::vector<D> out;
  for (size_t p : perm) out.push_back(dims[p]);
  return out;
}

void infer_fused_matmul(InferenceContext& ctx) {
  require_float32_input(ctx, 0, "input A");
  require_float32_input(ctx, 1, "input B");
  MatMulAttrs at = read_attrs(ctx);
  const ir::Type& a = ctx.input_type(0);
  const ir::Type& b = ctx.input_type(1);
  if (!a.shape || !b.shape) return ctx.set_output(0, a.dtype, std::nullopt);
  if (a.shape->rank() == 0 || b.shape->rank() == 0) ctx.fail("inputs must have rank >= 1, got scalars");
  check_trans_batch(ctx, at, a.shape->rank(), b.shape->rank());
  std::vector<ir::Dim> as = permuted_dims(a.shape->dims, effective_perm(a.shape->rank(), at.trans_a, at.trans_batch_a));
  std::vector<ir::Dim> bs = permuted_dims(b.shape->dims, effective_perm(b.shape->rank(), at.trans_b, at.trans_batch_b));
  bool a_vec = as.size() == 1, b_vec = bs.size() == 1;
  if (a_vec) as.insert(as.begin(), ir::Dim(1));
  if (b_vec) bs.push_back(ir::Dim(1));
  const ir::Dim &ka = as.back(), &kb = bs[bs.size() - 2];
  if (ka.is_static() && kb.is_static() && ka.value != kb.value)
    ctx.fail("inner dimensions differ: op(A) has ", ka.value, " columns, op(B) has ", kb.value, " rows (A ",
             ir::to_string(*a.shape), ", B ", ir::to_string(*b.shape), ")");
  ir::Shape batch_a(std::vector<ir::Dim>(as.begin(), as.end() - 2));
  ir::Shape batch_b(std::vector<ir::Dim>(bs.begin(), bs.end() - 2));
  std::optional<ir::Shape> out = broadcast_shapes(ctx, std::vector<std::optional<ir::Shape>>{batch_a, batch_b});
  if (!a_vec) out->dims.push_back(as[as.size() - 2]);
  if (!b_vec) out->dims.push_back(bs.back());
  ctx.set_output(0, a.dtype, out);
}

// t transposed by perm, as a contiguous float vector.
std::vector<float> transposed(const ir::Tensor& t, const std::vector<size_t>& perm) {
  const std::vector<int64_t>& in_shape = t.shape();
  std::vector<int64_t> in_strides = ir::strides_of(in_shape);
  std::vector<int64_t> out_shape = permuted_dims(in_shape, perm);
  std::vector<float> out(static_cast<size_t>(t.numel()));
  std::vector<int64_t> idx(out_shape.size(), 0);
  const float* src = t.data<float>();
  for (size_t k = 0; k < out.size(); ++k) {
    int64_t off = 0;
    for (size_t i = 0; i < idx.size(); ++i) off += idx[i] * in_strides[perm[i]];
    out[k] = src[off];
    for (size_t i = idx.size(); i-- > 0;) {
      if (++idx[i] < out_shape[i]) break;
      idx[i] = 0;
    }
  }
  return out;
}

void fused_matmul_kernel(KernelContext& ctx) {
  const ir::Tensor& a = ctx.input(0);
  const ir::Tensor& b = ctx.input(1);
  require_float32(ctx, a.dtype(), "input A");
  require_float32(ctx, b.dtype(), "input B");
  if (a.rank() == 0 || b.rank() == 0) ctx.fail("inputs must have rank >= 1, got scalars");
  MatMulAttrs at = read_attrs(ctx);
  check_trans_batch(ctx, at, a.rank(), b.rank());
  std::vector<size_t> pa = effective_perm(a.rank(), at.trans_a, at.trans_batch_a);
  std::vector<size_t> pb = effective_perm(b.rank(), at.trans_b, at.trans_batch_b);
  std::vector<int64_t> as = permuted_dims(a.shape().vec(), pa), bs = permuted_dims(b.shape().vec(), pb);
  std::vector<float> av = transposed(a, pa), bv = transposed(b, pb);
  bool a_vec = as.size() == 1, b_vec = bs.size() == 1;
  if (a_vec) as.insert(as.begin(), 1);
  if (b_vec) bs.push_back(1);
  int64_t m = as[as.size() - 2], k = as.back(), n = bs.back();
  if (bs[bs.size() - 2] != k)
    ctx.fail("inner dimensions differ: op(A) has ", k, " columns, op(B) has ", bs[bs.size() - 2], " rows (A ",
             ir::to_string(a.shape()), ", B ", ir::to_string(b.shape()), ")");
  std::vector<int64_t> batch_a(as.begin(), as.end() - 2), batch_b(bs.begin(), bs.end() - 2);
  std::vector<int64_t> batch = broadcast_shapes(ctx, {batch_a, batch_b});
  std::vector<int64_t> out_shape = batch;
  if (!a_vec) out_shape.push_back(m);
  if (!b_vec) out_shape.push_back(n);
  ir::Tensor y = ctx.make_tensor(ir::DType::kFloat32, out_shape);
  if (y.numel() == 0) return ctx.set_output(0, std::move(y));
  std::vector<int64_t> off_a = broadcast_offsets(batch_a, batch), off_b = broadcast_offsets(batch_b, batch);
  float* out = y.data<float>();
  for (size_t bi = 0; bi < off_a.size(); ++bi) {
    const float* pa_ = av.data() + off_a[bi] * m * k;
    const float* pb_ = bv.data() + off_b[bi] * k * n;
    float* dst = out + static_cast<int64_t>(bi) * m * n;
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double acc = 0;
        for (int64_t p = 0; p < k; ++p) acc += static_cast<double>(pa_[i * k + p]) * pb_[p * n + j];
        dst[i * n + j] = static_cast<float>(at.alpha * acc);
      }
  }
  ctx.set_output(0, std::move(y));
}

}  // namespace

void register_fused_matmul_ops(OpRegistry& r) {
  r.add(OpDef{kMsDomain, "FusedMatMul", kMsMinOpset, kMsMaxOpset, infer_fused_matmul, fused_matmul_kernel});
}

}  // namespace kiln::ops::contrib
