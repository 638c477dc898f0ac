// One-input elementwise ops: math functions, activations, rounding, logical and bitwise not, IsNaN,
// IsInf, and Clip (whose bounds are scalars). Floating types compute in float (16-bit types, float)
// or double and round once on store.
#include <cmath>
#include <numbers>

#include "kernels/reference/elementwise_util.h"

namespace kiln::ops::elementwise {

namespace {

// Output 0 has input 0's type, after checking the element type is one the op accepts.
InferFn same_type(unsigned set) {
  return [set](InferenceContext& ctx) {
    const ir::Type& t = ctx.input_type(0);
    if (t.is_tensor() && t.dtype != ir::DType::kUndefined) check_dtype(ctx, "input 0", t.dtype, set);
    infer_same_as_input(ctx);
  };
}

InferFn bool_of_same_shape(unsigned set) {
  return [set](InferenceContext& ctx) {
    const ir::Type& t = ctx.input_type(0);
    if (t.is_tensor() && t.dtype != ir::DType::kUndefined) check_dtype(ctx, "input 0", t.dtype, set);
    ctx.set_output(0, ir::DType::kBool, t.shape);
  };
}

// y = f(x) for floating types; f gets and returns the compute type (float or double).
template <class F>
void unary_float(KernelContext& ctx, F&& f) {
  const ir::Tensor& x = ctx.input(0);
  visit_floats(ctx, x.dtype(), [&]<class T>() {
    using C = compute_t<T>;
    ctx.set_output(0, map_unary<T, T>(ctx, x, [&](T v) { return T(f(static_cast<C>(v))); }));
  });
}

// A kernel for a float function without attributes.
template <class F>
KernelFn float_kernel(F f) {
  return [f](KernelContext& ctx) { unary_float(ctx, f); };
}

template <class C>
C softplus(C x) {
  // log(1 + e^x) without overflow for large x.
  return x > 0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x));
}

template <class C>
C round_half_even(C x) {
  C r = std::round(x);
  if (std::fabs(x - std::trunc(x)) == C(0.5)) r = C(2) * std::round(x / C(2));
  return r;
}

void abs_kernel(KernelContext& ctx) {
  const ir::Tensor& x = ctx.input(0);
  visit_numbers(ctx, x.dtype(), [&]<class T>() {
    ctx.set_output(0, map_unary<T, T>(ctx, x, [](T v) -> T {
                     if constexpr (is_float_v<T>)
                       return T(std::fabs(static_cast<compute_t<T>>(v)));
                     else if constexpr (std::is_signed_v<T>)
                       return v < 0 ? wrap_neg(v) : v;
                     else
                       return v;
                   }));
  });
}

void neg_kernel(KernelContext& ctx) {
  const ir::Tensor& x = ctx.input(0);
  visit_signed_numbers(ctx, x.dtype(), [&]<class T>() {
    ctx.set_output(0, map_unary<T, T>(ctx, x, [](T v) -> T {
                     if constexpr (is_float_v<T>)
                       return T(-static_cast<compute_t<T>>(v));
                     else
                       return wrap_neg(v);
                   }));
  });
}

void sign_kernel(KernelContext& ctx) {
  const ir::Tensor& x = ctx.input(0);
  visit_numbers(ctx, x.dtype(), [&]<class T>() {
    using C = compute_t<T>;
    ctx.set_output(0, map_unary<T, T>(ctx, x, [](T v) -> T {
                     C c = static_cast<C>(v);
                     if (c > C(0)) return T(C(1));
                     if constexpr (std::is_signed_v<C>) {
                       if (c < C(0)) return T(C(-1));
                     }
                     return c == C(0) ? T(C(0)) : v;  // NaN stays NaN
                   }));
  });
}

void relu_kernel(KernelContext& ctx) {
  const ir::Tensor& x = ctx.input(0);
  visit_signed_numbers(ctx, x.dtype(), [&]<class T>() {
    using C = compute_t<T>;
    ctx.set_output(0, map_unary<T, T>(ctx, x, [](T v) -> T { return static_cast<C>(v) < C(0) ? T(C(0)) : v; }));
  });
}

void erf_kernel(KernelContext& ctx) {
  const ir::Tensor& x = ctx.input(0);
  visit_numbers(ctx, x.dtype(), [&]<class T>() {
    ctx.set_output(0, map_unary<T, T>(ctx, x, [](T v) -> T {
                     if constexpr (is_float_v<T>)
                       return T(std::erf(static_cast<compute_t<T>>(v)));
                     else
                       return float_to_int<T>(std::erf(static_cast<double>(v)));
                   }));
  });
}

void shrink_kernel(KernelContext& ctx) {
  float bias = ctx.attr_float("bias", 0.0f);
  float lambd = ctx.attr_float("lambd", 0.5f);
  const ir::Tensor& x = ctx.input(0);
  visit_numbers(ctx, x.dtype(), [&]<class T>() {
    ctx.set_output(0, map_unary<T, T>(ctx, x, [&](T v) -> T {
                     if constexpr (is_float_v<T>) {
                       using C = compute_t<T>;
                       C c = static_cast<C>(v);
                       return T(c < -C(lambd) ? c + C(bias) : c > C(lambd) ? c - C(bias) : C(0));
                     } else {
                       double c = static_cast<double>(v);
                       return float_to_int<T>(c < -double(lambd) ? c + bias : c > double(lambd) ? c - bias : 0.0);
                     }
                   }));
  });
}

void gelu_kernel(KernelContext& ctx) {
  std::string approximate = ctx.attr_string("approximate", "none");
  if (approximate != "none" && approximate != "tanh")
    ctx.fail("attribute \"approximate\" must be \"none\" or \"tanh\", got \"", approximate, "\"");
  bool use_tanh = approximate == "tanh";
  unary_float(ctx, [use_tanh](auto x) {
    using C = decltype(x);
    if (use_tanh) {
      C k = std::sqrt(C(2) / std::numbers::pi_v<C>);
      return C(0.5) * x * (C(1) + std::tanh(k * (x + C(0.044715) * x * x * x)));
    }
    return C(0.5) * x * (C(1) + std::erf(x * std::numbers::sqrt2_v<C> / C(2)));
  });
}

void is_inf_kernel(KernelContext& ctx) {
  bool negative = ctx.attr_int("detect_negative", 1) != 0;
  bool positive = ctx.attr_int("detect_positive", 1) != 0;
  const ir::Tensor& x = ctx.input(0);
  visit_floats(ctx, x.dtype(), [&]<class T>() {
    ctx.set_output(0, map_unary<bool, T>(ctx, x, [&](T v) {
                     auto c = static_cast<compute_t<T>>(v);
                     return std::isinf(c) && (c > 0 ? positive : negative);
                   }));
  });
}

void is_nan_kernel(KernelContext& ctx) {
  const ir::Tensor& x = ctx.input(0);
  visit_floats(ctx, x.dtype(), [&]<class T>() {
    ctx.set_output(0, map_unary<bool, T>(ctx, x, [](T v) { return std::isnan(static_cast<compute_t<T>>(v)); }));
  });
}

void not_kernel(KernelContext& ctx) {
  const ir::Tensor& x = ctx.input(0);
  check_dtype(ctx, "input 0", x.dtype(), kBoolType);
  ctx.set_output(0, map_unary<bool, bool>(ctx, x, [](bool v) { return !v; }));
}

void bitwise_not_kernel(KernelContext& ctx) {
  const ir::Tensor& x = ctx.input(0);
  visit_ints(ctx, x.dtype(),
             [&]<class T>() { ctx.set_output(0, map_unary<T, T>(ctx, x, [](T v) { return static_cast<T>(~v); })); });
}

// Clip's bounds: attributes before opset 11, optional scalar inputs from 11.
void clip_kernel(KernelContext& ctx) {
  const ir::Tensor& x = ctx.input(0);
  visit_numbers(ctx, x.dtype(), [&]<class T>() {
    using C = compute_t<T>;
    bool has_lo = false, has_hi = false;
    C lo{}, hi{};
    if (ctx.opset() < 11) {
      if constexpr (is_float_v<T>) {
        if ((has_lo = ctx.has_attr("min"))) lo = static_cast<C>(ctx.attr_float("min"));
        if ((has_hi = ctx.has_attr("max"))) hi = static_cast<C>(ctx.attr_float("max"));
      } else {
        ctx.fail("Clip before opset 11 accepts only floating types, got ", ir::dtype_name(x.dtype()));
      }
    } else {
      auto bound = [&](size_t i, const char* name, bool& has, C& value) {
        if (!ctx.has_input(i)) return;
        const ir::Tensor& t = ctx.input(i);
        check_same_dtype(ctx, x.dtype(), t.dtype(), "input", name);
        if (t.numel() != 1) ctx.fail("\"", name, "\" must be a scalar, got shape ", ir::to_string(t.shape()));
        has = true;
        value = static_cast<C>(t.data<T>()[0]);
      };
      bound(1, "min", has_lo, lo);
      bound(2, "max", has_hi, hi);
    }
    // min is applied before max, so that min > max gives max everywhere (as the spec says); NaN
    // compares false both times and passes through.
    ctx.set_output(0, map_unary<T, T>(ctx, x, [&](T v) -> T {
                     C c = static_cast<C>(v);
                     if (has_lo && c < lo) c = lo;
                     if (has_hi && c > hi) c = hi;
                     return T(c);
                   }));
  });
}

void infer_clip(InferenceContext& ctx) {
  const ir::Type& t = ctx.input_type(0);
  if (t.is_tensor() && t.dtype != ir::DType::kUndefined)
    check_dtype(ctx, "input 0", t.dtype, ctx.opset() < 11 ? kFloatTypes : kNumberTypes);
  if (ctx.opset() >= 11) {
    for (size_t i = 1; i <= 2; ++i) {
      if (!ctx.has_input(i)) continue;
      const ir::Type& b = ctx.input_type(i);
      check_same_dtype(ctx, t.dtype, b.dtype, "input", i == 1 ? "min" : "max");
      if (b.shape) {
        for (const ir::Dim& d : b.shape->dims)
          if (d.is_static() && d.value != 1)
            ctx.fail("\"", i == 1 ? "min" : "max", "\" must be a scalar, got shape ", ir::to_string(*b.shape));
      }
    }
  }
  infer_same_as_input(ctx);
}

}  // namespace

void register_unary_ops(OpRegistry& r) {
  InferFn floats = same_type(kFloatTypes);

  // Math functions.
  r.add(onnx_op("Abs", 1, same_type(kNumberTypes), abs_kernel));
  r.add(onnx_op("Neg", 1, same_type(kSignedNumberTypes), neg_kernel));
  r.add(onnx_op("Sign", 9, same_type(kNumberTypes), sign_kernel));
  r.add(onnx_op("Ceil", 1, floats, float_kernel([](auto x) { return std::ceil(x); })));
  r.add(onnx_op("Floor", 1, floats, float_kernel([](auto x) { return std::floor(x); })));
  r.add(onnx_op("Round", 11, floats, float_kernel([](auto x) { return round_half_even(x); })));
  r.add(onnx_op("Sqrt", 1, floats, float_kernel([](auto x) { return std::sqrt(x); })));
  r.add(onnx_op("Exp", 1, floats, float_kernel([](auto x) { return std::exp(x); })));
  r.add(onnx_op("Log", 1, floats, float_kernel([](auto x) { return std::log(x); })));
  r.add(onnx_op("Reciprocal", 1, floats, float_kernel([](auto x) { return decltype(x)(1) / x; })));
  r.add(onnx_op("Erf", 9, same_type(kNumberTypes), erf_kernel));
  r.add(onnx_op("Sin", 7, floats, float_kernel([](auto x) { return std::sin(x); })));
  r.add(onnx_op("Cos", 7, floats, float_kernel([](auto x) { return std::cos(x); })));
  r.add(onnx_op("Tan", 7, floats, float_kernel([](auto x) { return std::tan(x); })));
  r.add(onnx_op("Asin", 7, floats, float_kernel([](auto x) { return std::asin(x); })));
  r.add(onnx_op("Acos", 7, floats, float_kernel([](auto x) { return std::acos(x); })));
  r.add(onnx_op("Atan", 7, floats, float_kernel([](auto x) { return std::atan(x); })));
  r.add(onnx_op("Sinh", 9, floats, float_kernel([](auto x) { return std::sinh(x); })));
  r.add(onnx_op("Cosh", 9, floats, float_kernel([](auto x) { return std::cosh(x); })));
  r.add(onnx_op("Tanh", 1, floats, float_kernel([](auto x) { return std::tanh(x); })));
  r.add(onnx_op("Asinh", 9, floats, float_kernel([](auto x) { return std::asinh(x); })));
  r.add(onnx_op("Acosh", 9, floats, float_kernel([](auto x) { return std::acosh(x); })));
  r.add(onnx_op("Atanh", 9, floats, float_kernel([](auto x) { return std::atanh(x); })));

  // Activations.
  r.add(onnx_op("Relu", 1, same_type(kSignedNumberTypes), relu_kernel));
  r.add(onnx_op("Sigmoid", 1, floats, float_kernel([](auto x) {
                  using C = decltype(x);
                  // Two forms so that exp never overflows.
                  if (x >= C(0)) return C(1) / (C(1) + std::exp(-x));
                  C e = std::exp(x);
                  return e / (C(1) + e);
                })));
  r.add(onnx_op("Softplus", 1, floats, float_kernel([](auto x) { return softplus(x); })));
  r.add(onnx_op("Softsign", 1, floats, float_kernel([](auto x) { return x / (decltype(x)(1) + std::fabs(x)); })));
  r.add(onnx_op("Mish", 18, floats, float_kernel([](auto x) { return x * std::tanh(softplus(x)); })));
  r.add(onnx_op("Gelu", 20, floats, gelu_kernel));
  r.add(onnx_op("Elu", 1, floats, [](KernelContext& ctx) {
    float alpha = ctx.attr_float("alpha", 1.0f);
    unary_float(ctx, [alpha](auto x) {
      using C = decltype(x);
      return x < C(0) ? C(alpha) * std::expm1(x) : x;
    });
  }));
  r.add(onnx_op("Selu", 1, floats, [](KernelContext& ctx) {
    float alpha = ctx.attr_float("alpha", 1.67326319217681884765625f);
    float gamma = ctx.attr_float("gamma", 1.05070102214813232421875f);
    unary_float(ctx, [alpha, gamma](auto x) {
      using C = decltype(x);
      return x > C(0) ? C(gamma) * x : C(gamma) * (C(alpha) * std::exp(x) - C(alpha));
    });
  }));
  r.add(onnx_op("Celu", 12, floats, [](KernelContext& ctx) {
    float alpha = ctx.attr_float("alpha", 1.0f);
    if (alpha == 0.0f) ctx.fail("attribute \"alpha\" must not be 0");
    // max(0, x) + min(0, alpha * (exp(x / alpha) - 1)), which is this for any nonzero alpha.
    unary_float(ctx, [alpha](auto x) {
      using C = decltype(x);
      return x > C(0) ? x : C(alpha) * std::expm1(x / C(alpha));
    });
  }));
  r.add(onnx_op("HardSigmoid", 1, floats, [](KernelContext& ctx) {
    float alpha = ctx.attr_float("alpha", 0.2f);
    float beta = ctx.attr_float("beta", 0.5f);
    unary_float(ctx, [alpha, beta](auto x) {
      using C = decltype(x);
      C y = C(alpha) * x + C(beta);
      if (y < C(0)) y = C(0);
      if (y > C(1)) y = C(1);
      return y;
    });
  }));
  r.add(onnx_op("HardSwish", 14, floats, float_kernel([](auto x) {
                  using C = decltype(x);
                  C y = x / C(6) + C(0.5);
                  if (y < C(0)) y = C(0);
                  if (y > C(1)) y = C(1);
                  return x * y;
                })));
  r.add(onnx_op("Swish", 24, floats, [](KernelContext& ctx) {  // x * sigmoid(alpha * x)
    float alpha = ctx.attr_float("alpha", 1.0f);
    unary_float(ctx, [alpha](auto x) {
      using C = decltype(x);
      return x / (C(1) + std::exp(-C(alpha) * x));
    });
  }));
  r.add(onnx_op("LeakyRelu", 1, floats, [](KernelContext& ctx) {
    float alpha = ctx.attr_float("alpha", 0.01f);
    unary_float(ctx, [alpha](auto x) {
      using C = decltype(x);
      return x < C(0) ? C(alpha) * x : x;
    });
  }));
  r.add(onnx_op("ThresholdedRelu", 10, floats, [](KernelContext& ctx) {
    float alpha = ctx.attr_float("alpha", 1.0f);
    unary_float(ctx, [alpha](auto x) {
      using C = decltype(x);
      return x > C(alpha) ? x : C(0);
    });
  }));
  r.add(onnx_op("Shrink", 9, same_type(kNumberTypes), shrink_kernel));
  r.add(onnx_op("Clip", 1, infer_clip, clip_kernel));

  // Predicates, logical and bitwise not.
  r.add(onnx_op("IsNaN", 9, bool_of_same_shape(kFloatTypes), is_nan_kernel));
  r.add(onnx_op("IsInf", 10, bool_of_same_shape(kFloatTypes), is_inf_kernel));
  r.add(onnx_op("Not", 1, same_type(kBoolType), not_kernel));
  r.add(onnx_op("BitwiseNot", 18, same_type(kIntTypes), bitwise_not_kernel));
}

}  // namespace kiln::ops::elementwise
