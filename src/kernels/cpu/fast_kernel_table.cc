#include "kernels/cpu/fast_kernel_table.h"

#include <string>
#include <vector>

namespace kiln::kernels::cpu {

std::span<const FastKernelEntry> fast_kernel_table() {
  static const std::vector<FastKernelEntry> table = [] {
    std::vector<FastKernelEntry> all;
    for (auto family :
         {matmul_kernel_entries, conv_kernel_entries, conv_transpose_kernel_entries, attention_kernel_entries,
          layer_norm_kernel_entries, gelu_kernel_entries, softmax_kernel_entries, pool_kernel_entries,
          reduce_kernel_entries, binary_elementwise_kernel_entries, data_movement_kernel_entries,
          resize_kernel_entries, recurrent_kernel_entries, elementwise_chain_kernel_entries, pad_kernel_entries,
          gather_kernel_entries, batch_norm_kernel_entries,
          unary_elementwise_kernel_entries, comparison_kernel_entries,
          dynamic_quantization_kernel_entries})
      for (const FastKernelEntry& e : family()) all.push_back(e);
    return all;
  }();
  return table;
}

const FastKernelEntry* find_fast_kernel_entry(const std::string& domain, const std::string& op, int64_t opset) {
  const bool onnx = ir::is_default_domain(domain);
  for (const FastKernelEntry& e : fast_kernel_table())
    if (op == e.op && (onnx ? *e.domain == '\0' : domain == e.domain) && e.since_opset <= opset &&
        opset <= e.until_opset)
      return &e;
  return nullptr;
}

}  // namespace kiln::kernels::cpu
