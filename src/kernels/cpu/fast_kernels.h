// Fast kernels: prepared once per node when a Session is created (weights packed, attributes read) and
// used by the executor instead of the reference kernel whenever they cover the call. Which ops have one,
// at which opsets and element types, is the table in fast_kernel_table.h, whose entries sit beside each
// kernel (matmul_kernel.cc, conv_kernel.cc, attention_kernel.cc, layer_norm_kernel.cc, gelu_kernel.cc,
// softmax_kernel.cc, pool_kernel.cc, reduce_kernel.cc, binary_elementwise_kernel.cc, data_movement_kernel.cc,
// resize_kernel.cc, pad_kernel.cc, gather_kernel.cc, batch_norm_kernel.cc).
//
// A fast kernel checks the call (element types, shapes, which optional outputs are read) before it
// touches anything, and declines what it does not cover; the reference kernel then runs, so a fast
// kernel never changes what a model can do, only how fast the common cases go.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "ops/op_def.h"

namespace kiln::kernels::cpu {

class FastKernel {
 public:
  virtual ~FastKernel() = default;
  // Computes the node's outputs and returns true, or returns false having set nothing.
  virtual bool run(ops::KernelContext& ctx) const = 0;
  // Constant inputs the kernel keeps its own copy of (packed weights) and never reads at run time. It
  // then answers every call itself (failing on invalid input as the reference would) and never
  // declines, so the executor may release these initializers: the weights are not held twice.
  virtual std::vector<size_t> absorbed_inputs() const { return {}; }
  // Inputs whose memory output 0 may take when nothing reads them afterwards (the memory plan then
  // gives both one buffer): the kernel reads each element of such an input before it writes the same
  // element of output 0, and no other element after that. Elementwise and row-wise kernels.
  virtual std::vector<size_t> in_place_inputs() const { return {}; }

  // For profiles: the kernel's name in the fast-kernel table ("matmul", "layer_norm", ...), and the code
  // that runs it on this machine ("avx512", "onednn brg:avx512_core", ...; by default kiln's selected ISA).
  const std::string& name() const { return name_; }
  void set_name(std::string name) { name_ = std::move(name); }
  virtual std::string implementation() const;

 private:
  std::string name_;
};

// What a session lets the fast kernels trade for speed (runtime::SessionOptions::precision).
struct FastKernelOptions {
  // Matrix products in bfloat16 where the CPU computes it faster: those with constant weights (MatMul,
  // Gemm, Attention's projections: MatMulSpec::bf16) and the attention's own (Attention, QAttention:
  // AttentionHeadArgs::bf16). About 3 significant digits per operand, float32 sums.
  bool bf16_matmul = false;
};

// The fast kernel for node `n` of graph `g` (whose initializers are its constants), or nullptr when there
// is none for this node.
std::unique_ptr<FastKernel> make_fast_kernel(const ir::Node& n, const ir::Graph& g, int64_t opset,
                                             const FastKernelOptions& options = {});

}  // namespace kiln::kernels::cpu
