#include "kernels/reference/tensor_util.h"

namespace kiln::ops::tensor_detail {

void register_index_ops(OpRegistry& r) { (void)r; }

}  // namespace kiln::ops::tensor_detail
