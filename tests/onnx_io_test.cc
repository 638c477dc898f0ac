// Tests of ONNX import/export: round trips, external data, and refusal of bad or hostile files.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <complex>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "onnx/model_io.h"
#include "onnx/onnx-data_pb.h"
#include "onnx/onnx_pb.h"

namespace {

namespace fs = std::filesystem;
using namespace kiln;
using ir::DType;

const std::string kTestData = "/usr/share/libonnx-testdata/data/node";

struct TempDir {
  fs::path path;
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "kiln_onnxio_XXXXXX").string();
    char* p = ::mkdtemp(tmpl.data());
    EXPECT_NE(p, nullptr);
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// Expects `f` to throw kiln::Error whose message contains every one of `parts`.
template <class F>
void expect_error(F&& f, std::initializer_list<std::string> parts) {
  try {
    f();
    ADD_FAILURE() << "no error thrown; expected one containing \"" << *parts.begin() << "\"";
  } catch (const Error& e) {
    std::string msg = e.what();
    for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "message: " << msg << "\nmissing: " << p;
  }
}

template <class T>
ir::Tensor make_tensor(std::vector<int64_t> shape, int seed) {
  ir::Tensor t(ir::dtype_v<T>, shape);
  T* d = t.data<T>();
  for (int64_t i = 0; i < t.numel(); ++i) {
    int v = static_cast<int>((i * 7 + seed) % 11) - 5;
    if constexpr (std::is_same_v<T, bool>)
      d[i] = v > 0;
    else if constexpr (std::is_same_v<T, std::string>)
      d[i] = str("s", v, '\0', "x");
    else if constexpr (std::is_same_v<T, std::complex<float>> || std::is_same_v<T, std::complex<double>>)
      d[i] = T(v * 0.5, -v * 0.25);
    else if constexpr (std::is_unsigned_v<T>)
      d[i] = static_cast<T>(v + 5);
    else
      d[i] = static_cast<T>(static_cast<float>(v) * (ir::is_float(ir::dtype_v<T>) ? 0.37f : 1.0f));
  }
  return t;
}

ir::Attribute attr(const std::string& name, ir::Attribute::Kind kind) {
  ir::Attribute a;
  a.name = name;
  a.kind = kind;
  return a;
}

// A small model using every feature the importer knows.
ir::Model build_model() {
  using K = ir::Attribute::Kind;
  ir::Model m;
  m.ir_version = 8;
  m.opset_imports = {{"", 17}, {"com.kiln.test", 1}};
  m.producer_name = "onnxio-test";
  m.producer_version = "1.0";
  m.domain = "test.domain";
  m.model_version = 3;
  m.doc_string = "a model";
  m.metadata_props = {{"author", "kiln"}, {"k2", "v2"}};

  ir::Graph& g = m.graph;
  g.name = "main";
  g.doc_string = "main graph";
  ir::Shape sx({ir::Dim::symbolic("batch"), ir::Dim(3), ir::Dim()});
  g.inputs.push_back({"x", ir::Type::tensor(DType::kFloat32, sx), "input x"});
  g.inputs.push_back({"seq", ir::Type::sequence(ir::Type::tensor(DType::kInt64, ir::Shape::of({2}))), ""});
  g.inputs.push_back({"opt", ir::Type::optional(ir::Type::tensor(DType::kFloat16)), ""});
  ir::Type map_type;
  map_type.kind = ir::Type::Kind::kMap;
  map_type.dtype = DType::kInt64;
  map_type.elem = std::make_shared<ir::Type>(ir::Type::tensor(DType::kFloat32));
  g.inputs.push_back({"map", map_type, ""});
  g.inputs.push_back({"unknown_type", ir::Type(), ""});
  g.inputs.push_back({"w_f32", ir::Type::tensor(DType::kFloat32, ir::Shape::of({2, 3})), ""});  // also an initializer
  g.outputs.push_back({"y", ir::Type::tensor(DType::kFloat32, sx), ""});
  g.value_info.push_back({"h", ir::Type::tensor(DType::kFloat32), "hidden"});

  g.add_initializer("w_f32", make_tensor<float>({2, 3}, 1));
  g.add_initializer("w_f64", make_tensor<double>({3}, 2));
  g.add_initializer("w_f16", make_tensor<Float16>({2, 2}, 3));
  g.add_initializer("w_bf16", make_tensor<BFloat16>({5}, 4));
  g.add_initializer("w_i8", make_tensor<int8_t>({4}, 5));
  g.add_initializer("w_i16", make_tensor<int16_t>({4}, 6));
  g.add_initializer("w_i32", make_tensor<int32_t>({4}, 7));
  g.add_initializer("w_i64", make_tensor<int64_t>({4}, 8));
  g.add_initializer("w_u8", make_tensor<uint8_t>({4}, 9));
  g.add_initializer("w_u16", make_tensor<uint16_t>({4}, 10));
  g.add_initializer("w_u32", make_tensor<uint32_t>({4}, 11));
  g.add_initializer("w_u64", make_tensor<uint64_t>({4}, 12));
  g.add_initializer("w_bool", make_tensor<bool>({3, 2}, 13));
  g.add_initializer("w_str", make_tensor<std::string>({3}, 14));
  g.add_initializer("w_c64", make_tensor<std::complex<float>>({2}, 15));
  g.add_initializer("w_c128", make_tensor<std::complex<double>>({2}, 16));
  g.add_initializer("w_scalar", ir::Tensor::scalar<float>(2.5f));
  g.add_initializer("w_empty", ir::Tensor(DType::kFloat32, {0, 3}));
  ir::Tensor sparse(DType::kFloat32, {3, 4});
  sparse.data<float>()[1] = 1.5f;
  sparse.data<float>()[10] = -2.0f;
  g.add_initializer("w_sparse", sparse);
  g.sparse_initializer_names.push_back("w_sparse");

  auto body = std::make_shared<ir::Graph>();
  body->name = "then";
  body->outputs.push_back({"t_out", ir::Type::tensor(DType::kFloat32), ""});
  body->add_initializer("t_c", make_tensor<float>({3}, 20));
  ir::Node bn;
  bn.op_type = "Identity";
  bn.name = "then_id";
  bn.inputs = {"t_c"};
  bn.outputs = {"t_out"};
  body->nodes.push_back(bn);

  ir::Node n;
  n.name = "every_attr";
  n.op_type = "Custom";
  n.domain = "com.kiln.test";
  n.inputs = {"x", "", "w_f32"};
  n.outputs = {"h", ""};
  n.doc_string = "node doc";
  auto a = attr("f", K::kFloat);
  a.f = -1.25f;
  n.attributes.push_back(a);
  a = attr("i", K::kInt);
  a.i = -(int64_t{1} << 40);
  n.attributes.push_back(a);
  a = attr("s", K::kString);
  a.s = std::string("bin\0\xff", 5);
  a.doc_string = "string attr";
  n.attributes.push_back(a);
  a = attr("t", K::kTensor);
  a.t = make_tensor<int64_t>({2}, 30);
  n.attributes.push_back(a);
  a = attr("g", K::kGraph);
  a.g = body;
  n.attributes.push_back(a);
  a = attr("floats", K::kFloats);
  a.floats = {1.0f, -0.5f, 3e-8f};
  n.attributes.push_back(a);
  a = attr("ints", K::kInts);
  a.ints = {1, -2, 3};
  n.attributes.push_back(a);
  a = attr("strings", K::kStrings);
  a.strings = {"a", "", "c"};
  n.attributes.push_back(a);
  a = attr("tensors", K::kTensors);
  a.tensors = {make_tensor<float>({2}, 31), make_tensor<std::string>({1}, 32)};
  n.attributes.push_back(a);
  a = attr("graphs", K::kGraphs);
  a.graphs = {body, body};
  n.attributes.push_back(a);
  a = attr("tp", K::kTypeProto);
  a.types = {ir::Type::tensor(DType::kInt32, ir::Shape::of({4}))};
  n.attributes.push_back(a);
  a = attr("tps", K::kTypeProtos);
  a.types = {ir::Type::tensor(DType::kInt32), ir::Type::sequence(ir::Type::tensor(DType::kFloat32))};
  n.attributes.push_back(a);
  g.nodes.push_back(n);

  ir::Node call;
  call.op_type = "MyFunc";
  call.domain = "com.kiln.test";
  call.inputs = {"h"};
  call.outputs = {"y"};
  a = attr("alpha", K::kFloat);
  a.f = 2.0f;
  call.attributes.push_back(a);
  g.nodes.push_back(call);

  ir::Function f;
  f.name = "MyFunc";
  f.domain = "com.kiln.test";
  f.inputs = {"a"};
  f.outputs = {"b"};
  f.attributes = {"alpha"};
  auto def = attr("beta", K::kInt);
  def.i = 7;
  f.attribute_defaults.push_back(def);
  f.opset_imports = {{"", 17}};
  f.doc_string = "function doc";
  ir::Node fn;
  fn.op_type = "LeakyRelu";
  fn.inputs = {"a"};
  fn.outputs = {"b"};
  auto ref = attr("alpha", K::kFloat);
  ref.ref_attr_name = "alpha";
  fn.attributes.push_back(ref);
  f.nodes.push_back(fn);
  m.functions.push_back(f);
  return m;
}

void expect_same_type(const ir::Type& a, const ir::Type& b, const std::string& where) {
  EXPECT_EQ(ir::to_string(a), ir::to_string(b)) << where;
  EXPECT_EQ(a.kind, b.kind) << where;
  EXPECT_EQ(a.dtype, b.dtype) << where;
  EXPECT_EQ(a.shape.has_value(), b.shape.has_value()) << where;
  if (a.shape && b.shape) {
    ASSERT_EQ(a.shape->rank(), b.shape->rank()) << where;
    for (size_t i = 0; i < a.shape->rank(); ++i) {
      EXPECT_EQ((*a.shape)[i].value, (*b.shape)[i].value) << where;
      EXPECT_EQ((*a.shape)[i].symbol, (*b.shape)[i].symbol) << where;
    }
  }
  EXPECT_EQ(a.elem == nullptr, b.elem == nullptr) << where;
  if (a.elem && b.elem) expect_same_type(*a.elem, *b.elem, where + ".elem");
}

void expect_same_graph(const ir::Graph& a, const ir::Graph& b);

void expect_same_node(const ir::Node& a, const ir::Node& b) {
  EXPECT_EQ(a.name, b.name);
  EXPECT_EQ(a.op_type, b.op_type);
  EXPECT_EQ(a.domain, b.domain);
  EXPECT_EQ(a.inputs, b.inputs);
  EXPECT_EQ(a.outputs, b.outputs);
  EXPECT_EQ(a.doc_string, b.doc_string);
  ASSERT_EQ(a.attributes.size(), b.attributes.size());
  for (size_t i = 0; i < a.attributes.size(); ++i) {
    const auto& x = a.attributes[i];
    const auto& y = b.attributes[i];
    EXPECT_EQ(x.name, y.name);
    EXPECT_EQ(x.kind, y.kind) << x.name;
    EXPECT_EQ(x.ref_attr_name, y.ref_attr_name);
    EXPECT_EQ(x.doc_string, y.doc_string);
    EXPECT_EQ(float_bits(x.f), float_bits(y.f));
    EXPECT_EQ(x.i, y.i);
    EXPECT_EQ(x.s, y.s);
    EXPECT_EQ(x.t.defined(), y.t.defined());
    if (x.t.defined()) {
      EXPECT_TRUE(x.t.bitwise_equal(y.t)) << x.name;
    }
    EXPECT_EQ(x.floats, y.floats);
    EXPECT_EQ(x.ints, y.ints);
    EXPECT_EQ(x.strings, y.strings);
    ASSERT_EQ(x.tensors.size(), y.tensors.size());
    for (size_t k = 0; k < x.tensors.size(); ++k) EXPECT_TRUE(x.tensors[k].bitwise_equal(y.tensors[k]));
    EXPECT_EQ(x.g == nullptr, y.g == nullptr);
    if (x.g && y.g) expect_same_graph(*x.g, *y.g);
    ASSERT_EQ(x.graphs.size(), y.graphs.size());
    for (size_t k = 0; k < x.graphs.size(); ++k) expect_same_graph(*x.graphs[k], *y.graphs[k]);
    ASSERT_EQ(x.types.size(), y.types.size());
    for (size_t k = 0; k < x.types.size(); ++k) expect_same_type(x.types[k], y.types[k], x.name);
  }
}

void expect_same_values(const std::vector<ir::ValueInfo>& a, const std::vector<ir::ValueInfo>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].name, b[i].name);
    EXPECT_EQ(a[i].doc_string, b[i].doc_string);
    expect_same_type(a[i].type, b[i].type, a[i].name);
  }
}

void expect_same_graph(const ir::Graph& a, const ir::Graph& b) {
  EXPECT_EQ(a.name, b.name);
  EXPECT_EQ(a.doc_string, b.doc_string);
  expect_same_values(a.inputs, b.inputs);
  expect_same_values(a.outputs, b.outputs);
  expect_same_values(a.value_info, b.value_info);
  EXPECT_EQ(a.initializer_names, b.initializer_names);
  EXPECT_EQ(a.sparse_initializer_names, b.sparse_initializer_names);
  ASSERT_EQ(a.initializers.size(), b.initializers.size());
  for (const auto& [name, t] : a.initializers) {
    const ir::Tensor* u = b.find_initializer(name);
    ASSERT_NE(u, nullptr) << name;
    EXPECT_TRUE(t.bitwise_equal(*u)) << name;
  }
  ASSERT_EQ(a.nodes.size(), b.nodes.size());
  for (size_t i = 0; i < a.nodes.size(); ++i) expect_same_node(a.nodes[i], b.nodes[i]);
}

void expect_same_model(const ir::Model& a, const ir::Model& b) {
  EXPECT_EQ(a.ir_version, b.ir_version);
  EXPECT_EQ(a.opset_imports, b.opset_imports);
  EXPECT_EQ(a.producer_name, b.producer_name);
  EXPECT_EQ(a.producer_version, b.producer_version);
  EXPECT_EQ(a.domain, b.domain);
  EXPECT_EQ(a.model_version, b.model_version);
  EXPECT_EQ(a.doc_string, b.doc_string);
  EXPECT_EQ(a.metadata_props, b.metadata_props);
  expect_same_graph(a.graph, b.graph);
  ASSERT_EQ(a.functions.size(), b.functions.size());
  for (size_t i = 0; i < a.functions.size(); ++i) {
    const auto& f = a.functions[i];
    const auto& g = b.functions[i];
    EXPECT_EQ(f.name, g.name);
    EXPECT_EQ(f.domain, g.domain);
    EXPECT_EQ(f.inputs, g.inputs);
    EXPECT_EQ(f.outputs, g.outputs);
    EXPECT_EQ(f.attributes, g.attributes);
    EXPECT_EQ(f.opset_imports, g.opset_imports);
    EXPECT_EQ(f.doc_string, g.doc_string);
    ASSERT_EQ(f.attribute_defaults.size(), g.attribute_defaults.size());
    for (size_t k = 0; k < f.attribute_defaults.size(); ++k) {
      EXPECT_EQ(f.attribute_defaults[k].name, g.attribute_defaults[k].name);
      EXPECT_EQ(f.attribute_defaults[k].kind, g.attribute_defaults[k].kind);
      EXPECT_EQ(f.attribute_defaults[k].i, g.attribute_defaults[k].i);
    }
    ASSERT_EQ(f.nodes.size(), g.nodes.size());
    for (size_t k = 0; k < f.nodes.size(); ++k) expect_same_node(f.nodes[k], g.nodes[k]);
  }
}

// A minimal valid model proto: y = Abs(x), with optional initializers added by the caller.
::onnx::ModelProto minimal_proto() {
  ::onnx::ModelProto p;
  p.set_ir_version(8);
  auto* op = p.add_opset_import();
  op->set_domain("");
  op->set_version(17);
  auto* g = p.mutable_graph();
  g->set_name("g");
  auto* in = g->add_input();
  in->set_name("x");
  in->mutable_type()->mutable_tensor_type()->set_elem_type(1);
  auto* out = g->add_output();
  out->set_name("y");
  out->mutable_type()->mutable_tensor_type()->set_elem_type(1);
  auto* n = g->add_node();
  n->set_op_type("Abs");
  n->add_input("x");
  n->add_output("y");
  return p;
}

ir::Model parse(const ::onnx::ModelProto& p, const std::string& base_dir = "", const std::string& label = "m.onnx") {
  std::string bytes = p.SerializeAsString();
  return onnx_io::parse_model(bytes.data(), bytes.size(), base_dir, label);
}

::onnx::TensorProto* add_float_init(::onnx::ModelProto& p, const std::string& name, std::vector<int64_t> dims) {
  auto* t = p.mutable_graph()->add_initializer();
  t->set_name(name);
  t->set_data_type(1);
  for (int64_t d : dims) t->add_dims(d);
  return t;
}

}  // namespace

TEST(OnnxIo, RoundTripInMemory) {
  ir::Model m = build_model();
  std::string bytes = onnx_io::serialize_model(m);
  ir::Model back = onnx_io::parse_model(bytes.data(), bytes.size(), "", "mem");
  expect_same_model(m, back);
  // Exporting the import again gives the same bytes.
  EXPECT_EQ(onnx_io::serialize_model(back), bytes);
  // Sparse initializer is dense after import, with its name recorded.
  const ir::Tensor* sp = back.graph.find_initializer("w_sparse");
  ASSERT_NE(sp, nullptr);
  EXPECT_EQ(sp->data<float>()[10], -2.0f);
}

TEST(OnnxIo, RoundTripThroughFile) {
  TempDir dir;
  ir::Model m = build_model();
  std::string path = dir.file("model.onnx");
  onnx_io::save_model(m, path);
  EXPECT_FALSE(fs::exists(path + ".data"));
  ir::Model back = onnx_io::load_model(path);
  EXPECT_EQ(back.path, path);
  expect_same_model(m, back);
  // No temporary files are left behind.
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir.path)) files += e.is_regular_file();
  EXPECT_EQ(files, 1);
}

TEST(OnnxIo, ExternalDataRoundTrip) {
  TempDir dir;
  ir::Model m = build_model();
  m.graph.add_initializer("big", make_tensor<float>({64, 64}, 40));
  m.graph.add_initializer("big_bool", make_tensor<bool>({2048}, 41));
  // Sparse initializers are written after dense ones, as ONNX keeps them in a separate list.
  auto& names = m.graph.initializer_names;
  names.erase(std::find(names.begin(), names.end(), "w_sparse"));
  names.push_back("w_sparse");
  std::string path = dir.file("model.onnx");
  onnx_io::SaveOptions opt;
  opt.force_external_data = true;
  onnx_io::save_model(m, path, opt);
  ASSERT_TRUE(fs::exists(path + ".data"));
  EXPECT_GE(fs::file_size(path + ".data"), 64u * 64u * 4u + 2048u);
  EXPECT_LT(fs::file_size(path), 64u * 64u * 4u);
  ir::Model back = onnx_io::load_model(path);
  expect_same_model(m, back);

  // threshold 0 externalizes everything numeric; -1 keeps everything inline.
  opt.force_external_data = false;
  opt.external_data_threshold = 0;
  onnx_io::save_model(m, dir.file("all.onnx"), opt);
  expect_same_model(m, onnx_io::load_model(dir.file("all.onnx")));
  opt.external_data_threshold = -1;
  onnx_io::save_model(m, dir.file("inline.onnx"), opt);
  EXPECT_FALSE(fs::exists(dir.file("inline.onnx.data")));
  expect_same_model(m, onnx_io::load_model(dir.file("inline.onnx")));
}

namespace {

// A model whose initializer "w" (float [2,3]) lives in external data at `location`.
::onnx::ModelProto external_proto(const std::string& location, int64_t offset = 0, int64_t length = -1) {
  auto p = minimal_proto();
  auto* t = add_float_init(p, "w", {2, 3});
  t->set_data_location(::onnx::TensorProto::EXTERNAL);
  auto* e = t->add_external_data();
  e->set_key("location");
  e->set_value(location);
  e = t->add_external_data();
  e->set_key("offset");
  e->set_value(std::to_string(offset));
  if (length >= 0) {
    e = t->add_external_data();
    e->set_key("length");
    e->set_value(std::to_string(length));
  }
  return p;
}

void save_proto(const ::onnx::ModelProto& p, const std::string& path) { write_file(path, p.SerializeAsString()); }

}  // namespace

TEST(OnnxIo, ExternalDataRefusesEscapes) {
  TempDir dir;
  fs::create_directory(dir.path / "model");
  fs::create_directory(dir.path / "model" / "sub");
  std::string data(24, '\1');
  write_file(dir.file("outside.bin"), data);
  write_file(dir.file("model/ok.bin"), data);
  write_file(dir.file("model/sub/ok.bin"), data);
  std::string mpath = dir.file("model/m.onnx");

  save_proto(external_proto("ok.bin"), mpath);
  EXPECT_EQ(onnx_io::load_model(mpath).graph.find_initializer("w")->numel(), 6);
  save_proto(external_proto("sub/ok.bin", 0, 24), mpath);
  EXPECT_EQ(onnx_io::load_model(mpath).graph.find_initializer("w")->numel(), 6);

  save_proto(external_proto("../outside.bin"), mpath);
  expect_error([&] { onnx_io::load_model(mpath); },
               {mpath, "external data for initializer \"w\"", "location \"../outside.bin\" escapes the model folder"});
  save_proto(external_proto("sub/../../outside.bin"), mpath);
  expect_error([&] { onnx_io::load_model(mpath); }, {"escapes the model folder"});

  std::string abs = dir.file("outside.bin");
  save_proto(external_proto(abs), mpath);
  expect_error([&] { onnx_io::load_model(mpath); }, {mpath, "\"w\"", abs, "is an absolute path"});

  fs::create_symlink(abs, dir.path / "model" / "link.bin");
  save_proto(external_proto("link.bin"), mpath);
  expect_error([&] { onnx_io::load_model(mpath); }, {mpath, "location \"link.bin\" is a symbolic link"});
  fs::create_directory_symlink(dir.path, dir.path / "model" / "dirlink");
  save_proto(external_proto("dirlink/outside.bin"), mpath);
  expect_error([&] { onnx_io::load_model(mpath); }, {"location \"dirlink/outside.bin\" is a symbolic link"});

  save_proto(external_proto("missing.bin"), mpath);
  expect_error([&] { onnx_io::load_model(mpath); }, {"location \"missing.bin\" cannot be read"});

  // From memory there is no folder to read from.
  expect_error([&] { parse(external_proto("ok.bin")); }, {"m.onnx", "\"w\"", "not read from a file"});
}

TEST(OnnxIo, ExternalDataRefusesBadRanges) {
  TempDir dir;
  write_file(dir.file("d.bin"), std::string(30, '\0'));
  std::string mpath = dir.file("m.onnx");
  save_proto(external_proto("d.bin", 6), mpath);  // 6 + 24 = 30: fits exactly
  EXPECT_NO_THROW(onnx_io::load_model(mpath));
  save_proto(external_proto("d.bin", 8), mpath);
  expect_error([&] { onnx_io::load_model(mpath); },
               {mpath, "\"w\"", "d.bin", "run past the end of the file (30 bytes)"});
  save_proto(external_proto("d.bin", 100), mpath);
  expect_error([&] { onnx_io::load_model(mpath); }, {"offset 100 is past the end of the file"});
  save_proto(external_proto("d.bin", 0, 20), mpath);
  expect_error([&] { onnx_io::load_model(mpath); }, {"length 20 does not match the tensor's 24 bytes"});
  auto p = external_proto("d.bin");
  p.mutable_graph()->mutable_initializer(0)->mutable_external_data(1)->set_value("-4");
  save_proto(p, mpath);
  expect_error([&] { onnx_io::load_model(mpath); }, {"offset \"-4\" is not a non-negative integer"});
}

TEST(OnnxIo, RawDataSizeChecked) {
  auto p = minimal_proto();
  add_float_init(p, "w", {2, 3})->set_raw_data(std::string(10, '\0'));
  expect_error([&] { parse(p); },
               {"m.onnx: raw_data of initializer \"w\" has 10 bytes, shape [2,3] of float32 needs 24"});
  p.mutable_graph()->mutable_initializer(0)->set_raw_data(std::string(28, '\0'));
  expect_error([&] { parse(p); }, {"has 28 bytes", "needs 24"});
  p.mutable_graph()->mutable_initializer(0)->set_raw_data(std::string(24, '\0'));
  EXPECT_NO_THROW(parse(p));
}

TEST(OnnxIo, TypedFieldsAllDtypes) {
  auto p = minimal_proto();
  auto* t = add_float_init(p, "f32", {2});
  t->add_float_data(1.5f);
  t->add_float_data(-2.0f);
  t = add_float_init(p, "f16", {2});
  t->set_data_type(10);
  t->add_int32_data(Float16(1.5f).bits);
  t->add_int32_data(Float16(-2.0f).bits);
  t = add_float_init(p, "bf16", {1});
  t->set_data_type(16);
  t->add_int32_data(BFloat16(3.0f).bits);
  t = add_float_init(p, "i8", {2});
  t->set_data_type(3);
  t->add_int32_data(-128);
  t->add_int32_data(127);
  t = add_float_init(p, "u16", {1});
  t->set_data_type(4);
  t->add_int32_data(65535);
  t = add_float_init(p, "b", {2});
  t->set_data_type(9);
  t->add_int32_data(1);
  t->add_int32_data(0);
  t = add_float_init(p, "i64", {1});
  t->set_data_type(7);
  t->add_int64_data(-(int64_t{1} << 50));
  t = add_float_init(p, "u32", {1});
  t->set_data_type(12);
  t->add_uint64_data(4000000000u);
  t = add_float_init(p, "u64", {1});
  t->set_data_type(13);
  t->add_uint64_data(~uint64_t{0});
  t = add_float_init(p, "f64", {1});
  t->set_data_type(11);
  t->add_double_data(0.1);
  t = add_float_init(p, "c64", {1});
  t->set_data_type(14);
  t->add_float_data(1.0f);
  t->add_float_data(-1.0f);
  t = add_float_init(p, "c128", {1});
  t->set_data_type(15);
  t->add_double_data(2.0);
  t->add_double_data(-3.0);
  t = add_float_init(p, "str", {2});
  t->set_data_type(8);
  t->add_string_data("hello");
  t->add_string_data(std::string("\0z", 2));
  ir::Model m = parse(p);
  const auto& g = m.graph;
  EXPECT_EQ(g.find_initializer("f32")->data<float>()[1], -2.0f);
  EXPECT_EQ(float(g.find_initializer("f16")->data<Float16>()[0]), 1.5f);
  EXPECT_EQ(float(g.find_initializer("bf16")->data<BFloat16>()[0]), 3.0f);
  EXPECT_EQ(g.find_initializer("i8")->data<int8_t>()[0], -128);
  EXPECT_EQ(g.find_initializer("u16")->data<uint16_t>()[0], 65535);
  EXPECT_TRUE(g.find_initializer("b")->data<bool>()[0]);
  EXPECT_FALSE(g.find_initializer("b")->data<bool>()[1]);
  EXPECT_EQ(g.find_initializer("i64")->data<int64_t>()[0], -(int64_t{1} << 50));
  EXPECT_EQ(g.find_initializer("u32")->data<uint32_t>()[0], 4000000000u);
  EXPECT_EQ(g.find_initializer("u64")->data<uint64_t>()[0], ~uint64_t{0});
  EXPECT_EQ(g.find_initializer("f64")->data<double>()[0], 0.1);
  EXPECT_EQ(g.find_initializer("c64")->data<std::complex<float>>()[0], std::complex<float>(1, -1));
  EXPECT_EQ(g.find_initializer("c128")->data<std::complex<double>>()[0], std::complex<double>(2, -3));
  EXPECT_EQ(g.find_initializer("str")->data<std::string>()[1], std::string("\0z", 2));
  // Re-export uses raw_data and reads back identical.
  std::string bytes = onnx_io::serialize_model(m);
  ir::Model back = onnx_io::parse_model(bytes.data(), bytes.size(), "", "x");
  expect_same_model(m, back);
}

TEST(OnnxIo, BadTensorsRefused) {
  {
    auto p = minimal_proto();
    add_float_init(p, "w", {3})->add_float_data(1.0f);
    expect_error([&] { parse(p); }, {"initializer \"w\" has 1 values in float_data, shape [3] of float32 needs 3"});
  }
  {
    auto p = minimal_proto();
    add_float_init(p, "w", {2, -3});
    expect_error([&] { parse(p); }, {"initializer \"w\"", "dims[1] = -3 is negative"});
  }
  {
    auto p = minimal_proto();
    add_float_init(p, "w", {int64_t{1} << 40, int64_t{1} << 40})->set_raw_data("1234");
    expect_error([&] { parse(p); }, {"initializer \"w\"", "overflows"});
  }
  {
    auto p = minimal_proto();
    add_float_init(p, "w", {1})->set_data_type(99);
    expect_error([&] { parse(p); }, {"initializer \"w\": unknown data_type 99"});
  }
  {
    auto p = minimal_proto();
    auto* t = add_float_init(p, "w", {1});
    t->add_float_data(1);
    t->mutable_segment()->set_begin(0);
    expect_error([&] { parse(p); }, {"initializer \"w\": segmented tensors are not supported"});
  }
  {
    auto p = minimal_proto();
    add_float_init(p, "w", {1})->add_float_data(1);
    add_float_init(p, "w", {1})->add_float_data(2);
    expect_error([&] { parse(p); }, {"m.onnx", "initializer \"w\" is defined twice"});
  }
  {
    auto p = minimal_proto();
    *p.mutable_graph()->add_input() = p.graph().input(0);
    expect_error([&] { parse(p); }, {"m.onnx", "graph input \"x\" is declared twice"});
  }
  {
    auto p = minimal_proto();
    auto* shape = p.mutable_graph()->mutable_input(0)->mutable_type()->mutable_tensor_type()->mutable_shape();
    shape->add_dim()->set_dim_param("n");
    shape->add_dim()->set_dim_value(-2);
    expect_error([&] { parse(p); }, {"m.onnx", "graph input \"x\"", "dim 1 has negative value -2"});
  }
}

// paddle2onnx writes dim_value -1 and dim_param "?" for unknown dims (the corpus's ppocr-cls): each read as
// an unknown dim of its own, as ORT does.
TEST(OnnxIo, DimValueMinusOneAndDimParamQuestionMarkAreUnknown) {
  auto p = minimal_proto();
  auto* shape = p.mutable_graph()->mutable_input(0)->mutable_type()->mutable_tensor_type()->mutable_shape();
  shape->clear_dim();
  shape->add_dim()->set_dim_value(-1);
  shape->add_dim()->set_dim_value(3);
  shape->add_dim()->set_dim_param("?");
  shape->add_dim()->set_dim_param("?");
  ir::Model m = parse(p);
  const ir::Shape& s = *m.graph.inputs[0].type.shape;
  ASSERT_EQ(s.rank(), 4u);
  for (size_t i : {0, 2, 3}) {
    EXPECT_FALSE(s.dims[i].is_static()) << i;
    EXPECT_FALSE(s.dims[i].is_symbolic()) << i;
  }
  EXPECT_EQ(s.dims[1].value, 3);
}

TEST(OnnxIo, BadFilesRefused) {
  TempDir dir;
  auto load = [](const std::string& path) { return [path] { onnx_io::load_model(path); }; };
  expect_error(load(dir.file("nope.onnx")), {dir.file("nope.onnx"), "no such file"});
  write_file(dir.file("empty.onnx"), "");
  expect_error(load(dir.file("empty.onnx")), {dir.file("empty.onnx") + ": file is empty"});
  write_file(dir.file("png.onnx"), std::string("\x89PNG\r\n\x1a\n\0\0\0\rIHDR", 16));
  expect_error(load(dir.file("png.onnx")), {dir.file("png.onnx") + ": not an ONNX model", "PNG"});
  write_file(dir.file("zip.onnx"), std::string("PK\x03\x04\x14\0\0\0\x08\0", 10));
  expect_error(load(dir.file("zip.onnx")), {dir.file("zip.onnx") + ": not an ONNX model", "zip"});
  write_file(dir.file("text.onnx"), "version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 123\n");
  expect_error(load(dir.file("text.onnx")), {dir.file("text.onnx") + ": not an ONNX model", "text file"});
  expect_error(load(dir.path.string()), {"is a folder"});

  std::string good = onnx_io::serialize_model(build_model());
  int truncated_refused = 0;
  for (size_t cut : {good.size() / 3, good.size() / 2, good.size() - 7, size_t{5}}) {
    write_file(dir.file("cut.onnx"), good.substr(0, cut));
    try {
      onnx_io::load_model(dir.file("cut.onnx"));
    } catch (const Error& e) {
      EXPECT_EQ(std::string(e.what()).rfind(dir.file("cut.onnx") + ": ", 0), 0u) << e.what();
      ++truncated_refused;
    }
  }
  EXPECT_EQ(truncated_refused, 4);
  write_file(dir.file("cut.onnx"), good.substr(0, good.size() / 2));
  expect_error(load(dir.file("cut.onnx")), {"not an ONNX model (protobuf parse failed"});

  auto p = minimal_proto();
  p.clear_graph();
  save_proto(p, dir.file("nograph.onnx"));
  expect_error(load(dir.file("nograph.onnx")), {dir.file("nograph.onnx") + ": model has no graph"});
  p = minimal_proto();
  p.mutable_graph()->clear_node();
  p.mutable_graph()->clear_output();
  save_proto(p, dir.file("emptygraph.onnx"));
  expect_error(load(dir.file("emptygraph.onnx")), {dir.file("emptygraph.onnx") + ": empty graph: graph has no nodes"});
}

TEST(OnnxIo, LoadsOnnxTestModel) {
  std::string dir = kTestData + "/test_abs";
  if (!fs::exists(dir)) GTEST_SKIP() << "libonnx-testdata not installed";
  ir::Model m = onnx_io::load_model(dir + "/model.onnx");
  ASSERT_EQ(m.graph.nodes.size(), 1u);
  EXPECT_EQ(m.graph.nodes[0].op_type, "Abs");
  ASSERT_EQ(m.graph.inputs.size(), 1u);
  ir::Datum d = onnx_io::load_datum_pb(dir + "/test_data_set_0/input_0.pb", m.graph.inputs[0].type);
  ASSERT_TRUE(d.is_tensor());
  EXPECT_EQ(d.tensor.dtype(), DType::kFloat32);
  EXPECT_EQ(d.tensor.shape(), (std::vector<int64_t>{3, 4, 5}));
}

TEST(OnnxIo, LoadsSequenceAndOptionalData) {
  std::string seq = kTestData + "/test_sequence_insert_at_back";
  std::string opt = kTestData + "/test_optional_has_element_empty";
  if (!fs::exists(seq) || !fs::exists(opt)) GTEST_SKIP() << "libonnx-testdata not installed";
  ir::Model m = onnx_io::load_model(seq + "/model.onnx");
  ASSERT_EQ(m.graph.inputs[0].type.kind, ir::Type::Kind::kSequence);
  ir::Datum d = onnx_io::load_datum_pb(seq + "/test_data_set_0/input_0.pb", m.graph.inputs[0].type);
  ASSERT_TRUE(d.is_sequence());
  EXPECT_FALSE(d.sequence.empty());

  ir::Model mo = onnx_io::load_model(opt + "/model.onnx");
  ASSERT_EQ(mo.graph.inputs[0].type.kind, ir::Type::Kind::kOptional);
  ir::Datum e = onnx_io::load_datum_pb(opt + "/test_data_set_0/input_0.pb", mo.graph.inputs[0].type);
  EXPECT_TRUE(e.is_none());
}

// Every model and data file of ONNX's node tests loads, and round-trips through export.
TEST(OnnxIo, LoadsAllOnnxNodeTests) {
  if (!fs::exists(kTestData)) GTEST_SKIP() << "libonnx-testdata not installed";
  int models = 0, data = 0;
  for (const auto& e : fs::directory_iterator(kTestData)) {
    std::string path = (e.path() / "model.onnx").string();
    if (!fs::exists(path)) continue;
    ir::Model m;
    try {
      m = onnx_io::load_model(path);
    } catch (const Error& err) {
      std::string msg = err.what();
      // Sparse tensor attributes (Constant sparse_value) are unsupported by design.
      if (msg.find("sparse tensor attributes are not supported") != std::string::npos) continue;
      ADD_FAILURE() << msg;
      continue;
    }
    ++models;
    std::string bytes = onnx_io::serialize_model(m);
    ir::Model back = onnx_io::parse_model(bytes.data(), bytes.size(), "", path);
    EXPECT_EQ(onnx_io::serialize_model(back), bytes) << path;
    fs::path set0 = e.path() / "test_data_set_0";
    for (size_t i = 0; i < m.graph.inputs.size(); ++i) {
      std::string pb = (set0 / ("input_" + std::to_string(i) + ".pb")).string();
      if (!fs::exists(pb)) continue;
      try {
        onnx_io::load_datum_pb(pb, m.graph.inputs[i].type);
        ++data;
      } catch (const Error& err) {
        std::string msg = err.what();
        if (msg.find("not supported") != std::string::npos) continue;
        ADD_FAILURE() << msg;
      }
    }
  }
  EXPECT_GT(models, 900);
  EXPECT_GT(data, 900);
}

TEST(OnnxIo, LoadsBertTiny) {
  std::string path = std::string(KILN_SOURCE_DIR) + "/tests/data/bert-tiny/model.onnx";
  if (!fs::exists(path)) GTEST_SKIP() << "bert-tiny test model missing";
  ir::Model m = onnx_io::load_model(path);
  EXPECT_EQ(m.graph.inputs.size(), 3u);
  EXPECT_EQ(m.graph.outputs.size(), 2u);
  EXPECT_EQ(m.opset(""), 14);
  EXPECT_GT(m.graph.initializers.size(), 0u);
  EXPECT_GT(m.graph.nodes.size(), 10u);
  std::string bytes = onnx_io::serialize_model(m);
  ir::Model back = onnx_io::parse_model(bytes.data(), bytes.size(), "", "bert");
  expect_same_model(m, back);
}
