#include "ops/registry.h"

namespace kiln::ops {

void register_control_flow_ops(OpRegistry& r) { (void)r; }

}  // namespace kiln::ops
