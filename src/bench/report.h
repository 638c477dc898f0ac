// What `kiln bench` prints and writes: a table on stdout, and a JSON file with every per-round and
// summary figure (field names as in the table's JSON column notes of `kiln bench --help`).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "bench/benchmark.h"

namespace kiln::bench {

// The readable report: a header, one row per configuration and engine, and with --vs ort the
// medians side by side with the kiln / ORT ratios.
std::string format_table(const BenchReport& report);

// Top level: the run's settings, "notes", "results" (one object per configuration and engine, with
// its rounds in "per_round") and, with --vs ort, "comparisons" (one per configuration).
nlohmann::json to_json(const BenchReport& report);

// Writes to_json(report) to `path` through a temporary name (no partial file on failure).
void write_json(const BenchReport& report, const std::string& path);

}  // namespace kiln::bench
