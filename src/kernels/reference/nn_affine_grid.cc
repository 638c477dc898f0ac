// AffineGrid (opset 20): the sampling grid GridSample reads, from a batch of affine matrices.
// For 2-D, theta [N,2,3] and size [N,C,H,W] give grid [N,H,W,2] with
//   grid[n,h,w] = theta[n] @ (x_w, y_h, 1),
// for 3-D, theta [N,3,4] and size [N,C,D,H,W] give grid [N,D,H,W,3] with
//   grid[n,d,h,w] = theta[n] @ (x_w, y_h, z_d, 1),
// where a base coordinate along an axis of length L is -1 + (2i+1)/L (pixel centers), or with
// align_corners -1 + 2i/(L-1) (corner pixels at -1 and 1; 0 -> -1 when L is 1, as PyTorch does).
#include <algorithm>
#include <optional>
#include <vector>

#include "kernels/reference/common.h"
#include "kernels/reference/nn_common.h"

namespace kiln::ops {

void register_affine_grid_ops(OpRegistry& r);

namespace {

using ir::DType;

void check_size_values(const NodeView& node, const std::vector<int64_t>& size) {
  if (size.size() != 4 && size.size() != 5)
    node.fail("input size must hold 4 values [N,C,H,W] or 5 values [N,C,D,H,W], got ", ir::to_string(size));
  for (int64_t v : size)
    if (v < 0) node.fail("input size must not be negative, got ", ir::to_string(size));
}

void infer_affine_grid(InferenceContext& ctx) {
  const ir::Type& theta = ctx.input_type(0);
  const ir::Type& size_type = ctx.input_type(1);
  if (theta.is_tensor() && theta.dtype != DType::kUndefined)
    nn::require_dtype(ctx, theta.dtype, nn::kFloatTypes, "input theta");
  if (size_type.is_tensor() && size_type.dtype != DType::kUndefined && size_type.dtype != DType::kInt64)
    ctx.fail("input size must be an int64 tensor, got ", ir::dtype_name(size_type.dtype));
  if (theta.shape && theta.shape->rank() != 3)
    ctx.fail("input theta must have shape [N,2,3] or [N,3,4], got ", ir::to_string(*theta.shape));
  std::optional<ir::Shape> out;
  if (const ir::Tensor* sv = ctx.input_value(1)) {
    std::vector<int64_t> size = sv->to_int64_vector();
    check_size_values(ctx, size);
    std::vector<ir::Dim> dims{size[0]};
    for (size_t i = 2; i < size.size(); ++i) dims.emplace_back(size[i]);
    dims.emplace_back(static_cast<int64_t>(size.size() - 2));
    out = ir::Shape(dims);
  } else if (size_type.shape && size_type.shape->rank() == 1 && (*size_type.shape)[0].is_static()) {
    int64_t n = (*size_type.shape)[0].value;
    if (n != 4 && n != 5) ctx.fail("input size must hold 4 or 5 values, got ", n);
    std::vector<ir::Dim> dims(static_cast<size_t>(n));
    if (theta.shape) dims[0] = (*theta.shape)[0];
    dims.back() = ir::Dim(n - 2);
    out = ir::Shape(dims);
  }
  ctx.set_output(0, theta.dtype, out);
}

void run_affine_grid(KernelContext& ctx) {
  const ir::Tensor& theta = ctx.input(0);
  const ir::Tensor& size_in = ctx.input(1);
  nn::require_dtype(ctx, theta.dtype(), nn::kFloatTypes, "input theta");
  if (size_in.dtype() != DType::kInt64)
    ctx.fail("input size must be an int64 tensor, got ", ir::dtype_name(size_in.dtype()));
  if (size_in.rank() != 1) ctx.fail("input size must be 1-D, got shape ", ir::to_string(size_in.shape()));
  std::vector<int64_t> size = size_in.to_int64_vector();
  check_size_values(ctx, size);
  size_t nsp = size.size() - 2;  // 2 or 3 spatial axes
  int64_t n = size[0];
  std::vector<int64_t> want = {n, static_cast<int64_t>(nsp), static_cast<int64_t>(nsp) + 1};
  if (theta.shape() != want)
    ctx.fail("input theta must have shape ", ir::to_string(want), " for size ", ir::to_string(size), ", got ",
             ir::to_string(theta.shape()));
  bool align = ctx.attr_int("align_corners", 0) != 0;

  std::vector<int64_t> sp(size.begin() + 2, size.end());  // [H,W] or [D,H,W]
  std::vector<int64_t> out_shape = {n};
  out_shape.insert(out_shape.end(), sp.begin(), sp.end());
  out_shape.push_back(static_cast<int64_t>(nsp));
  ir::Tensor grid = ctx.make_tensor(theta.dtype(), out_shape);
  if (grid.numel() == 0) return ctx.set_output(0, grid);

  // Base coordinates per spatial axis, in the axis order of sp.
  std::vector<std::vector<double>> base(nsp);
  for (size_t a = 0; a < nsp; ++a) {
    auto len = static_cast<double>(sp[a]);
    for (int64_t i = 0; i < sp[a]; ++i) {
      auto di = static_cast<double>(i);
      double v = align ? (sp[a] > 1 ? -1 + 2 * di / (len - 1) : -1.0) : -1 + (2 * di + 1) / len;
      base[a].push_back(v);
    }
  }
  std::vector<double> tv = nn::to_doubles(theta);
  std::vector<double> gv(static_cast<size_t>(grid.numel()));
  size_t cols = nsp + 1;
  std::vector<int64_t> idx(nsp, 0);
  std::vector<double> p(cols);
  size_t o = 0;
  for (int64_t b = 0; b < n; ++b) {
    const double* th = tv.data() + static_cast<size_t>(b) * nsp * cols;
    std::fill(idx.begin(), idx.end(), 0);
    do {
      // The point in (x, y[, z], 1) order: x runs along the last spatial axis.
      for (size_t a = 0; a < nsp; ++a) p[a] = base[nsp - 1 - a][static_cast<size_t>(idx[nsp - 1 - a])];
      p[nsp] = 1;
      for (size_t r = 0; r < nsp; ++r) {
        double acc = 0;
        for (size_t c = 0; c < cols; ++c) acc += th[r * cols + c] * p[c];
        gv[o++] = acc;
      }
    } while (nn::next_index(idx, sp));
  }
  nn::store_doubles(grid, gv.data());
  ctx.set_output(0, std::move(grid));
}

}  // namespace

void register_affine_grid_ops(OpRegistry& r) {
  r.add(OpDef{"", "AffineGrid", 20, kMaxOnnxOpset, infer_affine_grid, run_affine_grid});
}

}  // namespace kiln::ops
