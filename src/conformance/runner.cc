#include "conformance/runner.h"

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <optional>
#include <regex>
#include <set>

#include "common/error.h"
#include "onnx/model_io.h"
#include "runtime/session.h"

namespace kiln::conformance {

namespace fs = std::filesystem;

const char* status_name(Status s) {
  switch (s) {
    case Status::kPass:
      return "PASS";
    case Status::kFail:
      return "FAIL";
    default:
      return "UNSUPPORTED";
  }
}

namespace {

constexpr const char* kPeersRelative = "benchmarks/peers";

// onnx/backend/test/data in the peers' venv under `peers` (any python3.* there), or "".
std::string wheel_data_under(const fs::path& peers) {
  std::error_code ec;
  fs::path lib = peers / ".venv" / "lib";
  if (!fs::is_directory(lib, ec)) return "";
  for (const auto& e : fs::directory_iterator(lib, ec)) {
    fs::path data = e.path() / "site-packages" / "onnx" / "backend" / "test" / "data";
    if (e.path().filename().string().rfind("python3", 0) == 0 && fs::is_directory(data / "node", ec))
      return data.string();
  }
  return "";
}

std::string search_up(const fs::path& start) {
  for (fs::path dir = start; !dir.empty(); dir = dir.parent_path()) {
    if (std::string d = wheel_data_under(dir / kPeersRelative); !d.empty()) return d;
    if (dir == dir.root_path()) break;
  }
  return "";
}

}  // namespace

std::string suite_root(const std::string& suite) {
  if (suite == kSuiteLibonnxTestdata) return Options{}.root;
  if (suite != kSuiteOnnx122)
    fail("unknown suite \"", suite, "\" (known: ", kSuiteLibonnxTestdata, ", ", kSuiteOnnx122, ")");
  if (const char* env = std::getenv("KILN_PEERS"); env && *env) {
    if (std::string d = wheel_data_under(env); !d.empty()) return d;
    fail("suite ", suite, ": $KILN_PEERS is ", env,
         ", which holds no .venv with the onnx wheel's test data: run `make peers` in the kiln source tree");
  }
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec)
    if (std::string d = search_up(exe.parent_path()); !d.empty()) return d;
  if (std::string d = search_up(fs::current_path(ec)); !d.empty()) return d;
  fail("suite ", suite, ": cannot find ", kPeersRelative,
       "/.venv/lib/python3*/site-packages/onnx/backend/test/data above the kiln program or the current folder: "
       "run `make peers` in the kiln source tree");
}

std::vector<std::string> find_cases(const Options& options) {
  std::vector<std::string> dirs;
  auto scan = [&](const fs::path& p) {
    if (!fs::is_directory(p)) return;
    for (const auto& e : fs::directory_iterator(p))
      if (e.is_directory() && fs::exists(e.path() / "model.onnx")) dirs.push_back(e.path().string());
  };
  fs::path root(options.root);
  if (!fs::is_directory(root)) fail(options.root, ": no such directory (install the Debian package libonnx-testdata)");
  bool has_suites = false;
  for (const auto& s : options.suites)
    if (fs::is_directory(root / s)) {
      has_suites = true;
      scan(root / s);
    }
  if (!has_suites) scan(root);
  std::sort(dirs.begin(), dirs.end());
  if (!options.filter.empty()) {
    std::regex re(options.filter);
    std::vector<std::string> kept;
    for (const auto& d : dirs) {
      fs::path p(d);
      std::string id = p.parent_path().filename().string() + "/" + p.filename().string();
      if (std::regex_search(id, re)) kept.push_back(d);
    }
    dirs = std::move(kept);
  }
  return dirs;
}

namespace {

std::string value_at(const ir::Tensor& t, int64_t i) {
  if (t.dtype() == ir::DType::kString) return "\"" + t.data<std::string>()[i] + "\"";
  return str(t.as_double(i));
}

// Empty string when equal within tolerance; otherwise what differs.
std::string compare_tensors(const ir::Tensor& actual, const ir::Tensor& expected, const Options& o) {
  if (actual.dtype() != expected.dtype()) return str("dtype ", actual.dtype(), ", expected ", expected.dtype());
  if (actual.shape() != expected.shape())
    return str("shape ", ir::to_string(actual.shape()), ", expected ", ir::to_string(expected.shape()));
  ir::DType dt = expected.dtype();
  if (dt == ir::DType::kString || dt == ir::DType::kBool || ir::is_integer(dt)) {
    for (int64_t i = 0; i < expected.numel(); ++i) {
      bool same = dt == ir::DType::kString ? actual.data<std::string>()[i] == expected.data<std::string>()[i]
                                           : actual.as_int64(i) == expected.as_int64(i);
      if (dt == ir::DType::kUInt64) same = actual.data<uint64_t>()[i] == expected.data<uint64_t>()[i];
      if (!same) return str("element ", i, " is ", value_at(actual, i), ", expected ", value_at(expected, i));
    }
    return "";
  }
  int64_t n = expected.numel() * ((dt == ir::DType::kComplex64 || dt == ir::DType::kComplex128) ? 2 : 1);
  auto read = [&](const ir::Tensor& t, int64_t i) -> double {
    if (dt == ir::DType::kComplex64) return static_cast<const float*>(t.raw())[i];
    if (dt == ir::DType::kComplex128) return static_cast<const double*>(t.raw())[i];
    return t.as_double(i);
  };
  for (int64_t i = 0; i < n; ++i) {
    double a = read(actual, i), e = read(expected, i);
    if (std::isnan(e) && std::isnan(a)) continue;
    if (std::isinf(e) && a == e) continue;
    if (!(std::fabs(a - e) <= o.atol + o.rtol * std::fabs(e)))
      return str("element ", i, " is ", a, ", expected ", e, " (diff ", std::fabs(a - e), ")");
  }
  return "";
}

std::string compare(const ir::Datum& actual, const ir::Datum& expected, const Options& o) {
  if (expected.is_none()) return actual.is_none() ? "" : "expected an empty optional";
  if (actual.is_none()) return "got an empty optional";
  if (expected.is_sequence()) {
    if (!actual.is_sequence()) return "expected a sequence";
    if (actual.sequence.size() != expected.sequence.size())
      return str("sequence of length ", actual.sequence.size(), ", expected ", expected.sequence.size());
    for (size_t i = 0; i < expected.sequence.size(); ++i) {
      std::string d = compare_tensors(actual.sequence[i], expected.sequence[i], o);
      if (!d.empty()) return str("sequence item ", i, ": ", d);
    }
    return "";
  }
  if (!actual.is_tensor()) return "expected a tensor";
  return compare_tensors(actual.tensor, expected.tensor, o);
}

// ONNX 1.12's test data stores bfloat16 tensors as uint16 bit patterns; read them as what they hold.
ir::Datum as_declared_bfloat16(ir::Datum d, const ir::Type& declared) {
  if (declared.is_tensor() && declared.dtype == ir::DType::kBFloat16 && d.is_tensor() &&
      d.tensor.dtype() == ir::DType::kUInt16) {
    ir::Tensor bits = d.tensor;
    d.tensor = ir::Tensor::view(ir::DType::kBFloat16, bits.shape(), std::shared_ptr<void>(), bits.raw());
    d.tensor = d.tensor.clone();
  }
  return d;
}

bool is_unsupported_message(const std::string& m) {
  // "unknown elem_type": an element type code kiln's IR lacks (one newer than ONNX 1.22's), refused on import.
  return m.find("unsupported") != std::string::npos || m.find("not supported") != std::string::npos ||
         m.find("unknown domain") != std::string::npos || m.find("unknown elem_type") != std::string::npos;
}

// Whether input i of n is a weight: any input but the first of MatMul, Gemm and Conv; W, R, B and the
// peepholes P of LSTM and GRU.
bool is_weight_input(const ir::Node& n, size_t i) {
  if (!ir::is_default_domain(n.domain)) return false;
  if (n.op_type == "MatMul" || n.op_type == "Gemm" || n.op_type == "Conv") return i > 0;
  if (n.op_type == "LSTM" || n.op_type == "GRU") return (i >= 1 && i <= 3) || (n.op_type == "LSTM" && i == 7);
  return false;
}

// Graph inputs that only ever feed weights (is_weight_input) and hold float32. With fast kernels, the
// runner binds the test's values for them as initializers: the fast matmul, conv and recurrent kernels
// take only constant weights (packed once), and ONNX's cases feed them as inputs, so without this those
// kernels would never meet ONNX's odd shapes and attributes.
std::set<std::string> weight_inputs(const ir::Graph& g) {
  // Input name -> whether every reader so far reads it as a weight, and some reader does.
  std::map<std::string, std::pair<bool, bool>> only_weights;
  for (const auto& v : g.inputs)
    if (!g.initializers.count(v.name) && v.type.is_tensor() && v.type.dtype == ir::DType::kFloat32)
      only_weights[v.name] = {true, false};
  for (const auto& n : g.nodes) {
    for (size_t i = 0; i < n.inputs.size(); ++i) {
      auto it = only_weights.find(n.inputs[i]);
      if (it == only_weights.end()) continue;
      if (is_weight_input(n, i))
        it->second.second = true;
      else
        it->second.first = false;
    }
    for (const auto& a : n.attributes)
      if (a.g || !a.graphs.empty()) return {};  // subgraphs may read any input: leave such models alone
  }
  for (const auto& o : g.outputs)
    if (auto it = only_weights.find(o.name); it != only_weights.end()) it->second.first = false;
  std::set<std::string> names;
  for (const auto& [name, readers] : only_weights)
    if (readers.first && readers.second) names.insert(name);
  return names;
}

}  // namespace

CaseResult run_case(const std::string& dir, const std::string& id, const Options& options) {
  CaseResult r;
  r.id = id;
  auto start = std::chrono::steady_clock::now();
  try {
    const std::string model_path = (fs::path(dir) / "model.onnx").string();
    ir::Model model = onnx_io::load_model(model_path);
    std::set<std::string> ops;
    for (const auto& n : model.graph.nodes) ops.insert(n.op_type);
    r.ops.assign(ops.begin(), ops.end());
    // The inputs a test data set feeds, in order: the graph's inputs that are not initializers.
    std::vector<ir::ValueInfo> inputs;
    for (const auto& v : model.graph.inputs)
      if (!model.graph.initializers.count(v.name)) inputs.push_back(v);
    const std::set<std::string> weights = options.fast_kernels ? weight_inputs(model.graph) : std::set<std::string>{};
    runtime::SessionOptions so;
    so.verify_inference = true;
    so.fast_kernels = options.fast_kernels;
    // One session for every data set, unless weights are bound per set (then one per set).
    std::optional<runtime::Session> shared;
    if (weights.empty()) {
      shared.emplace(std::move(model), so);
      r.fast_nodes = shared->fast_kernel_count();
    }

    std::vector<fs::path> sets;
    for (const auto& e : fs::directory_iterator(dir))
      if (e.is_directory() && e.path().filename().string().rfind("test_data_set_", 0) == 0) sets.push_back(e.path());
    std::sort(sets.begin(), sets.end());
    if (sets.empty()) fail("no test_data_set_* folder");
    for (const auto& set : sets) {
      std::unordered_map<std::string, ir::Datum> feeds;
      for (size_t i = 0;; ++i) {
        fs::path p = set / ("input_" + std::to_string(i) + ".pb");
        if (!fs::exists(p)) break;
        if (i >= inputs.size()) fail("test data has more inputs than the model");
        feeds[inputs[i].name] =
            as_declared_bfloat16(onnx_io::load_datum_pb(p.string(), inputs[i].type), inputs[i].type);
      }
      std::optional<runtime::Session> own;
      if (!shared) {
        ir::Model bound = onnx_io::load_model(model_path);
        for (const auto& name : weights) {
          auto it = feeds.find(name);
          if (it == feeds.end() || !it->second.is_tensor()) continue;
          bound.graph.initializers[name] = it->second.tensor;
          feeds.erase(it);
        }
        own.emplace(std::move(bound), so);
        r.fast_nodes = std::max(r.fast_nodes, own->fast_kernel_count());
      }
      const runtime::Session& session = shared ? *shared : *own;
      const auto& g = session.model().graph;
      std::vector<ir::Datum> outs = session.run(feeds);
      for (size_t i = 0; i < g.outputs.size(); ++i) {
        fs::path p = set / ("output_" + std::to_string(i) + ".pb");
        if (!fs::exists(p)) continue;
        ir::Datum expected =
            as_declared_bfloat16(onnx_io::load_datum_pb(p.string(), g.outputs[i].type), g.outputs[i].type);
        std::string diff = compare(outs[i], expected, options);
        if (!diff.empty()) {
          r.status = Status::kFail;
          r.reason = "output \"" + g.outputs[i].name + "\" (" + set.filename().string() + "): " + diff;
          r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
          return r;
        }
      }
    }
    r.status = Status::kPass;
  } catch (const Error& e) {
    r.reason = e.what();
    r.status = is_unsupported_message(r.reason) ? Status::kUnsupported : Status::kFail;
  } catch (const std::exception& e) {
    r.status = Status::kFail;
    r.reason = std::string("internal error: ") + e.what();
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return r;
}

namespace {

// A child's result travels over a pipe as: status char, '\n', seconds, ' ', fast nodes, '\n', ops joined
// by ' ', '\n', reason.
std::string encode(const CaseResult& r) {
  std::string ops;
  for (const auto& o : r.ops) ops += (ops.empty() ? "" : " ") + o;
  return std::string(1, static_cast<char>('0' + static_cast<int>(r.status))) + "\n" + std::to_string(r.seconds) + " " +
         std::to_string(r.fast_nodes) + "\n" + ops + "\n" + r.reason;
}

CaseResult decode(const std::string& id, const std::string& s) {
  CaseResult r;
  r.id = id;
  size_t a = s.find('\n'), b = s.find('\n', a + 1), c = s.find('\n', b + 1);
  if (s.empty() || a == std::string::npos || b == std::string::npos || c == std::string::npos) {
    r.reason = "the case crashed the runner";
    return r;
  }
  r.status = static_cast<Status>(s[0] - '0');
  std::string times = s.substr(a + 1, b - a - 1);
  r.seconds = std::atof(times.c_str());
  if (size_t sp = times.find(' '); sp != std::string::npos)
    r.fast_nodes = static_cast<size_t>(std::atoll(times.c_str() + sp + 1));
  std::string ops = s.substr(b + 1, c - b - 1);
  for (size_t p = 0; p < ops.size();) {
    size_t q = ops.find(' ', p);
    if (q == std::string::npos) q = ops.size();
    if (q > p) r.ops.push_back(ops.substr(p, q - p));
    p = q + 1;
  }
  r.reason = s.substr(c + 1);
  return r;
}

struct Child {
  pid_t pid;
  int fd;
  std::string id;
  std::string buffer;
  std::chrono::steady_clock::time_point start;
};

}  // namespace

std::vector<CaseResult> run_all(const Options& options,
                                const std::function<void(const CaseResult&, size_t, size_t)>& on_result) {
  std::vector<std::string> dirs = find_cases(options);
  std::vector<CaseResult> results;
  std::vector<Child> running;
  size_t next = 0;
  const size_t jobs = static_cast<size_t>(std::max(1, options.jobs));
  auto id_of = [](const std::string& d) {
    fs::path p(d);
    return p.parent_path().filename().string() + "/" + p.filename().string();
  };
  auto finish = [&](Child& c, const std::string& override_reason) {
    close(c.fd);
    int status = 0;
    waitpid(c.pid, &status, 0);
    CaseResult r = decode(c.id, c.buffer);
    if (!override_reason.empty()) {
      r.status = Status::kFail;
      r.reason = override_reason;
    } else if (WIFSIGNALED(status)) {
      r.status = Status::kFail;
      r.reason = str("crashed with signal ", WTERMSIG(status));
    }
    results.push_back(r);
    if (on_result) on_result(results.back(), results.size(), dirs.size());
  };
  while (next < dirs.size() || !running.empty()) {
    while (running.size() < jobs && next < dirs.size()) {
      int fds[2];
      if (pipe(fds) != 0) fail("cannot create a pipe");
      std::string dir = dirs[next++];
      std::string id = id_of(dir);
      std::fflush(nullptr);
      pid_t pid = fork();
      if (pid < 0) fail("cannot fork");
      if (pid == 0) {
        close(fds[0]);
        std::string msg = encode(run_case(dir, id, options));
        size_t off = 0;
        while (off < msg.size()) {
          ssize_t w = write(fds[1], msg.data() + off, msg.size() - off);
          if (w <= 0) break;
          off += static_cast<size_t>(w);
        }
        close(fds[1]);
        _exit(0);
      }
      close(fds[1]);
      running.push_back({pid, fds[0], id, "", std::chrono::steady_clock::now()});
    }
    std::vector<pollfd> pfds;
    for (const auto& c : running) pfds.push_back({c.fd, POLLIN, 0});
    poll(pfds.data(), pfds.size(), 1000);
    for (size_t i = running.size(); i-- > 0;) {
      Child& c = running[i];
      bool done = false;
      std::string timeout_reason;
      if (pfds[i].revents & (POLLIN | POLLHUP | POLLERR)) {
        char buf[4096];
        ssize_t n = read(c.fd, buf, sizeof buf);
        if (n > 0)
          c.buffer.append(buf, static_cast<size_t>(n));
        else
          done = true;
      }
      auto elapsed = std::chrono::steady_clock::now() - c.start;
      if (!done && elapsed > std::chrono::seconds(options.timeout_seconds)) {
        kill(c.pid, SIGKILL);
        timeout_reason = str("timed out after ", options.timeout_seconds, " s");
        done = true;
      }
      if (done) {
        finish(c, timeout_reason);
        running.erase(running.begin() + static_cast<std::ptrdiff_t>(i));
      }
    }
  }
  std::sort(results.begin(), results.end(), [](const CaseResult& a, const CaseResult& b) { return a.id < b.id; });
  return results;
}

}  // namespace kiln::conformance
