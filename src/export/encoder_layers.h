// The subgraphs an encoder-only transformer is made of, written op for op as torch.onnx.export writes
// Hugging Face's modules at opset 14: MatMul + Add linear layers, the ReduceMean/Sub/Pow/Sqrt/Div layer
// norm (LayerNormalization from opset 17), erf GELU, and per-head attention reshaped with Shape-derived
// sizes. The optimizer has to fuse what real exporters produce, so this writes no shortcut forms.
#pragma once

#include <string>

#include "export/graph_builder.h"
#include "export/transformer_config.h"
#include "export/weight_source.h"

namespace kiln::exporter {

// Hugging Face parameter prefixes of one encoder layer, e.g. "encoder.layer.3.attention.self.query".
struct LayerParams {
  std::string query, key, value, attention_output;
  std::string intermediate, output;
  std::string norm_1, norm_2;  // post-norm: after attention / after FFN; pre-norm: before attention / before FFN
};

// The parameter prefixes of encoder layer `i` as Hugging Face names them for each family.
LayerParams layer_params(Family family, int64_t i);

class EncoderWriter {
 public:
  EncoderWriter(GraphBuilder& b, WeightSource& w, const TransformerConfig& c, int64_t opset)
      : b_(b), w_(w), c_(c), opset_(opset) {}

  // x @ W^T + b for an nn.Linear with HF weight [out, in]; node scope from the parameter prefix.
  std::string linear(const std::string& x, const std::string& param, int64_t in, int64_t out, bool bias = true);
  std::string layer_norm(const std::string& x, const std::string& param);
  std::string activation(const std::string& x);
  // Multi-head self-attention with its output projection; `mask` is the additive [batch,1,1,seq] mask or "".
  std::string attention(const std::string& x, const LayerParams& p, const std::string& mask);
  // BERT's post-norm layer: LN(x + attn(x)), then LN(h + ffn(h)).
  std::string post_norm_layer(const std::string& x, const LayerParams& p, const std::string& mask);
  // ViT's pre-norm layer: h = x + attn(LN(x)), then h + ffn(LN(h)).
  std::string pre_norm_layer(const std::string& x, const LayerParams& p);
  // tanh(x[:, 0] @ W^T + b), written as torch writes BertPooler: Gather, Gemm(transB), Tanh.
  void pooler(const std::string& x, const std::string& param, const std::string& output);

  // Helpers for dynamic shapes: dim `i` of x as a scalar, and a scalar as a 1-element tensor.
  std::string dim(const std::string& x, int64_t i);
  std::string unsqueeze(const std::string& x, std::vector<int64_t> axes);
  std::string reduce_mean_last(const std::string& x);

  GraphBuilder& builder() { return b_; }

 private:
  std::string heads(const std::string& x);  // [B,S,hidden] -> [B,S,heads,head_size]
  std::string ffn(const std::string& x, const LayerParams& p);

  GraphBuilder& b_;
  WeightSource& w_;
  const TransformerConfig& c_;
  int64_t opset_;
};

// "encoder.layer.3.attention.self.query" -> "encoder/layer.3/attention/self/query", the node scope torch
// gives a module.
std::string module_scope(const std::string& param);

}  // namespace kiln::exporter
