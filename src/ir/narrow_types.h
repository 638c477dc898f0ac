// Conversions and ONNX packing of the narrow element types: float8 (e4m3fn, e4m3fnuz, e5m2, e5m2fnuz,
// e8m0), float4e2m1, and the 4- and 2-bit integers.
//
// Storage: in memory every element takes one byte (DType's size is 1): a float's bit pattern (float4e2m1
// in the low nibble), an integer's value (int4/int2 sign-extended to int8, uint4/uint2 zero-extended).
// Only ONNX's TensorProto packs the sub-byte types, two or four to a byte, low bits first; they are
// unpacked on import and packed on export. One byte per element keeps every element addressable, so the
// byte-moving kernels (Identity, Reshape, Transpose, Gather, Concat ...) and the allocator need nothing
// new, and the tensors these types appear in (quantized weights, test data) are small enough that the
// 2-4x memory cost does not matter.
//
// Rounding is as ONNX's reference (onnx.reference with ml_dtypes) does it: to nearest, ties to even.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "ir/dtype.h"

namespace kiln::ir {

// Cast's `round_mode` for float8e8m0 (opset 24): "up" (the default), "down" or "nearest".
enum class E8M0Rounding { kUp, kDown, kNearest };
// Parses a round_mode attribute value; throws kiln::Error on another string.
E8M0Rounding e8m0_rounding_from_name(std::string_view name);

// The value of one element (its in-memory byte): exact for every narrow type; NaN for NaN codes.
double narrow_to_double(DType t, uint8_t v);

// A double as narrow float type t, rounded to nearest even. NaN stays NaN. A value beyond the largest
// finite one (infinity included) becomes +-max when `saturate`, else infinity for float8e5m2 and NaN for
// the other float8 types; float4e2m1, having neither, always saturates (as ml_dtypes does). float8e8m0
// follows ONNX's to_float8e8m0 on the value's float32 bits (sign ignored, `rounding` applies).
uint8_t narrow_float_from_double(DType t, double v, bool saturate, E8M0Rounding rounding = E8M0Rounding::kUp);

// An integer as narrow integer type t, modulo 2^bits (two's complement), as numpy's astype wraps.
uint8_t narrow_int_from_int64(DType t, int64_t v);
// The range of a narrow integer type: [-8, 7] for int4, [0, 3] for uint2 ...
int64_t narrow_int_min(DType t);
int64_t narrow_int_max(DType t);

// Any narrow type from a double, as Cast converts: floats as narrow_float_from_double, integers as C++
// (and numpy on x86) convert float to int64 (toward zero; NaN and out-of-range values give int64's
// lowest) and then wrap.
uint8_t narrow_from_double(DType t, double v, bool saturate = true, E8M0Rounding rounding = E8M0Rounding::kUp);

// ONNX's serialized form: bytes holding n elements of t (n * bits / 8, rounded up).
size_t narrow_packed_bytes(DType t, int64_t n);
// In-memory bytes (one per element) to ONNX's packed form, and back; for the 8-bit types both copy.
// Padding bits of the last byte are written as zero and ignored on reading.
void pack_narrow(DType t, const uint8_t* elems, int64_t n, uint8_t* packed);
void unpack_narrow(DType t, const uint8_t* packed, int64_t n, uint8_t* elems);

}  // namespace kiln::ir
