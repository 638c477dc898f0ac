// ir::Model -> ModelProto, and writing .onnx files (with an external data file when asked or needed).
#include <fcntl.h>
#include <google/protobuf/unknown_field_set.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>

#include "ir/narrow_types.h"
#include "onnx/model_io.h"
#include "onnx/proto_convert.h"

namespace kiln::onnx_io {

namespace {

using namespace detail;
namespace fs = std::filesystem;

constexpr int kFunctionAttributeProtoField = 11;  // see import.cc
// Above this many bytes of initializers a model is saved with external data even when not forced: a
// protobuf message cannot exceed 2 GiB, and the graph itself needs room.
constexpr int64_t kInlineLimit = int64_t{1800} * 1024 * 1024;
constexpr int64_t kExternalAlign = 64;

// Appends tensors to an external data file, each at an aligned offset.
struct ExternalWriter {
  int fd = -1;
  std::string location;  // as written in the model: the data file's name, relative to the model's folder
  std::string path;      // where it is being written now
  int64_t offset = 0;
  int64_t tensors = 0;

  void write_all(const void* data, size_t n) {
    const auto* p = static_cast<const char*>(data);
    while (n > 0) {
      ssize_t w = ::write(fd, p, n);
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) fail(path, ": write failed: ", std::strerror(errno));
      p += w;
      n -= static_cast<size_t>(w);
      offset += w;
    }
  }
  void add(const ir::Tensor& t, ::onnx::TensorProto* p) {
    int64_t pad = (kExternalAlign - offset % kExternalAlign) % kExternalAlign;
    if (pad) {
      static const char zeros[kExternalAlign] = {};
      write_all(zeros, static_cast<size_t>(pad));
    }
    int64_t start = offset;
    ++tensors;
    size_t length = t.nbytes();
    if (ir::is_narrow(t.dtype())) {  // ONNX's packed form: two or four sub-byte elements to a byte
      std::string packed(ir::narrow_packed_bytes(t.dtype(), t.numel()), '\0');
      ir::pack_narrow(t.dtype(), static_cast<const uint8_t*>(t.raw()), t.numel(),
                      reinterpret_cast<uint8_t*>(packed.data()));
      length = packed.size();
      write_all(packed.data(), length);
    } else {
      write_all(t.raw(), length);
    }
    p->set_data_type(static_cast<int32_t>(t.dtype()));
    for (int64_t d : t.shape()) p->add_dims(d);
    p->set_data_location(::onnx::TensorProto::EXTERNAL);
    auto entry = [&](const char* k, const std::string& v) {
      auto* e = p->add_external_data();
      e->set_key(k);
      e->set_value(v);
    };
    entry("location", location);
    entry("offset", std::to_string(start));
    entry("length", std::to_string(length));
  }
};

struct Exporter {
  ExternalWriter* ext = nullptr;
  int64_t min_external_bytes = 0;

  void value_info(const ir::ValueInfo& v, ::onnx::ValueInfoProto* p) {
    p->set_name(v.name);
    if (!v.doc_string.empty()) p->set_doc_string(v.doc_string);
    if (v.type.kind != ir::Type::Kind::kUnknown) type_to_proto(v.type, p->mutable_type());
  }

  void attribute(const ir::Attribute& a, ::onnx::AttributeProto* p) {
    using K = ir::Attribute::Kind;
    p->set_name(a.name);
    if (!a.ref_attr_name.empty()) p->set_ref_attr_name(a.ref_attr_name);
    if (!a.doc_string.empty()) p->set_doc_string(a.doc_string);
    if (a.kind != K::kUndefined) p->set_type(static_cast<::onnx::AttributeProto::AttributeType>(a.kind));
    switch (a.kind) {
      case K::kUndefined:
        break;
      case K::kFloat:
        p->set_f(a.f);
        break;
      case K::kInt:
        p->set_i(a.i);
        break;
      case K::kString:
        p->set_s(a.s);
        break;
      case K::kTensor:
        tensor_to_proto(a.t, p->mutable_t());
        break;
      case K::kGraph:
        KILN_CHECK(a.g, "attribute \"", a.name, "\" of kind graph has no graph");
        graph(*a.g, p->mutable_g(), false);
        break;
      case K::kFloats:
        for (float v : a.floats) p->add_floats(v);
        break;
      case K::kInts:
        for (int64_t v : a.ints) p->add_ints(v);
        break;
      case K::kStrings:
        for (const auto& v : a.strings) p->add_strings(v);
        break;
      case K::kTensors:
        for (const auto& t : a.tensors) tensor_to_proto(t, p->add_tensors());
        break;
      case K::kGraphs:
        for (const auto& g : a.graphs) {
          KILN_CHECK(g, "attribute \"", a.name, "\" of kind graphs holds a null graph");
          graph(*g, p->add_graphs(), false);
        }
        break;
      case K::kTypeProto:
        KILN_CHECK(!a.types.empty(), "attribute \"", a.name, "\" of kind type_proto has no type");
        type_to_proto(a.types[0], p->mutable_tp());
        break;
      case K::kTypeProtos:
        for (const auto& t : a.types) type_to_proto(t, p->add_type_protos());
        break;
      case K::kSparseTensor:
      case K::kSparseTensors:
        fail("attribute \"", a.name, "\": sparse tensor attributes are not supported");
    }
  }

  void node(const ir::Node& n, ::onnx::NodeProto* p) {
    if (!n.name.empty()) p->set_name(n.name);
    p->set_op_type(n.op_type);
    if (!n.domain.empty()) p->set_domain(n.domain);
    for (const auto& s : n.inputs) p->add_input(s);
    for (const auto& s : n.outputs) p->add_output(s);
    if (!n.doc_string.empty()) p->set_doc_string(n.doc_string);
    for (const auto& a : n.attributes) attribute(a, p->add_attribute());
  }

  // Dense -> SparseTensorProto with linear int64 indices of the non-zero elements.
  static void sparse(const std::string& name, const ir::Tensor& t, ::onnx::SparseTensorProto* p) {
    for (int64_t d : t.shape()) p->add_dims(d);
    std::vector<int64_t> idx;
    ir::Tensor values;
    if (t.dtype() == ir::DType::kString) {
      const auto* s = static_cast<const std::string*>(t.raw());
      for (int64_t i = 0; i < t.numel(); ++i)
        if (!s[i].empty()) idx.push_back(i);
      values = ir::Tensor(t.dtype(), {static_cast<int64_t>(idx.size())});
      for (size_t k = 0; k < idx.size(); ++k) static_cast<std::string*>(values.raw())[k] = s[idx[k]];
    } else {
      const size_t elem = ir::dtype_size(t.dtype());
      const auto* src = static_cast<const unsigned char*>(t.raw());
      for (int64_t i = 0; i < t.numel(); ++i) {
        const unsigned char* e = src + static_cast<size_t>(i) * elem;
        for (size_t b = 0; b < elem; ++b)
          if (e[b]) {
            idx.push_back(i);
            break;
          }
      }
      values = ir::Tensor(t.dtype(), {static_cast<int64_t>(idx.size())});
      for (size_t k = 0; k < idx.size(); ++k)
        std::memcpy(static_cast<unsigned char*>(values.raw()) + k * elem, src + static_cast<size_t>(idx[k]) * elem,
                    elem);
    }
    tensor_to_proto(values, p->mutable_values());
    p->mutable_values()->set_name(name);
    tensor_to_proto(ir::Tensor::from_vector(idx, {static_cast<int64_t>(idx.size())}), p->mutable_indices());
  }

  void graph(const ir::Graph& g, ::onnx::GraphProto* p, bool top) {
    if (!g.name.empty()) p->set_name(g.name);
    if (!g.doc_string.empty()) p->set_doc_string(g.doc_string);
    for (const auto& v : g.inputs) value_info(v, p->add_input());
    for (const auto& v : g.outputs) value_info(v, p->add_output());
    for (const auto& v : g.value_info) value_info(v, p->add_value_info());
    auto is_sparse = [&](const std::string& n) {
      for (const auto& s : g.sparse_initializer_names)
        if (s == n) return true;
      return false;
    };
    for (const auto& name : g.initializer_names) {
      if (is_sparse(name)) continue;
      auto it = g.initializers.find(name);
      KILN_CHECK(it != g.initializers.end(), "initializer \"", name, "\" is listed but has no tensor");
      const ir::Tensor& t = it->second;
      auto* tp = p->add_initializer();
      if (top && ext && t.dtype() != ir::DType::kString && static_cast<int64_t>(t.nbytes()) >= min_external_bytes)
        ext->add(t, tp);
      else
        tensor_to_proto(t, tp);
      tp->set_name(name);
    }
    for (const auto& name : g.sparse_initializer_names) {
      auto it = g.initializers.find(name);
      KILN_CHECK(it != g.initializers.end(), "sparse initializer \"", name, "\" has no tensor");
      sparse(name, it->second, p->add_sparse_initializer());
    }
    for (const auto& n : g.nodes) node(n, p->add_node());
  }

  void function(const ir::Function& f, ::onnx::FunctionProto* p) {
    p->set_name(f.name);
    if (!f.domain.empty()) p->set_domain(f.domain);
    if (!f.doc_string.empty()) p->set_doc_string(f.doc_string);
    for (const auto& s : f.inputs) p->add_input(s);
    for (const auto& s : f.outputs) p->add_output(s);
    for (const auto& s : f.attributes) p->add_attribute(s);
    for (const auto& n : f.nodes) node(n, p->add_node());
    for (const auto& [d, v] : f.opset_imports) {
      auto* op = p->add_opset_import();
      op->set_domain(d);
      op->set_version(v);
    }
    auto* unknown = p->GetReflection()->MutableUnknownFields(p);
    for (const auto& a : f.attribute_defaults) {
      ::onnx::AttributeProto ap;
      attribute(a, &ap);
      unknown->AddLengthDelimited(kFunctionAttributeProtoField, ap.SerializeAsString());
    }
  }

  void model(const ir::Model& m, ::onnx::ModelProto* p) {
    p->set_ir_version(m.ir_version);
    if (!m.producer_name.empty()) p->set_producer_name(m.producer_name);
    if (!m.producer_version.empty()) p->set_producer_version(m.producer_version);
    if (!m.domain.empty()) p->set_domain(m.domain);
    if (m.model_version) p->set_model_version(m.model_version);
    if (!m.doc_string.empty()) p->set_doc_string(m.doc_string);
    for (const auto& [d, v] : m.opset_imports) {
      auto* op = p->add_opset_import();
      op->set_domain(d);
      op->set_version(v);
    }
    for (const auto& [k, v] : m.metadata_props) {
      auto* e = p->add_metadata_props();
      e->set_key(k);
      e->set_value(v);
    }
    graph(m.graph, p->mutable_graph(), true);
    for (const auto& f : m.functions) function(f, p->add_functions());
  }
};

size_t checked_size(const ::onnx::ModelProto& p, const std::string& label) {
  size_t n = p.ByteSizeLong();
  KILN_CHECK(n <= static_cast<size_t>(INT_MAX), label, ": the model is ", n,
             " bytes with its data inline, over protobuf's 2 GiB limit; save it with external data");
  return n;
}

// A temporary file beside `final_path`, removed unless released.
struct TempFile {
  std::string path;
  int fd = -1;
  explicit TempFile(const std::string& final_path) {
    fs::path fp(final_path);
    fs::path dir = fp.parent_path();
    std::string tmpl = (dir / str(".", fp.filename().string(), ".tmp.XXXXXX")).string();
    fd = ::mkstemp(tmpl.data());
    if (fd < 0) fail(final_path, ": cannot create a temporary file beside it: ", std::strerror(errno));
    path = tmpl;
  }
  void close_checked() {
    if (fd >= 0) {
      int rc = ::close(fd);
      fd = -1;
      if (rc != 0) fail(path, ": close failed: ", std::strerror(errno));
    }
  }
  void commit(const std::string& final_path) {
    close_checked();
    ::chmod(path.c_str(), 0644);
    if (::rename(path.c_str(), final_path.c_str()) != 0)
      fail(final_path, ": cannot rename the temporary file into place: ", std::strerror(errno));
    path.clear();
  }
  ~TempFile() {
    if (fd >= 0) ::close(fd);
    if (!path.empty()) ::unlink(path.c_str());
  }
};

}  // namespace

std::string serialize_model(const ir::Model& model) {
  ::onnx::ModelProto p;
  Exporter{}.model(model, &p);
  checked_size(p, "serialize_model");
  std::string out;
  KILN_CHECK(p.SerializeToString(&out), "serialize_model: protobuf serialization failed");
  return out;
}

void save_model(const ir::Model& model, const std::string& path, const SaveOptions& options) {
  KILN_CHECK(!path.empty(), "save_model: empty path");
  KILN_CHECK(!fs::is_directory(path), path, ": is a folder");
  int64_t total = 0;
  for (const auto& [name, t] : model.graph.initializers)
    if (t.dtype() != ir::DType::kString) total += static_cast<int64_t>(t.nbytes());
  const int64_t threshold = options.external_data_threshold;
  const bool external = options.force_external_data || threshold == 0 || (threshold > 0 && total > kInlineLimit);

  Exporter ex;
  ex.min_external_bytes = std::max<int64_t>(threshold, 0);
  ::onnx::ModelProto p;
  std::unique_ptr<TempFile> data_tmp;
  ExternalWriter writer;
  const std::string data_path = path + ".data";
  if (external) {
    data_tmp = std::make_unique<TempFile>(data_path);
    writer.fd = data_tmp->fd;
    writer.path = data_tmp->path;
    writer.location = fs::path(data_path).filename().string();
    ex.ext = &writer;
  }
  ex.model(model, &p);
  checked_size(p, path);

  TempFile model_tmp(path);
  KILN_CHECK(p.SerializeToFileDescriptor(model_tmp.fd), path, ": writing the model failed: ", std::strerror(errno));
  // The data file goes into place first, so that a visible model never points at missing data.
  if (data_tmp) {
    if (writer.tensors > 0) {
      data_tmp->commit(data_path);
    } else {
      data_tmp.reset();  // nothing was large enough to externalize
    }
  }
  model_tmp.commit(path);
}

}  // namespace kiln::onnx_io
