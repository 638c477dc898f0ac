#include "serve/oip_tensors.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/half.h"

namespace kiln::serve {

using nlohmann::json;

// Named, not anonymous: the sanitizer build compiles kiln_core as a unity build.
namespace oip_tensors_detail {

const std::vector<std::pair<ir::DType, const char*>> kDatatypes = {
    {ir::DType::kBool, "BOOL"},     {ir::DType::kUInt8, "UINT8"},   {ir::DType::kUInt16, "UINT16"},
    {ir::DType::kUInt32, "UINT32"}, {ir::DType::kUInt64, "UINT64"}, {ir::DType::kInt8, "INT8"},
    {ir::DType::kInt16, "INT16"},   {ir::DType::kInt32, "INT32"},   {ir::DType::kInt64, "INT64"},
    {ir::DType::kFloat16, "FP16"},  {ir::DType::kFloat32, "FP32"},  {ir::DType::kFloat64, "FP64"},
    {ir::DType::kString, "BYTES"}};

[[noreturn]] void bad(const std::string& message) { throw RequestError(message); }

// Row-major leaves of a flat or nested "data" array.
void flatten(const json& data, std::vector<const json*>& out) {
  if (data.is_array()) {
    for (const json& d : data) flatten(d, out);
  } else {
    out.push_back(&data);
  }
}

template <class T>
void fill_element(T* dst, const json& v, const std::string& input, size_t i) {
  auto fault = [&](const char* want) {
    bad(str("input \"", input, "\": element ", i, " is ", v.dump(), ", not ", want));
  };
  if constexpr (std::is_same_v<T, bool>) {
    if (!v.is_boolean()) fault("a boolean");
    *dst = v.get<bool>();
  } else if constexpr (std::is_floating_point_v<T> || std::is_same_v<T, Float16> || std::is_same_v<T, BFloat16>) {
    if (!v.is_number()) fault("a number");
    *dst = static_cast<T>(v.get<double>());
  } else {
    if (!v.is_number_integer()) fault("an integer");
    if constexpr (std::is_unsigned_v<T>) {
      if (v.is_number_unsigned() ? v.get<uint64_t>() > std::numeric_limits<T>::max() : v.get<int64_t>() < 0)
        fault("within the datatype's range");
      *dst = static_cast<T>(v.is_number_unsigned() ? v.get<uint64_t>() : static_cast<uint64_t>(v.get<int64_t>()));
    } else {
      const int64_t x = v.get<int64_t>();
      if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        fault("within the datatype's range");
      if (x < std::numeric_limits<T>::min() || x > std::numeric_limits<T>::max()) fault("within the datatype's range");
      *dst = static_cast<T>(x);
    }
  }
}

ir::Tensor tensor_from_json(const json& in, const std::string& name, ir::DType dtype, const ir::Dims& shape) {
  if (!in.contains("data")) bad(str("input \"", name, "\": no \"data\" (and no binary_data_size)"));
  std::vector<const json*> leaves;
  flatten(in["data"], leaves);
  // Counted before anything is allocated: a shape of 10^10 elements must cost nothing.
  const int64_t numel = ir::Tensor::checked_numel(shape);
  if (static_cast<int64_t>(leaves.size()) != numel)
    bad(str("input \"", name, "\": ", leaves.size(), " values for shape ", ir::to_string(shape), " (", numel,
            " elements)"));
  ir::Tensor t(dtype, shape);
  if (dtype == ir::DType::kString) {
    for (size_t i = 0; i < leaves.size(); ++i) {
      if (!leaves[i]->is_string()) bad(str("input \"", name, "\": element ", i, " is not a string (BYTES)"));
      t.data<std::string>()[i] = leaves[i]->get<std::string>();
    }
    return t;
  }
  ir::visit_numeric_dtype(dtype, [&]<class T>() {
    T* dst = t.data<T>();
    for (size_t i = 0; i < leaves.size(); ++i) fill_element(dst + i, *leaves[i], name, i);
  });
  return t;
}

ir::Tensor tensor_from_bytes(const std::string& bytes, const std::string& name, ir::DType dtype,
                             const ir::Dims& shape) {
  // Sizes checked before anything is allocated (each BYTES element takes at least its 4-byte length).
  const int64_t numel = ir::Tensor::checked_numel(shape);
  // Every element takes a byte or more, so a count above the bytes is wrong (and the product below cannot
  // overflow).
  const uint64_t per_element = dtype == ir::DType::kString ? 4 : ir::dtype_size(dtype);
  const uint64_t n = static_cast<uint64_t>(numel);
  const bool too_many = n > bytes.size();
  const uint64_t least = too_many ? n : n * per_element;
  if (too_many || (dtype == ir::DType::kString ? least > bytes.size() : least != bytes.size()))
    bad(str("input \"", name, "\": binary_data_size is ", bytes.size(), " bytes; ", ir::to_string(shape), " of ",
            *oip_datatype(dtype), " takes ", too_many || dtype == ir::DType::kString ? "at least " : "", least));
  ir::Tensor t(dtype, shape);
  if (dtype == ir::DType::kString) {
    size_t at = 0;
    for (int64_t i = 0; i < t.numel(); ++i) {
      if (bytes.size() - at < 4) bad(str("input \"", name, "\": binary data ends inside element ", i));
      uint32_t n = 0;
      for (int b = 3; b >= 0; --b) n = (n << 8) | static_cast<unsigned char>(bytes[at + static_cast<size_t>(b)]);
      at += 4;
      if (bytes.size() - at < n) bad(str("input \"", name, "\": element ", i, " says ", n, " bytes; fewer are left"));
      t.data<std::string>()[i] = bytes.substr(at, n);
      at += n;
    }
    if (at != bytes.size())
      bad(str("input \"", name, "\": binary_data_size is ", bytes.size(), " bytes; its elements take ", at));
    return t;
  }
  if (dtype == ir::DType::kBool) {
    for (size_t i = 0; i < bytes.size(); ++i) t.data<bool>()[i] = bytes[i] != 0;
  } else {
    std::memcpy(t.raw(), bytes.data(), bytes.size());
  }
  return t;
}

int64_t size_parameter(const json& item, const char* key, const std::string& where) {
  if (!item.contains("parameters") || !item["parameters"].is_object() || !item["parameters"].contains(key)) return -1;
  const json& v = item["parameters"][key];
  if (!v.is_number_integer() || v.get<int64_t>() < 0) bad(str(where, ": \"", key, "\" must be a non-negative integer"));
  return v.get<int64_t>();
}

bool flag_parameter(const json& item, const char* key) {
  return item.contains("parameters") && item["parameters"].is_object() && item["parameters"].contains(key) &&
         item["parameters"][key].is_boolean() && item["parameters"][key].get<bool>();
}

json tensor_data_json(const ir::Tensor& t) {
  json data = json::array();
  if (t.dtype() == ir::DType::kString) {
    for (int64_t i = 0; i < t.numel(); ++i) data.push_back(t.data<std::string>()[i]);
    return data;
  }
  ir::visit_numeric_dtype(t.dtype(), [&]<class T>() {
    const T* p = t.data<T>();
    for (int64_t i = 0; i < t.numel(); ++i) {
      if constexpr (std::is_same_v<T, Float16> || std::is_same_v<T, BFloat16>)
        data.push_back(static_cast<float>(p[i]));
      else
        data.push_back(p[i]);
    }
  });
  return data;
}

std::string tensor_bytes(const ir::Tensor& t) {
  if (t.dtype() == ir::DType::kString) {
    std::string out;
    for (int64_t i = 0; i < t.numel(); ++i) {
      const std::string& s = t.data<std::string>()[i];
      const uint32_t n = static_cast<uint32_t>(s.size());
      for (int b = 0; b < 4; ++b) out.push_back(static_cast<char>((n >> (8 * b)) & 0xff));
      out += s;
    }
    return out;
  }
  if (t.dtype() == ir::DType::kBool) {
    std::string out(static_cast<size_t>(t.numel()), '\0');
    for (int64_t i = 0; i < t.numel(); ++i) out[static_cast<size_t>(i)] = t.data<bool>()[i] ? 1 : 0;
    return out;
  }
  return std::string(static_cast<const char*>(t.raw()), t.nbytes());
}

}  // namespace oip_tensors_detail

using namespace oip_tensors_detail;

std::optional<std::string> oip_datatype(ir::DType dtype) {
  for (const auto& [d, name] : kDatatypes)
    if (d == dtype) return name;
  return std::nullopt;
}

std::optional<ir::DType> dtype_of_oip(const std::string& datatype) {
  for (const auto& [d, name] : kDatatypes)
    if (datatype == name) return d;
  return std::nullopt;
}

InferRequest parse_infer_request(const std::string& body, const std::string& header_length) {
  size_t json_bytes = body.size();
  if (!header_length.empty()) {
    size_t used = 0;
    unsigned long long n = 0;
    try {
      n = std::stoull(header_length, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != header_length.size() || header_length[0] == '-')
      bad("Inference-Header-Content-Length \"" + header_length + "\" is not a byte count");
    if (n > body.size()) bad(str("Inference-Header-Content-Length is ", n, " bytes; the body has ", body.size()));
    json_bytes = static_cast<size_t>(n);
  }
  json j;
  try {
    j = json::parse(body.begin(), body.begin() + static_cast<std::ptrdiff_t>(json_bytes));
  } catch (const json::exception& e) {
    bad(std::string("malformed JSON: ") + e.what());
  }
  if (!j.is_object()) bad("the request must be a JSON object");
  if (!j.contains("inputs") || !j["inputs"].is_array() || j["inputs"].empty())
    bad("the request has no \"inputs\" array");
  InferRequest r;
  if (j.contains("id")) {
    if (!j["id"].is_string()) bad("\"id\" must be a string");
    r.id = j["id"].get<std::string>();
  }
  r.all_outputs_binary = flag_parameter(j, "binary_data_output");
  size_t binary_at = json_bytes;
  for (const json& in : j["inputs"]) {
    if (!in.is_object() || !in.contains("name") || !in["name"].is_string()) bad("each input needs a \"name\" string");
    const std::string name = in["name"].get<std::string>();
    for (const auto& [seen, t] : r.inputs)
      if (seen == name) bad(str("input \"", name, "\" is given twice"));
    if (!in.contains("datatype") || !in["datatype"].is_string()) bad(str("input \"", name, "\": no \"datatype\""));
    const std::string datatype = in["datatype"].get<std::string>();
    const std::optional<ir::DType> dtype = dtype_of_oip(datatype);
    if (!dtype) bad(str("input \"", name, "\": unknown datatype \"", datatype, "\""));
    if (!in.contains("shape") || !in["shape"].is_array()) bad(str("input \"", name, "\": no \"shape\" array"));
    ir::Dims shape;
    for (const json& d : in["shape"]) {
      if (!d.is_number_integer() || d.get<int64_t>() < 0)
        bad(str("input \"", name, "\": shape ", in["shape"].dump(), " must hold non-negative integers"));
      shape.push_back(d.get<int64_t>());
    }
    try {
      (void)ir::Tensor::checked_numel(shape);
    } catch (const Error&) {
      bad(str("input \"", name, "\": shape ", in["shape"].dump(), " is too large"));
    }
    const int64_t binary_size = size_parameter(in, "binary_data_size", str("input \"", name, "\""));
    if (binary_size >= 0) {
      if (header_length.empty())
        bad(str("input \"", name, "\": binary_data_size without the Inference-Header-Content-Length header"));
      if (static_cast<uint64_t>(binary_size) > body.size() - binary_at)
        bad(str("input \"", name, "\": binary_data_size ", binary_size, " runs past the body's end (",
                body.size() - binary_at, " bytes left)"));
      r.inputs.emplace_back(
          name, tensor_from_bytes(body.substr(binary_at, static_cast<size_t>(binary_size)), name, *dtype, shape));
      binary_at += static_cast<size_t>(binary_size);
    } else {
      r.inputs.emplace_back(name, tensor_from_json(in, name, *dtype, shape));
    }
  }
  if (binary_at != body.size())
    bad(str(body.size() - binary_at, " byte(s) after the JSON that no input's binary_data_size accounts for"));
  if (j.contains("outputs")) {
    if (!j["outputs"].is_array()) bad("\"outputs\" must be an array");
    for (const json& out : j["outputs"]) {
      if (!out.is_object() || !out.contains("name") || !out["name"].is_string())
        bad("each requested output needs a \"name\" string");
      r.outputs.push_back(out["name"].get<std::string>());
      if (flag_parameter(out, "binary_data")) r.binary_outputs.push_back(r.outputs.back());
    }
  }
  return r;
}

InferResponse encode_infer_response(const std::string& model, const std::string& version, const InferRequest& request,
                                    const std::vector<std::pair<std::string, const ir::Tensor*>>& outputs) {
  json j = {{"model_name", model}, {"model_version", version}, {"outputs", json::array()}};
  if (!request.id.empty()) j["id"] = request.id;
  std::string binary;
  for (const auto& [name, t] : outputs) {
    json shape = json::array();
    for (size_t i = 0; i < t->rank(); ++i) shape.push_back(t->dim(i));
    json o = {{"name", name}, {"datatype", oip_datatype(t->dtype()).value_or("")}, {"shape", shape}};
    const bool as_binary =
        request.all_outputs_binary ||
        std::find(request.binary_outputs.begin(), request.binary_outputs.end(), name) != request.binary_outputs.end();
    if (as_binary) {
      const std::string bytes = tensor_bytes(*t);
      o["parameters"] = {{"binary_data_size", bytes.size()}};
      binary += bytes;
    } else {
      o["data"] = tensor_data_json(*t);
    }
    j["outputs"].push_back(std::move(o));
  }
  InferResponse r;
  r.body = j.dump();
  if (!binary.empty() || request.all_outputs_binary || !request.binary_outputs.empty()) {
    r.header_length = std::to_string(r.body.size());
    r.body += binary;
  }
  return r;
}

}  // namespace kiln::serve
