#include "ops/registry.h"

namespace kiln::ops {

void register_tensor_ops(OpRegistry& r) { (void)r; }

}  // namespace kiln::ops
