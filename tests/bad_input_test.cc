// Black-box tests of refusals: each bad model or input must make `kiln` print exactly one line on
// stderr naming the file, node, input or field at fault, and exit with code 2 (never crash or get
// killed for memory).
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <initializer_list>
#include <string>
#include <vector>

#include "io/npy.h"
#include "test_util.h"

namespace {

namespace fs = std::filesystem;
using namespace kiln::testing;
using onnx::TensorProto;

// Runs kiln with `args` and expects exit code 2 and one stderr line containing every one of `parts`.
void expect_refusal(const std::vector<std::string>& args, std::initializer_list<std::string> parts) {
  RunResult r = run_kiln(args);
  std::string cmd;
  for (const auto& a : args) cmd += " " + a;
  std::printf("  %s", r.err.c_str());  // the message, for a reader of the test log
  EXPECT_EQ(r.exit_code, 2) << "kiln" << cmd << "\nstderr: " << r.err;
  EXPECT_EQ(count_lines(r.err), 1) << "kiln" << cmd << "\nstderr: " << r.err;
  for (const auto& p : parts)
    EXPECT_NE(r.err.find(p), std::string::npos) << "kiln" << cmd << "\nstderr: " << r.err << "missing: " << p;
}

// A valid model: y = Relu(x + w), x float[2,3], w an initializer.
onnx::ModelProto small_model() {
  onnx::ModelProto m = new_model();
  auto* g = m.mutable_graph();
  add_input(g, "x", TensorProto::FLOAT, {2, 3});
  add_float_initializer(g, "w", {2, 3}, {1, 2, 3, 4, 5, 6});
  add_node(g, "Add", {"x", "w"}, {"sum"}, "add0");
  add_node(g, "Relu", {"sum"}, {"y"}, "relu0");
  add_output(g, "y", TensorProto::FLOAT, {2, 3});
  return m;
}

// A model with no graph input: y = Identity(w) for the initializer `w` the caller adds.
onnx::ModelProto identity_of_initializer() {
  onnx::ModelProto m = new_model();
  auto* g = m.mutable_graph();
  add_node(g, "Identity", {"w"}, {"y"}, "id0");
  add_output(g, "y", TensorProto::FLOAT);
  return m;
}

std::string saved(const TempDir& dir, const onnx::ModelProto& m, const std::string& name = "model.onnx") {
  std::string path = dir.file(name);
  save(m, path);
  return path;
}

// ---- files that are not (whole) ONNX models ----

TEST(BadInput, ValidSmallModelRuns) {  // the baseline the other cases break
  TempDir dir("kiln_bad");
  RunResult r = run_kiln({"run", saved(dir, small_model()), "--random"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

TEST(BadInput, EmptyFile) {
  TempDir dir("kiln_bad");
  std::string path = dir.file("empty.onnx");
  write_file(path, "");
  expect_refusal({"inspect", path}, {path, "empty"});
  expect_refusal({"run", path, "--random"}, {path, "empty"});
}

TEST(BadInput, MissingFile) {
  TempDir dir("kiln_bad");
  std::string path = dir.file("nothere.onnx");
  expect_refusal({"inspect", path}, {path, "no such file"});
}

TEST(BadInput, TruncatedFile) {
  TempDir dir("kiln_bad");
  std::string whole = read_file(source_path("tests/data/bert-tiny/model.onnx"));
  ASSERT_GT(whole.size(), 1000u);
  std::string path = dir.file("half.onnx");
  write_file(path, whole.substr(0, whole.size() / 2));
  expect_refusal({"inspect", path}, {path, "truncated"});
}

TEST(BadInput, TruncatedSmallModel) {
  TempDir dir("kiln_bad");
  std::string bytes;
  ASSERT_TRUE(small_model().SerializeToString(&bytes));
  std::string path = dir.file("half.onnx");
  write_file(path, bytes.substr(0, bytes.size() / 2));
  expect_refusal({"run", path, "--random"}, {path, "not an ONNX model", "truncated"});
}

TEST(BadInput, PngFile) {
  TempDir dir("kiln_bad");
  std::string path = dir.file("picture.onnx");
  write_file(path, std::string("\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x10\0\0\0\x10\x08\x06\0\0\0", 29));
  expect_refusal({"inspect", path}, {path, "not an ONNX model", "PNG"});
}

TEST(BadInput, ZipFile) {
  TempDir dir("kiln_bad");
  std::string path = dir.file("archive.onnx");
  write_file(path, std::string("PK\x03\x04\x14\0\0\0\x08\0model.onnx", 20));
  expect_refusal({"inspect", path}, {path, "not an ONNX model", "zip"});
}

TEST(BadInput, TextFile) {
  TempDir dir("kiln_bad");
  std::string path = dir.file("notes.onnx");
  write_file(path, "this is not a model, just some notes\nsecond line\n");
  expect_refusal({"inspect", path}, {path, "not an ONNX model", "text"});
}

// ---- unsupported ops, domains, opsets ----

TEST(BadInput, UnknownOp) {
  TempDir dir("kiln_bad");
  onnx::ModelProto m = new_model();
  auto* g = m.mutable_graph();
  add_input(g, "x", TensorProto::FLOAT, {2});
  add_node(g, "FooBar", {"x"}, {"y"}, "foo_node");
  add_output(g, "y", TensorProto::FLOAT);
  expect_refusal({"run", saved(dir, m), "--random"}, {"unsupported op FooBar", "foo_node"});
}

TEST(BadInput, FutureIrVersion) {
  TempDir dir("kiln_bad");
  onnx::ModelProto m = small_model();
  m.set_ir_version(13);  // the newest kiln reads
  RunResult ok = run_kiln({"run", saved(dir, m, "ir13.onnx"), "--random"});
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  m.set_ir_version(99);
  const std::string path = saved(dir, m, "ir99.onnx");
  expect_refusal({"inspect", path}, {path, "IR version 99 is newer than kiln supports (up to 13)"});
  expect_refusal({"run", path, "--random"}, {path, "IR version 99"});
}

TEST(BadInput, UnknownDomain) {
  TempDir dir("kiln_bad");
  onnx::ModelProto m = new_model();
  auto* g = m.mutable_graph();
  add_input(g, "x", TensorProto::FLOAT, {2});
  add_node(g, "Frob", {"x"}, {"y"}, "frob_node", "com.example");
  add_output(g, "y", TensorProto::FLOAT);
  expect_refusal({"run", saved(dir, m), "--random"}, {"com.example", "not imported", "frob_node"});
}

TEST(BadInput, UnsupportedOpset) {
  TempDir dir("kiln_bad");
  onnx::ModelProto m = small_model();
  m.mutable_opset_import(0)->set_version(99);
  expect_refusal({"run", saved(dir, m), "--random"}, {"unsupported opset 99", "ai.onnx"});
}

// ---- bad shapes and data ----

TEST(BadInput, NegativeInitializerDim) {
  TempDir dir("kiln_bad");
  onnx::ModelProto m = identity_of_initializer();
  add_float_initializer(m.mutable_graph(), "w", {2, -3}, {1, 2, 3, 4, 5, 6});
  expect_refusal({"inspect", saved(dir, m)}, {"initializer \"w\"", "-3", "negative"});
}

TEST(BadInput, NegativeInputDim) {
  TempDir dir("kiln_bad");
  onnx::ModelProto m = new_model();
  auto* g = m.mutable_graph();
  add_input(g, "x", TensorProto::FLOAT, {2, -4});
  add_node(g, "Identity", {"x"}, {"y"}, "id0");
  add_output(g, "y", TensorProto::FLOAT);
  expect_refusal({"inspect", saved(dir, m)}, {"input \"x\"", "-4", "negative"});
}

TEST(BadInput, InitializerElementCountOverflows) {
  TempDir dir("kiln_bad");
  onnx::ModelProto m = identity_of_initializer();
  auto* t = m.mutable_graph()->add_initializer();
  t->set_name("w");
  t->set_data_type(TensorProto::FLOAT);
  t->add_dims(int64_t{1} << 40);
  t->add_dims(int64_t{1} << 40);
  t->set_raw_data(std::string(16, '\0'));
  expect_refusal({"inspect", saved(dir, m)}, {"\"w\"", "overflow"});
}

TEST(BadInput, RawDataTooShort) {
  TempDir dir("kiln_bad");
  onnx::ModelProto m = identity_of_initializer();
  auto* t = m.mutable_graph()->add_initializer();
  t->set_name("w");
  t->set_data_type(TensorProto::FLOAT);
  t->add_dims(2);
  t->add_dims(3);
  t->set_raw_data(std::string(20, '\0'));  // 24 needed
  expect_refusal({"inspect", saved(dir, m)}, {"\"w\"", "raw_data", "20", "24"});
}

TEST(BadInput, RawDataTooLong) {
  TempDir dir("kiln_bad");
  onnx::ModelProto m = identity_of_initializer();
  auto* t = m.mutable_graph()->add_initializer();
  t->set_name("w");
  t->set_data_type(TensorProto::FLOAT);
  t->add_dims(2);
  t->add_dims(3);
  t->set_raw_data(std::string(28, '\0'));
  expect_refusal({"inspect", saved(dir, m)}, {"\"w\"", "raw_data", "28", "24"});
}

TEST(BadInput, DuplicateInitializer) {
  TempDir dir("kiln_bad");
  onnx::ModelProto m = identity_of_initializer();
  add_float_initializer(m.mutable_graph(), "w", {2}, {1, 2});
  add_float_initializer(m.mutable_graph(), "w", {2}, {3, 4});
  expect_refusal({"inspect", saved(dir, m)}, {"initializer \"w\"", "twice"});
}

// ---- graph structure ----

TEST(BadInput, UndefinedNodeInput) {
  TempDir dir("kiln_bad");
  onnx::ModelProto m = new_model();
  auto* g = m.mutable_graph();
  add_input(g, "x", TensorProto::FLOAT, {2});
  add_node(g, "Add", {"x", "ghost"}, {"y"}, "add_ghost");
  add_output(g, "y", TensorProto::FLOAT);
  expect_refusal({"run", saved(dir, m), "--random"}, {"add_ghost", "\"ghost\"", "defines"});
}

TEST(BadInput, TwoNodesWriteOneOutput) {
  TempDir dir("kiln_bad");
  onnx::ModelProto m = new_model();
  auto* g = m.mutable_graph();
  add_input(g, "x", TensorProto::FLOAT, {2});
  add_node(g, "Relu", {"x"}, {"y"}, "writer_a");
  add_node(g, "Neg", {"x"}, {"y"}, "writer_b");
  add_output(g, "y", TensorProto::FLOAT);
  expect_refusal({"run", saved(dir, m), "--random"}, {"\"y\"", "two nodes", "writer_a", "writer_b"});
}

TEST(BadInput, Cycle) {
  TempDir dir("kiln_bad");
  onnx::ModelProto m = new_model();
  auto* g = m.mutable_graph();
  add_input(g, "x", TensorProto::FLOAT, {2});
  add_node(g, "Add", {"x", "b"}, {"a"}, "cycle_a");
  add_node(g, "Relu", {"a"}, {"b"}, "cycle_b");
  add_output(g, "b", TensorProto::FLOAT);
  expect_refusal({"run", saved(dir, m), "--random"}, {"cycle", "cycle_a"});
}

TEST(BadInput, SelfLoop) {
  TempDir dir("kiln_bad");
  onnx::ModelProto m = new_model();
  auto* g = m.mutable_graph();
  add_input(g, "x", TensorProto::FLOAT, {2});
  add_node(g, "Add", {"x", "a"}, {"a"}, "self_loop");
  add_output(g, "a", TensorProto::FLOAT);
  expect_refusal({"run", saved(dir, m), "--random"}, {"cycle", "self_loop"});
}

TEST(BadInput, EmptyGraph) {
  TempDir dir("kiln_bad");
  onnx::ModelProto m = new_model();
  std::string path = saved(dir, m);
  expect_refusal({"run", path, "--random"}, {path, "empty"});
}

// ---- external data ----

// A model whose initializer "w" (float[4]) lives in external data at `location`.
onnx::ModelProto external_model(const std::string& location, int64_t offset = 0, int64_t length = 16) {
  onnx::ModelProto m = identity_of_initializer();
  auto* t = m.mutable_graph()->add_initializer();
  t->set_name("w");
  t->set_data_type(TensorProto::FLOAT);
  t->add_dims(4);
  t->set_data_location(TensorProto::EXTERNAL);
  auto add = [&](const std::string& k, const std::string& v) {
    auto* e = t->add_external_data();
    e->set_key(k);
    e->set_value(v);
  };
  add("location", location);
  add("offset", std::to_string(offset));
  add("length", std::to_string(length));
  return m;
}

TEST(BadInput, ExternalDataInsideFolderLoads) {  // baseline for the refusals below
  TempDir dir("kiln_bad");
  write_file(dir.file("w.bin"), std::string(16, '\0'));
  RunResult r = run_kiln({"run", saved(dir, external_model("w.bin"))});
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

TEST(BadInput, ExternalDataDotDot) {
  TempDir outer("kiln_bad");
  fs::create_directory(outer.path() / "model");
  write_file(outer.file("x.bin"), std::string(16, '\0'));
  save(external_model("../x.bin"), outer.file("model/model.onnx"));
  expect_refusal({"inspect", outer.file("model/model.onnx")}, {"\"w\"", "../x.bin", "escapes the model folder"});
}

TEST(BadInput, ExternalDataAbsolutePath) {
  TempDir dir("kiln_bad");
  write_file(dir.file("x.bin"), std::string(16, '\0'));
  expect_refusal({"inspect", saved(dir, external_model(dir.file("x.bin")))},
                 {"\"w\"", dir.file("x.bin"), "absolute path"});
}

TEST(BadInput, ExternalDataSymlinkOutside) {
  TempDir outer("kiln_bad");
  fs::create_directory(outer.path() / "model");
  write_file(outer.file("x.bin"), std::string(16, '\0'));
  fs::create_symlink(outer.path() / "x.bin", outer.path() / "model" / "w.bin");
  save(external_model("w.bin"), outer.file("model/model.onnx"));
  expect_refusal({"inspect", outer.file("model/model.onnx")}, {"\"w\"", "w.bin", "symbolic link"});
}

TEST(BadInput, ExternalDataPastEndOfFile) {
  TempDir dir("kiln_bad");
  write_file(dir.file("w.bin"), std::string(16, '\0'));
  expect_refusal({"inspect", saved(dir, external_model("w.bin", 8, 16))}, {"\"w\"", "w.bin", "past the end"});
}

// ---- inputs fed at run time ----

struct FeedCase {
  TempDir dir{"kiln_bad"};
  std::string model;
  FeedCase() { model = saved(dir, small_model()); }
  std::string npy(const kiln::ir::Tensor& t) {
    std::string p = dir.file("x.npy");
    kiln::io::write_npy(p, t);
    return p;
  }
};

TEST(BadInput, InputWrongDtype) {
  FeedCase c;
  std::string f = c.npy(kiln::ir::Tensor(kiln::ir::DType::kInt64, {2, 3}));
  expect_refusal({"run", c.model, "--input", "x=" + f}, {"input \"x\"", "float32", "int64"});
}

TEST(BadInput, InputWrongRank) {
  FeedCase c;
  std::string f = c.npy(kiln::ir::Tensor(kiln::ir::DType::kFloat32, {6}));
  expect_refusal({"run", c.model, "--input", "x=" + f}, {"input \"x\"", "rank"});
}

TEST(BadInput, InputWrongShape) {
  FeedCase c;
  std::string f = c.npy(kiln::ir::Tensor(kiln::ir::DType::kFloat32, {3, 2}));
  expect_refusal({"run", c.model, "--input", "x=" + f}, {"input \"x\"", "shape", "[3,2]"});
}

TEST(BadInput, InputFileNotNpy) {
  FeedCase c;
  std::string f = c.dir.file("x.npy");
  write_file(f, "not numpy");
  expect_refusal({"run", c.model, "--input", "x=" + f}, {f});
}

// ---- run-time failures inside ops ----

TEST(BadInput, ReshapeImpossible) {
  TempDir dir("kiln_bad");
  onnx::ModelProto m = new_model();
  auto* g = m.mutable_graph();
  add_input(g, "x", TensorProto::FLOAT, {3, 4});
  add_int64_initializer(g, "shape", {2}, {5, -1});
  add_node(g, "Reshape", {"x", "shape"}, {"y"}, "reshape_bad");
  add_output(g, "y", TensorProto::FLOAT);
  expect_refusal({"run", saved(dir, m), "--random"}, {"Reshape", "reshape_bad", "12", "[5,-1]"});
}

TEST(BadInput, ReshapeImpossibleWithDynamicShape) {  // the target shape is known only at run time
  TempDir dir("kiln_bad");
  onnx::ModelProto m = new_model();
  auto* g = m.mutable_graph();
  add_input(g, "x", TensorProto::FLOAT, {3, 4});
  add_input(g, "shape", TensorProto::INT64, {2});
  add_node(g, "Reshape", {"x", "shape"}, {"y"}, "reshape_dyn");
  add_output(g, "y", TensorProto::FLOAT);
  std::string model = saved(dir, m);
  std::string shape_file = dir.file("shape.npy");
  kiln::io::write_npy(shape_file, kiln::ir::Tensor::from_vector<int64_t>({5, -1}, {2}));
  expect_refusal({"run", model, "--random", "--input", "shape=" + shape_file},
                 {"Reshape", "reshape_dyn", "12", "[5,-1]"});
}

TEST(BadInput, ConstantOfShapeOverMemoryBudget) {
  TempDir dir("kiln_bad");
  onnx::ModelProto m = new_model();
  auto* g = m.mutable_graph();
  add_int64_initializer(g, "shape", {3}, {1000000, 1000000, 1000});
  add_node(g, "ConstantOfShape", {"shape"}, {"y"}, "huge_const");
  add_output(g, "y", TensorProto::FLOAT);
  expect_refusal({"run", saved(dir, m)}, {"huge_const", "memory budget"});
}

TEST(BadInput, ConstantOfShapeOverMemoryBudgetAtRunTime) {
  TempDir dir("kiln_bad");
  onnx::ModelProto m = new_model();
  auto* g = m.mutable_graph();
  add_input(g, "shape", TensorProto::INT64, {3});
  add_node(g, "ConstantOfShape", {"shape"}, {"y"}, "huge_const_dyn");
  add_output(g, "y", TensorProto::FLOAT);
  std::string model = saved(dir, m);
  std::string shape_file = dir.file("shape.npy");
  kiln::io::write_npy(shape_file, kiln::ir::Tensor::from_vector<int64_t>({1000000, 1000000, 1000}, {3}));
  expect_refusal({"run", model, "--input", "shape=" + shape_file}, {"huge_const_dyn", "memory budget"});
}

TEST(BadInput, RangeOverMemoryBudget) {
  TempDir dir("kiln_bad");
  onnx::ModelProto m = new_model();
  auto* g = m.mutable_graph();
  add_int64_initializer(g, "start", {}, {0});
  add_int64_initializer(g, "limit", {}, {1000000000000000});
  add_int64_initializer(g, "delta", {}, {1});
  add_node(g, "Range", {"start", "limit", "delta"}, {"y"}, "huge_range");
  add_output(g, "y", TensorProto::INT64);
  expect_refusal({"run", saved(dir, m)}, {"huge_range", "memory budget"});
}

TEST(BadInput, RangeOverMemoryBudgetAtRunTime) {
  TempDir dir("kiln_bad");
  onnx::ModelProto m = new_model();
  auto* g = m.mutable_graph();
  add_input(g, "limit", TensorProto::INT64, {});
  add_int64_initializer(g, "start", {}, {0});
  add_int64_initializer(g, "delta", {}, {1});
  add_node(g, "Range", {"start", "limit", "delta"}, {"y"}, "huge_range_dyn");
  add_output(g, "y", TensorProto::INT64);
  std::string model = saved(dir, m);
  std::string limit_file = dir.file("limit.npy");
  kiln::io::write_npy(limit_file, kiln::ir::Tensor::scalar<int64_t>(1000000000000000));
  expect_refusal({"run", model, "--input", "limit=" + limit_file}, {"huge_range_dyn", "memory budget"});
}

}  // namespace
