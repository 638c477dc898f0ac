// Elementwise arithmetic of two or more inputs with numpy broadcasting: Add, Sub, Mul, Div, Mod, Pow,
// PRelu and the variadic Max/Min/Sum/Mean. Integer arithmetic wraps around as the hardware does; integer
// division by zero is an error. Comparisons, logical and bitwise ops and Where are in
// elementwise_compare.cc (split for build time: each file instantiates its ops for every element type).
#include <cmath>

#include "kernels/reference/elementwise_util.h"

namespace kiln::ops::elementwise {

void check_input_dtype(const InferenceContext& ctx, size_t i, unsigned set) {
  const ir::Type& t = ctx.input_type(i);
  if (t.is_tensor() && t.dtype != ir::DType::kUndefined) check_dtype(ctx, str("input ", i), t.dtype, set);
}

InferFn binary_infer(unsigned set, bool legacy_broadcast, std::optional<ir::DType> out_dtype) {
  return [=](InferenceContext& ctx) {
    check_input_dtype(ctx, 0, set);
    infer_binary(ctx, legacy_broadcast, out_dtype);
  };
}

namespace {

// ---- Arithmetic -----------------------------------------------------------------------------------

// Applies op(a, b) -> T over the broadcast operands, for the types in `set` (numbers at most).
template <class Op>
void arithmetic(KernelContext& ctx, unsigned set, bool legacy_broadcast, Op&& fn) {
  BinaryOperands o = binary_operands(ctx, legacy_broadcast);
  check_same_dtype(ctx, o.a.dtype(), o.b.dtype(), "A", "B");
  check_dtype(ctx, "input 0", o.a.dtype(), set);
  visit_numbers(ctx, o.a.dtype(), [&]<class T>() {
    ctx.set_output(0, map_binary<T, T, T>(ctx, o.a, o.b, o.out_shape, [&](T a, T b) -> T { return fn(a, b); }));
  });
}

struct AddFn {
  template <class T>
  T operator()(T a, T b) const {
    if constexpr (is_float_v<T>)
      return T(static_cast<compute_t<T>>(a) + static_cast<compute_t<T>>(b));
    else
      return wrap_add(a, b);
  }
};
struct SubFn {
  template <class T>
  T operator()(T a, T b) const {
    if constexpr (is_float_v<T>)
      return T(static_cast<compute_t<T>>(a) - static_cast<compute_t<T>>(b));
    else
      return wrap_sub(a, b);
  }
};
struct MulFn {
  template <class T>
  T operator()(T a, T b) const {
    if constexpr (is_float_v<T>)
      return T(static_cast<compute_t<T>>(a) * static_cast<compute_t<T>>(b));
    else
      return wrap_mul(a, b);
  }
};
struct DivFn {
  const NodeView* node;
  template <class T>
  T operator()(T a, T b) const {
    if constexpr (is_float_v<T>) {
      return T(static_cast<compute_t<T>>(a) / static_cast<compute_t<T>>(b));
    } else {
      if (b == 0) node->fail("integer division by zero");
      if constexpr (std::is_signed_v<T>) {
        if (b == -1) return wrap_neg(a);  // lowest / -1 overflows
      }
      return static_cast<T>(a / b);  // truncates toward zero
    }
  }
};
struct MaxFn {
  template <class T>
  T operator()(T a, T b) const {
    if (is_nan_value(a)) return a;
    if (is_nan_value(b)) return b;
    return cval(a) < cval(b) ? b : a;
  }
};
struct MinFn {
  template <class T>
  T operator()(T a, T b) const {
    if (is_nan_value(a)) return a;
    if (is_nan_value(b)) return b;
    return cval(b) < cval(a) ? b : a;
  }
};

void mod_kernel(KernelContext& ctx) {
  int64_t fmod = ctx.attr_int("fmod", 0);
  if (fmod != 0 && fmod != 1) ctx.fail("attribute \"fmod\" must be 0 or 1, got ", fmod);
  if (fmod == 0 && ir::is_float(ctx.input(0).dtype()))
    ctx.fail("attribute \"fmod\" must be 1 for floating-point inputs (", ir::dtype_name(ctx.input(0).dtype()), ")");
  arithmetic(ctx, kNumberTypes, false, [&]<class T>(T a, T b) -> T {
    if constexpr (is_float_v<T>) {
      return T(std::fmod(static_cast<compute_t<T>>(a), static_cast<compute_t<T>>(b)));
    } else {
      if (b == 0) ctx.fail("integer modulo by zero");
      if constexpr (std::is_signed_v<T>) {
        if (b == -1) return T(0);  // lowest % -1 overflows in C++
      }
      T r = static_cast<T>(a % b);  // sign of the dividend, as C's fmod
      if constexpr (std::is_signed_v<T>) {
        if (fmod == 0 && r != 0 && ((r < 0) != (b < 0))) r = static_cast<T>(r + b);  // sign of the divisor
      }
      return r;
    }
  });
}

// ---- Pow ------------------------------------------------------------------------------------------

// x^y with the exponent as a double. Integer bases raised to non-negative integral exponents are
// computed exactly (wrapping like repeated multiplication); anything else goes through std::pow.
template <class T>
T power(T x, double y) {
  if constexpr (is_float_v<T>) {
    return T(static_cast<compute_t<T>>(std::pow(static_cast<double>(static_cast<compute_t<T>>(x)), y)));
  } else {
    if (y >= 0 && y < 18446744073709551616.0 && std::trunc(y) == y) {
      uint64_t e = static_cast<uint64_t>(y);
      T result = 1, base = x;
      while (e) {
        if (e & 1u) result = wrap_mul(result, base);
        e >>= 1;
        if (e) base = wrap_mul(base, base);
      }
      return result;
    }
    return float_to_int<T>(std::pow(static_cast<double>(x), y));
  }
}

void pow_kernel(KernelContext& ctx) {
  BinaryOperands o = binary_operands(ctx, true);
  check_dtype(ctx, "base", o.a.dtype(), kNumberTypes);
  check_dtype(ctx, "exponent", o.b.dtype(), kNumberTypes);
  // The exponent as float64 keeps the kernel one instantiation per base type; every exponent value
  // that does not overflow any base type is exact in a double.
  ir::Tensor exponent = o.b;
  if (o.b.dtype() != ir::DType::kFloat64) {
    visit_numbers(ctx, o.b.dtype(), [&]<class E>() {
      exponent = map_unary<double, E>(ctx, o.b, [](E v) { return static_cast<double>(static_cast<compute_t<E>>(v)); });
    });
  }
  visit_numbers(ctx, o.a.dtype(), [&]<class T>() {
    ctx.set_output(
        0, map_binary<T, T, double>(ctx, o.a, exponent, o.out_shape, [](T x, double y) { return power(x, y); }));
  });
}
// ---- PRelu --------------------------------------------------------------------------------------------

// Slope broadcasts to X's shape (unidirectionally). Before opset 7, a 1-D slope of X's channel count
// applies per channel (dim 1), as the old exporters meant it.
void prelu_kernel(KernelContext& ctx) {
  const ir::Tensor& x = ctx.input(0);
  ir::Tensor slope = ctx.input(1);
  check_same_dtype(ctx, x.dtype(), slope.dtype(), "X", "slope");
  if (slope.numel() == 1) {
    slope = slope.reshaped({});
  } else if (ctx.opset() < 7 && slope.shape() != x.shape() && slope.rank() == 1 && x.rank() >= 2 &&
             slope.dim(0) == x.dim(1)) {
    std::vector<int64_t> s(x.rank() - 1, 1);
    s[0] = slope.dim(0);
    slope = slope.reshaped(s);
  }
  std::vector<int64_t> out = broadcast_shapes(ctx, std::vector<std::vector<int64_t>>{x.shape(), slope.shape()});
  if (out != x.shape())
    ctx.fail("slope of shape ", ir::to_string(slope.shape()), " does not broadcast to X of shape ",
             ir::to_string(x.shape()));
  visit_numbers(ctx, x.dtype(), [&]<class T>() {
    ctx.set_output(0, map_binary<T, T, T>(ctx, x, slope, out, [](T v, T s) -> T {
                     if constexpr (is_float_v<T>) {
                       using C = compute_t<T>;
                       C c = static_cast<C>(v);
                       return c < C(0) ? T(static_cast<C>(s) * c) : v;
                     } else if constexpr (std::is_signed_v<T>) {
                       return v < 0 ? wrap_mul(s, v) : v;
                     } else {
                       return v;
                     }
                   }));
  });
}

void infer_prelu(InferenceContext& ctx) {
  check_input_dtype(ctx, 0, kNumberTypes);
  check_same_dtype(ctx, ctx.input_type(0).dtype, ctx.input_type(1).dtype, "X", "slope");
  infer_same_as_input(ctx);
}

// ---- Variadic: Max, Min, Sum, Mean ------------------------------------------------------------------

template <class Fn>
KernelFn variadic(unsigned set, bool mean, Fn fn) {
  return [=](KernelContext& ctx) {
    size_t n = ctx.num_inputs();
    if (n == 0) ctx.fail("needs at least one input");
    std::vector<std::vector<int64_t>> shapes;
    for (size_t i = 0; i < n; ++i) {
      const ir::Tensor& t = ctx.input(i);
      check_same_dtype(ctx, ctx.input(0).dtype(), t.dtype(), "input 0", str("input ", i));
      shapes.push_back(t.shape());
    }
    ir::DType dtype = ctx.input(0).dtype();
    check_dtype(ctx, "input 0", dtype, set);
    std::vector<int64_t> out_shape = broadcast_shapes(ctx, shapes);
    visit_numbers(ctx, dtype, [&]<class T>() {
      ir::Tensor out = ctx.make_tensor(dtype, out_shape);
      T* po = out.data<T>();
      const T* p0 = ctx.input(0).data<T>();
      broadcast_loop<1>(out_shape, {&ctx.input(0).shape()},
                        [&](int64_t i, const std::array<int64_t, 1>& off) { po[i] = p0[off[0]]; });
      for (size_t k = 1; k < n; ++k) {
        const T* pk = ctx.input(k).data<T>();
        broadcast_loop<1>(out_shape, {&ctx.input(k).shape()},
                          [&](int64_t i, const std::array<int64_t, 1>& off) { po[i] = fn(po[i], pk[off[0]]); });
      }
      if constexpr (is_float_v<T>) {
        if (mean) {
          using C = compute_t<T>;
          for (int64_t i = 0, m = out.numel(); i < m; ++i) po[i] = T(static_cast<C>(po[i]) / static_cast<C>(n));
        }
      }
      ctx.set_output(0, out);
    });
  };
}

InferFn variadic_infer(unsigned set) {
  return [=](InferenceContext& ctx) {
    for (size_t i = 0; i < ctx.num_inputs(); ++i) {
      if (!ctx.has_input(i)) ctx.fail("input ", i, " is missing");
      check_input_dtype(ctx, i, set);
      check_same_dtype(ctx, ctx.input_type(0).dtype, ctx.input_type(i).dtype, "input 0", str("input ", i));
    }
    infer_broadcast(ctx);
  };
}
}  // namespace

void register_binary_ops(OpRegistry& r) {
  // Arithmetic; before opset 7 these broadcast only with broadcast=1 (see binary_operands).
  r.add(onnx_op("Add", 1, binary_infer(kNumberTypes, true),
                [](KernelContext& ctx) { arithmetic(ctx, kNumberTypes, true, AddFn{}); }));
  r.add(onnx_op("Sub", 1, binary_infer(kNumberTypes, true),
                [](KernelContext& ctx) { arithmetic(ctx, kNumberTypes, true, SubFn{}); }));
  r.add(onnx_op("Mul", 1, binary_infer(kNumberTypes, true),
                [](KernelContext& ctx) { arithmetic(ctx, kNumberTypes, true, MulFn{}); }));
  r.add(onnx_op("Div", 1, binary_infer(kNumberTypes, true),
                [](KernelContext& ctx) { arithmetic(ctx, kNumberTypes, true, DivFn{&ctx}); }));
  r.add(onnx_op("Mod", 10, binary_infer(kNumberTypes, false), mod_kernel));
  r.add(onnx_op(
      "Pow", 1,
      [](InferenceContext& ctx) {
        check_input_dtype(ctx, 0, kNumberTypes);
        check_input_dtype(ctx, 1, kNumberTypes);
        infer_binary(ctx, true, std::nullopt, /*same_dtypes=*/false);
      },
      pow_kernel));
  r.add(onnx_op("PRelu", 1, infer_prelu, prelu_kernel));

  // Variadic, broadcasting all inputs together (opsets before 8 required equal shapes, a special case).
  r.add(onnx_op("Max", 1, variadic_infer(kNumberTypes), variadic(kNumberTypes, false, MaxFn{})));
  r.add(onnx_op("Min", 1, variadic_infer(kNumberTypes), variadic(kNumberTypes, false, MinFn{})));
  r.add(onnx_op("Sum", 1, variadic_infer(kNumberTypes), variadic(kNumberTypes, false, AddFn{})));
  r.add(onnx_op("Mean", 1, variadic_infer(kFloatTypes), variadic(kFloatTypes, true, AddFn{})));
}

}  // namespace kiln::ops::elementwise
