// The AVX-512 (F, BW, DQ, VL) build of depthwise_conv.h: depthwise_conv_simd.h over avx512::F32x16, 16
// channels a vector, the channel tail under a mask register. depthwise_conv_rows_for() hands it out only after
// the CPU check.
#include "kernels/cpu/simd_avx512.h"  // first: it includes immintrin.h

#define KILN_SIMD_TARGET KILN_TARGET_AVX512
#include "kernels/cpu/depthwise_conv_simd.h"

namespace kiln::kernels::cpu {

DepthwiseConvRows avx512_depthwise_conv_rows() { return simd::depthwise_conv_rows<avx512::F32x16>; }

}  // namespace kiln::kernels::cpu
