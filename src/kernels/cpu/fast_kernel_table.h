// The table of fast kernels: which (domain, op, opset versions, element types) each covers, and the factory
// that prepares it for a node. Each kernel family lists its entries at the bottom of its own file and hands
// them out through one function declared here; fast_kernel_table() joins those lists, so adding a kernel is
// adding its file, its entries, one line in fast_kernel_table.cc and its test cases
// (tests/fast_kernel_table_test.cc checks every entry against the reference kernel).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <limits>
#include <memory>
#include <span>

#include "ir/dtype.h"
#include "kernels/cpu/fast_kernels.h"

namespace kiln::kernels::cpu {

// Prepares the kernel for node n of graph g (whose initializers are its constants), or returns nullptr
// when it does not cover this node's attributes or constants.
using FastKernelFactory = std::unique_ptr<FastKernel> (*)(const ir::Node& n, const ir::Graph& g, int64_t opset);
// The same for the kernels whose choices depend on the session's options (the matrix products' precision).
using FastKernelFactoryWithOptions = std::unique_ptr<FastKernel> (*)(const ir::Node& n, const ir::Graph& g,
                                                                      int64_t opset, const FastKernelOptions& options);

// A set of element types, one bit per ir::DType.
constexpr uint64_t dtype_set(std::initializer_list<ir::DType> types) {
  uint64_t bits = 0;
  for (ir::DType t : types) bits |= uint64_t{1} << static_cast<int>(t);
  return bits;
}
constexpr bool dtype_set_has(uint64_t set, ir::DType t) { return (set >> static_cast<int>(t)) & 1u; }

inline constexpr int64_t kLatestOpset = std::numeric_limits<int64_t>::max();

struct FastKernelEntry {
  const char* domain;     // "" for ai.onnx
  const char* op;
  int64_t since_opset;    // the first version of the op (in its domain's opset) whose meaning it implements
  int64_t until_opset;    // the last, inclusive; kLatestOpset: every later one
  uint64_t dtypes;        // element types it computes in (of input 0); others are declined per call
  FastKernelFactory make;  // with default options; for every entry
  FastKernelFactoryWithOptions make_with_options = nullptr;  // where set, used instead of `make`
};

// Per family, in the family's file.
std::span<const FastKernelEntry> matmul_kernel_entries();      // matmul_kernel.cc
std::span<const FastKernelEntry> conv_kernel_entries();        // conv_kernel.cc
std::span<const FastKernelEntry> conv_transpose_kernel_entries();  // conv_transpose_kernel.cc
std::span<const FastKernelEntry> attention_kernel_entries();   // attention_kernel.cc
std::span<const FastKernelEntry> layer_norm_kernel_entries();  // layer_norm_kernel.cc
std::span<const FastKernelEntry> gelu_kernel_entries();        // gelu_kernel.cc
std::span<const FastKernelEntry> softmax_kernel_entries();     // softmax_kernel.cc
std::span<const FastKernelEntry> pool_kernel_entries();        // pool_kernel.cc
std::span<const FastKernelEntry> reduce_kernel_entries();      // reduce_kernel.cc
std::span<const FastKernelEntry> binary_elementwise_kernel_entries();  // binary_elementwise_kernel.cc
std::span<const FastKernelEntry> data_movement_kernel_entries();  // data_movement_kernel.cc
std::span<const FastKernelEntry> resize_kernel_entries();         // resize_kernel.cc
std::span<const FastKernelEntry> recurrent_kernel_entries();  // recurrent_kernel.cc
std::span<const FastKernelEntry> elementwise_chain_kernel_entries();  // elementwise_chain_kernel.cc
std::span<const FastKernelEntry> pad_kernel_entries();         // pad_kernel.cc
std::span<const FastKernelEntry> gather_kernel_entries();      // gather_kernel.cc
std::span<const FastKernelEntry> batch_norm_kernel_entries();  // batch_norm_kernel.cc
std::span<const FastKernelEntry> unary_elementwise_kernel_entries();  // unary_elementwise_kernel.cc
std::span<const FastKernelEntry> comparison_kernel_entries();  // comparison_kernel.cc
std::span<const FastKernelEntry> dynamic_quantization_kernel_entries();  // dynamic_quantization_kernel.cc

// Every entry, in a fixed order; at most one per (domain, op, opset).
std::span<const FastKernelEntry> fast_kernel_table();

// The entry covering (domain, op) at `opset`, or nullptr.
const FastKernelEntry* find_fast_kernel_entry(const std::string& domain, const std::string& op, int64_t opset);

}  // namespace kiln::kernels::cpu
