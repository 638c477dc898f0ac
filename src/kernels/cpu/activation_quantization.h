// Activations quantized to uint8 at run time, as DynamicQuantizeLinear defines it (kernels/reference/
// dynamic_quantization.h): the data's range gives a scale and zero point, then each value is
// round_half_even(x / scale) + zero point, saturated. The int8 kernels (DynamicQuantizeMatMul,
// QAttention's input, DynamicQuantizeLinear itself) share these, so every path quantizes identically.
// AVX-512 where kiln's kernels run at that level, else portable; the same results either way.
#pragma once

#include <cstdint>

#include "kernels/reference/dynamic_quantization.h"

namespace kiln::kernels::cpu {

// y[i] = the quantized x[i] for `count` values; returns the scale and zero point used.
ops::DynamicQuantization quantize_activations_u8(const float* x, int64_t count, uint8_t* y);

}  // namespace kiln::kernels::cpu
