#include "kernels/reference/nn_common.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

namespace kiln::ops::nn {

using ir::DType;

const std::initializer_list<DType> kFloatTypes = {DType::kFloat16, DType::kBFloat16, DType::kFloat32, DType::kFloat64};
const std::initializer_list<DType> kFloatAndIntTypes = {DType::kFloat16, DType::kBFloat16, DType::kFloat32,
                                                        DType::kFloat64, DType::kInt32,    DType::kInt64,
                                                        DType::kUInt32,  DType::kUInt64};
const std::initializer_list<DType> kNumericTypes = {DType::kFloat16, DType::kBFloat16, DType::kFloat32, DType::kFloat64,
                                                    DType::kInt8,    DType::kInt16,    DType::kInt32,   DType::kInt64,
                                                    DType::kUInt8,   DType::kUInt16,   DType::kUInt32,  DType::kUInt64};

void require_dtype(const NodeView& node, DType dtype, std::initializer_list<DType> allowed, const std::string& what) {
  if (std::find(allowed.begin(), allowed.end(), dtype) != allowed.end()) return;
  std::string names;
  for (DType t : allowed) names += (names.empty() ? "" : ", ") + std::string(ir::dtype_name(t));
  node.fail(what, " has element type ", ir::dtype_name(dtype), "; expected one of ", names);
}

std::vector<double> to_doubles(const ir::Tensor& t) {
  std::vector<double> out(static_cast<size_t>(t.numel()));
  ir::visit_numeric_dtype(t.dtype(), [&]<class T>() {
    const T* p = t.data<T>();
    for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<double>(p[i]);
  });
  return out;
}

void store_doubles(ir::Tensor& t, const double* v) {
  ir::visit_numeric_dtype(t.dtype(), [&]<class T>() {
    T* p = t.data<T>();
    for (int64_t i = 0; i < t.numel(); ++i) p[i] = saturate_from_double<T>(v[i]);
  });
}

std::optional<double> optional_scalar(const KernelContext& ctx, size_t input, const char* what) {
  if (!ctx.has_input(input)) return std::nullopt;
  const ir::Tensor& t = ctx.input(input);
  if (t.numel() == 0) return std::nullopt;
  if (t.numel() != 1) ctx.fail(what, " must hold one value, got shape ", ir::to_string(t.shape()));
  if (t.dtype() == DType::kString) ctx.fail(what, " must be a number, got a string tensor");
  return t.as_double(0);
}

AutoPad read_auto_pad(const NodeView& node) {
  std::string s = node.attr_string("auto_pad", "NOTSET");
  if (s == "NOTSET" || s.empty()) return AutoPad::kNotSet;
  if (s == "SAME_UPPER") return AutoPad::kSameUpper;
  if (s == "SAME_LOWER") return AutoPad::kSameLower;
  if (s == "VALID") return AutoPad::kValid;
  node.fail("attribute auto_pad has unknown value \"", s, "\" (expected NOTSET, SAME_UPPER, SAME_LOWER or VALID)");
}

std::vector<int64_t> read_kernel_shape(const NodeView& node, size_t spatial_rank,
                                       const std::optional<std::vector<int64_t>>& weight_spatial) {
  std::vector<int64_t> kernel = node.attr_ints("kernel_shape");
  if (!node.has_attr("kernel_shape")) {
    if (!weight_spatial) node.fail("missing required attribute \"kernel_shape\"");
    kernel = *weight_spatial;
  }
  if (kernel.size() != spatial_rank)
    node.fail("kernel_shape ", ir::to_string(kernel), " has ", kernel.size(), " values for an input with ",
              spatial_rank, " spatial dims");
  for (int64_t k : kernel)
    if (k <= 0) node.fail("kernel_shape ", ir::to_string(kernel), " must be positive");
  if (weight_spatial) {
    for (size_t i = 0; i < kernel.size(); ++i)
      if ((*weight_spatial)[i] >= 0 && (*weight_spatial)[i] != kernel[i])
        node.fail("kernel_shape ", ir::to_string(kernel), " does not match the weights' spatial shape ",
                  ir::to_string(*weight_spatial));
  }
  return kernel;
}

WindowAttrs read_window_attrs(const NodeView& node, std::vector<int64_t> kernel, bool with_ceil_mode) {
  WindowAttrs w;
  size_t n = kernel.size();
  w.kernel = std::move(kernel);
  w.strides = node.attr_ints("strides", std::vector<int64_t>(n, 1));
  w.dilations = node.attr_ints("dilations", std::vector<int64_t>(n, 1));
  w.pads = node.attr_ints("pads", std::vector<int64_t>(2 * n, 0));
  // Some exporters write empty lists for "use the default".
  if (w.strides.empty()) w.strides.assign(n, 1);
  if (w.dilations.empty()) w.dilations.assign(n, 1);
  if (w.pads.empty()) w.pads.assign(2 * n, 0);
  if (w.strides.size() != n) node.fail("attribute strides ", ir::to_string(w.strides), " must have ", n, " values");
  if (w.dilations.size() != n)
    node.fail("attribute dilations ", ir::to_string(w.dilations), " must have ", n, " values");
  if (w.pads.size() != 2 * n) node.fail("attribute pads ", ir::to_string(w.pads), " must have ", 2 * n, " values");
  for (int64_t s : w.strides)
    if (s <= 0) node.fail("attribute strides ", ir::to_string(w.strides), " must be positive");
  for (int64_t d : w.dilations)
    if (d <= 0) node.fail("attribute dilations ", ir::to_string(w.dilations), " must be positive");
  for (int64_t p : w.pads)
    if (p < 0) node.fail("attribute pads ", ir::to_string(w.pads), " must not be negative");
  // Guard the size arithmetic below against overflow from absurd attribute values.
  constexpr int64_t kHuge = int64_t{1} << 40;
  for (size_t i = 0; i < n; ++i)
    if (w.kernel[i] > kHuge || w.dilations[i] > kHuge || w.strides[i] > kHuge || w.pads[i] > kHuge ||
        w.pads[i + n] > kHuge || w.kernel[i] * w.dilations[i] > kHuge)
      node.fail("window attributes along spatial axis ", i, " are too large");
  w.auto_pad = read_auto_pad(node);
  if (with_ceil_mode) {
    int64_t c = node.attr_int("ceil_mode", 0);
    if (c != 0 && c != 1) node.fail("attribute ceil_mode must be 0 or 1, got ", c);
    w.ceil_mode = c == 1;
  }
  return w;
}

AxisWindow forward_window(const NodeView& node, const WindowAttrs& w, size_t axis, int64_t in) {
  AxisWindow r;
  int64_t eff = w.effective_kernel(axis);
  int64_t s = w.strides[axis];
  size_t n = w.rank();
  switch (w.auto_pad) {
    case AutoPad::kSameUpper:
    case AutoPad::kSameLower: {
      if (in < 0) return r;
      r.out = (in + s - 1) / s;
      int64_t total = std::max<int64_t>(0, (r.out - 1) * s + eff - in);
      r.pad_begin = w.auto_pad == AutoPad::kSameUpper ? total / 2 : total - total / 2;
      return r;
    }
    case AutoPad::kValid: {
      if (in < 0) return r;
      if (in < eff)
        node.fail("the kernel (", eff, " with dilation) is larger than the input (", in, ") along spatial axis ", axis);
      r.out = (in - eff) / s + 1;
      return r;
    }
    case AutoPad::kNotSet:
      break;
  }
  r.pad_begin = w.pads[axis];
  if (in < 0) return r;
  int64_t padded = in + w.pads[axis] + w.pads[axis + n];
  if (padded < eff)
    node.fail("the kernel (", eff, " with dilation) is larger than the padded input (", padded, ") along spatial axis ",
              axis);
  int64_t numer = padded - eff;
  r.out = (w.ceil_mode ? (numer + s - 1) / s : numer / s) + 1;
  // With ceil_mode, a last window that would start inside the end padding is dropped (as PyTorch and
  // ONNX Runtime do): it would cover no input element.
  if (w.ceil_mode && (r.out - 1) * s >= in + w.pads[axis]) --r.out;
  return r;
}

std::optional<ir::Shape> forward_window_shape(const NodeView& node, const WindowAttrs& w, const ir::Shape& in,
                                              ir::Dim channels) {
  if (in.rank() != w.rank() + 2)
    node.fail("input has rank ", in.rank(), " but the window has ", w.rank(), " spatial dims");
  ir::Shape out;
  out.dims.push_back(in[0]);
  out.dims.push_back(channels);
  for (size_t i = 0; i < w.rank(); ++i) {
    const ir::Dim& d = in[i + 2];
    AxisWindow a = forward_window(node, w, i, d.is_static() ? d.value : -1);
    out.dims.push_back(a.out >= 0 ? ir::Dim(a.out) : ir::Dim());
  }
  return out;
}

}  // namespace kiln::ops::nn
