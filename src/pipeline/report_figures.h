// Reading report.json for the two renderers (report_markdown.h, report_html.h): lenient accessors that turn
// a missing, null or wrongly typed field into "not measured" instead of throwing, the figure formats both
// renderers share, and the report's configurations (batch x seq) with the engines measured in each.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace kiln::pipeline::report_figures {

// `parent[key]` as a number, string, array or object; nullopt / "" / an empty array or null when the field
// is absent, null or of another type (never throws).
std::optional<double> number(const nlohmann::json& parent, const char* key);
std::string text(const nlohmann::json& parent, const char* key);
const nlohmann::json& array(const nlohmann::json& parent, const char* key);
const nlohmann::json& object(const nlohmann::json& parent, const char* key);
// A JSON scalar as display text: strings as they are, numbers and booleans printed, null as "".
std::string scalar_text(const nlohmann::json& value);

// What a null figure prints as.
inline constexpr const char* kMissing = "–";

std::string fixed(std::optional<double> v, int decimals);              // "12.35"; kMissing when nullopt
std::string ms(std::optional<double> v);                               // latency: 0.123, 4.56, 45.67, 113.9, 1211
std::string speedup(std::optional<double> v, const char* sign = "×");  // "3.38×"
std::string megabytes(std::optional<double> v);                        // "108.4 MB"
std::string throughput(std::optional<double> v);                       // "29.61/s"
std::string cosine(std::optional<double> v);   // enough decimals to show 1 - cosine: 0.99712, 0.9999986
std::string error(std::optional<double> v);    // three significant digits: 0.0412, 1.29e-05
std::string percent(std::optional<double> v);  // "99.5%"

// One benchmark configuration. seq is nullopt for a model without a sequence dim (ViT).
struct Configuration {
  int64_t batch = 0;
  std::optional<int64_t> seq;
  std::string title() const;  // "batch 1 · sequence 128" or "batch 8"
  bool matches(const nlohmann::json& result) const;
};
// Every configuration in the variants' and peers' results, in the order first met; from the settings'
// batches x seqs when nothing was measured.
std::vector<Configuration> configurations(const nlohmann::json& report);

// One engine's figures in one configuration: a measured kiln variant or a peer.
struct Engine {
  std::string name;    // "int8-dynamic", "onnxruntime"
  std::string detail;  // the variant's precision, or the peer's version and precision
  bool peer = false;
  bool chosen = false;                     // the variant report["chosen"] names
  int family_index = 0;                    // position among the variants (or among the peers): picks its colour
  std::optional<double> size_mb;           // variants only
  const nlohmann::json* result = nullptr;  // this configuration's entry of "results"; null if none
};
// The variants that were not skipped, then the peers, each with its result for `config`.
std::vector<Engine> engines(const nlohmann::json& report, const Configuration& config);

// One op type's node count before and after the graph passes (nullopt: none there).
struct OpCount {
  std::string op;
  std::optional<double> before, after;
};
// The optimization's op counts, the op types with the most nodes (before or after) first.
std::vector<OpCount> op_counts(const nlohmann::json& optimization);

// The variants with a "skipped" reason.
std::vector<const nlohmann::json*> skipped_variants(const nlohmann::json& report);

}  // namespace kiln::pipeline::report_figures
