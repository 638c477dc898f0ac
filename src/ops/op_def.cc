#include "ops/op_def.h"

namespace kiln::ops {

const ir::Type& InferenceContext::input_type(size_t i) const {
  if (!has_input(i)) fail("input ", i, " is missing");
  return *input_types_[i];
}

const ir::Datum& KernelContext::input_datum(size_t i) const {
  if (!has_input(i)) fail("input ", i, " is missing");
  return *inputs_[i];
}

const ir::Tensor& KernelContext::input(size_t i) const {
  const ir::Datum& d = input_datum(i);
  if (!d.is_tensor()) fail("input ", i, " (\"", node().inputs[i], "\") is not a tensor");
  return d.tensor;
}

ir::Tensor KernelContext::make_tensor(ir::DType dtype, ir::Dims shape) const {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) fail("negative dimension ", d, " in output shape ", ir::to_string(shape));
    if (__builtin_mul_overflow(n, d, &n)) fail("output shape ", ir::to_string(shape), " overflows int64");
  }
  int64_t bytes = 0;
  if (__builtin_mul_overflow(n, static_cast<int64_t>(ir::dtype_size(dtype)), &bytes) ||
      bytes > limits_.max_tensor_bytes)
    fail("output of shape ", ir::to_string(shape), " (", dtype_name(dtype),
         ") would need more than the memory budget of ", limits_.max_tensor_bytes, " bytes");
  if (allocator_ && dtype != ir::DType::kString)
    return allocator_->allocate(dtype, std::move(shape), static_cast<size_t>(bytes), zero_fill_);
  return ir::Tensor(dtype, std::move(shape));
}

std::vector<ir::Datum> KernelContext::run_subgraph(const ir::Graph& g, std::vector<ir::Datum> inputs) const {
  const SubgraphRunner* run = borrowed_run_subgraph_ ? borrowed_run_subgraph_ : &run_subgraph_;
  if (!*run) fail("subgraphs cannot run here");
  return (*run)(g, std::move(inputs));
}

}  // namespace kiln::ops
