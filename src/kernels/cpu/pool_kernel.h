// Fast kernels for the pooling a CNN runs between its convolutions: 2-D float32 MaxPool (without the
// Indices output) and GlobalAveragePool, over NCHW planes in parallel. MaxPool gives the reference's
// results exactly (the same window arithmetic, the same tap order for its NaN handling); the average is
// summed in double, within an ulp of the reference's. Both at a small fraction of the reference's time,
// which converts every element to double first.
#pragma once

#include <memory>

#include "kernels/cpu/fast_kernels.h"

namespace kiln::kernels::cpu {

// For MaxPool and GlobalAveragePool (default domain); nullptr for other nodes and for attributes the
// reference kernel would refuse.
std::unique_ptr<FastKernel> make_pool_kernel(const ir::Node& n, int64_t opset);

}  // namespace kiln::kernels::cpu
