#include "conformance/runner.h"

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>
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
  return m.find("unsupported") != std::string::npos || m.find("not supported") != std::string::npos ||
         m.find("unknown domain") != std::string::npos;
}

}  // namespace

CaseResult run_case(const std::string& dir, const std::string& id, const Options& options) {
  CaseResult r;
  r.id = id;
  auto start = std::chrono::steady_clock::now();
  try {
    ir::Model model = onnx_io::load_model((fs::path(dir) / "model.onnx").string());
    std::set<std::string> ops;
    for (const auto& n : model.graph.nodes) ops.insert(n.op_type);
    r.ops.assign(ops.begin(), ops.end());
    runtime::SessionOptions so;
    so.verify_inference = true;
    runtime::Session session(std::move(model), so);
    const auto& g = session.model().graph;

    std::vector<fs::path> sets;
    for (const auto& e : fs::directory_iterator(dir))
      if (e.is_directory() && e.path().filename().string().rfind("test_data_set_", 0) == 0) sets.push_back(e.path());
    std::sort(sets.begin(), sets.end());
    if (sets.empty()) fail("no test_data_set_* folder");
    for (const auto& set : sets) {
      std::unordered_map<std::string, ir::Datum> feeds;
      const auto& inputs = session.inputs();
      for (size_t i = 0;; ++i) {
        fs::path p = set / ("input_" + std::to_string(i) + ".pb");
        if (!fs::exists(p)) break;
        if (i >= inputs.size()) fail("test data has more inputs than the model");
        feeds[inputs[i].name] =
            as_declared_bfloat16(onnx_io::load_datum_pb(p.string(), inputs[i].type), inputs[i].type);
      }
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

// A child's result travels over a pipe as: status char, '\n', ops joined by ' ', '\n', reason.
std::string encode(const CaseResult& r) {
  std::string ops;
  for (const auto& o : r.ops) ops += (ops.empty() ? "" : " ") + o;
  return std::string(1, static_cast<char>('0' + static_cast<int>(r.status))) + "\n" + std::to_string(r.seconds) + "\n" +
         ops + "\n" + r.reason;
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
  r.seconds = std::atof(s.substr(a + 1, b - a - 1).c_str());
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
