// The additive attention mask com.microsoft.Attention (and QAttention) applies, built from its mask_index input and its
// unidirectional attribute exactly as the reference kernel (and ONNX Runtime) builds it, for the fast
// kernel to share: (B, S, T) floats, 0 where a key is attended, empty when nothing is masked. Fails, as
// the reference does, on a mask_index of an unsupported shape or type.
#pragma once

#include <cstdint>
#include <vector>

#include "ops/op_def.h"

namespace kiln::ops::contrib {

// mask_input: the mask_index input's place (3 in Attention, 5 in QAttention).
std::vector<float> attention_mask(const KernelContext& ctx, int64_t batch, int64_t seq, size_t mask_input = 3);

}  // namespace kiln::ops::contrib
