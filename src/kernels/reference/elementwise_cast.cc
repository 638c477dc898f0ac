// Cast and CastLike: between all numeric types, bool and string. Numbers become strings as numpy
// prints them (the shortest digits that read back to the same value: "0.039187793", "1e+20"), and
// strings become numbers by parsing decimal or scientific notation and "NaN", "INF", "+INF", "-INF"
// in any case. The narrow types (float8 of opsets 19 and 24, int4/uint4/float4e2m1 of 21 and 23, int2/uint2
// of 25) convert through double (exact for all their values), with ONNX's `saturate` and `round_mode`;
// casting a narrow type to string is not supported.
#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstring>

#include "ir/narrow_types.h"
#include "kernels/reference/elementwise_util.h"

namespace kiln::ops::elementwise {

namespace {

constexpr unsigned kCastTypes = kNumberBoolTypes | kStringType;

// ONNX element types Cast cannot produce: complex (no conversion is defined).
bool cast_target_unsupported(int64_t code) { return code == 14 || code == 15; }

ir::DType dtype_of_code(const NodeView& node, int64_t code) {
  if (cast_target_unsupported(code)) node.fail("casting to ", ir::onnx_type_code_name(code), " is not supported");
  if (!ir::dtype_is_valid(static_cast<int32_t>(code)))
    node.fail("attribute \"to\" is not a known element type code: ", code);
  return static_cast<ir::DType>(code);
}

// Cast's target type: attribute `to`, a type name string before opset 6 ("FLOAT"), a code after.
ir::DType cast_target(const NodeView& node) {
  const ir::Attribute* to = node.node().find_attribute("to");
  if (!to) node.fail("attribute \"to\" is required");
  if (to->kind == ir::Attribute::Kind::kString) {
    std::string name = to->s;
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::toupper(c); });
    static const std::pair<const char*, int64_t> kNames[] = {
        {"FLOAT", 1},   {"UINT8", 2},      {"INT8", 3},        {"UINT16", 4},   {"INT16", 5},   {"INT32", 6},
        {"INT64", 7},   {"STRING", 8},     {"BOOL", 9},        {"FLOAT16", 10}, {"DOUBLE", 11}, {"UINT32", 12},
        {"UINT64", 13}, {"COMPLEX64", 14}, {"COMPLEX128", 15}, {"BFLOAT16", 16}};
    for (const auto& [n, code] : kNames)
      if (name == n) return dtype_of_code(node, code);
    node.fail("attribute \"to\" names an unknown element type \"", to->s, "\"");
  }
  return dtype_of_code(node, node.attr_int("to"));
}

// ---- Numbers to strings ---------------------------------------------------------------------------

// Shortest round-trip digits of v in scientific form: sign, the digits without the point, and the
// decimal exponent of the first digit.
struct Digits {
  bool negative = false;
  std::string digits;
  int exponent = 0;
};

Digits parse_scientific(std::string_view s) {
  Digits d;
  if (!s.empty() && s[0] == '-') {
    d.negative = true;
    s.remove_prefix(1);
  }
  size_t e = s.find('e');
  for (char c : s.substr(0, e))
    if (c != '.') d.digits += c;
  std::string_view exp = s.substr(e + 1);
  if (!exp.empty() && exp[0] == '+') exp.remove_prefix(1);
  std::from_chars(exp.data(), exp.data() + exp.size(), d.exponent);
  while (d.digits.size() > 1 && d.digits.back() == '0') d.digits.pop_back();
  return d;
}

template <class T>
Digits shortest_digits(T v) {
  char buf[64];
  if constexpr (std::is_floating_point_v<T>) {
    auto res = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::scientific);
    return parse_scientific(std::string_view(buf, static_cast<size_t>(res.ptr - buf)));
  } else {
    // 16-bit types: the fewest significant digits that convert back to the same bits.
    float f = static_cast<float>(v);
    for (int precision = 0; precision < 9; ++precision) {
      auto res = std::to_chars(buf, buf + sizeof buf, f, std::chars_format::scientific, precision);
      float back = 0;
      std::from_chars(buf, res.ptr, back, std::chars_format::scientific);
      if (T(back).bits == v.bits) return parse_scientific(std::string_view(buf, static_cast<size_t>(res.ptr - buf)));
    }
    auto res = std::to_chars(buf, buf + sizeof buf, f, std::chars_format::scientific);
    return parse_scientific(std::string_view(buf, static_cast<size_t>(res.ptr - buf)));
  }
}

// As numpy's str(): positional for 1e-4 <= |v| < 1e16 ("0.5", "100.0"), else scientific with at
// least two exponent digits ("1e-05", "1.5e+20"); "nan", "inf", "-inf".
template <class T>
std::string format_float(T v) {
  auto c = static_cast<compute_t<T>>(v);
  if (std::isnan(c)) return "nan";
  if (std::isinf(c)) return c > 0 ? "inf" : "-inf";
  if (c == 0) return std::signbit(c) ? "-0.0" : "0.0";
  Digits d = shortest_digits(v);
  std::string out = d.negative ? "-" : "";
  int k = static_cast<int>(d.digits.size());
  if (d.exponent >= -4 && d.exponent < 16) {
    if (d.exponent >= 0) {
      std::string int_part = d.digits.substr(0, std::min(k, d.exponent + 1));
      int_part.append(static_cast<size_t>(std::max(0, d.exponent + 1 - k)), '0');
      std::string frac = k > d.exponent + 1 ? d.digits.substr(static_cast<size_t>(d.exponent + 1)) : "0";
      out += int_part + "." + frac;
    } else {
      out += "0." + std::string(static_cast<size_t>(-d.exponent - 1), '0') + d.digits;
    }
  } else {
    out += d.digits.substr(0, 1);
    if (k > 1) out += "." + d.digits.substr(1);
    int e = d.exponent;
    out += e < 0 ? "e-" : "e+";
    std::string exp = std::to_string(e < 0 ? -e : e);
    if (exp.size() < 2) exp = "0" + exp;
    out += exp;
  }
  return out;
}

template <class T>
std::string to_string_value(T v) {
  if constexpr (std::is_same_v<T, bool>)
    return v ? "True" : "False";  // as numpy prints bools
  else if constexpr (is_float_v<T>)
    return format_float(v);
  else
    return std::to_string(v);
}

// ---- Strings to numbers ---------------------------------------------------------------------------

template <class To>
To parse_value(const NodeView& node, const std::string& text) {
  std::string_view s = text;
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  std::string lower(s);
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  if constexpr (std::is_same_v<To, bool>) {
    if (lower == "true") return true;
    if (lower == "false") return false;
  }
  // from_chars accepts neither a leading '+' nor, after one, a second sign.
  std::string_view body = s;
  if (!body.empty() && body[0] == '+' && (body.size() < 2 || body[1] != '-')) body.remove_prefix(1);
  const char* first = body.data();
  const char* last = body.data() + body.size();
  if constexpr (is_int_v<To>) {
    To v{};
    auto res = std::from_chars(first, last, v);
    if (res.ec == std::errc() && res.ptr == last) return v;
  }
  if constexpr (std::is_same_v<To, float>) {
    float f = 0;
    auto res = std::from_chars(first, last, f, std::chars_format::general);
    if (res.ec == std::errc() && res.ptr == last) return f;
  }
  double d = 0;
  auto res = std::from_chars(first, last, d, std::chars_format::general);
  if (res.ptr != last || body.empty() || (res.ec != std::errc() && res.ec != std::errc::result_out_of_range))
    node.fail("cannot convert string \"", text, "\" to ", ir::dtype_name(ir::dtype_v<To>));
  if (res.ec == std::errc::result_out_of_range) {
    // Too large or too small for a double: infinity or zero with the sign of the text.
    bool negative = body[0] == '-';
    size_t e = lower.find('e');
    bool tiny = e != std::string::npos && lower.find('-', e) != std::string::npos;
    d = tiny ? (negative ? -0.0 : 0.0) : (negative ? -HUGE_VAL : HUGE_VAL);
  }
  return convert_number<To>(d);
}

// ---- Narrow types ---------------------------------------------------------------------------------

// How a value becomes a narrow float: `saturate` (opset 19) and float8e8m0's `round_mode` (opset 24).
struct NarrowCastMode {
  bool saturate = true;
  ir::E8M0Rounding rounding = ir::E8M0Rounding::kUp;
};

// A numeric or bool value as narrow type `to`. Integers reach narrow integers through int64 (so that
// wide values wrap exactly), everything else through double.
template <class F>
uint8_t narrow_cast_from(F v, ir::DType to, const NarrowCastMode& mode) {
  if constexpr (std::is_same_v<F, bool>) {
    return ir::narrow_from_double(to, v ? 1.0 : 0.0, mode.saturate, mode.rounding);
  } else if constexpr (is_int_v<F>) {
    if (ir::is_narrow_integer(to)) return ir::narrow_int_from_int64(to, static_cast<int64_t>(v));
    return ir::narrow_from_double(to, static_cast<double>(v), mode.saturate, mode.rounding);
  } else {
    return ir::narrow_from_double(to, static_cast<double>(static_cast<compute_t<F>>(v)), mode.saturate, mode.rounding);
  }
}

// Cast where the input or the target (or both) is a narrow type.
ir::Tensor cast_narrow_tensor(const KernelContext& ctx, const ir::Tensor& x, ir::DType to, const NarrowCastMode& mode) {
  ir::DType from = x.dtype();
  ir::Tensor out = ctx.make_tensor(to, x.shape());
  const int64_t n = x.numel();
  if (ir::is_narrow(from)) {
    if (to == ir::DType::kString) ctx.fail("casting ", ir::dtype_name(from), " to string is not supported");
    const auto* in = static_cast<const uint8_t*>(x.raw());
    if (ir::is_narrow(to)) {
      auto* po = static_cast<uint8_t*>(out.raw());
      for (int64_t i = 0; i < n; ++i) {
        double d = ir::narrow_to_double(from, in[i]);
        po[i] = ir::is_narrow_integer(from) && ir::is_narrow_integer(to)
                    ? ir::narrow_int_from_int64(to, static_cast<int64_t>(d))
                    : ir::narrow_from_double(to, d, mode.saturate, mode.rounding);
      }
      return out;
    }
    visit_numbers_bool(ctx, to, [&]<class To>() {
      To* po = out.data<To>();
      for (int64_t i = 0; i < n; ++i) {
        double d = ir::narrow_to_double(from, in[i]);
        po[i] = ir::is_narrow_integer(from) ? convert_number<To>(static_cast<int64_t>(d)) : convert_number<To>(d);
      }
    });
    return out;
  }
  auto* po = static_cast<uint8_t*>(out.raw());
  if (from == ir::DType::kString) {
    const auto* in = x.data<std::string>();
    for (int64_t i = 0; i < n; ++i) {
      double d = parse_value<double>(ctx, in[i]);
      po[i] = ir::narrow_from_double(to, d, mode.saturate, mode.rounding);
    }
    return out;
  }
  visit_numbers_bool(ctx, from, [&]<class F>() {
    const F* in = x.data<F>();
    for (int64_t i = 0; i < n; ++i) po[i] = narrow_cast_from(in[i], to, mode);
  });
  return out;
}

// ---- Kernels --------------------------------------------------------------------------------------

ir::Tensor cast_tensor(const KernelContext& ctx, const ir::Tensor& x, ir::DType to, const NarrowCastMode& mode) {
  ir::DType from = x.dtype();
  if (ir::is_narrow(from) && from == to) {
    ir::Tensor out = ctx.make_tensor(to, x.shape());
    if (x.nbytes()) std::memcpy(out.raw(), x.raw(), x.nbytes());
    return out;
  }
  if (ir::is_narrow(from) || ir::is_narrow(to)) {
    if (!ir::is_narrow(from)) check_dtype(ctx, "input", from, kCastTypes);
    return cast_narrow_tensor(ctx, x, to, mode);
  }
  check_dtype(ctx, "input", from, kCastTypes);
  if (from == to) {
    ir::Tensor out = ctx.make_tensor(to, x.shape());
    visit_all(ctx, from, [&]<class T>() { std::copy(x.data<T>(), x.data<T>() + x.numel(), out.data<T>()); });
    return out;
  }
  if (to == ir::DType::kString) {
    return visit_numbers_bool(ctx, from, [&]<class F>() {
      return map_unary<std::string, F>(ctx, x, [](F v) { return to_string_value(v); });
    });
  }
  if (from == ir::DType::kString) {
    return visit_numbers_bool(ctx, to, [&]<class To>() {
      return map_unary<To, std::string>(ctx, x, [&](const std::string& v) { return parse_value<To>(ctx, v); });
    });
  }
  return visit_numbers_bool(ctx, from, [&]<class F>() {
    return visit_numbers_bool(
        ctx, to, [&]<class To>() { return map_unary<To, F>(ctx, x, [](F v) { return convert_number<To, F>(v); }); });
  });
}

// `saturate` (opset 19) affects float8 targets only; `round_mode` (opset 24) float8e8m0 only.
NarrowCastMode narrow_cast_mode(const NodeView& node) {
  int64_t saturate = node.attr_int("saturate", 1);
  if (saturate != 0 && saturate != 1) node.fail("attribute \"saturate\" must be 0 or 1, got ", saturate);
  NarrowCastMode mode;
  mode.saturate = saturate == 1;
  try {
    mode.rounding = ir::e8m0_rounding_from_name(node.attr_string("round_mode", "up"));
  } catch (const Error& e) {
    node.fail(e.what());
  }
  return mode;
}

void cast_kernel(KernelContext& ctx) {
  NarrowCastMode mode = narrow_cast_mode(ctx);
  ctx.set_output(0, cast_tensor(ctx, ctx.input(0), cast_target(ctx), mode));
}

void check_cast_type(const NodeView& node, const char* what, ir::DType t) {
  if (!ir::is_narrow(t)) check_dtype(node, what, t, kCastTypes);
}

void cast_like_kernel(KernelContext& ctx) {
  NarrowCastMode mode = narrow_cast_mode(ctx);
  ir::DType to = ctx.input(1).dtype();
  check_cast_type(ctx, "target_type", to);
  ctx.set_output(0, cast_tensor(ctx, ctx.input(0), to, mode));
}

void check_cast_input(const InferenceContext& ctx) {
  const ir::Type& t = ctx.input_type(0);
  if (t.is_tensor() && t.dtype != ir::DType::kUndefined) check_cast_type(ctx, "input", t.dtype);
}

void infer_cast(InferenceContext& ctx) {
  check_cast_input(ctx);
  ctx.set_output(0, cast_target(ctx), ctx.input_type(0).shape);
}

void infer_cast_like(InferenceContext& ctx) {
  check_cast_input(ctx);
  ir::DType to = ctx.input_type(1).dtype;
  if (to != ir::DType::kUndefined) check_cast_type(ctx, "target_type", to);
  ctx.set_output(0, to, ctx.input_type(0).shape);
}

// BitCast (opset 26): the same bits read as another element type of the same width.
ir::DType bitcast_target(const NodeView& node, ir::DType from) {
  ir::DType to = dtype_of_code(node, node.attr_int("to"));
  if (to == ir::DType::kString || from == ir::DType::kString) node.fail("BitCast from or to string is not supported");
  for (ir::DType t : {from, to})  // in memory they take a byte each; their bits are not a byte's
    if (t != ir::DType::kUndefined && ir::dtype_bits(t) < 8)
      node.fail("BitCast of the sub-byte type ", ir::dtype_name(t), " is not supported");
  if (from != ir::DType::kUndefined && ir::dtype_size(from) != ir::dtype_size(to))
    node.fail("BitCast needs types of one width: ", from, " is ", 8 * ir::dtype_size(from), " bits, ", to, " is ",
              8 * ir::dtype_size(to));
  return to;
}

void infer_bitcast(InferenceContext& ctx) {
  const ir::Type& x = ctx.input_type(0);
  ctx.set_output(0, bitcast_target(ctx, x.dtype), x.shape);
}

void bitcast_kernel(KernelContext& ctx) {
  const ir::Tensor& x = ctx.input(0);
  ir::Tensor y = ctx.make_tensor(bitcast_target(ctx, x.dtype()), x.shape());
  if (x.numel() > 0) std::memcpy(y.raw(), x.raw(), static_cast<size_t>(x.numel()) * ir::dtype_size(x.dtype()));
  if (y.dtype() == ir::DType::kBool)  // a bool is 0 or 1: normalize any other byte
    for (int64_t i = 0; i < y.numel(); ++i) y.data<bool>()[i] = reinterpret_cast<const uint8_t*>(x.raw())[i] != 0;
  ctx.set_output(0, std::move(y));
}

}  // namespace

void register_cast_ops(OpRegistry& r) {
  r.add(onnx_op("Cast", 1, infer_cast, cast_kernel));
  r.add(onnx_op("CastLike", 15, infer_cast_like, cast_like_kernel));
  r.add(onnx_op("BitCast", 26, infer_bitcast, bitcast_kernel));
}

}  // namespace kiln::ops::elementwise
