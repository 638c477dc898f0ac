// The AVX-512 (F, BW, DQ, VL) build of vector_kernels.h: the algorithms of vector_kernels_simd.h over
// avx512::F32x16, 16 floats a vector, row tails with masked loads and stores. vector_kernels_for() hands
// this table out only after the CPU check.
#include "kernels/cpu/simd_avx512.h"  // first: it includes immintrin.h under a diagnostic pragma

#define KILN_SIMD_TARGET KILN_TARGET_AVX512
#include "kernels/cpu/vector_kernels_simd.h"

namespace kiln::kernels::cpu {

const VectorKernelTable& avx512_vector_kernels() {
  static constexpr VectorKernelTable kTable = simd::vector_kernel_table<avx512::F32x16>(Isa::kAvx512);
  return kTable;
}

}  // namespace kiln::kernels::cpu
