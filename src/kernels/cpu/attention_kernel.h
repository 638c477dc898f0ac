// The fast kernel for com.microsoft.Attention as kiln's optimizer writes it (packed QKV weights and bias
// as initializers, bidirectional, an optional raw [batch, seq] int32 mask): the QKV projection through
// oneDNN with the weights packed once, then per (batch, head) the scores, the masked softmax and x V.
#pragma once

#include <memory>

#include "kernels/cpu/fast_kernels.h"

namespace kiln::kernels::cpu {

// nullptr when the node's attributes or constants are outside what the kernel covers.
std::unique_ptr<FastKernel> make_attention_kernel(const ir::Node& n, const ir::Graph& g, int64_t opset);

}  // namespace kiln::kernels::cpu
