// Element types, numbered as ONNX's TensorProto.DataType so that conversion is a cast.
#pragma once

#include <complex>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/error.h"
#include "common/half.h"

namespace kiln::ir {

enum class DType : int32_t {
  kUndefined = 0,
  kFloat32 = 1,
  kUInt8 = 2,
  kInt8 = 3,
  kUInt16 = 4,
  kInt16 = 5,
  kInt32 = 6,
  kInt64 = 7,
  kString = 8,
  kBool = 9,
  kFloat16 = 10,
  kFloat64 = 11,
  kUInt32 = 12,
  kUInt64 = 13,
  kComplex64 = 14,
  kComplex128 = 15,
  kBFloat16 = 16,
  // The narrow types (opsets 19 to 25). None has a C++ storage type: each element takes one byte in
  // memory (see is_narrow), and the numeric visitors below do not visit them.
  kFloat8E4M3FN = 17,
  kFloat8E4M3FNUZ = 18,
  kFloat8E5M2 = 19,
  kFloat8E5M2FNUZ = 20,
  kUInt4 = 21,
  kInt4 = 22,
  kFloat4E2M1 = 23,
  kFloat8E8M0 = 24,
  kUInt2 = 25,
  kInt2 = 26,
};

// Bytes per element in memory; for kString the size of std::string (strings are stored as std::string
// objects); 1 for every narrow type, the sub-byte ones included (ONNX packs those only in TensorProto).
size_t dtype_size(DType t);
// numpy-style names: "float32", "int64", "bool", "string", "bfloat16"; ONNX's lower-cased for the narrow
// types: "float8e4m3fn", "int4", "float4e2m1".
std::string_view dtype_name(DType t);
// Accepts the numpy-style names and ONNX's names ("float", "double", ...); throws kiln::Error otherwise.
DType dtype_from_name(std::string_view name);
bool dtype_is_valid(int32_t code);
// Name of any ONNX TensorProto.DataType code: "float32", "float8e4m3fn", "int4"; "type #N" for codes
// ONNX does not define.
std::string onnx_type_code_name(int64_t code);
bool is_float(DType t);    // float16, bfloat16, float32, float64
bool is_integer(DType t);  // signed or unsigned integers (not bool)
bool is_signed(DType t);   // signed integers and floats
// The float8, float4 and 2/4-bit integer types. In memory each element is one byte: a float's bit
// pattern (low bits for float4e2m1), an integer's value (int4/int2 sign-extended to int8). Packed
// two or four to a byte only in TensorProto (onnx/tensor_proto.cc). Conversions: ir/narrow_types.h.
bool is_narrow(DType t);
bool is_narrow_float(DType t);    // float8 (all five) and float4e2m1
bool is_narrow_integer(DType t);  // int4, uint4, int2, uint2
// Bits per element in ONNX's serialized form: 8, 4 or 2 for the narrow types, 8 * dtype_size otherwise.
int dtype_bits(DType t);

std::ostream& operator<<(std::ostream& out, DType t);

template <class T>
struct dtype_of;
#define KILN_DTYPE_OF(T, D)           \
  template <>                         \
  struct dtype_of<T> {                \
    static constexpr DType value = D; \
  };
KILN_DTYPE_OF(float, DType::kFloat32)
KILN_DTYPE_OF(uint8_t, DType::kUInt8)
KILN_DTYPE_OF(int8_t, DType::kInt8)
KILN_DTYPE_OF(uint16_t, DType::kUInt16)
KILN_DTYPE_OF(int16_t, DType::kInt16)
KILN_DTYPE_OF(int32_t, DType::kInt32)
KILN_DTYPE_OF(int64_t, DType::kInt64)
KILN_DTYPE_OF(std::string, DType::kString)
KILN_DTYPE_OF(bool, DType::kBool)
KILN_DTYPE_OF(Float16, DType::kFloat16)
KILN_DTYPE_OF(double, DType::kFloat64)
KILN_DTYPE_OF(uint32_t, DType::kUInt32)
KILN_DTYPE_OF(uint64_t, DType::kUInt64)
KILN_DTYPE_OF(std::complex<float>, DType::kComplex64)
KILN_DTYPE_OF(std::complex<double>, DType::kComplex128)
KILN_DTYPE_OF(BFloat16, DType::kBFloat16)
#undef KILN_DTYPE_OF
template <class T>
inline constexpr DType dtype_v = dtype_of<T>::value;

// Calls f.template operator()<T>() with the C++ type of t. Usage:
//   visit_dtype(t, [&]<class T>() { ... });
// The numeric variant excludes string and complex types; the all variant includes them.
template <class F>
decltype(auto) visit_numeric_dtype(DType t, F&& f) {
  switch (t) {
    case DType::kFloat32:
      return f.template operator()<float>();
    case DType::kFloat64:
      return f.template operator()<double>();
    case DType::kFloat16:
      return f.template operator()<Float16>();
    case DType::kBFloat16:
      return f.template operator()<BFloat16>();
    case DType::kInt8:
      return f.template operator()<int8_t>();
    case DType::kInt16:
      return f.template operator()<int16_t>();
    case DType::kInt32:
      return f.template operator()<int32_t>();
    case DType::kInt64:
      return f.template operator()<int64_t>();
    case DType::kUInt8:
      return f.template operator()<uint8_t>();
    case DType::kUInt16:
      return f.template operator()<uint16_t>();
    case DType::kUInt32:
      return f.template operator()<uint32_t>();
    case DType::kUInt64:
      return f.template operator()<uint64_t>();
    case DType::kBool:
      return f.template operator()<bool>();
    default:
      fail("unsupported element type ", dtype_name(t));
  }
}

template <class F>
decltype(auto) visit_dtype(DType t, F&& f) {
  switch (t) {
    case DType::kString:
      return f.template operator()<std::string>();
    case DType::kComplex64:
      return f.template operator()<std::complex<float>>();
    case DType::kComplex128:
      return f.template operator()<std::complex<double>>();
    default:
      return visit_numeric_dtype(t, std::forward<F>(f));
  }
}

// Floating types only (float16, bfloat16, float32, float64).
template <class F>
decltype(auto) visit_float_dtype(DType t, F&& f) {
  switch (t) {
    case DType::kFloat32:
      return f.template operator()<float>();
    case DType::kFloat64:
      return f.template operator()<double>();
    case DType::kFloat16:
      return f.template operator()<Float16>();
    case DType::kBFloat16:
      return f.template operator()<BFloat16>();
    default:
      fail("expected a floating-point element type, got ", dtype_name(t));
  }
}

}  // namespace kiln::ir
