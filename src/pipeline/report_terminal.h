// The table `kiln pipeline` prints when it ends: per batch x seq configuration, one row per variant and
// peer (p50, p99, throughput, size, speed-up over the baseline, accuracy against it), the chosen one marked,
// then the headline and where the report is. Rendered from report.json alone (pipeline/report_schema.md).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace kiln::pipeline {

std::string format_terminal_table(const nlohmann::json& report);

}  // namespace kiln::pipeline
