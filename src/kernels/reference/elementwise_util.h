// Helpers shared by the elementwise op files (elementwise_*.cc): element-type dispatch restricted to
// the types an op accepts (with errors naming the node), the arithmetic type of each element type,
// a broadcasting loop that needs no per-element index tables, and value conversions without
// undefined behaviour (they back Cast and every op that stores a computed value in an integer type).
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "kernels/reference/common.h"
#include "ops/registry.h"

namespace kiln::ops::elementwise {

// An ai.onnx op declared from opset `since` on.
OpDef onnx_op(const char* name, int64_t since, InferFn infer, KernelFn kernel);

// ---- Element type sets --------------------------------------------------------------------------

enum TypeSet : unsigned {
  kFloatTypes = 1u,
  kSignedIntTypes = 2u,
  kUnsignedIntTypes = 4u,
  kBoolType = 8u,
  kStringType = 16u,
  kIntTypes = kSignedIntTypes | kUnsignedIntTypes,
  kNumberTypes = kFloatTypes | kIntTypes,
  kSignedNumberTypes = kFloatTypes | kSignedIntTypes,
  kNumberBoolTypes = kNumberTypes | kBoolType,
  kAllTypes = kNumberBoolTypes | kStringType,
};

bool dtype_in(ir::DType t, unsigned set);
// "float16, bfloat16, float32 or float64".
std::string describe(unsigned set);
// Fails naming the node when `t` is not in `set`; `what` names the value ("input 0", "min").
void check_dtype(const NodeView& node, const std::string& what, ir::DType t, unsigned set);
// Fails when two element types that must agree do not.
void check_same_dtype(const NodeView& node, ir::DType a, ir::DType b, const std::string& what_a,
                      const std::string& what_b);

template <class T>
inline constexpr bool is_float_v =
    std::is_floating_point_v<T> || std::is_same_v<T, Float16> || std::is_same_v<T, BFloat16>;
template <class T>
inline constexpr bool is_int_v = std::is_integral_v<T> && !std::is_same_v<T, bool>;

// The type arithmetic happens in: float for the 16-bit storage types, else the type itself.
template <class T>
struct ComputeOf {
  using type = T;
};
template <>
struct ComputeOf<Float16> {
  using type = float;
};
template <>
struct ComputeOf<BFloat16> {
  using type = float;
};
template <class T>
using compute_t = typename ComputeOf<T>::type;

// Calls f.template operator()<T>() for the C++ type of `t`, instantiating f only for the types of
// the set named by the visitor, so that bodies may use operations only those types have.
template <class F>
decltype(auto) visit_floats(const NodeView& node, ir::DType t, F&& f) {
  switch (t) {
    case ir::DType::kFloat32:
      return f.template operator()<float>();
    case ir::DType::kFloat64:
      return f.template operator()<double>();
    case ir::DType::kFloat16:
      return f.template operator()<Float16>();
    case ir::DType::kBFloat16:
      return f.template operator()<BFloat16>();
    default:
      check_dtype(node, "input", t, kFloatTypes);
  }
  node.fail("unreachable element type");
}

template <class F>
decltype(auto) visit_unsigned_ints(const NodeView& node, ir::DType t, F&& f) {
  switch (t) {
    case ir::DType::kUInt8:
      return f.template operator()<uint8_t>();
    case ir::DType::kUInt16:
      return f.template operator()<uint16_t>();
    case ir::DType::kUInt32:
      return f.template operator()<uint32_t>();
    case ir::DType::kUInt64:
      return f.template operator()<uint64_t>();
    default:
      check_dtype(node, "input", t, kUnsignedIntTypes);
  }
  node.fail("unreachable element type");
}

template <class F>
decltype(auto) visit_ints(const NodeView& node, ir::DType t, F&& f) {
  switch (t) {
    case ir::DType::kInt8:
      return f.template operator()<int8_t>();
    case ir::DType::kInt16:
      return f.template operator()<int16_t>();
    case ir::DType::kInt32:
      return f.template operator()<int32_t>();
    case ir::DType::kInt64:
      return f.template operator()<int64_t>();
    case ir::DType::kUInt8:
    case ir::DType::kUInt16:
    case ir::DType::kUInt32:
    case ir::DType::kUInt64:
      return visit_unsigned_ints(node, t, std::forward<F>(f));
    default:
      check_dtype(node, "input", t, kIntTypes);
  }
  node.fail("unreachable element type");
}

template <class F>
decltype(auto) visit_signed_numbers(const NodeView& node, ir::DType t, F&& f) {
  switch (t) {
    case ir::DType::kInt8:
      return f.template operator()<int8_t>();
    case ir::DType::kInt16:
      return f.template operator()<int16_t>();
    case ir::DType::kInt32:
      return f.template operator()<int32_t>();
    case ir::DType::kInt64:
      return f.template operator()<int64_t>();
    case ir::DType::kFloat32:
    case ir::DType::kFloat64:
    case ir::DType::kFloat16:
    case ir::DType::kBFloat16:
      return visit_floats(node, t, std::forward<F>(f));
    default:
      check_dtype(node, "input", t, kSignedNumberTypes);
  }
  node.fail("unreachable element type");
}

template <class F>
decltype(auto) visit_numbers(const NodeView& node, ir::DType t, F&& f) {
  if (ir::is_float(t)) return visit_floats(node, t, std::forward<F>(f));
  check_dtype(node, "input", t, kNumberTypes);
  return visit_ints(node, t, std::forward<F>(f));
}

template <class F>
decltype(auto) visit_numbers_bool(const NodeView& node, ir::DType t, F&& f) {
  if (t == ir::DType::kBool) return f.template operator()<bool>();
  check_dtype(node, "input", t, kNumberBoolTypes);
  return visit_numbers(node, t, std::forward<F>(f));
}

template <class F>
decltype(auto) visit_all(const NodeView& node, ir::DType t, F&& f) {
  if (t == ir::DType::kString) return f.template operator()<std::string>();
  check_dtype(node, "input", t, kAllTypes);
  return visit_numbers_bool(node, t, std::forward<F>(f));
}

// The value a comparison or min/max looks at: float for the 16-bit float types, else the element.
template <class T>
decltype(auto) cval(const T& v) {
  if constexpr (std::is_same_v<T, Float16> || std::is_same_v<T, BFloat16>)
    return static_cast<float>(v);
  else
    return (v);
}

template <class T>
bool is_nan_value(const T& v) {
  if constexpr (is_float_v<T>)
    return std::isnan(static_cast<compute_t<T>>(v));
  else
    return false;
}

// Fails naming the input when its inferred element type is known and not in `set`.
void check_input_dtype(const InferenceContext& ctx, size_t i, unsigned set);
// Two inputs of one element type from `set`, broadcast; output of that type or `out_dtype`.
InferFn binary_infer(unsigned set, bool legacy_broadcast, std::optional<ir::DType> out_dtype = std::nullopt);

// ---- Broadcasting -------------------------------------------------------------------------------

// Strides of an input of `in_shape` read as `out_shape` under numpy broadcasting (0 on broadcast
// dims), right-aligned to the output rank.
std::vector<int64_t> broadcast_strides(const std::vector<int64_t>& in_shape, const std::vector<int64_t>& out_shape);

// Calls f(out_index, offsets) for every element of out_shape in row-major order, where offsets[k]
// is the position in input k (of shape in_shapes[k]) that broadcasts to it.
template <size_t N, class F>
void broadcast_loop(const std::vector<int64_t>& out_shape, const std::array<const ir::Dims*, N>& in_shapes,
                    F&& f) {
  size_t rank = out_shape.size();
  int64_t n = 1;
  for (int64_t d : out_shape) n *= d;
  if (n == 0) return;
  std::array<int64_t, N> off{};
  if (rank == 0) {
    f(int64_t{0}, off);
    return;
  }
  std::array<std::vector<int64_t>, N> strides;
  for (size_t k = 0; k < N; ++k) strides[k] = broadcast_strides(*in_shapes[k], out_shape);
  int64_t inner = out_shape[rank - 1];
  std::array<int64_t, N> inner_stride{};
  for (size_t k = 0; k < N; ++k) inner_stride[k] = strides[k][rank - 1];
  std::vector<int64_t> idx(rank - 1, 0);
  std::array<int64_t, N> base{};
  for (int64_t o = 0; o < n; o += inner) {
    std::array<int64_t, N> cur = base;
    for (int64_t j = 0; j < inner; ++j) {
      f(o + j, cur);
      for (size_t k = 0; k < N; ++k) cur[k] += inner_stride[k];
    }
    for (size_t d = rank - 1; d-- > 0;) {
      ++idx[d];
      for (size_t k = 0; k < N; ++k) base[k] += strides[k][d];
      if (idx[d] < out_shape[d]) break;
      for (size_t k = 0; k < N; ++k) base[k] -= strides[k][d] * idx[d];
      idx[d] = 0;
    }
  }
}

// out[i] = f(a[ia], b[ib]) over the broadcast of a and b into out_shape.
template <class TOut, class TA, class TB, class F>
ir::Tensor map_binary(const KernelContext& ctx, const ir::Tensor& a, const ir::Tensor& b,
                      const std::vector<int64_t>& out_shape, F&& f) {
  ir::Tensor out = ctx.make_tensor(ir::dtype_v<TOut>, out_shape);
  const TA* pa = a.data<TA>();
  const TB* pb = b.data<TB>();
  TOut* po = out.data<TOut>();
  if (a.shape() == out_shape && b.shape() == out_shape) {
    for (int64_t i = 0, n = out.numel(); i < n; ++i) po[i] = f(pa[i], pb[i]);
  } else {
    broadcast_loop<2>(out_shape, {&a.shape(), &b.shape()},
                      [&](int64_t i, const std::array<int64_t, 2>& o) { po[i] = f(pa[o[0]], pb[o[1]]); });
  }
  return out;
}

// out[i] = f(x[i]), same shape.
template <class TOut, class TIn, class F>
ir::Tensor map_unary(const KernelContext& ctx, const ir::Tensor& x, F&& f) {
  ir::Tensor out = ctx.make_tensor(ir::dtype_v<TOut>, x.shape());
  const TIn* in = x.data<TIn>();
  TOut* po = out.data<TOut>();
  for (int64_t i = 0, n = x.numel(); i < n; ++i) po[i] = f(in[i]);
  return out;
}

// The two operands of a binary op and the output shape. Before opset 7, Add/Sub/Mul/Div/Pow, the
// logical and the comparison ops broadcast only when asked (`broadcast`=1), aligning B with A at
// `axis`; `b` is then B reshaped so that numpy broadcasting gives the same result.
struct BinaryOperands {
  ir::Tensor a;
  ir::Tensor b;
  std::vector<int64_t> out_shape;
};
BinaryOperands binary_operands(const KernelContext& ctx, bool legacy_broadcast);
// Shape inference for the same rule; out_dtype defaults to input 0's.
void infer_binary(InferenceContext& ctx, bool legacy_broadcast, std::optional<ir::DType> out_dtype = std::nullopt,
                  bool same_dtypes = true);

// ---- Conversions ----------------------------------------------------------------------------------

// Rounds a double to float with round-to-odd, so that a further rounding to a narrower binary format
// (float16, bfloat16) gives the correctly rounded result of the double.
inline float round_to_odd_float(double d) {
  float f = static_cast<float>(d);
  if (std::isfinite(f) && static_cast<double>(f) != d) {
    if (std::fabs(static_cast<double>(f)) > std::fabs(d)) f = std::nextafter(f, 0.0f);
    f = bits_float(float_bits(f) | 1u);
  }
  return f;
}

// Float to integer without undefined behaviour: like x86 conversions, NaN and values outside int64
// give the lowest int64; narrower types then wrap, as numpy does on x86.
template <class To>
To float_to_int(double v) {
  constexpr double kTwo63 = 9223372036854775808.0;
  if constexpr (std::is_same_v<To, uint64_t>) {
    if (v >= kTwo63 && v < 2 * kTwo63) return static_cast<uint64_t>(v);
  }
  int64_t i =
      (std::isnan(v) || v >= kTwo63 || v < -kTwo63) ? std::numeric_limits<int64_t>::min() : static_cast<int64_t>(v);
  return static_cast<To>(i);
}

// Converts between numeric element types (bool, integers, floats), as Cast does.
template <class To, class From>
To convert_number(From v) {
  if constexpr (std::is_same_v<To, From>) {
    return v;
  } else if constexpr (std::is_same_v<To, bool>) {
    if constexpr (is_float_v<From>)
      return static_cast<compute_t<From>>(v) != 0;  // NaN is true
    else
      return v != 0;
  } else if constexpr (std::is_same_v<From, bool>) {
    if constexpr (is_float_v<To>)
      return To(v ? 1.0f : 0.0f);
    else
      return static_cast<To>(v ? 1 : 0);
  } else if constexpr (is_float_v<From>) {
    if constexpr (is_float_v<To>) {
      if constexpr (std::is_same_v<From, double> && !std::is_floating_point_v<To>)
        return To(round_to_odd_float(v));
      else
        return To(static_cast<compute_t<From>>(v));
    } else {
      return float_to_int<To>(static_cast<double>(static_cast<compute_t<From>>(v)));
    }
  } else {  // From is an integer
    if constexpr (std::is_floating_point_v<To>)
      return static_cast<To>(v);
    else if constexpr (is_float_v<To>)
      return To(round_to_odd_float(static_cast<double>(v)));
    else
      return static_cast<To>(v);  // modular since C++20
  }
}

// Integer arithmetic that wraps around like the hardware instead of overflowing into undefined
// behaviour: computed in uint64 and truncated.
template <class T>
T wrap_add(T a, T b) {
  return static_cast<T>(static_cast<uint64_t>(a) + static_cast<uint64_t>(b));
}
template <class T>
T wrap_sub(T a, T b) {
  return static_cast<T>(static_cast<uint64_t>(a) - static_cast<uint64_t>(b));
}
template <class T>
T wrap_mul(T a, T b) {
  return static_cast<T>(static_cast<uint64_t>(a) * static_cast<uint64_t>(b));
}
template <class T>
T wrap_neg(T a) {
  return static_cast<T>(uint64_t{0} - static_cast<uint64_t>(a));
}

// Registration of each part of the family (elementwise_unary.cc, elementwise_binary.cc,
// elementwise_compare.cc, elementwise_cast.cc).
void register_unary_ops(OpRegistry& r);
void register_binary_ops(OpRegistry& r);
void register_comparison_ops(OpRegistry& r);
void register_cast_ops(OpRegistry& r);

}  // namespace kiln::ops::elementwise
