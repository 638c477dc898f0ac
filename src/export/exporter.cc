#include "export/exporter.h"

#include "common/error.h"
#include "export/graph_builder.h"

namespace kiln::exporter {

ExportResult export_model(const TransformerConfig& config, WeightSource& weights, const ExportOptions& options) {
  config.validate();
  if (options.opset < 13 || options.opset > 21)
    fail("--opset ", options.opset, " is not supported by the exporter (13 to 21)");
  ExportResult result;
  ir::Model& m = result.model;
  m.ir_version = ir_version_for(options.opset);
  m.opset_imports[""] = options.opset;
  m.producer_name = "kiln";
  m.producer_version = "0.1.0";
  m.graph.name = std::string(family_name(config.family)) + "_graph";
  result.has_pooler = config.pooler && weights.has("pooler.dense.weight");
  if (config.is_vision())
    write_vit_graph(config, weights, options, m.graph, result.has_pooler);
  else
    write_bert_graph(config, weights, options, m.graph, result.has_pooler);
  result.skipped_tensors = weights.unused();

  auto meta = [&](const std::string& k, const std::string& v) { m.metadata_props.emplace_back(k, v); };
  meta("kiln.export.family", family_name(config.family));
  meta("kiln.export.config", config.name);
  meta("kiln.export.weights", options.weights_description);
  meta("kiln.export.hidden_size", std::to_string(config.hidden_size));
  meta("kiln.export.num_hidden_layers", std::to_string(config.num_layers));
  meta("kiln.export.num_attention_heads", std::to_string(config.num_heads));
  if (!config.is_vision()) meta("kiln.export.vocab_size", std::to_string(config.vocab_size));
  return result;
}

}  // namespace kiln::exporter
