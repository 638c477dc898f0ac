// Builds the ONNX graph of a BERT, DistilBERT or ViT model from its config and a source of weights,
// the graph torch.onnx.export writes for Hugging Face's BertModel / DistilBertModel / ViTModel.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "export/transformer_config.h"
#include "export/weight_source.h"
#include "ir/graph.h"

namespace kiln::exporter {

struct ExportOptions {
  int64_t opset = 14;  // 13..21; LayerNormalization from 17
  // Called after each encoder layer is written: (layers done, layers in all).
  std::function<void(int64_t, int64_t)> progress;
  // Recorded in the model's metadata: where the weights came from ("random seed 0", a file name).
  std::string weights_description;
};

struct ExportResult {
  ir::Model model;
  std::vector<std::string> skipped_tensors;  // checkpoint tensors that are not part of the model
  bool has_pooler = true;
};

ExportResult export_model(const TransformerConfig& config, WeightSource& weights, const ExportOptions& options = {});

// The graphs of each family (exporter.cc dispatches).
void write_bert_graph(const TransformerConfig& config, WeightSource& weights, const ExportOptions& options,
                      ir::Graph& graph, bool pooler);
void write_vit_graph(const TransformerConfig& config, WeightSource& weights, const ExportOptions& options,
                     ir::Graph& graph, bool pooler);

}  // namespace kiln::exporter
