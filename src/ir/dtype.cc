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
};

const DTypeInfo* find(DType t) {
  for (const auto& info : kDTypes)
    if (info.type == t) return &info;
  return nullptr;
}
}  // namespace

bool dtype_is_valid(int32_t code) { return code >= 1 && code <= 16; }

std::string onnx_type_code_name(int64_t code) {
  if (code >= 1 && code <= 16) return std::string(dtype_name(static_cast<DType>(code)));
  static constexpr std::string_view kBeyond[] = {"float8e4m3fn", "float8e4m3fnuz", "float8e5m2", "float8e5m2fnuz",
                                                 "uint4",        "int4",           "float4e2m1"};
  if (code >= 17 && code < 17 + static_cast<int64_t>(std::size(kBeyond))) return std::string(kBeyond[code - 17]);
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

std::ostream& operator<<(std::ostream& out, DType t) { return out << dtype_name(t); }

}  // namespace kiln::ir
