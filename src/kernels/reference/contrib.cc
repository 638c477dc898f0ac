// The com.microsoft contrib family: each group of ops lives in its own contrib_<group>.cc file and
// registers from there.
#include "kernels/reference/contrib_common.h"

#include <algorithm>

namespace kiln::ops {

namespace contrib {

void require_float32(const NodeView& node, ir::DType dtype, const char* what) {
  if (dtype != ir::DType::kFloat32)
    node.fail(what, " has element type ", ir::dtype_name(dtype),
              "; kiln's reference kernel takes float32 only (ONNX Runtime's float16 variant is not supported)");
}

void require_int32(const NodeView& node, ir::DType dtype, const char* what) {
  if (dtype != ir::DType::kInt32) node.fail(what, " has element type ", ir::dtype_name(dtype), "; expected int32");
}

void require_float32_input(const InferenceContext& ctx, size_t input, const char* what) {
  if (!ctx.has_input(input)) return;
  const ir::Type& t = ctx.input_type(input);
  if (t.kind == ir::Type::Kind::kTensor && t.dtype != ir::DType::kUndefined) require_float32(ctx, t.dtype, what);
}

void require_int32_input(const InferenceContext& ctx, size_t input, const char* what) {
  if (!ctx.has_input(input)) return;
  const ir::Type& t = ctx.input_type(input);
  if (t.kind == ir::Type::Kind::kTensor && t.dtype != ir::DType::kUndefined) require_int32(ctx, t.dtype, what);
}

void require_vector(const NodeView& node, const ir::Tensor& t, int64_t n, const char* what) {
  if (t.rank() != 1 || t.dim(0) != n)
    node.fail(what, " must be a 1-D tensor of ", n, " values, got shape ", ir::to_string(t.shape()));
}

bool channels_last(const NodeView& node) {
  if (node.node().domain != kKilnDomain || !node.has_attr("channels_last")) return false;
  const int64_t v = node.attr_int("channels_last");
  if (v != 0 && v != 1) node.fail("channels_last must be 0 or 1, got ", v);
  return v == 1;
}

std::vector<int64_t> channel_perm(size_t rank, bool to_last) {
  std::vector<int64_t> perm(rank);
  for (size_t i = 0; i < rank; ++i) perm[i] = static_cast<int64_t>(i);
  if (rank < 3) return perm;
  if (to_last) {
    std::rotate(perm.begin() + 1, perm.begin() + 2, perm.end());  // 0, 2, ..., r-1, 1
  } else {
    std::rotate(perm.begin() + 1, perm.end() - 1, perm.end());  // 0, r-1, 1, ..., r-2
  }
  return perm;
}

ir::Shape permuted(const ir::Shape& s, const std::vector<int64_t>& perm) {
  std::vector<ir::Dim> dims(perm.size());
  for (size_t i = 0; i < perm.size(); ++i) dims[i] = s[static_cast<size_t>(perm[i])];
  return ir::Shape(std::move(dims));
}

std::optional<ir::Shape> input_shape(const InferenceContext& ctx, size_t i) {
  if (!ctx.has_input(i)) return std::nullopt;
  return ctx.input_type(i).shape;
}

}  // namespace contrib

void register_contrib_ops(OpRegistry& r) {
  contrib::register_activation_ops(r);
  contrib::register_normalization_ops(r);
  contrib::register_attention_ops(r);
  contrib::register_fused_matmul_ops(r);
  contrib::register_fused_conv_ops(r);
  contrib::register_elementwise_chain_ops(r);
  contrib::register_pool_ops(r);
}

}  // namespace kiln::ops
