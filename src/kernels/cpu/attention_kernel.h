// The fast kernel for com.microsoft.Attention with packed QKV weights and bias as initializers and no
// past state or attention_bias: the QKV projection through PackedMatMul with the weights packed once (and
// released from the model: the kernel answers every call), then per (batch, head, block of queries) the
// tiled attention of kernels/cpu/attention_tile.h, which never holds more than one tile of scores. The raw
// (batch, sequence) mask kiln's optimizer writes is expanded per batch row; any other mask_index (lengths,
// 3-D) and unidirectional use the reference's mask builder.
#pragma once

#include <memory>

#include "kernels/cpu/fast_kernels.h"

namespace kiln::kernels::cpu {

// nullptr when the node's attributes or constants are outside what the kernel covers.
std::unique_ptr<FastKernel> make_attention_kernel(const ir::Node& n, const ir::Graph& g, int64_t opset);

}  // namespace kiln::kernels::cpu
