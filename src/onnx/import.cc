// ModelProto -> ir::Model, and reading .onnx / test-data .pb files.
#include <fcntl.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/unknown_field_set.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <filesystem>
#include <set>

#include "onnx/model_io.h"
#include "onnx/onnx-data_pb.h"
#include "onnx/proto_convert.h"

namespace kiln::onnx_io {

namespace detail {
// FunctionProto.attribute_proto (IR 9) is newer than the libonnx we build against: it arrives as an
// unknown field with this number.
inline constexpr int kFunctionAttributeProtoField = 11;
}  // namespace detail

namespace {

using namespace detail;
namespace pb = ::google::protobuf;

std::string quoted(const std::string& s) { return "\"" + s + "\""; }

struct Importer {
  std::string base_dir;

  ir::Graph graph(::onnx::GraphProto& g, bool top);
  ir::Node node(::onnx::NodeProto& n);
  ir::Attribute attribute(::onnx::AttributeProto& a, const std::string& owner);
  ir::ValueInfo value_info(const ::onnx::ValueInfoProto& v, const char* role) {
    ir::ValueInfo vi;
    vi.name = v.name();
    vi.doc_string = v.doc_string();
    if (v.has_type()) vi.type = type_from_proto(v.type(), std::string(role) + " " + quoted(v.name()));
    return vi;
  }
  ir::Tensor sparse_to_dense(::onnx::SparseTensorProto& sp, const std::string& what);
  ir::Function function(::onnx::FunctionProto& f);
};

ir::Attribute Importer::attribute(::onnx::AttributeProto& a, const std::string& owner) {
  using K = ir::Attribute::Kind;
  ir::Attribute out;
  out.name = a.name();
  out.ref_attr_name = a.ref_attr_name();
  out.doc_string = a.doc_string();
  const std::string what = owner + " attribute " + quoted(a.name());
  int type = a.type();
  if (type == 0) {  // files older than IR 3 leave the type out: infer it from the field that is set
    if (a.has_f())
      type = 1;
    else if (a.has_i())
      type = 2;
    else if (a.has_s())
      type = 3;
    else if (a.has_t())
      type = 4;
    else if (a.has_g())
      type = 5;
    else if (a.floats_size())
      type = 6;
    else if (a.ints_size())
      type = 7;
    else if (a.strings_size())
      type = 8;
    else if (a.tensors_size())
      type = 9;
    else if (a.graphs_size())
      type = 10;
    else if (a.has_tp())
      type = 13;
    else if (a.type_protos_size())
      type = 14;
  }
  auto sub = [&](::onnx::GraphProto& g) {
    try {
      return std::make_shared<ir::Graph>(graph(g, false));
    } catch (const Error& e) {
      fail(what, ": ", e.what());
    }
  };
  switch (type) {
    case 0:
      KILN_CHECK(!out.ref_attr_name.empty(), what, " has no type and no value");
      break;
    case 1:
      out.kind = K::kFloat;
      out.f = a.f();
      break;
    case 2:
      out.kind = K::kInt;
      out.i = a.i();
      break;
    case 3:
      out.kind = K::kString;
      out.s = a.s();
      break;
    case 4:
      out.kind = K::kTensor;
      out.t = tensor_from_proto(*a.mutable_t(), what, base_dir);
      break;
    case 5:
      out.kind = K::kGraph;
      out.g = sub(*a.mutable_g());
      break;
    case 6:
      out.kind = K::kFloats;
      out.floats.assign(a.floats().begin(), a.floats().end());
      break;
    case 7:
      out.kind = K::kInts;
      out.ints.assign(a.ints().begin(), a.ints().end());
      break;
    case 8:
      out.kind = K::kStrings;
      out.strings.assign(a.strings().begin(), a.strings().end());
      break;
    case 9:
      out.kind = K::kTensors;
      for (int i = 0; i < a.tensors_size(); ++i)
        out.tensors.push_back(tensor_from_proto(*a.mutable_tensors(i), str(what, " tensor #", i), base_dir));
      break;
    case 10:
      out.kind = K::kGraphs;
      for (int i = 0; i < a.graphs_size(); ++i) out.graphs.push_back(sub(*a.mutable_graphs(i)));
      break;
    case 11:
    case 12:
      fail(what, ": sparse tensor attributes are not supported");
    case 13:
      out.kind = K::kTypeProto;
      out.types.push_back(type_from_proto(a.tp(), what));
      break;
    case 14:
      out.kind = K::kTypeProtos;
      for (const auto& tp : a.type_protos()) out.types.push_back(type_from_proto(tp, what));
      break;
    default:
      fail(what, ": unknown attribute type ", type);
  }
  return out;
}

ir::Node Importer::node(::onnx::NodeProto& n) {
  ir::Node out;
  out.name = n.name();
  out.op_type = n.op_type();
  out.domain = n.domain() == "ai.onnx" ? "" : n.domain();
  out.inputs.assign(n.input().begin(), n.input().end());
  out.outputs.assign(n.output().begin(), n.output().end());
  out.doc_string = n.doc_string();
  const std::string label = out.label();
  std::set<std::string> seen;
  for (auto& a : *n.mutable_attribute()) {
    KILN_CHECK(seen.insert(a.name()).second, label, " has attribute ", quoted(a.name()), " twice");
    out.attributes.push_back(attribute(a, label));
  }
  return out;
}

// SparseTensorProto (values + indices) -> dense tensor. Indices are either [NNZ] linear or [NNZ, rank].
ir::Tensor Importer::sparse_to_dense(::onnx::SparseTensorProto& sp, const std::string& what) {
  std::vector<int64_t> shape(sp.dims().begin(), sp.dims().end());
  ir::Tensor values = tensor_from_proto(*sp.mutable_values(), what + " values", base_dir);
  KILN_CHECK(values.dtype() != ir::DType::kString, what, ": string sparse tensors are not supported");
  ir::Tensor dense(values.dtype(), shape);  // checks dims
  const int64_t nnz = values.numel();
  const size_t elem = ir::dtype_size(values.dtype());
  std::vector<int64_t> idx;
  if (sp.has_indices()) {
    ir::Tensor it = tensor_from_proto(*sp.mutable_indices(), what + " indices", base_dir);
    KILN_CHECK(it.dtype() == ir::DType::kInt64, what, ": indices must be int64");
    idx.assign(it.data<int64_t>(), it.data<int64_t>() + it.numel());
    KILN_CHECK(it.rank() == 1 || it.rank() == 2, what, ": indices must be 1-D or 2-D");
    if (it.rank() == 2) {
      KILN_CHECK(it.dim(0) == nnz && it.dim(1) == static_cast<int64_t>(shape.size()), what, ": indices of shape ",
                 ir::to_string(it.shape()), " do not match ", nnz, " values of rank ", shape.size());
      std::vector<int64_t> strides = ir::strides_of(shape);
      std::vector<int64_t> lin(static_cast<size_t>(nnz));
      for (int64_t k = 0; k < nnz; ++k) {
        int64_t off = 0;
        for (size_t d = 0; d < shape.size(); ++d) {
          int64_t v = idx[static_cast<size_t>(k) * shape.size() + d];
          KILN_CHECK(v >= 0 && v < shape[d], what, ": index ", v, " out of range for dim ", d);
          off += v * strides[d];
        }
        lin[static_cast<size_t>(k)] = off;
      }
      idx = std::move(lin);
    }
  }
  KILN_CHECK(static_cast<int64_t>(idx.size()) == nnz, what, ": ", idx.size(), " indices for ", nnz, " values");
  auto* dst = static_cast<char*>(dense.raw());
  const auto* src = static_cast<const char*>(values.raw());
  for (int64_t k = 0; k < nnz; ++k) {
    int64_t off = idx[static_cast<size_t>(k)];
    KILN_CHECK(off >= 0 && off < dense.numel(), what, ": index ", off, " out of range for ", dense.numel(),
               " elements");
    std::memcpy(dst + static_cast<size_t>(off) * elem, src + static_cast<size_t>(k) * elem, elem);
  }
  return dense;
}

ir::Graph Importer::graph(::onnx::GraphProto& g, bool top) {
  ir::Graph out;
  out.name = g.name();
  out.doc_string = g.doc_string();
  const std::string gname = g.name().empty() ? std::string("graph") : "graph " + quoted(g.name());

  std::set<std::string> names;
  for (const auto& v : g.input()) {
    KILN_CHECK(names.insert(v.name()).second, gname, ": graph input ", quoted(v.name()), " is declared twice");
    out.inputs.push_back(value_info(v, "graph input"));
  }
  for (const auto& v : g.output()) out.outputs.push_back(value_info(v, "graph output"));
  for (const auto& v : g.value_info()) out.value_info.push_back(value_info(v, "value_info"));

  for (int i = 0; i < g.initializer_size(); ++i) {
    auto& t = *g.mutable_initializer(i);
    KILN_CHECK(!t.name().empty(), gname, ": initializer #", i, " has no name");
    KILN_CHECK(!out.initializers.count(t.name()), gname, ": initializer ", quoted(t.name()), " is defined twice");
    out.add_initializer(t.name(), tensor_from_proto(t, "initializer " + quoted(t.name()), base_dir));
  }
  for (int i = 0; i < g.sparse_initializer_size(); ++i) {
    auto& sp = *g.mutable_sparse_initializer(i);
    const std::string& name = sp.values().name();
    KILN_CHECK(!name.empty(), gname, ": sparse initializer #", i, " has no name");
    KILN_CHECK(!out.initializers.count(name), gname, ": initializer ", quoted(name), " is defined twice");
    out.sparse_initializer_names.push_back(name);
    out.add_initializer(name, sparse_to_dense(sp, "sparse initializer " + quoted(name)));
  }

  out.nodes.reserve(static_cast<size_t>(g.node_size()));
  for (auto& n : *g.mutable_node()) out.nodes.push_back(node(n));
  if (top) KILN_CHECK(!out.nodes.empty() || !out.outputs.empty(), "empty graph: graph has no nodes and no outputs");
  return out;
}

ir::Function Importer::function(::onnx::FunctionProto& f) {
  ir::Function out;
  out.name = f.name();
  out.domain = f.domain();
  out.doc_string = f.doc_string();
  out.inputs.assign(f.input().begin(), f.input().end());
  out.outputs.assign(f.output().begin(), f.output().end());
  out.attributes.assign(f.attribute().begin(), f.attribute().end());
  const std::string label = "function " + quoted(f.domain().empty() ? f.name() : f.domain() + "." + f.name());
  for (const auto& op : f.opset_import()) out.opset_imports[op.domain() == "ai.onnx" ? "" : op.domain()] = op.version();
  const auto& unknown = f.GetReflection()->GetUnknownFields(f);
  for (int i = 0; i < unknown.field_count(); ++i) {
    const auto& uf = unknown.field(i);
    if (uf.number() != kFunctionAttributeProtoField || uf.type() != pb::UnknownField::TYPE_LENGTH_DELIMITED) continue;
    ::onnx::AttributeProto ap;
    KILN_CHECK(ap.ParseFromString(uf.length_delimited()), label, ": attribute_proto #", out.attribute_defaults.size(),
               " cannot be parsed");
    out.attribute_defaults.push_back(attribute(ap, label));
  }
  try {
    for (auto& n : *f.mutable_node()) out.nodes.push_back(node(n));
  } catch (const Error& e) {
    fail(label, ": ", e.what());
  }
  return out;
}

bool looks_like_text(const unsigned char* p, size_t n) {
  n = std::min<size_t>(n, 4096);
  if (n == 0) return false;
  for (size_t i = 0; i < n; ++i) {
    unsigned char c = p[i];
    if (c < 0x20 && c != '\n' && c != '\r' && c != '\t' && c != '\f') return false;
    if (c == 0x7f) return false;
  }
  return true;
}

// Parses bytes as a message with protobuf's limit raised to 2 GiB; requires all bytes be consumed.
bool parse_bytes(pb::Message& m, const void* data, size_t size) {
  if (size > static_cast<size_t>(INT_MAX)) return false;
  pb::io::ArrayInputStream in(data, static_cast<int>(size));
  pb::io::CodedInputStream cis(&in);
  cis.SetTotalBytesLimit(INT_MAX);
  cis.SetRecursionLimit(1000);
  if (!m.ParseFromCodedStream(&cis)) return false;
  return cis.ConsumedEntireMessage() && cis.CurrentPosition() == static_cast<int>(size);
}

ir::Model import_model(::onnx::ModelProto& mp, const std::string& base_dir) {
  ir::Model m;
  m.ir_version = mp.ir_version();
  m.producer_name = mp.producer_name();
  m.producer_version = mp.producer_version();
  m.domain = mp.domain();
  m.model_version = mp.model_version();
  m.doc_string = mp.doc_string();
  for (const auto& op : mp.opset_import()) {
    KILN_CHECK(op.version() > 0, "opset_import of domain ", quoted(op.domain()), " has version ", op.version());
    m.opset_imports[op.domain() == "ai.onnx" ? "" : op.domain()] = op.version();
  }
  for (const auto& kv : mp.metadata_props()) m.metadata_props.emplace_back(kv.key(), kv.value());
  Importer imp{base_dir};
  m.graph = imp.graph(*mp.mutable_graph(), true);
  for (auto& f : *mp.mutable_functions()) m.functions.push_back(imp.function(f));
  return m;
}

// The newest ONNX IR version kiln reads: ONNX 1.22's, and ONNX Runtime 1.31's limit too.
constexpr int64_t kMaxIrVersion = 13;

// Decides what a byte buffer is, and fails with one sentence when it is not an ONNX model.
void check_model_proto(bool parsed, const ::onnx::ModelProto& mp, const unsigned char* p, size_t size,
                       const std::string& label) {
  if (size >= 4 && std::memcmp(p, "\x89PNG", 4) == 0) fail(label, ": not an ONNX model (this is a PNG image)");
  if (size >= 4 && (std::memcmp(p, "PK\x03\x04", 4) == 0 || std::memcmp(p, "PK\x05\x06", 4) == 0))
    fail(label, ": not an ONNX model (this is a zip archive; extract the .onnx file from it)");
  if (size >= 2 && p[0] == 0x1f && p[1] == 0x8b) fail(label, ": not an ONNX model (this is a gzip file)");
  bool plausible = parsed && (mp.ir_version() > 0 || mp.has_graph());
  if (!plausible) {
    if (looks_like_text(p, size)) fail(label, ": not an ONNX model (this is a text file)");
    if (!parsed) fail(label, ": not an ONNX model (protobuf parse failed; the file may be truncated or corrupt)");
    fail(label, ": not an ONNX model (no ir_version and no graph)");
  }
  KILN_CHECK(mp.ir_version() > 0, label, ": not an ONNX model (ir_version is missing)");
  // A newer IR may carry what this reader silently drops (as ONNX Runtime refuses it too): refuse it.
  KILN_CHECK(mp.ir_version() <= kMaxIrVersion, label, ": IR version ", mp.ir_version(),
             " is newer than kiln supports (up to ", kMaxIrVersion,
             "); re-export the model with an older ONNX, or use a newer kiln");
  KILN_CHECK(mp.has_graph(), label, ": model has no graph");
  KILN_CHECK(mp.ir_version() < 3 || mp.opset_import_size() > 0, label,
             ": model has no opset_import (the file may be truncated)");
}

// Parses the bytes into mp, failing with one sentence when they are not an ONNX model.
void parse_proto_with_label(::onnx::ModelProto& mp, const void* data, size_t size, const std::string& label) {
  const auto* p = static_cast<const unsigned char*>(data);
  KILN_CHECK(size > 0, label, ": file is empty");
  KILN_CHECK(size <= static_cast<size_t>(INT_MAX), label, ": ", size,
             " bytes is over protobuf's 2 GiB limit for one model file");
  bool parsed = parse_bytes(mp, data, size);
  check_model_proto(parsed, mp, p, size, label);
}

ir::Model import_with_label(::onnx::ModelProto& mp, const std::string& base_dir, const std::string& label) {
  try {
    return import_model(mp, base_dir);
  } catch (const Error& e) {
    fail(label, ": ", e.what());
  } catch (const std::bad_alloc&) {
    fail(label, ": out of memory while reading the model");
  } catch (const std::exception& e) {
    fail(label, ": ", e.what());
  }
}

ir::Model parse_with_label(const void* data, size_t size, const std::string& base_dir, const std::string& label) {
  ::onnx::ModelProto mp;
  parse_proto_with_label(mp, data, size, label);
  return import_with_label(mp, base_dir, label);
}

// A read-only mapping of a whole file.
struct MappedFile {
  void* addr = nullptr;
  size_t size = 0;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  explicit MappedFile(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail(path, ": cannot open: ", std::strerror(errno));
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      int err = errno;
      ::close(fd);
      fail(path, ": cannot read: ", std::strerror(err));
    }
    if (S_ISDIR(st.st_mode)) {
      ::close(fd);
      fail(path, ": is a folder, not a model file");
    }
    size = static_cast<size_t>(st.st_size);
    if (size > 0) {
      addr = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
      if (addr == MAP_FAILED) {
        int err = errno;
        ::close(fd);
        addr = nullptr;
        fail(path, ": cannot map: ", std::strerror(err));
      }
    }
    ::close(fd);
  }
  ~MappedFile() {
    if (addr) ::munmap(addr, size);
  }
};

// Parses a model file through read(); false when it cannot be opened or is not a plausible, complete
// ModelProto (the caller then diagnoses it).
bool parse_file_stream(::onnx::ModelProto& mp, const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  struct stat st {};
  bool ok = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0 && st.st_size <= INT_MAX;
  unsigned char header[4] = {0, 0, 0, 0};
  ok = ok && ::pread(fd, header, sizeof header, 0) == static_cast<ssize_t>(sizeof header);
  if (ok) {
    pb::io::FileInputStream in(fd, 1 << 20);
    pb::io::CodedInputStream cis(&in);
    cis.SetTotalBytesLimit(INT_MAX);
    cis.SetRecursionLimit(1000);
    ok = mp.ParseFromCodedStream(&cis) && cis.ConsumedEntireMessage() &&
         cis.CurrentPosition() == static_cast<int>(st.st_size);
  }
  ::close(fd);
  // The same checks as for mapped bytes; the first four are enough for the magic numbers.
  if (ok && (mp.ir_version() > 0 || mp.has_graph())) {
    check_model_proto(true, mp, header, sizeof header, path);
    return true;
  }
  return false;
}

[[noreturn]] void fail_not_found(const std::string& path) { fail(path, ": no such file"); }

// One tensor from a TensorProto in a test-data file.
ir::Tensor datum_tensor(::onnx::TensorProto& t, const std::string& path, const std::string& what) {
  return tensor_from_proto(t, what, std::filesystem::path(path).parent_path().string());
}

ir::Datum datum_sequence(::onnx::SequenceProto& s, const std::string& path, const ir::Type* elem_type) {
  KILN_CHECK(s.elem_type() == ::onnx::SequenceProto::TENSOR ||
                 (s.elem_type() == ::onnx::SequenceProto::UNDEFINED && s.tensor_values_size() == 0),
             path, ": sequences of non-tensors (elem_type ", s.elem_type(), ") are not supported");
  std::vector<ir::Tensor> items;
  for (int i = 0; i < s.tensor_values_size(); ++i)
    items.push_back(datum_tensor(*s.mutable_tensor_values(i), path, str("sequence element #", i)));
  ir::DType dt = ir::DType::kUndefined;
  if (elem_type && elem_type->is_tensor()) dt = elem_type->dtype;
  if (dt == ir::DType::kUndefined && !items.empty()) dt = items[0].dtype();
  return ir::Datum::of_sequence(std::move(items), dt);
}

}  // namespace

ir::Model parse_model(const void* data, size_t size, const std::string& base_dir, const std::string& label) {
  return parse_with_label(data, size, base_dir, label);
}

ir::Model load_model(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) fail_not_found(path);
  std::string base = std::filesystem::path(path).parent_path().string();
  if (base.empty()) base = ".";
  ::onnx::ModelProto mp;
  // Streamed with read(), not mapped: a mapping's pages count in the process's resident memory on top
  // of the parsed copy, which doubled the peak while loading a large model. Anything that does not
  // parse as a plausible model is mapped and parsed again, for the diagnosis.
  if (!parse_file_stream(mp, path)) {
    mp.Clear();
    MappedFile f(path);
    KILN_CHECK(f.size > 0, path, ": file is empty");
    parse_proto_with_label(mp, f.addr, f.size, path);
  }
  ir::Model m = import_with_label(mp, base, path);
  m.path = path;
  return m;
}

ir::Datum load_datum_pb(const std::string& path, const ir::Type& expected) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) fail_not_found(path);
  MappedFile f(path);
  try {
    switch (expected.kind) {
      case ir::Type::Kind::kSequence: {
        ::onnx::SequenceProto s;
        KILN_CHECK(parse_bytes(s, f.addr, f.size), path, ": not a SequenceProto (protobuf parse failed)");
        return datum_sequence(s, path, expected.elem.get());
      }
      case ir::Type::Kind::kOptional: {
        ::onnx::OptionalProto o;
        KILN_CHECK(parse_bytes(o, f.addr, f.size), path, ": not an OptionalProto (protobuf parse failed)");
        const ir::Type* inner = expected.elem.get();
        if (o.has_tensor_value()) return datum_tensor(*o.mutable_tensor_value(), path, "optional's tensor");
        if (o.has_sequence_value())
          return datum_sequence(*o.mutable_sequence_value(), path,
                                inner && inner->kind == ir::Type::Kind::kSequence ? inner->elem.get() : nullptr);
        KILN_CHECK(!o.has_sparse_tensor_value() && !o.has_map_value() && !o.has_optional_value(), path,
                   ": optional of sparse tensors, maps or optionals is not supported");
        return ir::Datum();
      }
      case ir::Type::Kind::kMap:
      case ir::Type::Kind::kSparseTensor:
        fail(path, ": test data of type ", ir::to_string(expected), " is not supported");
      default: {
        ::onnx::TensorProto t;
        KILN_CHECK(f.size == 0 || parse_bytes(t, f.addr, f.size), path, ": not a TensorProto (protobuf parse failed)");
        return datum_tensor(t, path, "tensor");
      }
    }
  } catch (const Error& e) {
    std::string msg = e.what();
    if (msg.rfind(path, 0) == 0) throw;
    fail(path, ": ", msg);
  }
}

}  // namespace kiln::onnx_io
