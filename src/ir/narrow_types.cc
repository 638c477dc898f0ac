#include "ir/narrow_types.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>

#include "common/error.h"

namespace kiln::ir {

namespace {

// A small binary float format: `mant` mantissa bits, exponent `bias`, total `bits`, the largest finite
// value, and how it spells NaN and infinity.
struct NarrowFloatFormat {
  int bits;
  int mant;
  int bias;
  double max;
  enum class Specials { kIeee, kAllOnesNaN, kUnsignedZeroNaN, kNone } specials;
};

NarrowFloatFormat narrow_float_format(DType t) {
  using S = NarrowFloatFormat::Specials;
  switch (t) {
    case DType::kFloat8E4M3FN:
      return {8, 3, 7, 448.0, S::kAllOnesNaN};  // S.1111.111 is NaN; no infinity
    case DType::kFloat8E4M3FNUZ:
      return {8, 3, 8, 240.0, S::kUnsignedZeroNaN};  // 0x80 is NaN; no -0, no infinity
    case DType::kFloat8E5M2:
      return {8, 2, 15, 57344.0, S::kIeee};
    case DType::kFloat8E5M2FNUZ:
      return {8, 2, 16, 57344.0, S::kUnsignedZeroNaN};
    case DType::kFloat4E2M1:
      return {4, 1, 1, 6.0, S::kNone};
    default:
      fail("not a narrow float type: ", dtype_name(t));
  }
}

uint8_t narrow_e8m0_from_float(float f, bool saturate, E8M0Rounding rounding) {
  uint32_t bits = std::bit_cast<uint32_t>(f);
  uint32_t exponent = (bits >> 23) & 0xFF;
  if (exponent == 0xFF) return 0xFF;  // NaN and infinity
  bool round_up = false;
  if (rounding == E8M0Rounding::kUp) {
    round_up = (bits & 0x7FFFFF) != 0;
  } else if (rounding == E8M0Rounding::kNearest) {
    bool g = bits & 0x400000, r = bits & 0x200000, s = bits & 0x1FFFFF, lsb = exponent > 0;
    round_up = g && (r || s || lsb);
  }
  if (round_up && !(saturate && exponent == 0xFE)) ++exponent;
  return static_cast<uint8_t>(exponent);
}

}  // namespace

E8M0Rounding e8m0_rounding_from_name(std::string_view name) {
  if (name == "up") return E8M0Rounding::kUp;
  if (name == "down") return E8M0Rounding::kDown;
  if (name == "nearest") return E8M0Rounding::kNearest;
  fail("round_mode must be \"up\", \"down\" or \"nearest\", got \"", name, "\"");
}

double narrow_to_double(DType t, uint8_t v) {
  switch (t) {
    case DType::kInt4:
    case DType::kInt2:
      return static_cast<double>(static_cast<int8_t>(v));
    case DType::kUInt4:
    case DType::kUInt2:
      return static_cast<double>(v);
    case DType::kFloat8E8M0:
      return v == 0xFF ? std::numeric_limits<double>::quiet_NaN() : std::ldexp(1.0, static_cast<int>(v) - 127);
    default:
      break;
  }
  NarrowFloatFormat f = narrow_float_format(t);
  using S = NarrowFloatFormat::Specials;
  const int exp_bits = f.bits - 1 - f.mant;
  const unsigned sign = (v >> (f.bits - 1)) & 1u;
  const unsigned exp = (v >> f.mant) & ((1u << exp_bits) - 1);
  const unsigned mant = v & ((1u << f.mant) - 1);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  if (f.specials == S::kAllOnesNaN && exp == (1u << exp_bits) - 1 && mant == (1u << f.mant) - 1) return nan;
  if (f.specials == S::kUnsignedZeroNaN && v == 0x80) return nan;
  if (f.specials == S::kIeee && exp == (1u << exp_bits) - 1) return mant ? nan : (sign ? -HUGE_VAL : HUGE_VAL);
  double m = exp == 0 ? static_cast<double>(mant) : static_cast<double>(mant + (1u << f.mant));
  double a = std::ldexp(m, (exp == 0 ? 1 : static_cast<int>(exp)) - f.bias - f.mant);
  return sign ? -a : a;
}

uint8_t narrow_float_from_double(DType t, double v, bool saturate, E8M0Rounding rounding) {
  if (t == DType::kFloat8E8M0) return narrow_e8m0_from_float(static_cast<float>(v), saturate, rounding);
  NarrowFloatFormat f = narrow_float_format(t);
  using S = NarrowFloatFormat::Specials;
  const int exp_bits = f.bits - 1 - f.mant;
  const unsigned sign_bit = std::signbit(v) ? 1u << (f.bits - 1) : 0u;
  if (std::isnan(v)) {
    switch (f.specials) {
      case S::kAllOnesNaN:
        return static_cast<uint8_t>(sign_bit | 0x7F);
      case S::kIeee:
        return static_cast<uint8_t>(sign_bit | 0x7E);
      case S::kUnsignedZeroNaN:
        return 0x80;
      case S::kNone:
        // ml_dtypes gives +0 for a negative NaN and -0 for a positive one; ONNX's test data follows it.
        return static_cast<uint8_t>(sign_bit ? 0 : 1u << (f.bits - 1));
    }
  }
  const double a = std::fabs(v);
  double r = 0;
  if (a != 0 && std::isfinite(a)) {
    int k = 0;
    std::frexp(a, &k);  // a = m * 2^k, m in [0.5, 1)
    int e = std::max(k - 1, 1 - f.bias);
    double quantum = std::ldexp(1.0, e - f.mant);
    r = std::nearbyint(a / quantum) * quantum;  // the default rounding mode: to nearest, ties to even
  } else if (std::isinf(a)) {
    r = a;
  }
  if (r > f.max) {
    if (saturate || f.specials == S::kNone)
      r = f.max;
    else if (f.specials == S::kIeee)
      return static_cast<uint8_t>(sign_bit | (((1u << exp_bits) - 1) << f.mant));  // infinity
    else if (f.specials == S::kAllOnesNaN)
      return static_cast<uint8_t>(sign_bit | 0x7F);
    else
      return 0x80;
  }
  if (r == 0) return f.specials == S::kUnsignedZeroNaN ? 0 : static_cast<uint8_t>(sign_bit);
  int k = 0;
  std::frexp(r, &k);
  int e = k - 1;
  unsigned code = 0;
  if (e < 1 - f.bias) {
    code = static_cast<unsigned>(std::ldexp(r, f.bias - 1 + f.mant));  // subnormal: exponent field 0
  } else {
    unsigned mant = static_cast<unsigned>(std::ldexp(r, f.mant - e)) - (1u << f.mant);
    code = (static_cast<unsigned>(e + f.bias) << f.mant) | mant;
  }
  return static_cast<uint8_t>(sign_bit | code);
}

int64_t narrow_int_min(DType t) {
  switch (t) {
    case DType::kInt4:
      return -8;
    case DType::kInt2:
      return -2;
    case DType::kUInt4:
    case DType::kUInt2:
      return 0;
    default:
      fail("not a narrow integer type: ", dtype_name(t));
  }
}

int64_t narrow_int_max(DType t) {
  switch (t) {
    case DType::kInt4:
      return 7;
    case DType::kInt2:
      return 1;
    case DType::kUInt4:
      return 15;
    case DType::kUInt2:
      return 3;
    default:
      fail("not a narrow integer type: ", dtype_name(t));
  }
}

uint8_t narrow_int_from_int64(DType t, int64_t v) {
  KILN_CHECK(is_narrow_integer(t), "not a narrow integer type: ", dtype_name(t));
  const int bits = dtype_bits(t);
  const uint64_t mask = (uint64_t{1} << bits) - 1;
  uint64_t u = static_cast<uint64_t>(v) & mask;
  if ((t == DType::kInt4 || t == DType::kInt2) && (u >> (bits - 1))) u |= ~mask;  // sign-extend into the byte
  return static_cast<uint8_t>(u);
}

uint8_t narrow_from_double(DType t, double v, bool saturate, E8M0Rounding rounding) {
  if (is_narrow_float(t)) return narrow_float_from_double(t, v, saturate, rounding);
  constexpr double kTwo63 = 9223372036854775808.0;
  int64_t i =
      (std::isnan(v) || v >= kTwo63 || v < -kTwo63) ? std::numeric_limits<int64_t>::min() : static_cast<int64_t>(v);
  return narrow_int_from_int64(t, i);
}

size_t narrow_packed_bytes(DType t, int64_t n) {
  const size_t per_byte = static_cast<size_t>(8 / dtype_bits(t));
  return (static_cast<size_t>(n) + per_byte - 1) / per_byte;
}

void pack_narrow(DType t, const uint8_t* elems, int64_t n, uint8_t* packed) {
  const int bits = dtype_bits(t);
  if (bits == 8) {
    if (n) std::memcpy(packed, elems, static_cast<size_t>(n));
    return;
  }
  const int per_byte = 8 / bits;
  const unsigned mask = (1u << bits) - 1;
  std::memset(packed, 0, narrow_packed_bytes(t, n));
  for (int64_t i = 0; i < n; ++i)
    packed[i / per_byte] |= static_cast<uint8_t>((elems[i] & mask) << (bits * static_cast<int>(i % per_byte)));
}

void unpack_narrow(DType t, const uint8_t* packed, int64_t n, uint8_t* elems) {
  const int bits = dtype_bits(t);
  if (bits == 8) {
    if (n) std::memcpy(elems, packed, static_cast<size_t>(n));
    return;
  }
  const int per_byte = 8 / bits;
  const unsigned mask = (1u << bits) - 1;
  const bool sign_extend = t == DType::kInt4 || t == DType::kInt2;
  for (int64_t i = 0; i < n; ++i) {
    unsigned u = (packed[i / per_byte] >> (bits * static_cast<int>(i % per_byte))) & mask;
    if (sign_extend && (u >> (bits - 1))) u |= ~mask;
    elems[i] = static_cast<uint8_t>(u);
  }
}

}  // namespace kiln::ir
