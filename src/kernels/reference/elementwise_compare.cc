// Elementwise comparisons (Equal, Greater, Less, GreaterOrEqual, LessOrEqual), logical (And, Or, Xor)
// and bitwise ops (BitwiseAnd/Or/Xor, BitShift), and Where, all with numpy broadcasting.
#include "kernels/reference/elementwise_util.h"

namespace kiln::ops::elementwise {

namespace {

// ---- Comparison, logical, bitwise --------------------------------------------------------------------

template <class Cmp>
KernelFn comparison(unsigned set, bool legacy_broadcast, Cmp cmp) {
  return [=](KernelContext& ctx) {
    BinaryOperands o = binary_operands(ctx, legacy_broadcast);
    check_same_dtype(ctx, o.a.dtype(), o.b.dtype(), "A", "B");
    check_dtype(ctx, "input 0", o.a.dtype(), set);
    visit_all(ctx, o.a.dtype(), [&]<class T>() {
      ctx.set_output(0, map_binary<bool, T, T>(ctx, o.a, o.b, o.out_shape,
                                               [&](const T& a, const T& b) { return cmp(cval(a), cval(b)); }));
    });
  };
}

template <class Fn>
KernelFn logical(Fn fn) {
  return [=](KernelContext& ctx) {
    BinaryOperands o = binary_operands(ctx, true);
    check_dtype(ctx, "A", o.a.dtype(), kBoolType);
    check_dtype(ctx, "B", o.b.dtype(), kBoolType);
    ctx.set_output(0, map_binary<bool, bool, bool>(ctx, o.a, o.b, o.out_shape, fn));
  };
}

template <class Fn>
KernelFn bitwise(Fn fn) {
  return [=](KernelContext& ctx) {
    BinaryOperands o = binary_operands(ctx, false);
    check_same_dtype(ctx, o.a.dtype(), o.b.dtype(), "A", "B");
    visit_ints(ctx, o.a.dtype(), [&]<class T>() {
      ctx.set_output(
          0, map_binary<T, T, T>(ctx, o.a, o.b, o.out_shape, [&](T a, T b) { return static_cast<T>(fn(a, b)); }));
    });
  };
}

void bit_shift_kernel(KernelContext& ctx) {
  std::string direction = ctx.attr_string("direction");
  if (direction != "LEFT" && direction != "RIGHT")
    ctx.fail("attribute \"direction\" must be \"LEFT\" or \"RIGHT\", got \"", direction, "\"");
  bool left = direction == "LEFT";
  BinaryOperands o = binary_operands(ctx, false);
  check_same_dtype(ctx, o.a.dtype(), o.b.dtype(), "X", "Y");
  visit_unsigned_ints(ctx, o.a.dtype(), [&]<class T>() {
    ctx.set_output(0, map_binary<T, T, T>(ctx, o.a, o.b, o.out_shape, [left](T x, T s) -> T {
                     // Shifting by the width or more is undefined in C++; every bit is shifted out.
                     if (s >= sizeof(T) * 8) return 0;
                     return left ? static_cast<T>(static_cast<uint64_t>(x) << s) : static_cast<T>(x >> s);
                   }));
  });
}
// ---- Where ------------------------------------------------------------------------------------------

void where_kernel(KernelContext& ctx) {
  const ir::Tensor& cond = ctx.input(0);
  const ir::Tensor& x = ctx.input(1);
  const ir::Tensor& y = ctx.input(2);
  check_dtype(ctx, "condition", cond.dtype(), kBoolType);
  check_same_dtype(ctx, x.dtype(), y.dtype(), "X", "Y");
  std::vector<int64_t> out_shape =
      broadcast_shapes(ctx, std::vector<std::vector<int64_t>>{cond.shape(), x.shape(), y.shape()});
  visit_all(ctx, x.dtype(), [&]<class T>() {
    ir::Tensor out = ctx.make_tensor(x.dtype(), out_shape);
    T* po = out.data<T>();
    const bool* pc = cond.data<bool>();
    const T* px = x.data<T>();
    const T* py = y.data<T>();
    broadcast_loop<3>(out_shape, {&cond.shape(), &x.shape(), &y.shape()},
                      [&](int64_t i, const std::array<int64_t, 3>& o) { po[i] = pc[o[0]] ? px[o[1]] : py[o[2]]; });
    ctx.set_output(0, out);
  });
}

void infer_where(InferenceContext& ctx) {
  check_input_dtype(ctx, 0, kBoolType);
  const ir::Type& x = ctx.input_type(1);
  check_same_dtype(ctx, x.dtype, ctx.input_type(2).dtype, "X", "Y");
  ctx.set_output(0, x.dtype,
                 broadcast_shapes(ctx, std::vector<std::optional<ir::Shape>>{ctx.input_type(0).shape, x.shape,
                                                                             ctx.input_type(2).shape}));
}
}  // namespace

void register_comparison_ops(OpRegistry& r) {
  // Comparisons.
  std::optional<ir::DType> boolean = ir::DType::kBool;
  r.add(onnx_op("Equal", 1, binary_infer(kAllTypes, true, boolean),
                comparison(kAllTypes, true, [](const auto& a, const auto& b) { return a == b; })));
  r.add(onnx_op("Greater", 1, binary_infer(kNumberTypes, true, boolean),
                comparison(kNumberTypes, true, [](const auto& a, const auto& b) { return a > b; })));
  r.add(onnx_op("Less", 1, binary_infer(kNumberTypes, true, boolean),
                comparison(kNumberTypes, true, [](const auto& a, const auto& b) { return a < b; })));
  r.add(onnx_op("GreaterOrEqual", 12, binary_infer(kNumberTypes, false, boolean),
                comparison(kNumberTypes, false, [](const auto& a, const auto& b) { return a >= b; })));
  r.add(onnx_op("LessOrEqual", 12, binary_infer(kNumberTypes, false, boolean),
                comparison(kNumberTypes, false, [](const auto& a, const auto& b) { return a <= b; })));

  // Logical and bitwise.
  r.add(onnx_op("And", 1, binary_infer(kBoolType, true), logical([](bool a, bool b) { return a && b; })));
  r.add(onnx_op("Or", 1, binary_infer(kBoolType, true), logical([](bool a, bool b) { return a || b; })));
  r.add(onnx_op("Xor", 1, binary_infer(kBoolType, true), logical([](bool a, bool b) { return a != b; })));
  r.add(onnx_op("BitwiseAnd", 18, binary_infer(kIntTypes, false), bitwise([](auto a, auto b) { return a & b; })));
  r.add(onnx_op("BitwiseOr", 18, binary_infer(kIntTypes, false), bitwise([](auto a, auto b) { return a | b; })));
  r.add(onnx_op("BitwiseXor", 18, binary_infer(kIntTypes, false), bitwise([](auto a, auto b) { return a ^ b; })));
  r.add(onnx_op("BitShift", 11, binary_infer(kUnsignedIntTypes, false), bit_shift_kernel));

  // Where.
  r.add(onnx_op("Where", 9, infer_where, where_kernel));
}

}  // namespace kiln::ops::elementwise
