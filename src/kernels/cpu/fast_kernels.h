// Fast kernels for the nodes a transformer spends its time in, prepared once per node when a Session is
// created (weights packed for oneDNN, attributes read) and used by the executor instead of the
// reference kernel whenever they cover the call:
//
//   MatMul / Gemm with a float32 initializer B   -> oneDNN matmul, B packed once (PackedMatMul)
//   com.microsoft.Attention (packed QKV)         -> packed QKV projection, then per (batch, head) the
//                                                   scores, masked softmax and x V, heads in parallel
//   LayerNormalization, SkipLayerNormalization   -> vector_kernels layer_norm_f32
//   Gelu (ONNX 20 and com.microsoft), FastGelu,  -> vector_kernels gelu_f32
//   BiasGelu
//   Conv / FusedConv with float32 initializer W  -> oneDNN convolution, W packed once (PackedConv)
//   MaxPool (2-D, no Indices), GlobalAveragePool -> pool_kernel.cc
//
// A fast kernel checks the call (element types, shapes, which optional outputs are read) before it
// touches anything, and declines what it does not cover; the reference kernel then runs, so a fast
// kernel never changes what a model can do, only how fast the common cases go. The (domain, op) ->
// factory table is make_fast_kernel's, in fast_kernels.cc.
#pragma once

#include <memory>
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
};

// The fast kernel for node `n` of graph `g` (whose initializers are its constants), or nullptr when there
// is none for this node.
std::unique_ptr<FastKernel> make_fast_kernel(const ir::Node& n, const ir::Graph& g, int64_t opset);

}  // namespace kiln::kernels::cpu
