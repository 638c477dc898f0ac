// What `kiln validate` prints and writes: a table on stdout (one row per output, then with --per-layer the
// values where the error grows most), and a JSON file with every figure (field names in `kiln validate
// --help`).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "validate/validation.h"

namespace kiln::validate {

// Rows of the per-layer table: the layers where the error grows most.
inline constexpr size_t kLayerRows = 10;

// The readable report: the models, inputs, CPU, kernels and threads, notes, the outputs' table and, for a
// per-layer run, the layers' table.
std::string format_table(const ValidationReport& report);

// Top level: the run's settings, "notes", "outputs" (one object per output) and, for a per-layer run,
// "per_layer" (every shared value, and the names of those where the error grows most). Infinite figures
// (non-finite mismatches) are null, as JSON has no infinity.
nlohmann::json to_json(const ValidationReport& report);

// Writes to_json(report) to `path` through a temporary name (no partial file on failure).
void write_json(const ValidationReport& report, const std::string& path);

}  // namespace kiln::validate
