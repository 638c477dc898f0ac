#include "ops/registry.h"

namespace kiln::ops {

void register_recurrent_ops(OpRegistry& r) { (void)r; }

}  // namespace kiln::ops
