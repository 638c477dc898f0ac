// Elementwise ops: arithmetic, math, logic, comparison, bitwise, activations and Cast. The ops live
// in elementwise_unary.cc, elementwise_binary.cc and elementwise_cast.cc; this file registers them
// and holds the helpers they share (elementwise_util.h).
#include "kernels/reference/elementwise_util.h"

namespace kiln::ops {

namespace elementwise {

OpDef onnx_op(const char* name, int64_t since, InferFn infer, KernelFn kernel) {
  return OpDef{"", name, since, std::numeric_limits<int64_t>::max(), std::move(infer), std::move(kernel)};
}

bool dtype_in(ir::DType t, unsigned set) {
  if (ir::is_float(t)) return set & kFloatTypes;
  if (ir::is_integer(t)) return set & (ir::is_signed(t) ? kSignedIntTypes : kUnsignedIntTypes);
  if (t == ir::DType::kBool) return set & kBoolType;
  if (t == ir::DType::kString) return set & kStringType;
  return false;
}

std::string describe(unsigned set) {
  std::vector<std::string> names;
  if (set & kFloatTypes) names.insert(names.end(), {"float16", "bfloat16", "float32", "float64"});
  if (set & kSignedIntTypes) names.insert(names.end(), {"int8", "int16", "int32", "int64"});
  if (set & kUnsignedIntTypes) names.insert(names.end(), {"uint8", "uint16", "uint32", "uint64"});
  if (set & kBoolType) names.emplace_back("bool");
  if (set & kStringType) names.emplace_back("string");
  std::string out;
  for (size_t i = 0; i < names.size(); ++i) {
    if (i > 0) out += i + 1 == names.size() ? " or " : ", ";
    out += names[i];
  }
  return out;
}

void check_dtype(const NodeView& node, const std::string& what, ir::DType t, unsigned set) {
  if (!dtype_in(t, set))
    node.fail(what, " has element type ", ir::dtype_name(t), "; ", node.node().op_type, " accepts ", describe(set));
}

void check_same_dtype(const NodeView& node, ir::DType a, ir::DType b, const std::string& what_a,
                      const std::string& what_b) {
  if (a != b && a != ir::DType::kUndefined && b != ir::DType::kUndefined)
    node.fail(what_a, " and ", what_b, " must have the same element type, got ", ir::dtype_name(a), " and ",
              ir::dtype_name(b));
}

std::vector<int64_t> broadcast_strides(const std::vector<int64_t>& in_shape, const std::vector<int64_t>& out_shape) {
  size_t rank = out_shape.size();
  std::vector<int64_t> strides(rank, 0);
  std::vector<int64_t> s = ir::strides_of(in_shape);
  size_t off = rank - in_shape.size();
  for (size_t i = 0; i < in_shape.size(); ++i) strides[off + i] = in_shape[i] == 1 ? 0 : s[i];
  return strides;
}

namespace {

// Old-style broadcasting (opsets 1-6) applies only when the node asks for it.
bool legacy_broadcast_applies(const NodeView& node, bool legacy_broadcast) {
  return legacy_broadcast && node.opset() < 7 && node.attr_int("broadcast", 0) != 0;
}

// B's shape padded with 1s to A's rank so that B's dims sit at `axis` (default: trailing dims).
// Valid when B has one element or its dims match a contiguous run of A's dims.
template <class DimT>
std::vector<DimT> legacy_aligned_shape(const NodeView& node, const std::vector<DimT>& a, const std::vector<DimT>& b,
                                       bool b_is_single) {
  int64_t ra = static_cast<int64_t>(a.size()), rb = static_cast<int64_t>(b.size());
  if (b_is_single) return std::vector<DimT>(a.size(), DimT(1));
  if (rb > ra) node.fail("with broadcast=1, B (rank ", rb, ") must not have a higher rank than A (rank ", ra, ")");
  int64_t axis = node.has_attr("axis") ? node.attr_int("axis") : ra - rb;
  if (axis < 0) axis += ra;
  if (axis < 0 || axis + rb > ra)
    node.fail("broadcast axis ", node.attr_int("axis", ra - rb), " does not fit B of rank ", rb, " into A of rank ",
              ra);
  std::vector<DimT> out(a.size(), DimT(1));
  for (int64_t i = 0; i < rb; ++i) out[static_cast<size_t>(axis + i)] = b[static_cast<size_t>(i)];
  return out;
}

}  // namespace

BinaryOperands binary_operands(const KernelContext& ctx, bool legacy_broadcast) {
  BinaryOperands ops{ctx.input(0), ctx.input(1), {}};
  if (legacy_broadcast_applies(ctx, legacy_broadcast)) {
    std::vector<int64_t> aligned = legacy_aligned_shape(ctx, ops.a.shape().vec(), ops.b.shape().vec(), ops.b.numel() == 1);
    for (size_t i = 0; i < aligned.size(); ++i)
      if (aligned[i] != 1 && aligned[i] != ops.a.dim(i))
        ctx.fail("cannot broadcast B of shape ", ir::to_string(ops.b.shape()), " onto A of shape ",
                 ir::to_string(ops.a.shape()));
    ops.b = ops.b.reshaped(aligned);
    ops.out_shape = ops.a.shape();
  } else {
    ops.out_shape = broadcast_shapes(ctx, std::vector<std::vector<int64_t>>{ops.a.shape(), ops.b.shape()});
  }
  return ops;
}

void infer_binary(InferenceContext& ctx, bool legacy_broadcast, std::optional<ir::DType> out_dtype, bool same_dtypes) {
  const ir::Type& a = ctx.input_type(0);
  const ir::Type& b = ctx.input_type(1);
  if (same_dtypes) check_same_dtype(ctx, a.dtype, b.dtype, "A", "B");
  ir::DType dtype = out_dtype.value_or(a.dtype);
  if (legacy_broadcast_applies(ctx, legacy_broadcast)) {
    // A one-element B broadcasts whatever its rank and the axis, so only a B known to have more
    // elements is checked here.
    bool b_single = true, b_maybe_single = true;
    if (b.shape) {
      for (const ir::Dim& d : b.shape->dims) {
        b_single = b_single && d.is_static() && d.value == 1;
        b_maybe_single = b_maybe_single && (!d.is_static() || d.value == 1);
      }
    }
    if (a.shape && b.shape && (b_single || !b_maybe_single)) {
      std::vector<ir::Dim> aligned = legacy_aligned_shape(ctx, a.shape->dims, b.shape->dims, b_single);
      for (size_t i = 0; i < aligned.size(); ++i) {
        const ir::Dim& da = a.shape->dims[i];
        if (aligned[i].is_static() && aligned[i].value != 1 && da.is_static() && da.value != aligned[i].value)
          ctx.fail("cannot broadcast B of shape ", ir::to_string(*b.shape), " onto A of shape ",
                   ir::to_string(*a.shape));
      }
    }
    ctx.set_output(0, dtype, a.shape);
    return;
  }
  ctx.set_output(0, dtype, broadcast_shapes(ctx, std::vector<std::optional<ir::Shape>>{a.shape, b.shape}));
}

}  // namespace elementwise

void register_elementwise_ops(OpRegistry& r) {
  elementwise::register_unary_ops(r);
  elementwise::register_binary_ops(r);
  elementwise::register_comparison_ops(r);
  elementwise::register_cast_ops(r);
}

}  // namespace kiln::ops
