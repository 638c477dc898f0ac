// Shared pieces of the com.microsoft contrib ops (kernels/reference/contrib_*.cc): ONNX Runtime's fused
// operators, declared with exactly ONNX Runtime's names, inputs, attributes and defaults, so that a model
// kiln's optimizer writes runs in both kiln and ONNX Runtime. Each family registers from its own file.
// The reference kernels take float32 only (ONNX Runtime also has float16 kernels for some of them).
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <vector>

#include "ir/tensor.h"
#include "ops/op_def.h"
#include "ops/registry.h"

namespace kiln::ops::contrib {

inline constexpr const char* kMsDomain = "com.microsoft";
// kiln's own ops (ai.kiln), which the optimizer writes for target kiln only.
inline constexpr const char* kKilnDomain = "ai.kiln";
// Every op here is version 1 of com.microsoft and stays valid in later versions of the domain.
inline constexpr int64_t kMsMinOpset = 1;
inline constexpr int64_t kMsMaxOpset = std::numeric_limits<int64_t>::max();

void register_activation_ops(OpRegistry& r);     // Gelu, FastGelu, BiasGelu
void register_normalization_ops(OpRegistry& r);  // SkipLayerNormalization, SkipSimplifiedLayerNormalization,
                                                 // EmbedLayerNormalization; SimplifiedLayerNormalization
                                                 // (which ONNX Runtime declares in the onnx domain)
void register_attention_ops(OpRegistry& r);      // Attention
void register_fused_matmul_ops(OpRegistry& r);   // FusedMatMul
void register_fused_conv_ops(OpRegistry& r);     // FusedConv
void register_elementwise_chain_ops(OpRegistry& r);  // ai.kiln.ElementwiseChain
void register_pool_ops(OpRegistry& r);           // ai.kiln.MaxPool, AveragePool (channels-last pooling)

// Fail naming the node unless the element type is the one the reference kernel takes; `what` names the
// input ("input X").
void require_float32(const NodeView& node, ir::DType dtype, const char* what);
void require_int32(const NodeView& node, ir::DType dtype, const char* what);

// The same checks at inference time, for an input whose element type is known.
void require_float32_input(const InferenceContext& ctx, size_t input, const char* what);
void require_int32_input(const InferenceContext& ctx, size_t input, const char* what);

// Fails unless `t` is a 1-D tensor of `n` values (`what` names it: "bias").
void require_vector(const NodeView& node, const ir::Tensor& t, int64_t n, const char* what);

// ---- Channels-last layout (ai.kiln ops with a channels_last attribute) ----

// The node's channels_last attribute (ai.kiln only; default 0), checked to be 0 or 1.
bool channels_last(const NodeView& node);

// The axis order taking channels-last [N, spatial..., C] to [N, C, spatial...], or back (`to_last`).
std::vector<int64_t> channel_perm(size_t rank, bool to_last);

// ai.kiln.FusedConv's channel scale S: float32, [N, 1..., C] for channels-last X [N, spatial..., C]
// (kernels/reference/contrib_fused_conv.cc); fails with the reference's message otherwise.
void require_channel_scale(const NodeView& node, const ir::Tensor& x, const ir::Tensor& s);

// s with its dims permuted: out[i] = s[perm[i]].
ir::Shape permuted(const ir::Shape& s, const std::vector<int64_t>& perm);

// Shape of input i when its rank is known.
std::optional<ir::Shape> input_shape(const InferenceContext& ctx, size_t i);

}  // namespace kiln::ops::contrib
