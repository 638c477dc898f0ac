#include "runtime/profile_report.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "ir/shape.h"

namespace kiln::runtime {

namespace {
// Named within: in the unity build, runtime/'s files share one anonymous namespace.
namespace profile_text {

namespace fs = std::filesystem;

double ms_of(int64_t ns) { return static_cast<double>(ns) / 1e6; }
double percent_of(double part, double whole) { return whole > 0 ? 100.0 * part / whole : 0.0; }

std::string value_text(const ProfiledValue& v) {
  if (v.kind == ProfiledValue::Kind::kTensor)
    return std::string(ir::dtype_name(v.dtype)) + ir::to_string(ir::Dims(v.shape));
  if (v.kind == ProfiledValue::Kind::kSequence)
    return str("seq(", ir::dtype_name(v.dtype), " x", v.shape.empty() ? 0 : v.shape[0], ")");
  return "";
}

// "float32[1,8,16], float32[16,32] -> float32[1,8,32]"; omitted optional values and empty optionals left out.
std::string shape_set_text(const Profiler::ShapeSet& set) {
  auto join = [](const std::vector<ProfiledValue>& values) {
    std::string out;
    for (const ProfiledValue& v : values) {
      std::string t = value_text(v);
      if (!t.empty()) out += (out.empty() ? "" : ", ") + t;
    }
    return out;
  };
  return join(set.inputs) + " -> " + join(set.outputs);
}

// Keeps the end of a long name (where node names say what they are: ".../attention/self/query/MatMul").
std::string fit(const std::string& text, size_t width, bool keep_end) {
  if (text.size() <= width) return text;
  if (keep_end) return "..." + text.substr(text.size() - (width - 3));
  return text.substr(0, width - 3) + "...";
}

size_t column_width(const std::vector<ProfileRow>& rows, size_t count, std::string ProfileRow::*field,
                    const char* header, size_t cap) {
  size_t w = std::strlen(header);
  for (size_t i = 0; i < count; ++i) w = std::max(w, (rows[i].*field).size());
  return std::min(w, cap);
}

std::string padded(const std::string& text, size_t width, bool keep_end) {
  std::string t = fit(text, width, keep_end);
  return t + std::string(width - t.size(), ' ');
}

std::string numbers(double total_ms, double mean_ms, double percent, int64_t calls) {
  char buf[96];
  std::snprintf(buf, sizeof buf, "%10.3f %9.3f %6.1f %7lld", total_ms, mean_ms, percent, static_cast<long long>(calls));
  return buf;
}

// The closing line when rows were cut: how many, and how much of the time they took.
std::string left_out(const std::vector<ProfileRow>& rows, size_t shown, const char* one, const char* many) {
  if (shown >= rows.size()) return "";
  double percent = 0;
  for (size_t i = shown; i < rows.size(); ++i) percent += rows[i].percent;
  char buf[160];
  std::snprintf(buf, sizeof buf, "  ... %zu more %s, %.1f %% of the time\n", rows.size() - shown,
                rows.size() - shown == 1 ? one : many, percent);
  return buf;
}

std::string node_table(const std::vector<ProfileRow>& rows, size_t top) {
  const size_t n = top ? std::min(top, rows.size()) : rows.size();
  const size_t name_w = column_width(rows, n, &ProfileRow::name, "node", 48);
  const size_t op_w = column_width(rows, n, &ProfileRow::op_type, "op", 40);
  const size_t kernel_w = column_width(rows, n, &ProfileRow::kernel, "kernel", 56);
  std::string out = n < rows.size() ? str("nodes (top ", n, " of ", rows.size(), ", by total time):\n")
                                    : str("nodes (", rows.size(), ", by total time):\n");
  out += "  total ms   mean ms      %   calls  " + padded("node", name_w, false) + "  " + padded("op", op_w, false) +
         "  " + padded("kernel", kernel_w, false) + "  shapes (inputs -> outputs)\n";
  for (size_t i = 0; i < n; ++i) {
    const ProfileRow& r = rows[i];
    out += numbers(r.total_ms, r.mean_ms, r.percent, r.calls) + "  " + padded(r.name, name_w, true) + "  " +
           padded(r.op_type, op_w, true) + "  " + padded(r.kernel, kernel_w, false) + "  " + r.shapes + "\n";
  }
  return out + left_out(rows, n, "node", "nodes");
}

std::string op_type_table(const std::vector<ProfileRow>& rows, size_t top) {
  const size_t n = top ? std::min(top, rows.size()) : rows.size();
  const size_t op_w = column_width(rows, n, &ProfileRow::op_type, "op type", 40);
  std::string out = n < rows.size() ? str("op types (top ", n, " of ", rows.size(), ", by total time):\n")
                                    : str("op types (", rows.size(), ", by total time):\n");
  out += "  total ms   mean ms      %   calls  nodes  " + padded("op type", op_w, false) + "  kernel\n";
  for (size_t i = 0; i < n; ++i) {
    const ProfileRow& r = rows[i];
    char nodes[16];
    std::snprintf(nodes, sizeof nodes, "%5zu", r.nodes);
    out += numbers(r.total_ms, r.mean_ms, r.percent, r.calls) + "  " + nodes + "  " + padded(r.op_type, op_w, true) +
           "  " + r.kernel + "\n";
  }
  return out + left_out(rows, n, "op type", "op types");
}

void sort_by_time(std::vector<ProfileRow>& rows) {
  std::stable_sort(rows.begin(), rows.end(),
                   [](const ProfileRow& a, const ProfileRow& b) { return a.total_ms > b.total_ms; });
}

// Per value: {"float32": [1, 8, 16]}, as ONNX Runtime writes input_type_shape and output_type_shape.
nlohmann::ordered_json type_shapes(const std::vector<ProfiledValue>& values) {
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  for (const ProfiledValue& v : values) {
    if (v.kind == ProfiledValue::Kind::kTensor)
      out.push_back({{std::string(ir::dtype_name(v.dtype)), v.shape}});
    else if (v.kind == ProfiledValue::Kind::kSequence)
      out.push_back({{str("seq(", ir::dtype_name(v.dtype), ")"), v.shape}});
  }
  return out;
}

// Microseconds, to the nanosecond the clock gave.
double us_of(int64_t ns) { return static_cast<double>(ns) / 1000.0; }

}  // namespace profile_text
}  // namespace

ProfileSummary summarize(const Profiler& profiler) {
  using namespace profile_text;
  ProfileSummary s;
  s.runs = profiler.runs().size();
  for (const Profiler::Run& r : profiler.runs()) s.run_ms += ms_of(r.dur_ns);
  s.fast_kernels = profiler.fast_kernels();
  const std::vector<ProfiledNode>& nodes = profiler.nodes();
  struct Sums {
    int64_t calls = 0, fast_calls = 0, ns = 0, reference_ns = 0;
  };
  std::vector<Sums> sums(nodes.size());
  std::vector<int64_t> body_ns(nodes.size(), 0);  // per node: its subgraphs' nodes' time, within its own
  for (const Profiler::Call& c : profiler.calls()) {
    Sums& a = sums[c.node];
    ++a.calls;
    a.ns += c.dur_ns;
    if (c.fast)
      ++a.fast_calls;
    else
      a.reference_ns += c.dur_ns;
    if (c.node < nodes.size() && nodes[c.node].parent >= 0) body_ns[static_cast<size_t>(nodes[c.node].parent)] += c.dur_ns;
  }
  // A node that runs subgraphs (If, Loop, Scan) counts its own time only: its bodies' nodes have rows of
  // their own, and the percentages still add up to 100.
  int64_t node_ns = 0;
  for (size_t i = 0; i < sums.size(); ++i) {
    const int64_t own = std::max<int64_t>(0, sums[i].ns - body_ns[i]);
    sums[i].reference_ns = std::max<int64_t>(0, sums[i].reference_ns - (sums[i].ns - own));
    sums[i].ns = own;
    node_ns += own;
  }
  s.node_ms = ms_of(node_ns);

  // Per op type, in the order first met; each distinct kernel with its node count.
  std::vector<ProfileRow> by_type;
  std::map<std::string, size_t> type_row;
  std::vector<std::vector<std::pair<std::string, size_t>>> type_kernels;
  std::map<std::string, size_t> reference_row;
  for (size_t i = 0; i < nodes.size(); ++i) {
    const ProfiledNode& node = nodes[i];
    const Sums& a = sums[i];
    if (a.calls == 0) continue;
    ProfileRow r;
    r.name = node.name;
    r.op_type = node.op_type;
    const char* non_compute = a.fast_calls == 0 ? non_compute_kind(node.op_type) : nullptr;
    if (non_compute)
      r.kernel = non_compute;
    else if (a.fast_calls == a.calls)
      r.kernel = node.fast_kernel;
    else if (a.fast_calls == 0)
      r.kernel = node.fast_kernel.empty() ? "reference" : "reference (" + node.fast_kernel + " declined)";
    else
      r.kernel = str(node.fast_kernel, " on ", a.fast_calls, "/", a.calls, " calls, else reference");
    const auto& sets = profiler.shape_sets(i);
    if (!sets.empty()) r.shapes = shape_set_text(sets[0]);
    if (sets.size() > 1) r.shapes += str("  (+", sets.size() - 1, " more shape sets)");
    r.calls = a.calls;
    r.total_ms = ms_of(a.ns);
    r.mean_ms = r.total_ms / static_cast<double>(a.calls);
    r.percent = percent_of(r.total_ms, s.node_ms);
    r.reference_ms = non_compute ? 0 : ms_of(a.reference_ns);

    auto [t, added] = type_row.emplace(node.op_type, by_type.size());
    if (added) {
      ProfileRow& tr = by_type.emplace_back();
      tr.name = tr.op_type = node.op_type;
      tr.nodes = 0;
      type_kernels.emplace_back();
    }
    ProfileRow& tr = by_type[t->second];
    ++tr.nodes;
    tr.calls += r.calls;
    tr.total_ms += r.total_ms;
    tr.reference_ms += r.reference_ms;
    auto& kernels = type_kernels[t->second];
    auto k = std::find_if(kernels.begin(), kernels.end(), [&](const auto& e) { return e.first == r.kernel; });
    if (k == kernels.end())
      kernels.emplace_back(r.kernel, 1);
    else
      ++k->second;

    if (non_compute) {
      ++s.non_compute_nodes;
      s.non_compute_ms += r.total_ms;
    } else if (a.fast_calls < a.calls) {
      ++s.reference_nodes;
      s.reference_ms += r.reference_ms;
      auto [ref, is_new] = reference_row.emplace(node.op_type, s.reference_op_types.size());
      if (is_new) {
        ProfileRow& rr = s.reference_op_types.emplace_back();
        rr.name = rr.op_type = node.op_type;
        rr.kernel = "reference";
        rr.nodes = 0;
      }
      ProfileRow& rr = s.reference_op_types[ref->second];
      ++rr.nodes;
      rr.calls += a.calls - a.fast_calls;
      rr.total_ms += r.reference_ms;
    }
    s.nodes.push_back(std::move(r));
  }
  for (size_t t = 0; t < by_type.size(); ++t) {
    ProfileRow& tr = by_type[t];
    tr.mean_ms = tr.total_ms / static_cast<double>(tr.calls);
    tr.percent = percent_of(tr.total_ms, s.node_ms);
    const auto& kernels = type_kernels[t];
    if (kernels.size() == 1) {
      tr.kernel = kernels[0].first;
    } else {
      for (const auto& [kernel, count] : kernels)
        tr.kernel += str(tr.kernel.empty() ? "" : ", ", kernel, " (", count, count == 1 ? " node)" : " nodes)");
    }
  }
  for (ProfileRow& rr : s.reference_op_types) {
    rr.mean_ms = rr.calls ? rr.total_ms / static_cast<double>(rr.calls) : 0;
    rr.percent = percent_of(rr.total_ms, s.node_ms);
  }
  s.op_types = std::move(by_type);
  sort_by_time(s.nodes);
  sort_by_time(s.op_types);
  sort_by_time(s.reference_op_types);
  return s;
}

const char* non_compute_kind(const std::string& op_type) {
  if (op_type == "Reshape" || op_type == "Flatten" || op_type == "Squeeze" || op_type == "Unsqueeze" ||
      op_type == "Identity")
    return "view (no copy)";
  if (op_type == "Shape" || op_type == "Size") return "shape read";
  if (op_type == "If" || op_type == "Loop" || op_type == "Scan") return "control flow";
  return nullptr;
}

namespace {
std::string non_compute_line(const ProfileSummary& s) {
  if (s.non_compute_nodes == 0) return "";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.1f", profile_text::percent_of(s.non_compute_ms, s.node_ms));
  return str("\n", s.non_compute_nodes, s.non_compute_nodes == 1 ? " node, " : " nodes, ", buf,
             " % of the time, computed nothing (views, shape reads, control flow's own time)");
}
}  // namespace

std::string reference_callout(const ProfileSummary& s) {
  if (!s.fast_kernels) return "fast kernels were off: every node ran its reference kernel";
  if (s.reference_nodes == 0)
    return "no node ran a reference kernel: fast kernels answered every call" + non_compute_line(s);
  constexpr size_t kListed = 8;
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.1f", profile_text::percent_of(s.reference_ms, s.node_ms));
  std::string out = str(s.reference_nodes, s.reference_nodes == 1 ? " node, " : " nodes, ", buf,
                        " % of the time, ran reference kernels: ");
  double rest = 0;
  for (size_t i = 0; i < s.reference_op_types.size(); ++i) {
    const ProfileRow& r = s.reference_op_types[i];
    if (i >= kListed) {
      rest += r.percent;
      continue;
    }
    std::snprintf(buf, sizeof buf, "%.1f", r.percent);
    out += str(i ? ", " : "", r.op_type, " (", r.nodes, r.nodes == 1 ? " node, " : " nodes, ", buf, " %)");
  }
  if (s.reference_op_types.size() > kListed) {
    std::snprintf(buf, sizeof buf, "%.1f", rest);
    out += str(", and ", s.reference_op_types.size() - kListed, " more op types (", buf, " %)");
  }
  return out + non_compute_line(s);
}

std::string format_profile(const ProfileSummary& s, size_t top) {
  using namespace profile_text;
  if (s.runs == 0 && s.nodes.empty()) return "profile: nothing was recorded\n";
  char buf[256];
  const double runs = static_cast<double>(std::max<size_t>(s.runs, 1));
  std::snprintf(buf, sizeof buf,
                "%zu run%s, %.3f ms per run, of which %.3f ms (%.1f %%) in nodes; %% below is of the time in nodes\n",
                s.runs, s.runs == 1 ? "" : "s", s.run_ms / runs, s.node_ms / runs, percent_of(s.node_ms, s.run_ms));
  std::string out = buf;
  out += node_table(s.nodes, top) + "\n" + op_type_table(s.op_types, top) + "\n";
  return out + reference_callout(s) + "\n";
}

void check_trace_path(const std::string& path, const std::string& option) {
  using namespace profile_text;
  if (path.empty()) fail(option, " needs a file name");
  std::error_code ec;
  const fs::path p(path);
  if (fs::is_directory(p, ec)) fail(option, ": cannot write ", path, ": it is a folder");
  const fs::path parent = p.parent_path().empty() ? fs::path(".") : p.parent_path();
  if (!fs::is_directory(parent, ec))
    fail(option, ": cannot write ", path, ": the folder ", parent.string(), " does not exist");
  // Creating the temporary file the trace goes through is the one sure test (permissions, read-only mounts).
  const std::string tmp = path + ".tmp";
  {
    std::ofstream probe(tmp, std::ios::binary | std::ios::trunc);
    if (!probe) fail(option, ": cannot write ", path, ": ", std::strerror(errno));
  }
  fs::remove(tmp, ec);
}

void write_trace(const std::string& path, std::span<const TraceSection> sections, const std::string& option) {
  using namespace profile_text;
  using Json = nlohmann::ordered_json;  // keys in the order ONNX Runtime writes them
  check_trace_path(path, option);
  const std::string tmp = path + ".tmp";
  std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
  const int64_t pid = static_cast<int64_t>(::getpid());
  bool first = true;
  auto emit = [&](const Json& event) {
    out << (first ? "[\n" : ",\n") << event.dump();
    first = false;
  };
  for (const TraceSection& section : sections) {
    const Profiler& p = *section.profiler;
    const auto& runs = p.runs();
    for (size_t k = 0; k < runs.size(); ++k) {
      Json args = {{"run", k}};
      if (!section.label.empty()) args["config"] = section.label;
      emit(Json{{"cat", "Session"},
                {"name", "run"},
                {"ph", "X"},
                {"ts", us_of(runs[k].start_ns)},
                {"dur", us_of(runs[k].dur_ns)},
                {"pid", pid},
                {"tid", runs[k].thread},
                {"args", std::move(args)}});
    }
    // Each node's shape sets as JSON once, not per call.
    std::vector<std::vector<std::pair<Json, Json>>> shapes(p.nodes().size());
    for (size_t i = 0; i < shapes.size(); ++i)
      for (const Profiler::ShapeSet& set : p.shape_sets(i))
        shapes[i].emplace_back(type_shapes(set.inputs), type_shapes(set.outputs));
    for (const Profiler::Call& c : p.calls()) {
      const ProfiledNode& node = p.nodes()[c.node];
      const int64_t tid = c.run < runs.size() ? runs[c.run].thread : runs.empty() ? pid : runs.back().thread;
      const auto& [ins, outs] = shapes[c.node][c.shape_set];
      emit(Json{{"cat", "Node"},
                {"name", node.name},
                {"ph", "X"},
                {"ts", us_of(c.start_ns)},
                {"dur", us_of(c.dur_ns)},
                {"pid", pid},
                {"tid", tid},
                {"args",
                 {{"op_name", node.op_type},
                  {"kernel", c.fast ? node.fast_kernel : std::string("reference")},
                  {"input_type_shape", ins},
                  {"output_type_shape", outs}}}});
    }
  }
  out << (first ? "[\n]\n" : "\n]\n");
  out.close();
  std::error_code ec;
  if (!out) {
    fs::remove(tmp, ec);
    fail(option, ": cannot write ", path, ": the write failed (disk full?)");
  }
  fs::rename(tmp, path, ec);
  if (ec) {
    const std::string why = ec.message();
    fs::remove(tmp, ec);
    fail(option, ": cannot write ", path, ": ", why);
  }
}

}  // namespace kiln::runtime
