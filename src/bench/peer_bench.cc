#include "bench/peer_bench.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/process.h"

namespace kiln::bench {

namespace {

namespace fs = std::filesystem;

constexpr const char* kPeersRelative = "benchmarks/peers";
constexpr const char* kVenvPython = ".venv/bin/python";

// benchmarks/peers under `start` or a folder above it, or "".
std::string search_up(const fs::path& start) {
  std::error_code ec;
  for (fs::path dir = start; !dir.empty(); dir = dir.parent_path()) {
    fs::path candidate = dir / kPeersRelative;
    if (fs::exists(candidate / "peer.py", ec)) return candidate.string();
    if (dir == dir.root_path()) break;
  }
  return "";
}

std::string peers_dir() {
  if (const char* env = std::getenv("KILN_PEERS"); env && *env) {
    if (!fs::exists(fs::path(env) / "peer.py"))
      fail("$KILN_PEERS is ", env,
           ", which holds no peer.py: point it at benchmarks/peers in the kiln source tree and run `make peers` "
           "there");
    return env;
  }
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

std::vector<PeerEngine> parse_peer_engines(const std::string& list) {
  static const PeerEngine kOrt{"ort", "onnxruntime"}, kOvF32{"openvino-f32", "openvino-f32"},
      kOvDefault{"openvino", "openvino"};
  std::vector<std::string> wanted;
  size_t start = 0;
  for (;;) {
    size_t end = list.find(',', start);
    std::string item = list.substr(start, end == std::string::npos ? std::string::npos : end - start);
    if (item == "ort" || item == "onnxruntime")
      wanted.push_back("ort");
    else if (item == "openvino") {
      wanted.push_back("openvino-f32");
      wanted.push_back("openvino");
    } else if (item == "openvino-f32")
      wanted.push_back("openvino-f32");
    else if (item == "openvino-default")
      wanted.push_back("openvino");
    else
      fail("--vs: unknown peer \"", item, "\" (ort, openvino, openvino-f32 or openvino-default, comma-separated)");
    if (end == std::string::npos) break;
    start = end + 1;
  }
  std::vector<PeerEngine> engines;
  for (const PeerEngine* e : {&kOrt, &kOvF32, &kOvDefault})
    if (std::find(wanted.begin(), wanted.end(), e->key) != wanted.end()) engines.push_back(*e);
  return engines;
}

PeerScript find_peer_script() {
  const std::string dir = peers_dir();
  if (dir.empty())
    fail("--vs cannot find the peers (", kPeersRelative,
         "/peer.py above the kiln program or the current folder, or $KILN_PEERS): run `make peers` in the kiln "
         "source tree");
  PeerScript peer;
  peer.python = (fs::path(dir) / kVenvPython).string();
  peer.script = (fs::path(dir) / "peer.py").string();
  if (::access(peer.python.c_str(), X_OK) != 0)
    fail("--vs: the peers' venv is not installed (no ", peer.python, "): run `make peers`");
  return peer;
}

PeerRound run_peer_round(const PeerScript& peer, const PeerEngine& engine, const std::string& model,
                         const std::string& input_dir, const std::string& scratch_dir,
                         const PeerRoundOptions& options) {
  std::vector<std::string> args = {peer.python,   peer.script,
                                   "bench",       model,
                                   "--engine",    engine.key,
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
    if (size_t colon = err.find(": error: "); colon != std::string::npos && colon < 16) err = err.substr(colon + 9);
    if (err.empty())
      err = p.exit_code > 128 ? str("killed by signal ", p.exit_code - 128) : str("exit status ", p.exit_code);
    fail(engine.name, " failed on ", model, ": ", err);
  }
  PeerRound r;
  try {
    nlohmann::json j = nlohmann::json::parse(last_line(p.out));
    r.load_ms = j.at("load_ms").get<double>();
    r.first_ms = j.at("first_ms").get<double>();
    r.peak_rss_mb = j.at("peak_rss_mb").get<double>();
    r.latencies_ms = j.at("latencies_ms").get<std::vector<double>>();
    r.total_ms = j.at("total_ms").get<double>();
    r.version = j.at("version").get<std::string>();
    r.precision = j.at("precision").get<std::string>();
  } catch (const nlohmann::json::exception& e) {
    fail("--vs ", engine.name, ": cannot read the result of ", peer.script, " (", e.what(), ")");
  }
  if (r.latencies_ms.empty()) fail("--vs ", engine.name, ": ", peer.script, " returned no latencies");
  return r;
}

}  // namespace kiln::bench
