// The fast kernel for 2-D float32 convolutions with constant weights: ONNX Conv, com.microsoft.FusedConv
// and ai.kiln.FusedConv (Conv, an optional residual Z added, then an activation) through PackedConv, the
// weights (and bias) packed once when the kernel is made. The kernel absorbs W and B (the session then
// releases them, so the weights are held once) and answers every call: an invalid one fails with the
// reference kernel's message.
#pragma once

#include <memory>

#include "kernels/cpu/fast_kernels.h"

namespace kiln::kernels::cpu {

// nullptr when the node is outside what the kernel covers: not a 2-D convolution, W or B not float32
// initializers, or attributes (or a FusedConv activation) the reference kernel would refuse; the
// reference kernel then runs it.
std::unique_ptr<FastKernel> make_conv_kernel(const ir::Node& n, const ir::Graph& g, int64_t opset);

}  // namespace kiln::kernels::cpu
