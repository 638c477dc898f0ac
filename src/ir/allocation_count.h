// How many times tensor storage has been allocated from the heap in this process (ir::Tensor's
// allocating constructor; views, arena tensors and copies that share storage do not count). Tests use
// it to check that a steady-state run takes its tensors from the memory plan's arena.
#pragma once

#include <cstdint>

namespace kiln::ir {

uint64_t tensor_storage_allocations();

}  // namespace kiln::ir
