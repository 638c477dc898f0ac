#include "pipeline/report_figures.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>

namespace kiln::pipeline::report_figures {

using nlohmann::json;

namespace {

const json& field(const json& parent, const char* key) {
  static const json kNull;
  if (!parent.is_object()) return kNull;
  const auto it = parent.find(key);
  return it == parent.end() ? kNull : *it;
}

std::string printf_text(const char* format, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

std::optional<int64_t> integer(const json& parent, const char* key) {
  const std::optional<double> v = number(parent, key);
  if (!v) return std::nullopt;
  return static_cast<int64_t>(std::llround(*v));
}

}  // namespace

std::optional<double> number(const json& parent, const char* key) {
  const json& v = field(parent, key);
  if (!v.is_number()) return std::nullopt;
  const double d = v.get<double>();
  return std::isfinite(d) ? std::optional<double>(d) : std::nullopt;
}

std::string text(const json& parent, const char* key) {
  const json& v = field(parent, key);
  return v.is_string() ? v.get<std::string>() : std::string();
}

const json& array(const json& parent, const char* key) {
  static const json kEmpty = json::array();
  const json& v = field(parent, key);
  return v.is_array() ? v : kEmpty;
}

const json& object(const json& parent, const char* key) {
  static const json kNull;
  const json& v = field(parent, key);
  return v.is_object() ? v : kNull;
}

std::string scalar_text(const json& value) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_boolean()) return value.get<bool>() ? "yes" : "no";
  if (value.is_number_integer()) return std::to_string(value.get<int64_t>());
  if (value.is_number()) return printf_text("%g", value.get<double>());
  if (value.is_null()) return "";
  return value.dump();
}

std::string fixed(std::optional<double> v, int decimals) {
  if (!v) return kMissing;
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, *v);
  return buf;
}

std::string ms(std::optional<double> v) {
  if (!v) return kMissing;
  const double a = std::abs(*v);
  return fixed(v, a >= 1000 ? 0 : a >= 100 ? 1 : a >= 1 ? 2 : 3);
}

std::string speedup(std::optional<double> v, const char* sign) { return v ? fixed(v, 2) + sign : kMissing; }

std::string megabytes(std::optional<double> v) { return v ? fixed(v, 1) + " MB" : kMissing; }

std::string throughput(std::optional<double> v) {
  if (!v) return kMissing;
  return fixed(v, std::abs(*v) >= 100 ? 1 : 2) + "/s";
}

std::string cosine(std::optional<double> v) {
  if (!v) return kMissing;
  // Two significant digits of 1 - cosine, within 5 to 8 decimals: 0.99712, 0.999964, 0.9999986.
  const double gap = 1.0 - *v;
  int decimals = 5;
  if (gap > 0 && *v > 0) decimals = std::clamp(static_cast<int>(std::floor(-std::log10(gap))) + 2, 5, 8);
  return fixed(v, decimals);
}

std::string error(std::optional<double> v) {
  if (!v) return kMissing;
  if (*v == 0) return "0";
  return printf_text("%.3g", *v);
}

std::string percent(std::optional<double> v) { return v ? fixed(v, 1) + "%" : kMissing; }

std::string Configuration::title() const {
  std::string t = "batch " + std::to_string(batch);
  if (seq) t += " · sequence " + std::to_string(*seq);
  return t;
}

bool Configuration::matches(const json& result) const {
  return integer(result, "batch") == std::optional<int64_t>(batch) && integer(result, "seq") == seq;
}

std::vector<Configuration> configurations(const json& report) {
  std::vector<Configuration> out;
  auto add = [&](const Configuration& c) {
    for (const auto& o : out)
      if (o.batch == c.batch && o.seq == c.seq) return;
    out.push_back(c);
  };
  for (const char* list : {"variants", "peers"})
    for (const json& engine : array(report, list))
      for (const json& r : array(engine, "results")) {
        const std::optional<int64_t> batch = integer(r, "batch");
        if (batch) add({*batch, integer(r, "seq")});
      }
  if (out.empty()) {
    const json& settings = object(report, "settings");
    const json& seqs = array(settings, "seqs");
    for (const json& b : array(settings, "batches")) {
      if (!b.is_number()) continue;
      if (seqs.empty()) add({b.get<int64_t>(), std::nullopt});
      for (const json& s : seqs)
        if (s.is_number()) add({b.get<int64_t>(), s.get<int64_t>()});
    }
  }
  return out;
}

std::vector<Engine> engines(const json& report, const Configuration& config) {
  std::vector<Engine> out;
  const std::string chosen = text(object(report, "chosen"), "variant");
  auto result_for = [&](const json& engine) -> const json* {
    for (const json& r : array(engine, "results"))
      if (config.matches(r)) return &r;
    return nullptr;
  };
  int index = 0;
  for (const json& v : array(report, "variants")) {
    const int family_index = index++;
    if (!text(v, "skipped").empty()) continue;
    Engine e;
    e.name = text(v, "name");
    e.detail = text(v, "precision");
    e.chosen = !chosen.empty() && e.name == chosen;
    e.family_index = family_index;
    e.size_mb = number(v, "size_mb");
    e.result = result_for(v);
    out.push_back(std::move(e));
  }
  index = 0;
  for (const json& p : array(report, "peers")) {
    Engine e;
    e.name = text(p, "name");
    const std::string version = text(p, "version"), precision = text(p, "precision");
    e.detail = version.empty() ? precision : precision.empty() ? version : version + ", " + precision;
    e.peer = true;
    e.family_index = index++;
    e.result = result_for(p);
    out.push_back(std::move(e));
  }
  return out;
}

std::vector<const json*> skipped_variants(const json& report) {
  std::vector<const json*> out;
  for (const json& v : array(report, "variants"))
    if (!text(v, "skipped").empty()) out.push_back(&v);
  return out;
}

std::vector<OpCount> op_counts(const nlohmann::json& optimization) {
  std::map<std::string, OpCount> ops;
  for (const auto& [key, side] : {std::pair{"ops_before", &OpCount::before}, std::pair{"ops_after", &OpCount::after}}) {
    const nlohmann::json& counts = object(optimization, key);
    if (!counts.is_object()) continue;
    for (const auto& [op, n] : counts.items()) {
      ops[op].op = op;
      ops[op].*side = number(counts, op.c_str());
    }
  }
  std::vector<OpCount> sorted;
  for (auto& [op, count] : ops) sorted.push_back(std::move(count));
  std::stable_sort(sorted.begin(), sorted.end(), [](const OpCount& a, const OpCount& b) {
    return std::max(a.before.value_or(0), a.after.value_or(0)) > std::max(b.before.value_or(0), b.after.value_or(0));
  });
  return sorted;
}

}  // namespace kiln::pipeline::report_figures
