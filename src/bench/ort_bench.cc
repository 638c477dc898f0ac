#include "bench/ort_bench.h"

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/error.h"
#include "common/process.h"

namespace kiln::bench {

namespace {

namespace fs = std::filesystem;

constexpr const char* kPeerRelative = "benchmarks/peers/ort";

std::string find_on_path(const std::string& program) {
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/local/bin:/usr/bin:/bin";
  size_t start = 0;
  for (;;) {
    size_t end = dirs.find(':', start);
    std::string dir = dirs.substr(start, end == std::string::npos ? std::string::npos : end - start);
    std::string candidate = ((dir.empty() ? fs::path(".") : fs::path(dir)) / program).string();
    std::error_code ec;
    if (::access(candidate.c_str(), X_OK) == 0 && !fs::is_directory(candidate, ec)) return candidate;
    if (end == std::string::npos) return "";
    start = end + 1;
  }
}

// benchmarks/peers/ort under `start` or a folder above it, or "".
std::string search_up(fs::path start) {
  std::error_code ec;
  for (fs::path dir = start; !dir.empty(); dir = dir.parent_path()) {
    fs::path candidate = dir / kPeerRelative;
    if (fs::exists(candidate / "run.mjs", ec)) return candidate.string();
    if (dir == dir.root_path()) break;
  }
  return "";
}

std::string peer_dir() {
  if (const char* env = std::getenv("KILN_ORT_PEER"); env && *env) {
    fs::path p(env);
    if (p.filename() == "run.mjs") p = p.parent_path();
    if (!fs::exists(p / "run.mjs"))
      fail("$KILN_ORT_PEER is ", env,
           ", which holds no run.mjs: point it at benchmarks/peers/ort in the kiln "
           "source tree and run `make peers` there");
    return p.string();
  }
#ifdef KILN_ORT_PEER_DIR
  if (fs::exists(fs::path(KILN_ORT_PEER_DIR) / "run.mjs")) return KILN_ORT_PEER_DIR;
#endif
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec)
    if (std::string d = search_up(exe.parent_path()); !d.empty()) return d;
  if (std::string d = search_up(fs::current_path(ec)); !d.empty()) return d;
  return "";
}

std::string last_line(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  size_t nl = text.rfind('\n');
  return nl == std::string::npos ? text : text.substr(nl + 1);
}

}  // namespace

OrtPeer find_ort_peer() {
  OrtPeer peer;
  peer.node = find_on_path("node");
  if (peer.node.empty())
    fail(
        "--vs ort needs node (Node.js 20 or later) on PATH: install it, then run `make peers` in the kiln "
        "source tree");
  std::string dir = peer_dir();
  if (dir.empty())
    fail("--vs ort cannot find the ONNX Runtime peer (", kPeerRelative,
         "/run.mjs above the kiln program or the current folder, or $KILN_ORT_PEER): run `make peers` in the kiln "
         "source tree");
  if (!fs::exists(fs::path(dir) / "node_modules/onnxruntime-node/package.json"))
    fail("--vs ort: onnxruntime-node is not installed in ", dir, "/node_modules: run `make peers`");
  peer.script = (fs::path(dir) / "run.mjs").string();
  return peer;
}

OrtRound run_ort_round(const OrtPeer& peer, const std::string& model, const std::string& input_dir,
                       const std::string& scratch_dir, const OrtRoundOptions& options) {
  std::vector<std::string> args = {peer.node,     peer.script,
                                   "bench",       model,
                                   "--input-dir", input_dir,
                                   "--threads",   std::to_string(options.threads),
                                   "--warmup",    std::to_string(options.warmup),
                                   "--opt-level", options.opt_level};
  if (options.duration_s > 0) {
    args.push_back("--duration");
    args.push_back(str(options.duration_s));
  } else {
    args.push_back("--iterations");
    args.push_back(std::to_string(options.iterations));
  }
  ProcessResult p = run_process(std::move(args), scratch_dir);
  if (p.exit_code != 0) {
    std::string err = last_line(p.err);
    if (err.rfind("ort: error: ", 0) == 0) err = err.substr(12);
    if (err.empty()) err = p.exit_code > 128 ? str("killed by signal ", p.exit_code - 128) : str("exit status ", p.exit_code);
    fail("ONNX Runtime failed on ", model, ": ", err);
  }
  OrtRound r;
  try {
    nlohmann::json j = nlohmann::json::parse(last_line(p.out));
    r.load_ms = j.at("load_ms").get<double>();
    r.first_ms = j.at("first_ms").get<double>();
    r.peak_rss_mb = j.at("peak_rss_mb").get<double>();
    r.latencies_ms = j.at("latencies_ms").get<std::vector<double>>();
    double sum = 0;
    for (double x : r.latencies_ms) sum += x;
    r.total_ms = j.contains("total_ms") ? j["total_ms"].get<double>() : sum;
    if (j.contains("ort_version") && j["ort_version"].is_string()) r.version = j["ort_version"].get<std::string>();
  } catch (const nlohmann::json::exception& e) {
    fail("--vs ort: cannot read the result of ", peer.script, " (", e.what(), ")");
  }
  if (r.latencies_ms.empty()) fail("--vs ort: ", peer.script, " returned no latencies");
  return r;
}

}  // namespace kiln::bench
