// The additive attention mask com.microsoft.Attention (and QAttention) applies, built from its mask_index input and its
// unidirectional attribute exactly as the reference kernel (and ONNX Runtime) builds it, for the fast
// kernel to share: (B, S, T) floats, 0 where a key is attended, empty when nothing is masked. Fails, as
// the reference does, on a mask_index of an unsupported shape or type.
#pragma once

#include <cstdint>
#include <vector>

#include "ops/op_def.h"

namespace kiln::ops::contrib {

// Where the inputs the fast kernel reads itself sit: mask_index in Attention and QAttention, and
// QAttention's input_scale and input_zero_point (ONNX Runtime's order).
inline constexpr size_t kAttentionMaskIndex = 3;
inline constexpr size_t kQAttentionInputScale = 3;
inline constexpr size_t kQAttentionMaskIndex = 5;
inline constexpr size_t kQAttentionInputZeroPoint = 6;

// mask_input: the mask_index input's place (kAttentionMaskIndex or kQAttentionMaskIndex).
std::vector<float> attention_mask(const KernelContext& ctx, int64_t batch, int64_t seq, size_t mask_input);

}  // namespace kiln::ops::contrib
