#include "kernels/cpu/fast_kernels.h"

#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/fast_kernel_table.h"

namespace kiln::kernels::cpu {

std::string FastKernel::implementation() const { return isa_name(selected_isa()); }

std::unique_ptr<FastKernel> make_fast_kernel(const ir::Node& n, const ir::Graph& g, int64_t opset,
                                             const FastKernelOptions& options) {
  const FastKernelEntry* e = find_fast_kernel_entry(n.domain, n.op_type, opset);
  if (!e) return nullptr;
  std::unique_ptr<FastKernel> k = e->make_with_options ? e->make_with_options(n, g, opset, options) : e->make(n, g, opset);
  if (k) k->set_name(e->op);
  return k;
}

}  // namespace kiln::kernels::cpu
