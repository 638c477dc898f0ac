// Shared pieces of the nn op family (kernels/reference/nn*.cc): the per-file register functions,
// element conversion to and from double, and the sliding-window geometry that Conv, ConvTranspose
// and the pooling ops have in common.
#pragma once

#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "ir/shape.h"
#include "ir/tensor.h"
#include "ops/op_def.h"
#include "ops/registry.h"

namespace kiln::ops::nn {

void register_matmul_ops(OpRegistry& r);       // MatMul, Gemm
void register_conv_ops(OpRegistry& r);         // Conv, ConvTranspose
void register_pool_ops(OpRegistry& r);         // MaxPool, AveragePool, LpPool, Global*Pool, MaxUnpool
void register_resize_ops(OpRegistry& r);       // Resize, Upsample
void register_grid_sample_ops(OpRegistry& r);  // GridSample
void register_einsum_ops(OpRegistry& r);       // Einsum
void register_detection_ops(OpRegistry& r);    // RoiAlign, MaxRoiPool, NonMaxSuppression

inline constexpr int64_t kNoMaxOpset = std::numeric_limits<int64_t>::max();

// Element-type sets named as the ONNX spec's type constraints.
extern const std::initializer_list<ir::DType> kFloatTypes;        // float16, bfloat16, float, double
extern const std::initializer_list<ir::DType> kFloatAndIntTypes;  // floats and the 32/64-bit ints
extern const std::initializer_list<ir::DType> kNumericTypes;      // every number type (no bool)

// Fails naming the node when `dtype` is not in `allowed`; `what` names the input ("input X").
void require_dtype(const NodeView& node, ir::DType dtype, std::initializer_list<ir::DType> allowed,
                   const std::string& what);

// All elements of a numeric tensor widened to double (exact for every type up to 32-bit ints).
std::vector<double> to_doubles(const ir::Tensor& t);
// Writes v into t, rounding once per element to t's type. Integer types truncate toward zero and
// saturate (NaN becomes 0), as numpy's astype does for in-range values, so nothing is undefined.
void store_doubles(ir::Tensor& t, const double* v);

template <class T>
T saturate_from_double(double v) {
  if constexpr (std::is_same_v<T, bool>) {
    return v != 0;
  } else if constexpr (std::is_integral_v<T>) {
    if (std::isnan(v)) return T(0);
    // The largest 64-bit values are not doubles; comparing with their rounded-up double saturates at
    // the first double out of range.
    constexpr double lo = static_cast<double>(std::numeric_limits<T>::min());
    constexpr double hi = static_cast<double>(std::numeric_limits<T>::max());
    if (v <= lo) return std::numeric_limits<T>::min();
    if (v >= hi) return std::numeric_limits<T>::max();
    return static_cast<T>(v);
  } else {
    return static_cast<T>(v);
  }
}

// A row-major odometer: advances idx within shape; false once it wraps past the last index.
inline bool next_index(std::vector<int64_t>& idx, const std::vector<int64_t>& shape) {
  for (size_t i = idx.size(); i-- > 0;) {
    if (++idx[i] < shape[i]) return true;
    idx[i] = 0;
  }
  return false;
}

inline int64_t product(const std::vector<int64_t>& v) {
  int64_t p = 1;
  for (int64_t d : v) p *= d;
  return p;
}

// Scalar (or one-element) input read as a number; nullopt when the input is absent or empty.
std::optional<double> optional_scalar(const KernelContext& ctx, size_t input, const char* what);

// ---- Sliding windows (Conv, ConvTranspose, pooling) -----------------------------------------------

enum class AutoPad { kNotSet, kSameUpper, kSameLower, kValid };
AutoPad read_auto_pad(const NodeView& node);

// Window attributes, read and checked once: kernel, strides, dilations per spatial axis; pads as ONNX
// lists them (all begins, then all ends).
struct WindowAttrs {
  std::vector<int64_t> kernel;
  std::vector<int64_t> strides;
  std::vector<int64_t> dilations;
  std::vector<int64_t> pads;
  AutoPad auto_pad = AutoPad::kNotSet;
  bool ceil_mode = false;

  size_t rank() const { return kernel.size(); }
  int64_t effective_kernel(size_t i) const { return (kernel[i] - 1) * dilations[i] + 1; }
};

// Reads strides, dilations, pads, auto_pad and (where `with_ceil_mode`) ceil_mode for a window of
// this kernel shape, checking lengths and signs.
WindowAttrs read_window_attrs(const NodeView& node, std::vector<int64_t> kernel, bool with_ceil_mode);

// Kernel shape from the "kernel_shape" attribute (required when `weights` is null), checked against
// the spatial dims of the weights when both are known. `spatial_rank` is the input's rank minus 2.
std::vector<int64_t> read_kernel_shape(const NodeView& node, size_t spatial_rank,
                                       const std::optional<std::vector<int64_t>>& weight_spatial);

struct AxisWindow {
  int64_t out = -1;       // output size along the axis; -1 when the input size is unknown
  int64_t pad_begin = 0;  // padding actually applied before the first element
};

// Output size of a forward window (Conv, pooling) along one axis of input size `in` (-1: unknown).
AxisWindow forward_window(const NodeView& node, const WindowAttrs& w, size_t axis, int64_t in);

// The output shape [N, channels, spatial...] of a forward window over an input type (for inference).
std::optional<ir::Shape> forward_window_shape(const NodeView& node, const WindowAttrs& w, const ir::Shape& in,
                                              ir::Dim channels);

// ConvTranspose's output geometry (kernels/reference/nn_conv.cc), shared with its fast kernel.
struct TransposeGeometry {
  std::vector<int64_t> out;        // output spatial size
  std::vector<int64_t> pad_begin;  // how far the first output element sits into the full result
};

// Output size and begin padding per axis for input spatial sizes `in` (-1: unknown, giving -1), from
// strides, dilations, pads, auto_pad, output_padding and output_shape; reads and checks the last two,
// and fails naming the node on an empty input dim or pads that leave no output.
TransposeGeometry transpose_geometry(const NodeView& node, const WindowAttrs& wa, const std::vector<int64_t>& in);

}  // namespace kiln::ops::nn
