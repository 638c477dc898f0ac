#include "pipeline/report_terminal.h"

#include <cstdio>

namespace kiln::pipeline {

namespace {

using nlohmann::json;

std::string number(const json& v, const char* format) {
  if (!v.is_number()) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, format, v.get<double>());
  return buf;
}

std::string config_name(const json& r) {
  std::string out = "batch " + std::to_string(r["batch"].get<int64_t>());
  if (!r["seq"].is_null()) out += ", sequence " + std::to_string(r["seq"].get<int64_t>());
  return out;
}

// The accuracy column: the bound's figure, or why there is none.
std::string accuracy_text(const json& v) {
  if (v["name"] == "baseline") return "reference";
  const json& a = v["accuracy"];
  if (a.is_null()) return "-";
  return a["summary"].get<std::string>() + (a["holds"].get<bool>() ? "" : "  OUT OF BOUND");
}

}  // namespace

std::string format_terminal_table(const json& report) {
  std::string out;
  char buf[512];
  const json& m = report["machine"];
  std::snprintf(buf, sizeof buf, "cpu %s; kiln kernels %s, matmuls %s; %d thread(s)\n",
                m["cpu"].get<std::string>().c_str(), m["isa"].get<std::string>().c_str(),
                m["gemm"].get<std::string>().c_str(), m["threads"].get<int>());
  out += buf;
  const std::string chosen = report["chosen"].is_null() ? "" : report["chosen"]["variant"].get<std::string>();
  const json& variants = report["variants"];
  const size_t configs = variants.empty() ? 0 : variants[0]["results"].size();
  for (size_t c = 0; c < configs; ++c) {
    out += "\n" + config_name(variants[0]["results"][c]) + " (p50/p99 ms: medians of " +
           std::to_string(report["settings"]["rounds"].get<int>()) + " round(s))\n";
    std::snprintf(buf, sizeof buf, "   %-16s %-6s %9s %9s %10s %9s %8s  %s\n", "variant", "prec", "p50 ms", "p99 ms",
                  "items/s", "size MB", "speed-up",
                  ("accuracy vs baseline (" + report["settings"]["max_drop"].get<std::string>() + ")").c_str());
    out += buf;
    auto row = [&](const std::string& mark, const std::string& name, const std::string& precision, const json& r,
                   const json& size, const std::string& accuracy) {
      std::snprintf(buf, sizeof buf, "%-2s %-16s %-6s %9s %9s %10s %9s %8s  %s\n", mark.c_str(), name.c_str(),
                    precision.c_str(), number(r["p50_ms"], "%.2f").c_str(), number(r["p99_ms"], "%.2f").c_str(),
                    number(r["throughput_items_per_s"], "%.1f").c_str(), number(size, "%.1f").c_str(),
                    (number(r["speedup"], "%.2f") + "x").c_str(), accuracy.c_str());
      out += buf;
    };
    for (const json& v : variants) {
      const std::string name = v["name"].get<std::string>();
      if (!v["skipped"].is_null()) {
        std::snprintf(buf, sizeof buf, "   %-16s left out: %s\n", name.c_str(),
                      v["skipped"].get<std::string>().c_str());
        out += buf;
        continue;
      }
      row(name == chosen ? "->" : "", name, v["precision"].get<std::string>(), v["results"][c], v["size_mb"],
          accuracy_text(v));
    }
    for (const json& p : report["peers"])
      row("", p["name"].get<std::string>(), p["precision"].get<std::string>(), p["results"][c],
          report["model"]["size_mb"], "(the baseline's file)");
  }
  out += "\n" + report["headline"].get<std::string>() + "\n";
  return out;
}

}  // namespace kiln::pipeline
