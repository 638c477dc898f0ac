// MatMul and Gemm with B computed at run time (matmul_kernel.cc hands them the nodes whose B is not a
// constant it can pack).
#pragma once

#include <memory>

#include "kernels/cpu/fast_kernels.h"

namespace kiln::kernels::cpu {

// MatMul of [..., M, K] x [..., K, N], batch dims broadcasting; declines 1-D operands.
std::unique_ptr<FastKernel> make_batched_matmul_kernel();

// Gemm: alpha op(A) op(B) + beta C on 2-D A and B, C broadcasting to [M, N].
std::unique_ptr<FastKernel> make_dynamic_gemm_kernel(bool trans_a, bool trans_b, float alpha, float beta);

}  // namespace kiln::kernels::cpu
