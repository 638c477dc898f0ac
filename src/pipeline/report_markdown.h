// report.md of `kiln pipeline`: the content of report.html as Markdown tables, without the charts, rendered
// from report.json alone (pipeline/report_schema.md): the headline, the machine, per configuration the
// latency table of every variant and peer, accuracy per variant and output, the graph optimization summary,
// skipped variants, notes and the commands to reproduce. A null figure prints as "–".
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace kiln::pipeline {

std::string render_report_markdown(const nlohmann::json& report);

}  // namespace kiln::pipeline
