// TensorProto <-> ir::Tensor and TypeProto <-> ir::Type.
#include <bit>
#include <complex>
#include <cstring>

#include "ir/narrow_types.h"
#include "onnx/proto_convert.h"

namespace kiln::onnx_io::detail {

static_assert(std::endian::native == std::endian::little,
              "raw_data is little-endian; kiln assumes a little-endian host");

using ir::DType;

size_t checked_nbytes(DType dtype, int64_t numel, const std::string& what) {
  if (dtype == DType::kString) return 0;
  if (ir::is_narrow(dtype)) return ir::narrow_packed_bytes(dtype, numel);  // numel fits: one byte or less each
  int64_t bytes = 0;
  if (__builtin_mul_overflow(numel, static_cast<int64_t>(ir::dtype_size(dtype)), &bytes))
    fail(what, ": byte size of ", numel, " elements of ", ir::dtype_name(dtype), " overflows int64");
  return static_cast<size_t>(bytes);
}

namespace {

std::string shape_str(const std::vector<int64_t>& s) { return ir::to_string(s); }

[[noreturn]] void count_mismatch(const std::string& what, const char* field, int64_t got, int64_t need,
                                 const std::vector<int64_t>& shape, DType dt) {
  fail(what, " has ", got, " values in ", field, ", shape ", shape_str(shape), " of ", ir::dtype_name(dt), " needs ",
       need);
}

// Copies typed-field values into the tensor, converting each with `conv`.
template <class T, class Field, class Conv>
void fill_from(ir::Tensor& t, const Field& field, Conv conv) {
  T* out = static_cast<T*>(t.raw());
  for (int64_t i = 0; i < t.numel(); ++i) out[i] = conv(field.Get(static_cast<int>(i)));
}

}  // namespace

ir::Tensor tensor_from_proto(::onnx::TensorProto& p, const std::string& what, const std::string& base_dir) {
  KILN_CHECK(!p.has_segment(), what, ": segmented tensors are not supported");
  int32_t code = p.data_type();
  KILN_CHECK(code != 0, what, ": data_type is not set");
  KILN_CHECK(ir::dtype_is_valid(code), what, ": unknown data_type ", code);
  DType dt = static_cast<DType>(code);

  std::vector<int64_t> shape(p.dims().begin(), p.dims().end());
  for (size_t i = 0; i < shape.size(); ++i)
    KILN_CHECK(shape[i] >= 0, what, ": dims[", i, "] = ", shape[i], " is negative");
  int64_t numel = 0;
  try {
    numel = ir::Tensor::checked_numel(shape);
  } catch (const Error& e) {
    fail(what, ": ", e.what());
  }
  size_t nbytes = checked_nbytes(dt, numel, what);

  // The narrow types (float8, float4, 4/2-bit integers): ONNX's packed bytes, unpacked to one per element.
  if (ir::is_narrow(dt)) {
    std::string packed;
    if (p.data_location() == ::onnx::TensorProto::EXTERNAL) {
      packed.resize(nbytes);
      read_external_data(p, what, base_dir, packed.data(), nbytes);
    } else if (p.has_raw_data()) {
      KILN_CHECK(p.raw_data().size() == nbytes, "raw_data of ", what, " has ", p.raw_data().size(), " bytes, shape ",
                 shape_str(shape), " of ", ir::dtype_name(dt), " needs ", nbytes);
      packed.swap(*p.mutable_raw_data());
    } else {
      // int32_data holds one packed byte per value (for float8, one element).
      int64_t got = p.int32_data_size();
      if (got != static_cast<int64_t>(nbytes))
        count_mismatch(what, "int32_data", got, static_cast<int64_t>(nbytes), shape, dt);
      packed.resize(nbytes);
      for (size_t i = 0; i < nbytes; ++i)
        packed[i] = static_cast<char>(static_cast<uint8_t>(p.int32_data(static_cast<int>(i))));
    }
    ir::Tensor t(dt, shape);
    ir::unpack_narrow(dt, reinterpret_cast<const uint8_t*>(packed.data()), numel, static_cast<uint8_t*>(t.raw()));
    return t;
  }

  if (p.data_location() == ::onnx::TensorProto::EXTERNAL) {
    KILN_CHECK(dt != DType::kString, what, ": string tensors cannot use external data");
    ir::Tensor t(dt, shape);
    read_external_data(p, what, base_dir, t.raw(), nbytes);
    if (dt == DType::kBool) {
      auto* b = static_cast<uint8_t*>(t.raw());
      for (size_t i = 0; i < nbytes; ++i) b[i] = b[i] != 0;
    }
    return t;
  }

  if (p.has_raw_data()) {
    KILN_CHECK(dt != DType::kString, what, ": string tensors cannot use raw_data");
    size_t have = p.raw_data().size();
    KILN_CHECK(have == nbytes, "raw_data of ", what, " has ", have, " bytes, shape ", shape_str(shape), " of ",
               ir::dtype_name(dt), " needs ", nbytes);
    ir::Tensor t(dt, shape);
    if (nbytes) std::memcpy(t.raw(), p.raw_data().data(), nbytes);
    if (dt == DType::kBool) {
      auto* b = static_cast<uint8_t*>(t.raw());
      for (size_t i = 0; i < nbytes; ++i) b[i] = b[i] != 0;
    }
    std::string().swap(*p.mutable_raw_data());  // frees it now (clear_raw_data keeps the capacity)
    return t;
  }

  // Typed fields. Check the count before allocating, so that a hostile shape cannot make us allocate.
  auto need = [&](const char* field, int64_t got, int64_t per_elem) {
    int64_t want = 0;
    if (__builtin_mul_overflow(numel, per_elem, &want) || got != want)
      count_mismatch(what, field, got, want, shape, dt);
  };
  switch (dt) {
    case DType::kFloat32: {
      need("float_data", p.float_data_size(), 1);
      ir::Tensor t(dt, shape);
      fill_from<float>(t, p.float_data(), [](float v) { return v; });
      return t;
    }
    case DType::kComplex64: {
      need("float_data", p.float_data_size(), 2);
      ir::Tensor t(dt, shape);
      if (numel) std::memcpy(t.raw(), p.float_data().data(), nbytes);
      return t;
    }
    case DType::kFloat64: {
      need("double_data", p.double_data_size(), 1);
      ir::Tensor t(dt, shape);
      fill_from<double>(t, p.double_data(), [](double v) { return v; });
      return t;
    }
    case DType::kComplex128: {
      need("double_data", p.double_data_size(), 2);
      ir::Tensor t(dt, shape);
      if (numel) std::memcpy(t.raw(), p.double_data().data(), nbytes);
      return t;
    }
    case DType::kInt64: {
      need("int64_data", p.int64_data_size(), 1);
      ir::Tensor t(dt, shape);
      fill_from<int64_t>(t, p.int64_data(), [](int64_t v) { return v; });
      return t;
    }
    case DType::kUInt32:
    case DType::kUInt64: {
      need("uint64_data", p.uint64_data_size(), 1);
      ir::Tensor t(dt, shape);
      if (dt == DType::kUInt32)
        fill_from<uint32_t>(t, p.uint64_data(), [](uint64_t v) { return static_cast<uint32_t>(v); });
      else
        fill_from<uint64_t>(t, p.uint64_data(), [](uint64_t v) { return v; });
      return t;
    }
    case DType::kString: {
      need("string_data", p.string_data_size(), 1);
      ir::Tensor t(dt, shape);
      auto* out = static_cast<std::string*>(t.raw());
      for (int64_t i = 0; i < numel; ++i) out[i] = p.string_data(static_cast<int>(i));
      return t;
    }
    case DType::kInt32:
    case DType::kInt16:
    case DType::kInt8:
    case DType::kUInt16:
    case DType::kUInt8:
    case DType::kBool:
    case DType::kFloat16:
    case DType::kBFloat16: {
      need("int32_data", p.int32_data_size(), 1);
      ir::Tensor t(dt, shape);
      const auto& f = p.int32_data();
      switch (dt) {
        case DType::kInt32:
          fill_from<int32_t>(t, f, [](int32_t v) { return v; });
          break;
        case DType::kInt16:
          fill_from<int16_t>(t, f, [](int32_t v) { return static_cast<int16_t>(v); });
          break;
        case DType::kInt8:
          fill_from<int8_t>(t, f, [](int32_t v) { return static_cast<int8_t>(v); });
          break;
        case DType::kUInt16:
        case DType::kFloat16:
        case DType::kBFloat16:  // 16-bit floats travel as their bit patterns
          fill_from<uint16_t>(t, f, [](int32_t v) { return static_cast<uint16_t>(v); });
          break;
        case DType::kUInt8:
          fill_from<uint8_t>(t, f, [](int32_t v) { return static_cast<uint8_t>(v); });
          break;
        default:
          fill_from<uint8_t>(t, f, [](int32_t v) { return static_cast<uint8_t>(v != 0); });
          break;
      }
      return t;
    }
    default:
      fail(what, ": unsupported data_type ", code);
  }
}

void tensor_to_proto(const ir::Tensor& t, ::onnx::TensorProto* p) {
  KILN_CHECK(t.defined(), "cannot write an undefined tensor");
  p->set_data_type(static_cast<int32_t>(t.dtype()));
  for (int64_t d : t.shape()) p->add_dims(d);
  if (t.dtype() == DType::kString) {
    const auto* s = static_cast<const std::string*>(t.raw());
    for (int64_t i = 0; i < t.numel(); ++i) p->add_string_data(s[i]);
    return;
  }
  if (ir::is_narrow(t.dtype())) {
    std::string packed(ir::narrow_packed_bytes(t.dtype(), t.numel()), '\0');
    ir::pack_narrow(t.dtype(), static_cast<const uint8_t*>(t.raw()), t.numel(),
                    reinterpret_cast<uint8_t*>(packed.data()));
    p->set_raw_data(std::move(packed));
    return;
  }
  p->set_raw_data(t.raw(), t.nbytes());
}

ir::Type type_from_proto(const ::onnx::TypeProto& tp, const std::string& what) {
  auto elem_dtype = [&](int32_t code) {
    KILN_CHECK(code == 0 || ir::dtype_is_valid(code), what, ": unknown elem_type ", code);
    return static_cast<DType>(code);
  };
  auto shape_of = [&](const ::onnx::TensorShapeProto& sp) {
    ir::Shape s;
    for (int i = 0; i < sp.dim_size(); ++i) {
      const auto& d = sp.dim(i);
      if ((d.has_dim_value() && d.dim_value() == -1) || (d.has_dim_param() && d.dim_param() == "?")) {
        // paddle2onnx (and some other exporters) write -1, or the name "?", for a dim they do not know: an
        // unknown dim each, as ONNX Runtime reads them (not one symbol "?" that every such dim must share).
        s.dims.emplace_back();
      } else if (d.has_dim_value()) {
        KILN_CHECK(d.dim_value() >= 0, what, ": dim ", i, " has negative value ", d.dim_value());
        s.dims.emplace_back(d.dim_value());
      } else if (d.has_dim_param() && !d.dim_param().empty()) {
        s.dims.push_back(ir::Dim::symbolic(d.dim_param()));
      } else {
        s.dims.emplace_back();
      }
    }
    return s;
  };
  ir::Type t;
  switch (tp.value_case()) {
    case ::onnx::TypeProto::kTensorType: {
      const auto& tt = tp.tensor_type();
      t.kind = ir::Type::Kind::kTensor;
      t.dtype = elem_dtype(tt.elem_type());
      if (tt.has_shape()) t.shape = shape_of(tt.shape());
      return t;
    }
    case ::onnx::TypeProto::kSparseTensorType: {
      const auto& tt = tp.sparse_tensor_type();
      t.kind = ir::Type::Kind::kSparseTensor;
      t.dtype = elem_dtype(tt.elem_type());
      if (tt.has_shape()) t.shape = shape_of(tt.shape());
      return t;
    }
    case ::onnx::TypeProto::kSequenceType:
      t.kind = ir::Type::Kind::kSequence;
      t.elem = std::make_shared<ir::Type>(type_from_proto(tp.sequence_type().elem_type(), what));
      return t;
    case ::onnx::TypeProto::kOptionalType:
      t.kind = ir::Type::Kind::kOptional;
      t.elem = std::make_shared<ir::Type>(type_from_proto(tp.optional_type().elem_type(), what));
      return t;
    case ::onnx::TypeProto::kMapType:
      // A map keeps its key type in dtype and its value type in elem.
      t.kind = ir::Type::Kind::kMap;
      t.dtype = elem_dtype(tp.map_type().key_type());
      t.elem = std::make_shared<ir::Type>(type_from_proto(tp.map_type().value_type(), what));
      return t;
    default:
      return t;
  }
}

void type_to_proto(const ir::Type& t, ::onnx::TypeProto* tp) {
  auto write_shape = [](const ir::Shape& s, ::onnx::TensorShapeProto* sp) {
    for (const auto& d : s.dims) {
      auto* pd = sp->add_dim();
      if (d.is_static())
        pd->set_dim_value(d.value);
      else if (d.is_symbolic())
        pd->set_dim_param(d.symbol);
    }
  };
  switch (t.kind) {
    case ir::Type::Kind::kTensor: {
      auto* tt = tp->mutable_tensor_type();
      tt->set_elem_type(static_cast<int32_t>(t.dtype));
      if (t.shape) write_shape(*t.shape, tt->mutable_shape());
      return;
    }
    case ir::Type::Kind::kSparseTensor: {
      auto* tt = tp->mutable_sparse_tensor_type();
      tt->set_elem_type(static_cast<int32_t>(t.dtype));
      if (t.shape) write_shape(*t.shape, tt->mutable_shape());
      return;
    }
    case ir::Type::Kind::kSequence: {
      auto* e = tp->mutable_sequence_type()->mutable_elem_type();
      if (t.elem) type_to_proto(*t.elem, e);
      return;
    }
    case ir::Type::Kind::kOptional: {
      auto* e = tp->mutable_optional_type()->mutable_elem_type();
      if (t.elem) type_to_proto(*t.elem, e);
      return;
    }
    case ir::Type::Kind::kMap: {
      auto* m = tp->mutable_map_type();
      m->set_key_type(static_cast<int32_t>(t.dtype));
      auto* v = m->mutable_value_type();
      if (t.elem) type_to_proto(*t.elem, v);
      return;
    }
    case ir::Type::Kind::kUnknown:
      return;
  }
}

}  // namespace kiln::onnx_io::detail
