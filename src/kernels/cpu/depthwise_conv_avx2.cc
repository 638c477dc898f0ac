// The AVX2 + FMA build of depthwise_conv.h: depthwise_conv_simd.h over avx2::F32x8, 8 channels a vector, the
// channel tail under a lane mask. depthwise_conv_rows_for() hands it out only after the CPU check.
#include "kernels/cpu/simd_avx2.h"  // first: it includes immintrin.h

#define KILN_SIMD_TARGET KILN_TARGET_AVX2
#include "kernels/cpu/depthwise_conv_simd.h"

namespace kiln::kernels::cpu {

DepthwiseConvRows avx2_depthwise_conv_rows() { return simd::depthwise_conv_rows<avx2::F32x8>; }

}  // namespace kiln::kernels::cpu
