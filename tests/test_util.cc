#include "test_util.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <fstream>
#include <sstream>
#include <stdexcept>

#include "common/error.h"
#include "common/process.h"

namespace kiln::testing {

namespace fs = std::filesystem;

TempDir::TempDir(const std::string& prefix) {
  std::string tmpl = (fs::temp_directory_path() / (prefix + "_XXXXXX")).string();
  if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed for " + tmpl);
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

ScopedEnv::ScopedEnv(const char* name, const std::optional<std::string>& value) : name_(name) {
  if (const char* old = std::getenv(name)) old_ = old;
  if (value)
    ::setenv(name, value->c_str(), 1);
  else
    ::unsetenv(name);
}

ScopedEnv::~ScopedEnv() {
  if (old_)
    ::setenv(name_, old_->c_str(), 1);
  else
    ::unsetenv(name_);
}

std::string source_path(const std::string& relative) { return (fs::path(KILN_SOURCE_DIR) / relative).string(); }

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "no kiln::Error thrown";
  return "";
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + path);
}

RunResult run_program(std::vector<std::string> argv_s, int timeout_s) {
  TempDir capture("kiln_run");
  ProcessResult p = run_process(std::move(argv_s), capture.path().string(), timeout_s);
  return RunResult{p.exit_code, std::move(p.out), std::move(p.err)};
}

RunResult run_kiln(const std::vector<std::string>& args, int timeout_s) {
  std::vector<std::string> argv = {KILN_BINARY};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_program(std::move(argv), timeout_s);
}

int count_lines(const std::string& text) {
  int n = 0;
  for (char c : text) n += c == '\n';
  if (!text.empty() && text.back() != '\n') ++n;
  return n;
}

onnx::ModelProto new_model(int64_t opset) {
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.set_producer_name("kiln-tests");
  auto* op = m.add_opset_import();
  op->set_domain("");
  op->set_version(opset);
  m.mutable_graph()->set_name("test");
  return m;
}

void set_tensor_type(onnx::ValueInfoProto* v, int32_t elem_type, const std::vector<DimSpec>& dims) {
  auto* t = v->mutable_type()->mutable_tensor_type();
  t->set_elem_type(elem_type);
  auto* shape = t->mutable_shape();
  for (const auto& d : dims) {
    auto* dim = shape->add_dim();
    if (d.symbol.empty())
      dim->set_dim_value(d.value);
    else
      dim->set_dim_param(d.symbol);
  }
}

void add_input(onnx::GraphProto* g, const std::string& name, int32_t elem_type, const std::vector<DimSpec>& dims) {
  auto* v = g->add_input();
  v->set_name(name);
  set_tensor_type(v, elem_type, dims);
}

void add_output(onnx::GraphProto* g, const std::string& name, int32_t elem_type, const std::vector<DimSpec>& dims) {
  auto* v = g->add_output();
  v->set_name(name);
  set_tensor_type(v, elem_type, dims);
}

void add_output(onnx::GraphProto* g, const std::string& name, int32_t elem_type) {
  auto* v = g->add_output();
  v->set_name(name);
  v->mutable_type()->mutable_tensor_type()->set_elem_type(elem_type);
}

onnx::NodeProto* add_node(onnx::GraphProto* g, const std::string& op_type, const std::vector<std::string>& inputs,
                          const std::vector<std::string>& outputs, const std::string& name, const std::string& domain) {
  auto* n = g->add_node();
  n->set_op_type(op_type);
  n->set_name(name);
  if (!domain.empty()) n->set_domain(domain);
  for (const auto& i : inputs) n->add_input(i);
  for (const auto& o : outputs) n->add_output(o);
  return n;
}

onnx::TensorProto* add_float_initializer(onnx::GraphProto* g, const std::string& name, const std::vector<int64_t>& dims,
                                         const std::vector<float>& values) {
  auto* t = g->add_initializer();
  t->set_name(name);
  t->set_data_type(onnx::TensorProto::FLOAT);
  for (int64_t d : dims) t->add_dims(d);
  for (float v : values) t->add_float_data(v);
  return t;
}

onnx::TensorProto* add_int64_initializer(onnx::GraphProto* g, const std::string& name, const std::vector<int64_t>& dims,
                                         const std::vector<int64_t>& values) {
  auto* t = g->add_initializer();
  t->set_name(name);
  t->set_data_type(onnx::TensorProto::INT64);
  for (int64_t d : dims) t->add_dims(d);
  for (int64_t v : values) t->add_int64_data(v);
  return t;
}

void save(const onnx::ModelProto& model, const std::string& path) {
  std::string bytes;
  if (!model.SerializeToString(&bytes)) throw std::runtime_error("cannot serialize model for " + path);
  write_file(path, bytes);
}

}  // namespace kiln::testing
