#include "ir/dtype.h"

#include <iterator>
#include <ostream>

namespace kiln::ir {

namespace {
struct DTypeInfo {
  DType type;
  size_t size;
  std::string_view name;
  std::string_view onnx_name;
};
constexpr DTypeInfo kDTypes[] = {
    {DType::kFloat32, 4, "float32", "float"},
    {DType::kUInt8, 1, "uint8", "uint8"},
    {DType::kInt8, 1, "int8", "int8"},
    {DType::kUInt16, 2, "uint16", "uint16"},
    {DType::kInt16, 2, "int16", "int16"},
    {DType::kInt32, 4, "int32", "int32"},
    {DType::kInt64, 8, "int64", "int64"},
    {DType::kString, sizeof(std::string), "string", "string"},
    {DType::kBool, 1, "bool", "bool"},
    {DType::kFloat16, 2, "float16", "float16"},
    {DType::kFloat64, 8, "float64", "double"},
    {DType::kUInt32, 4, "uint32", "uint32"},
    {DType::kUInt64, 8, "uint64", "uint64"},
    {DType::kComplex64, 8, "complex64", "complex64"},
    {DType::kComplex128, 16, "complex128", "complex128"},
    {DType::kBFloat16, 2, "bfloat16", "bfloat16"},
    {DType::kFloat8E4M3FN, 1, "float8e4m3fn", "float8e4m3fn"},
    {DType::kFloat8E4M3FNUZ, 1, "float8e4m3fnuz", "float8e4m3fnuz"},
    {DType::kFloat8E5M2, 1, "float8e5m2", "float8e5m2"},
    {DType::kFloat8E5M2FNUZ, 1, "float8e5m2fnuz", "float8e5m2fnuz"},
    {DType::kUInt4, 1, "uint4", "uint4"},
    {DType::kInt4, 1, "int4", "int4"},
    {DType::kFloat4E2M1, 1, "float4e2m1", "float4e2m1"},
    {DType::kFloat8E8M0, 1, "float8e8m0", "float8e8m0"},
    {DType::kUInt2, 1, "uint2", "uint2"},
    {DType::kInt2, 1, "int2", "int2"},
};

const DTypeInfo* find(DType t) {
  for (const auto& info : kDTypes)
    if (info.type == t) return &info;
  return nullptr;
}
}  // namespace

bool dtype_is_valid(int32_t code) { return code >= 1 && code <= 26; }

std::string onnx_type_code_name(int64_t code) {
  if (code >= 1 && code <= 26) return std::string(dtype_name(static_cast<DType>(code)));
  return "type #" + std::to_string(code);
}

size_t dtype_size(DType t) {
  const DTypeInfo* info = find(t);
  KILN_CHECK(info, "unknown element type code ", static_cast<int>(t));
  return info->size;
}

std::string_view dtype_name(DType t) {
  const DTypeInfo* info = find(t);
  return info ? info->name : std::string_view("undefined");
}

DType dtype_from_name(std::string_view name) {
  for (const auto& info : kDTypes)
    if (info.name == name || info.onnx_name == name) return info.type;
  fail("unknown element type \"", name, "\"");
}

bool is_float(DType t) {
  return t == DType::kFloat32 || t == DType::kFloat64 || t == DType::kFloat16 || t == DType::kBFloat16;
}

bool is_integer(DType t) {
  switch (t) {
    case DType::kInt8:
    case DType::kInt16:
    case DType::kInt32:
    case DType::kInt64:
    case DType::kUInt8:
    case DType::kUInt16:
    case DType::kUInt32:
    case DType::kUInt64:
      return true;
    default:
      return false;
  }
}

bool is_signed(DType t) {
  switch (t) {
    case DType::kInt8:
    case DType::kInt16:
    case DType::kInt32:
    case DType::kInt64:
      return true;
    default:
      return is_float(t);
  }
}

bool is_narrow_float(DType t) {
  switch (t) {
    case DType::kFloat8E4M3FN:
    case DType::kFloat8E4M3FNUZ:
    case DType::kFloat8E5M2:
    case DType::kFloat8E5M2FNUZ:
    case DType::kFloat8E8M0:
    case DType::kFloat4E2M1:
      return true;
    default:
      return false;
  }
}

bool is_narrow_integer(DType t) {
  return t == DType::kInt4 || t == DType::kUInt4 || t == DType::kInt2 || t == DType::kUInt2;
}

bool is_narrow(DType t) { return is_narrow_float(t) || is_narrow_integer(t); }

int dtype_bits(DType t) {
  switch (t) {
    case DType::kInt4:
    case DType::kUInt4:
    case DType::kFloat4E2M1:
      return 4;
    case DType::kInt2:
    case DType::kUInt2:
      return 2;
    default:
      return 8 * static_cast<int>(dtype_size(t));
  }
}

std::ostream& operator<<(std::ostream& out, DType t) { return out << dtype_name(t); }

}  // namespace kiln::ir
