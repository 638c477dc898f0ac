// report.html of `kiln pipeline`: one self-contained page rendered from report.json alone (the schema is
// pipeline/report_schema.md). Inline CSS, charts as inline SVG drawn by pipeline/svg_chart.h, no script,
// no network (a Content-Security-Policy forbids any fetch). Every string from the report is escaped, and a
// null or missing figure prints as "–" or "n/a": any report the pipeline writes renders, including one
// with skipped variants, no peers, no chosen variant, several configurations or no sequence dim.
//
// The page, top to bottom: the headline and the "use this" line; the machine, the model and the settings;
// per configuration a latency distribution chart (every variant and peer), a speed-up chart against the
// baseline and the latency table; file sizes; accuracy per variant and output; the graph optimization
// summary; skipped variants; notes; the commands to reproduce.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace kiln::pipeline {

std::string render_report_html(const nlohmann::json& report);

}  // namespace kiln::pipeline
