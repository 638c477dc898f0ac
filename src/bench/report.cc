#include "bench/report.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "common/cpu_model_name.h"
#include "common/error.h"
#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/onednn_matmul.h"
#include "runtime/threads.h"

namespace kiln::bench {

namespace {

namespace fs = std::filesystem;

// Three or four significant digits in a 9-character column.
std::string num(double v) {
  char buf[32];
  const double a = std::fabs(v);
  std::snprintf(buf, sizeof buf, a < 10 ? "%9.3f" : a < 1000 ? "%9.2f" : a < 1e6 ? "%9.1f" : "%9.3g", v);
  return buf;
}

std::string ratio(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%7.2fx", v);
  return buf;
}

std::string seq_text(const std::optional<int64_t>& seq) { return seq ? std::to_string(*seq) : "-"; }

std::string row(const EngineResult& e) {
  char head[64];
  std::snprintf(head, sizeof head, "%-12s %5lld %5s", e.engine.c_str(), static_cast<long long>(e.batch),
                seq_text(e.seq).c_str());
  const LatencyStats& s = e.summary;
  std::string line = head;
  for (double v : {e.load_ms, e.first_ms, s.min_ms, s.mean_ms, s.p50_ms, s.p90_ms, s.p95_ms, s.p99_ms, s.max_ms,
                   e.inferences_per_s, e.items_per_s, e.peak_rss_mb})
    line += ' ' + num(v);
  return line + "\n";
}

// Rounded to the microsecond: more digits are noise and only make the file bigger.
double us(double ms) { return std::round(ms * 1000.0) / 1000.0; }

nlohmann::json stats_json(const LatencyStats& s) {
  return {{"min_ms", us(s.min_ms)}, {"mean_ms", us(s.mean_ms)}, {"p50_ms", us(s.p50_ms)}, {"p90_ms", us(s.p90_ms)},
          {"p95_ms", us(s.p95_ms)}, {"p99_ms", us(s.p99_ms)},   {"max_ms", us(s.max_ms)}};
}

nlohmann::json count_json(double v) {
  if (v == std::floor(v)) return static_cast<int64_t>(v);
  return v;
}

nlohmann::json engine_json(const EngineResult& e) {
  nlohmann::json j = {{"engine", e.engine},
                      {"batch", e.batch},
                      {"seq", e.seq ? nlohmann::json(*e.seq) : nlohmann::json(nullptr)},
                      {"threads", e.threads},
                      {"concurrency", e.concurrency},
                      {"iterations", count_json(e.iterations)},
                      {"rounds", e.rounds.size()},
                      {"load_ms", us(e.load_ms)},
                      {"first_ms", us(e.first_ms)},
                      {"throughput_inferences_per_s", e.inferences_per_s},
                      {"throughput_items_per_s", e.items_per_s},
                      {"peak_rss_mb", e.peak_rss_mb},
                      {"model_size_mb", e.model_size_mb}};
  if (!e.version.empty()) j["engine_version"] = e.version;
  if (!e.precision.empty()) j["precision"] = e.precision;
  j.update(stats_json(e.summary));
  nlohmann::json rounds = nlohmann::json::array();
  for (const auto& r : e.rounds) {
    nlohmann::json jr = stats_json(r.stats);
    jr["iterations"] = r.stats.count;
    jr["wall_ms"] = us(r.wall_ms);
    jr["throughput_inferences_per_s"] = r.inferences_per_s;
    jr["throughput_items_per_s"] = r.inferences_per_s * static_cast<double>(e.batch);
    if (e.engine != "kiln") {
      jr["load_ms"] = us(r.load_ms);
      jr["first_ms"] = us(r.first_ms);
      jr["peak_rss_mb"] = r.peak_rss_mb;
    }
    nlohmann::json lat = nlohmann::json::array();
    for (double v : r.latencies_ms) lat.push_back(us(v));
    jr["latencies_ms"] = std::move(lat);
    rounds.push_back(std::move(jr));
  }
  j["per_round"] = std::move(rounds);
  return j;
}

}  // namespace

std::string format_table(const BenchReport& report) {
  const BenchOptions& o = report.options;
  std::string out;
  char buf[512];
  const std::string kiln_precision = report.configs.empty() ? "" : report.configs.front().kiln.precision;
  std::snprintf(buf, sizeof buf, "model %s (%.1f MB), level %s, kiln computes in %s, %d thread(s)%s\n",
                o.model.c_str(), report.model_size_mb, passes::level_name(o.level),
                kiln_precision.empty() ? "f32" : kiln_precision.c_str(), o.threads,
                o.concurrency > 1 ? str(", ", o.concurrency, " concurrent callers").c_str() : "");
  out += buf;
  std::snprintf(buf, sizeof buf, "cpu %s; kiln kernels: %s (KILN_CPU_ISA), matmuls: %s (KILN_GEMM); OpenMP wait: %s\n",
                cpu_model_name().c_str(), kernels::cpu::isa_name(kernels::cpu::selected_isa()),
                kernels::cpu::gemm_engine_name(kernels::cpu::auto_gemm_engine()), runtime::omp_wait_policy().c_str());
  out += buf;
  const std::string calls =
      o.duration_s > 0 ? str("timed calls for ", o.duration_s, " s") : str(o.iterations, " timed calls");
  std::snprintf(buf, sizeof buf, "each round: %d warmup + %s; %d round(s)%s; nearest-rank percentiles\n", o.warmup,
                calls.c_str(), o.rounds, o.rounds > 1 ? ", figures are medians across rounds" : "");
  out += buf;
  for (const auto& n : report.notes) out += "note: " + n + "\n";
  out += "\n";
  std::snprintf(buf, sizeof buf, "%-12s %5s %5s", "engine", "batch", "seq");
  out += buf;
  for (const char* h : {"load ms", "first ms", "min ms", "mean ms", "p50 ms", "p90 ms", "p95 ms", "p99 ms", "max ms",
                        "inf/s", "items/s", "peak RSS MB"}) {
    std::snprintf(buf, sizeof buf, " %9s", h);
    out += buf;
  }
  out += "\n";
  for (const auto& c : report.configs) {
    out += row(c.kiln);
    for (const auto& p : c.peers) out += row(p);
  }
  if (report.configs.empty()) return out;

  // One comparison per peer: kiln's medians over the peer's, per configuration.
  for (size_t pi = 0; pi < report.configs.front().peers.size(); ++pi) {
    const EngineResult& first = report.configs.front().peers[pi];
    std::snprintf(buf, sizeof buf,
                  "\nkiln vs %s %s, computing in %s (medians of %d round(s); ms, it/s = items/s; "
                  "ratio = kiln / peer)\n",
                  first.engine.c_str(), first.version.c_str(), first.precision.c_str(), o.rounds);
    out += buf;
    std::snprintf(buf, sizeof buf, "%5s %5s  %9s %9s %8s  %9s %9s %8s  %9s %9s %8s\n", "batch", "seq", "p50 kiln",
                  "p50 peer", "ratio", "p99 kiln", "p99 peer", "ratio", "kiln it/s", "peer it/s", "ratio");
    out += buf;
    for (const auto& c : report.configs) {
      const EngineResult& p = c.peers[pi];
      std::snprintf(buf, sizeof buf, "%5lld %5s  %s %s %s  %s %s %s  %s %s %s\n", static_cast<long long>(c.batch),
                    seq_text(c.seq).c_str(), num(c.kiln.summary.p50_ms).c_str(), num(p.summary.p50_ms).c_str(),
                    ratio(c.p50_ratio(p)).c_str(), num(c.kiln.summary.p99_ms).c_str(), num(p.summary.p99_ms).c_str(),
                    ratio(c.p99_ratio(p)).c_str(), num(c.kiln.items_per_s).c_str(), num(p.items_per_s).c_str(),
                    ratio(c.throughput_ratio(p)).c_str());
      out += buf;
    }
  }
  return out;
}

nlohmann::json to_json(const BenchReport& report) {
  const BenchOptions& o = report.options;
  nlohmann::json j = {{"model", o.model},
                      {"model_size_mb", report.model_size_mb},
                      {"level", passes::level_name(o.level)},
                      {"threads", o.threads},
                      {"cpu", cpu_model_name()},
                      {"cpu_isa", kernels::cpu::isa_name(kernels::cpu::selected_isa())},
                      {"gemm", kernels::cpu::gemm_engine_name(kernels::cpu::auto_gemm_engine())},
                      {"omp_wait", runtime::omp_wait_policy()},
                      {"concurrency", o.concurrency},
                      {"warmup", o.warmup},
                      {"iterations", o.duration_s > 0 ? nlohmann::json(nullptr) : nlohmann::json(o.iterations)},
                      {"duration_s", o.duration_s > 0 ? nlohmann::json(o.duration_s) : nlohmann::json(nullptr)},
                      {"rounds", o.rounds},
                      {"percentile_method", "nearest-rank"},
                      {"across_rounds", "median"},
                      {"notes", report.notes}};
  nlohmann::json results = nlohmann::json::array();
  nlohmann::json comparisons = nlohmann::json::array();
  for (const auto& c : report.configs) {
    results.push_back(engine_json(c.kiln));
    for (const auto& p : c.peers) {
      results.push_back(engine_json(p));
      comparisons.push_back({{"batch", c.batch},
                             {"seq", c.seq ? nlohmann::json(*c.seq) : nlohmann::json(nullptr)},
                             {"peer", p.engine},
                             {"peer_version", p.version},
                             {"peer_precision", p.precision},
                             {"kiln_p50_ms", us(c.kiln.summary.p50_ms)},
                             {"peer_p50_ms", us(p.summary.p50_ms)},
                             {"kiln_p99_ms", us(c.kiln.summary.p99_ms)},
                             {"peer_p99_ms", us(p.summary.p99_ms)},
                             {"kiln_throughput_items_per_s", c.kiln.items_per_s},
                             {"peer_throughput_items_per_s", p.items_per_s},
                             {"p50_ratio_kiln_over_peer", c.p50_ratio(p)},
                             {"p99_ratio_kiln_over_peer", c.p99_ratio(p)},
                             {"throughput_ratio_kiln_over_peer", c.throughput_ratio(p)}});
    }
  }
  j["results"] = std::move(results);
  if (!comparisons.empty()) j["comparisons"] = std::move(comparisons);
  return j;
}

void write_json(const BenchReport& report, const std::string& path) {
  const std::string text = to_json(report).dump(2) + "\n";
  if (auto parent = fs::path(path).parent_path(); !parent.empty()) {
    std::error_code ec;
    fs::create_directories(parent, ec);
    if (ec) fail("--json: cannot create the folder ", parent.string(), ": ", ec.message());
  }
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    out.close();
    if (!out) {
      std::error_code ec;
      fs::remove(tmp, ec);
      fail("--json: cannot write ", path);
    }
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) fail("--json: cannot write ", path, ": ", ec.message());
}

}  // namespace kiln::bench
