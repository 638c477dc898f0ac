// Runs ONNX's backend test cases (model.onnx + test_data_set_*/input_*.pb, output_*.pb) through the
// reference runtime and compares with the expected outputs, as ONNX's own runner does
// (|actual - expected| <= atol + rtol * |expected|).
//
// Two copies of ONNX's suite are known by name (Options::root for others):
//   libonnx-testdata   Debian's package, ONNX 1.12 (932 node cases), /usr/share/libonnx-testdata/data
//   onnx-1.22          the onnx==1.22 wheel in the peers' venv (`make peers`), 1,765 node cases, opsets to 23+
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace kiln::conformance {

enum class Status { kPass, kFail, kUnsupported };

struct CaseResult {
  std::string id;  // "<suite>/<case>", e.g. "node/test_abs"
  Status status = Status::kFail;
  std::string reason;            // why it failed or is unsupported
  std::vector<std::string> ops;  // op types of the model's main graph
  double seconds = 0;
  size_t fast_nodes = 0;  // nodes of the main graph that had a fast kernel prepared (Options::fast_kernels)
};

struct Options {
  std::string root = "/usr/share/libonnx-testdata/data";
  std::vector<std::string> suites = {"node", "pytorch-converted", "pytorch-operator", "simple"};
  std::string filter;  // ECMAScript regex searched in the case id
  double rtol = 1e-3;
  double atol = 1e-7;
  int jobs = 1;               // cases run in child processes, this many at once
  int timeout_seconds = 120;  // per case
  // Fast kernels on (runtime::SessionOptions::fast_kernels), still with every node's outputs checked
  // against inferred types; off runs the reference kernels only.
  bool fast_kernels = false;
};

// Names of the suites suite_root knows.
inline constexpr const char* kSuiteLibonnxTestdata = "libonnx-testdata";
inline constexpr const char* kSuiteOnnx122 = "onnx-1.22";

// The data folder of a named suite: libonnx-testdata's fixed path, or for onnx-1.22 the wheel's
// onnx/backend/test/data in benchmarks/peers/.venv, looked for above the kiln program and the current
// folder (or under $KILN_PEERS). Fails with one line naming what to install when it is missing.
std::string suite_root(const std::string& suite);

// Case directories under root/suite (or root itself when it directly holds test_* folders).
std::vector<std::string> find_cases(const Options& options);

// Runs one case in this process; throws nothing.
CaseResult run_case(const std::string& dir, const std::string& id, const Options& options);

// Runs every case, each in a child process (a crash or hang fails that case only).
std::vector<CaseResult> run_all(const Options& options,
                                const std::function<void(const CaseResult&, size_t, size_t)>& on_result);

const char* status_name(Status s);

}  // namespace kiln::conformance
