// The AVX2 + FMA build of vector_kernels.h: the algorithms of vector_kernels_simd.h over avx2::F32x8, 8
// floats a vector, row tails with maskload / maskstore. vector_kernels_for() hands this table out only
// after the CPU check.
#include "kernels/cpu/simd_avx2.h"

#define KILN_SIMD_TARGET KILN_TARGET_AVX2
#include "kernels/cpu/vector_kernels_simd.h"

namespace kiln::kernels::cpu {

const VectorKernelTable& avx2_vector_kernels() {
  static constexpr VectorKernelTable kTable = simd::vector_kernel_table<avx2::F32x8>(Isa::kAvx2);
  return kTable;
}

}  // namespace kiln::kernels::cpu
