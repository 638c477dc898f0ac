#include "kernels/reference/elementwise_util.h"

namespace kiln::ops::elementwise {

void register_cast_ops(OpRegistry& r) { (void)r; }

}  // namespace kiln::ops::elementwise
