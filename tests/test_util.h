// Helpers shared by the black-box tests: temporary folders, running the `kiln` program, and building
// small ONNX models with protobuf. Tests run in parallel under ctest, so each test makes its own TempDir.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "onnx/onnx_pb.h"

namespace kiln::testing {

// True in the sanitizer build. Tests that only run the same code longer on a bigger model (12-layer
// presets) skip those models there: the reference matmul under ASan takes a minute per model, and the
// release build's run covers them.
#ifdef KILN_SANITIZE_BUILD
inline constexpr bool kSanitizeBuild = true;
#else
inline constexpr bool kSanitizeBuild = false;
#endif

// A fresh, uniquely named folder under the system temp dir, removed with everything in it on destruction.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "kiln_test");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

// Sets an environment variable for one scope, or unsets it (std::nullopt); the old value comes back after.
// Only for what a child process (run_kiln) or a later first read sees: many settings are read once.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::optional<std::string>& value);
  ~ScopedEnv();
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

// Path of a file in the source tree, e.g. source_path("tests/data/bert-tiny/model.onnx").
std::string source_path(const std::string& relative);

std::string read_file(const std::string& path);
// The message of the kiln::Error that `f` throws; a test failure (and "") when it throws none.
std::string error_of(const std::function<void()>& f);
void write_file(const std::string& path, const std::string& bytes);

struct RunResult {
  int exit_code = -1;  // the program's exit status; 128 + signal number when killed by a signal
  std::string out;
  std::string err;
};

// Runs the built `kiln` program with these arguments (no shell), capturing stdout and stderr. A run
// past `timeout_s` is killed (exit code 128 + SIGKILL).
RunResult run_kiln(const std::vector<std::string>& args, int timeout_s = 300);
// The same for any program: argv[0] is its path (no PATH lookup, no shell).
RunResult run_program(std::vector<std::string> argv, int timeout_s = 300);

// Number of lines in `text` (a last line without '\n' counts).
int count_lines(const std::string& text);

// ---- building models ----

// An empty model: ir_version 8, importing ai.onnx at `opset`.
onnx::ModelProto new_model(int64_t opset = 17);

// One dim of a declared shape: a value (dim_value) or a name (dim_param).
struct DimSpec {
  DimSpec(int64_t v) : value(v) {}       // NOLINT
  DimSpec(int v) : value(v) {}           // NOLINT
  DimSpec(const char* s) : symbol(s) {}  // NOLINT
  int64_t value = 0;
  std::string symbol;
};

void set_tensor_type(onnx::ValueInfoProto* v, int32_t elem_type, const std::vector<DimSpec>& dims);
void add_input(onnx::GraphProto* g, const std::string& name, int32_t elem_type, const std::vector<DimSpec>& dims);
void add_output(onnx::GraphProto* g, const std::string& name, int32_t elem_type, const std::vector<DimSpec>& dims);
// An output without a declared shape.
void add_output(onnx::GraphProto* g, const std::string& name, int32_t elem_type);
onnx::NodeProto* add_node(onnx::GraphProto* g, const std::string& op_type, const std::vector<std::string>& inputs,
                          const std::vector<std::string>& outputs, const std::string& name,
                          const std::string& domain = "");
onnx::TensorProto* add_float_initializer(onnx::GraphProto* g, const std::string& name, const std::vector<int64_t>& dims,
                                         const std::vector<float>& values);
onnx::TensorProto* add_int64_initializer(onnx::GraphProto* g, const std::string& name, const std::vector<int64_t>& dims,
                                         const std::vector<int64_t>& values);

// Serializes `model` to `path`.
void save(const onnx::ModelProto& model, const std::string& path);

}  // namespace kiln::testing
