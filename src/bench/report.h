// What `kiln bench` prints and writes: a table on stdout, and a JSON file with every per-round and
// summary figure (field names as in the table's JSON column notes of `kiln bench --help`).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "bench/benchmark.h"

namespace kiln::bench {

// The readable report: a header (CPU, kernels' ISA, settings), one row per configuration and engine,
// and with --vs each peer's medians side by side with kiln's and the kiln / peer ratios.
std::string format_table(const BenchReport& report);

// Top level: the run's settings, "notes", "results" (one object per configuration and engine, with
// its rounds in "per_round") and, with --vs, "comparisons" (one per configuration and peer).
nlohmann::json to_json(const BenchReport& report);

// Writes to_json(report) to `path` through a temporary name (no partial file on failure).
void write_json(const BenchReport& report, const std::string& path);

}  // namespace kiln::bench
