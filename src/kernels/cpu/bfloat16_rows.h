// Rows of float32 rounded to bfloat16, the activations a bfloat16 matrix product reads (PackedMatMul with
// spec.bf16): oneDNN 2.6 multiplies bf16 by bf16 only, so A is rounded once per call, into the caller's
// buffer, before the product. The rounding is common/half.h's float_to_bfloat16_bits (to nearest, ties to
// even; a NaN stays a quiet NaN; infinities and subnormals kept), bit for bit, on every ISA.
#pragma once

#include <cstdint>

namespace kiln::kernels::cpu {

// y[r * cols + c] = bf16(x[r * ldx + c]) for r < rows, c < cols: x has rows ldx >= cols floats apart,
// y is dense. Split across OpenMP threads when large enough and not already inside a parallel region.
void round_rows_to_bfloat16(int64_t rows, int64_t cols, const float* x, int64_t ldx, uint16_t* y);

}  // namespace kiln::kernels::cpu
