// Every graph pass, one per file (passes/<name>.cc). Their order per level is in optimizer.cc.
#pragma once

#include "ir/graph.h"
#include "passes/pass.h"

namespace kiln::passes {

// ---- basic: exact rewrites that never change numerics ----
bool eliminate_dead_code(ir::Graph& g, PassContext& ctx);
// One form for what exporters spell several ways (Div by constant, Sub, constant operand order, Cast chains).
bool canonicalize(ir::Graph& g, PassContext& ctx);
bool eliminate_identities(ir::Graph& g, PassContext& ctx);
bool fold_constants(ir::Graph& g, PassContext& ctx);
bool fold_shapes(ir::Graph& g, PassContext& ctx);
bool eliminate_common_subexpressions(ir::Graph& g, PassContext& ctx);
bool simplify_transpose_reshape_chains(ir::Graph& g, PassContext& ctx);
bool fold_conv_batch_norm(ir::Graph& g, PassContext& ctx);
bool fuse_matmul_add_into_gemm(ir::Graph& g, PassContext& ctx);

// ---- extended: fusions into ONNX Runtime's contrib ops (float rounding may differ slightly) ----
bool fuse_qdq_matmul(ir::Graph& g, PassContext& ctx);               // quantize_static's QDQ MatMuls: before folding
bool fuse_dynamic_quantize_matmul(ir::Graph& g, PassContext& ctx);  // quantize_dynamic's int8 MatMuls
bool fuse_hard_swish(ir::Graph& g, PassContext& ctx);
bool fuse_conv_activation(ir::Graph& g, PassContext& ctx);
bool fuse_conv_add_activation(ir::Graph& g, PassContext& ctx);
bool fuse_layer_norm(ir::Graph& g, PassContext& ctx);
bool fuse_embed_layer_norm(ir::Graph& g, PassContext& ctx);
bool fuse_attention(ir::Graph& g, PassContext& ctx);
bool fuse_packed_attention(ir::Graph& g, PassContext& ctx);  // nn.MultiheadAttention, sequence-first
bool fuse_gelu(ir::Graph& g, PassContext& ctx);
bool fuse_bias_gelu(ir::Graph& g, PassContext& ctx);
bool fuse_skip_layer_norm(ir::Graph& g, PassContext& ctx);

// ---- all: layout changes for kiln's kernels (target kiln) ----
bool convert_convs_to_channels_last(ir::Graph& g, PassContext& ctx);
bool push_transposes(ir::Graph& g, PassContext& ctx);

// ---- finishing (extended, target kiln): once, after the rest reached their fixed point ----
bool fuse_elementwise_chains(ir::Graph& g, PassContext& ctx);
bool fuse_channel_scale_into_conv(ir::Graph& g, PassContext& ctx);

}  // namespace kiln::passes
