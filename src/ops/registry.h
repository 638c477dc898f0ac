// The table of every operator kiln accepts. Built once from the op families' register functions.
#pragma once

#include <string>
#include <vector>

#include "ops/op_def.h"

namespace kiln::ops {

class OpRegistry {
 public:
  static const OpRegistry& instance();

  void add(OpDef def);
  // The declaration covering (domain, name) at this opset; nullptr when kiln does not support it.
  const OpDef* find(const std::string& domain, const std::string& name, int64_t opset) const;
  // True when some opset of (domain, name) is declared (to tell "unknown op" from "unsupported opset").
  bool knows(const std::string& domain, const std::string& name) const;
  bool knows_domain(const std::string& domain) const;
  const std::vector<OpDef>& all() const { return defs_; }

 private:
  std::vector<OpDef> defs_;
};

// Highest ai.onnx opset kiln knows the semantics of; models importing a newer one are refused. 27, ONNX
// 1.22's (ONNX Runtime 1.31 stops at 26). Opsets 22 to 27 changed existing ops by the element types they
// accept (the narrow types, float8, int4, float4, int2 ...: Cast, CastLike, QuantizeLinear and
// DequantizeLinear convert them, data movement ops move their bytes, arithmetic refuses them), by
// attributes (QuantizeLinear's precision and DequantizeLinear's output_dtype, 23; Cast's round_mode for
// float8e8m0, 24) and Range's float16 compute type (27); they added Attention, RMSNormalization,
// RotaryEmbedding (23), Swish, TensorScatter (24), BitCast, CumProd (26), LinearAttention and
// CausalConvWithState (27).
inline constexpr int64_t kMaxOnnxOpset = 27;

// One register function per op family, each in kernels/reference/<family>.cc.
void register_elementwise_ops(OpRegistry& r);   // arithmetic, math, logic, comparison, activations, Cast
void register_tensor_ops(OpRegistry& r);        // shape and data movement: Reshape, Concat, Gather, Slice, Pad ...
void register_reduction_ops(OpRegistry& r);     // Reduce*, ArgMax/Min, softmax family, normalizations, losses
void register_nn_ops(OpRegistry& r);            // MatMul, Gemm, Conv, ConvTranspose, pooling, Resize, Einsum ...
void register_quantization_ops(OpRegistry& r);  // QuantizeLinear ... QLinearConv
void register_recurrent_ops(OpRegistry& r);     // RNN, GRU, LSTM
void register_misc_ops(OpRegistry& r);          // signal (DFT, STFT, windows), random, strings, Det, Unique ...
void register_control_flow_ops(OpRegistry& r);  // If, Loop, Scan
void register_sequence_ops(OpRegistry& r);      // Sequence*, Optional*, SplitToSequence, ConcatFromSequence
void register_contrib_ops(OpRegistry& r);       // ONNX Runtime's com.microsoft ops that kiln's optimizer writes

}  // namespace kiln::ops
