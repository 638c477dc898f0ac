// Region and box ops: RoiAlign, MaxRoiPool and NonMaxSuppression. Their sampling and rounding rules
// follow ONNX Runtime's kernels, from which the ONNX reference and test data were derived.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "kernels/reference/common.h"
#include "kernels/reference/nn_common.h"

namespace kiln::ops::nn {
namespace {

using ir::DType;

// ---- RoiAlign -----------------------------------------------------------------------------------

void infer_roi_align(InferenceContext& ctx) {
  const ir::Type& x = ctx.input_type(0);
  const ir::Type& rois = ctx.input_type(1);
  const ir::Type& idx = ctx.input_type(2);
  if (x.shape && x.shape->rank() != 4) ctx.fail("input X must be 4-D (N, C, H, W), got ", ir::to_string(*x.shape));
  if (rois.shape && (rois.shape->rank() != 2 || ((*rois.shape)[1].is_static() && (*rois.shape)[1].value != 4)))
    ctx.fail("rois must have shape [num_rois, 4], got ", ir::to_string(*rois.shape));
  if (idx.shape && idx.shape->rank() != 1)
    ctx.fail("batch_indices must have shape [num_rois], got ", ir::to_string(*idx.shape));
  ir::Dim num = rois.shape ? (*rois.shape)[0] : idx.shape ? (*idx.shape)[0] : ir::Dim();
  if (!num.is_static() && idx.shape && (*idx.shape)[0].is_static()) num = (*idx.shape)[0];
  ir::Dim c = x.shape ? (*x.shape)[1] : ir::Dim();
  ctx.set_output(0, x.dtype, ir::Shape({num, c, ctx.attr_int("output_height", 1), ctx.attr_int("output_width", 1)}));
}

void run_roi_align(KernelContext& ctx) {
  const ir::Tensor& x = ctx.input(0);
  const ir::Tensor& rois = ctx.input(1);
  const ir::Tensor& bidx = ctx.input(2);
  require_dtype(ctx, x.dtype(), kFloatTypes, "input X");
  require_dtype(ctx, rois.dtype(), kFloatTypes, "input rois");
  if (bidx.dtype() != DType::kInt64 && bidx.dtype() != DType::kInt32)
    ctx.fail("batch_indices must be int64, got ", bidx.dtype());
  if (x.rank() != 4) ctx.fail("input X must be 4-D (N, C, H, W), got ", ir::to_string(x.shape()));
  if (rois.rank() != 2 || rois.dim(1) != 4)
    ctx.fail("rois must have shape [num_rois, 4], got ", ir::to_string(rois.shape()));
  if (bidx.rank() != 1 || bidx.dim(0) != rois.dim(0))
    ctx.fail("batch_indices ", ir::to_string(bidx.shape()), " must have shape [", rois.dim(0), "]");
  std::string mode = ctx.attr_string("mode", "avg");
  if (mode != "avg" && mode != "max") ctx.fail("attribute mode must be avg or max, got \"", mode, "\"");
  bool is_max = mode == "max";
  int64_t oh = ctx.attr_int("output_height", 1), ow = ctx.attr_int("output_width", 1);
  if (oh <= 0 || ow <= 0) ctx.fail("output_height and output_width must be positive, got ", oh, " and ", ow);
  int64_t sampling = ctx.attr_int("sampling_ratio", 0);
  if (sampling < 0) ctx.fail("attribute sampling_ratio must not be negative, got ", sampling);
  double scale = ctx.attr_float("spatial_scale", 1.0f);
  // Opset 10 had no attribute and behaved as output_half_pixel; from 16 the default is half_pixel.
  std::string ctm =
      ctx.attr_string("coordinate_transformation_mode", ctx.opset() >= 16 ? "half_pixel" : "output_half_pixel");
  if (ctm != "half_pixel" && ctm != "output_half_pixel")
    ctx.fail("attribute coordinate_transformation_mode must be half_pixel or output_half_pixel, got \"", ctm, "\"");
  bool half_pixel = ctm == "half_pixel";

  int64_t n = x.dim(0), c = x.dim(1), h = x.dim(2), w = x.dim(3), num = rois.dim(0);
  ir::Tensor y = ctx.make_tensor(x.dtype(), {num, c, oh, ow});
  if (y.numel() == 0) return ctx.set_output(0, y);
  if (h == 0 || w == 0) ctx.fail("cannot sample rois from an empty image ", ir::to_string(x.shape()));
  std::vector<double> xv = to_doubles(x), rv = to_doubles(rois), yv(static_cast<size_t>(y.numel()));
  std::vector<int64_t> bi = bidx.to_int64_vector();
  struct Sample {
    int64_t pos[4];
    double w[4];
  };
  std::vector<Sample> samples;
  for (int64_t r = 0; r < num; ++r) {
    if (bi[r] < 0 || bi[r] >= n) ctx.fail("batch index ", bi[r], " of roi ", r, " is outside [0, ", n, ")");
    double offset = half_pixel ? 0.5 : 0.0;
    double x0 = rv[r * 4 + 0] * scale - offset, y0 = rv[r * 4 + 1] * scale - offset;
    double x1 = rv[r * 4 + 2] * scale - offset, y1 = rv[r * 4 + 3] * scale - offset;
    double rw = x1 - x0, rh = y1 - y0;
    if (!half_pixel) {  // the old rule forces a roi of at least one pixel
      rw = std::max(rw, 1.0);
      rh = std::max(rh, 1.0);
    }
    double bin_h = rh / static_cast<double>(oh), bin_w = rw / static_cast<double>(ow);
    if (!std::isfinite(x0) || !std::isfinite(y0) || !std::isfinite(rw) || !std::isfinite(rh))
      ctx.fail("roi ", r, " has non-finite coordinates");
    double gh = sampling > 0 ? static_cast<double>(sampling) : std::ceil(rh / static_cast<double>(oh));
    double gw = sampling > 0 ? static_cast<double>(sampling) : std::ceil(rw / static_cast<double>(ow));
    gh = std::max(gh, 0.0);
    gw = std::max(gw, 0.0);
    // Guards memory and time against absurd rois: a sampling grid this large is a bad model or input.
    if (gh * gw > static_cast<double>(int64_t{1} << 24))
      ctx.fail("roi ", r, " needs a sampling grid of ", gh, " x ", gw, " per bin; too large");
    auto grid_h = static_cast<int64_t>(gh), grid_w = static_cast<int64_t>(gw);
    double count = static_cast<double>(std::max<int64_t>(grid_h * grid_w, 1));
    for (int64_t ph = 0; ph < oh; ++ph) {
      for (int64_t pw = 0; pw < ow; ++pw) {
        samples.clear();
        for (int64_t iy = 0; iy < grid_h; ++iy) {
          double yy = y0 + static_cast<double>(ph) * bin_h +
                      (static_cast<double>(iy) + 0.5) * bin_h / static_cast<double>(grid_h);
          for (int64_t ix = 0; ix < grid_w; ++ix) {
            double xx = x0 + static_cast<double>(pw) * bin_w +
                        (static_cast<double>(ix) + 0.5) * bin_w / static_cast<double>(grid_w);
            Sample s{{0, 0, 0, 0}, {0, 0, 0, 0}};
            if (!(yy < -1.0 || yy > static_cast<double>(h) || xx < -1.0 || xx > static_cast<double>(w))) {
              double sy = std::max(yy, 0.0), sx = std::max(xx, 0.0);
              auto ylo = static_cast<int64_t>(sy), xlo = static_cast<int64_t>(sx);
              int64_t yhi, xhi;
              if (ylo >= h - 1) {
                yhi = ylo = h - 1;
                sy = static_cast<double>(ylo);
              } else {
                yhi = ylo + 1;
              }
              if (xlo >= w - 1) {
                xhi = xlo = w - 1;
                sx = static_cast<double>(xlo);
              } else {
                xhi = xlo + 1;
              }
              double ly = sy - static_cast<double>(ylo), lx = sx - static_cast<double>(xlo);
              double hy = 1 - ly, hx = 1 - lx;
              s = Sample{{ylo * w + xlo, ylo * w + xhi, yhi * w + xlo, yhi * w + xhi},
                         {hy * hx, hy * lx, ly * hx, ly * lx}};
            }
            samples.push_back(s);
          }
        }
        for (int64_t ci = 0; ci < c; ++ci) {
          const double* xp = xv.data() + (bi[r] * c + ci) * h * w;
          double out = 0;
          bool first = true;
          for (const Sample& s : samples) {
            if (is_max) {
              // ONNX Runtime's max mode: the largest weighted corner, not an interpolated value.
              double v = std::max(
                  {s.w[0] * xp[s.pos[0]], s.w[1] * xp[s.pos[1]], s.w[2] * xp[s.pos[2]], s.w[3] * xp[s.pos[3]]});
              out = first ? v : std::max(out, v);
              first = false;
            } else {
              out += s.w[0] * xp[s.pos[0]] + s.w[1] * xp[s.pos[1]] + s.w[2] * xp[s.pos[2]] + s.w[3] * xp[s.pos[3]];
            }
          }
          if (!is_max) out /= count;
          yv[static_cast<size_t>(((r * c + ci) * oh + ph) * ow + pw)] = out;
        }
      }
    }
  }
  store_doubles(y, yv.data());
  ctx.set_output(0, y);
}

// ---- MaxRoiPool ---------------------------------------------------------------------------------

std::vector<int64_t> read_pooled_shape(const NodeView& node) {
  std::vector<int64_t> p = node.attr_ints("pooled_shape");
  if (!node.has_attr("pooled_shape")) node.fail("missing required attribute \"pooled_shape\"");
  if (p.size() != 2 || p[0] <= 0 || p[1] <= 0)
    node.fail("attribute pooled_shape must be two positive values, got ", ir::to_string(p));
  return p;
}

void infer_max_roi_pool(InferenceContext& ctx) {
  const ir::Type& x = ctx.input_type(0);
  const ir::Type& rois = ctx.input_type(1);
  if (x.shape && x.shape->rank() != 4) ctx.fail("input X must be 4-D (N, C, H, W), got ", ir::to_string(*x.shape));
  if (rois.shape && (rois.shape->rank() != 2 || ((*rois.shape)[1].is_static() && (*rois.shape)[1].value != 5)))
    ctx.fail("rois must have shape [num_rois, 5], got ", ir::to_string(*rois.shape));
  std::vector<int64_t> p = read_pooled_shape(ctx);
  ctx.set_output(
      0, x.dtype,
      ir::Shape({rois.shape ? (*rois.shape)[0] : ir::Dim(), x.shape ? (*x.shape)[1] : ir::Dim(), p[0], p[1]}));
}

void run_max_roi_pool(KernelContext& ctx) {
  const ir::Tensor& x = ctx.input(0);
  const ir::Tensor& rois = ctx.input(1);
  require_dtype(ctx, x.dtype(), kFloatTypes, "input X");
  require_dtype(ctx, rois.dtype(), kFloatTypes, "input rois");
  if (x.rank() != 4) ctx.fail("input X must be 4-D (N, C, H, W), got ", ir::to_string(x.shape()));
  if (rois.rank() != 2 || rois.dim(1) != 5)
    ctx.fail("rois must have shape [num_rois, 5], got ", ir::to_string(rois.shape()));
  std::vector<int64_t> p = read_pooled_shape(ctx);
  double scale = ctx.attr_float("spatial_scale", 1.0f);
  int64_t n = x.dim(0), c = x.dim(1), h = x.dim(2), w = x.dim(3), num = rois.dim(0), ph_n = p[0], pw_n = p[1];
  ir::Tensor y = ctx.make_tensor(x.dtype(), {num, c, ph_n, pw_n});
  if (y.numel() == 0) return ctx.set_output(0, y);
  std::vector<double> xv = to_doubles(x), rv = to_doubles(rois), yv(static_cast<size_t>(y.numel()));
  auto coord = [&](double v) {  // rounded and kept within int range; clipping to the image comes later
    double r = std::round(v * scale);
    return static_cast<int64_t>(std::clamp(r, -1e15, 1e15));
  };
  for (int64_t r = 0; r < num; ++r) {
    const double* roi = rv.data() + r * 5;
    if (!(roi[0] >= 0 && roi[0] < static_cast<double>(n)))
      ctx.fail("batch index ", roi[0], " of roi ", r, " is outside [0, ", n, ")");
    auto b = static_cast<int64_t>(roi[0]);
    int64_t x0 = coord(roi[1]), y0 = coord(roi[2]), x1 = coord(roi[3]), y1 = coord(roi[4]);
    double rh = static_cast<double>(std::max<int64_t>(y1 - y0 + 1, 1));
    double rw = static_cast<double>(std::max<int64_t>(x1 - x0 + 1, 1));
    double bin_h = rh / static_cast<double>(ph_n), bin_w = rw / static_cast<double>(pw_n);
    for (int64_t ph = 0; ph < ph_n; ++ph) {
      int64_t hs = std::clamp<int64_t>(static_cast<int64_t>(std::floor(static_cast<double>(ph) * bin_h)) + y0, 0, h);
      int64_t he = std::clamp<int64_t>(static_cast<int64_t>(std::ceil(static_cast<double>(ph + 1) * bin_h)) + y0, 0, h);
      for (int64_t pw = 0; pw < pw_n; ++pw) {
        int64_t ws = std::clamp<int64_t>(static_cast<int64_t>(std::floor(static_cast<double>(pw) * bin_w)) + x0, 0, w);
        int64_t we =
            std::clamp<int64_t>(static_cast<int64_t>(std::ceil(static_cast<double>(pw + 1) * bin_w)) + x0, 0, w);
        bool empty = he <= hs || we <= ws;
        for (int64_t ci = 0; ci < c; ++ci) {
          const double* xp = xv.data() + (b * c + ci) * h * w;
          double best = 0;
          if (!empty) {
            best = -std::numeric_limits<double>::infinity();
            for (int64_t yy = hs; yy < he; ++yy)
              for (int64_t xx = ws; xx < we; ++xx) best = std::max(best, xp[yy * w + xx]);
          }
          yv[static_cast<size_t>(((r * c + ci) * ph_n + ph) * pw_n + pw)] = best;
        }
      }
    }
  }
  store_doubles(y, yv.data());
  ctx.set_output(0, y);
}

// ---- NonMaxSuppression --------------------------------------------------------------------------

void infer_nms(InferenceContext& ctx) {
  const ir::Type& boxes = ctx.input_type(0);
  const ir::Type& scores = ctx.input_type(1);
  if (boxes.shape && (boxes.shape->rank() != 3 || ((*boxes.shape)[2].is_static() && (*boxes.shape)[2].value != 4)))
    ctx.fail("boxes must have shape [batch, boxes, 4], got ", ir::to_string(*boxes.shape));
  if (scores.shape && scores.shape->rank() != 3)
    ctx.fail("scores must have shape [batch, classes, boxes], got ", ir::to_string(*scores.shape));
  ctx.set_output(0, DType::kInt64, ir::Shape({ir::Dim(), ir::Dim(3)}));
}

void run_nms(KernelContext& ctx) {
  const ir::Tensor& boxes = ctx.input(0);
  const ir::Tensor& scores = ctx.input(1);
  require_dtype(ctx, boxes.dtype(), kFloatTypes, "input boxes");
  require_dtype(ctx, scores.dtype(), kFloatTypes, "input scores");
  if (boxes.rank() != 3 || boxes.dim(2) != 4)
    ctx.fail("boxes must have shape [batch, boxes, 4], got ", ir::to_string(boxes.shape()));
  if (scores.rank() != 3 || scores.dim(0) != boxes.dim(0) || scores.dim(2) != boxes.dim(1))
    ctx.fail("scores ", ir::to_string(scores.shape()), " must have shape [", boxes.dim(0), ", classes, ", boxes.dim(1),
             "] to match boxes ", ir::to_string(boxes.shape()));
  int64_t center = ctx.attr_int("center_point_box", 0);
  if (center != 0 && center != 1) ctx.fail("attribute center_point_box must be 0 or 1, got ", center);
  std::optional<double> max_out_d = optional_scalar(ctx, 2, "max_output_boxes_per_class");
  std::optional<double> iou_d = optional_scalar(ctx, 3, "iou_threshold");
  std::optional<double> score_thr = optional_scalar(ctx, 4, "score_threshold");
  int64_t max_out = 0;
  if (max_out_d) {
    const ir::Tensor& t = ctx.input(2);
    max_out = std::max<int64_t>(0, t.as_int64(0));
  }
  double iou_thr = iou_d.value_or(0.0);
  if (iou_thr < 0 || iou_thr > 1) ctx.fail("iou_threshold must be within [0, 1], got ", iou_thr);

  int64_t batches = boxes.dim(0), nb = boxes.dim(1), classes = scores.dim(1);
  std::vector<double> bv = to_doubles(boxes), sv = to_doubles(scores);
  struct Box {
    double y1, x1, y2, x2, area;
  };
  std::vector<Box> bx(static_cast<size_t>(batches * nb));
  for (size_t i = 0; i < bx.size(); ++i) {
    const double* b = bv.data() + i * 4;
    Box& o = bx[i];
    if (center) {  // [x_center, y_center, width, height]
      o.x1 = b[0] - b[2] / 2;
      o.x2 = b[0] + b[2] / 2;
      o.y1 = b[1] - b[3] / 2;
      o.y2 = b[1] + b[3] / 2;
    } else {  // [y1, x1, y2, x2], either corner first
      o.y1 = std::min(b[0], b[2]);
      o.y2 = std::max(b[0], b[2]);
      o.x1 = std::min(b[1], b[3]);
      o.x2 = std::max(b[1], b[3]);
    }
    o.area = (o.y2 - o.y1) * (o.x2 - o.x1);
  }
  auto suppresses = [&](const Box& a, const Box& b) {
    double iw = std::min(a.x2, b.x2) - std::max(a.x1, b.x1);
    double ih = std::min(a.y2, b.y2) - std::max(a.y1, b.y1);
    if (iw <= 0 || ih <= 0) return false;
    double inter = iw * ih;
    double uni = a.area + b.area - inter;
    if (a.area <= 0 || b.area <= 0 || uni <= 0) return false;
    return inter / uni > iou_thr;
  };
  std::vector<int64_t> selected;  // triples
  std::vector<int64_t> order;
  std::vector<int64_t> kept;
  for (int64_t b = 0; b < batches && max_out > 0; ++b) {
    for (int64_t cl = 0; cl < classes; ++cl) {
      const double* sc = sv.data() + (b * classes + cl) * nb;
      order.clear();
      for (int64_t i = 0; i < nb; ++i)
        if (!score_thr || sc[i] > *score_thr) order.push_back(i);
      // NaN scores sort last, which keeps the ordering strict.
      auto key = [&](int64_t i) { return std::isnan(sc[i]) ? -std::numeric_limits<double>::infinity() : sc[i]; };
      std::stable_sort(order.begin(), order.end(), [&](int64_t i, int64_t j) { return key(i) > key(j); });
      kept.clear();
      for (int64_t i : order) {
        if (static_cast<int64_t>(kept.size()) >= max_out) break;
        const Box& cand = bx[static_cast<size_t>(b * nb + i)];
        bool drop = false;
        for (int64_t k : kept)
          if (suppresses(bx[static_cast<size_t>(b * nb + k)], cand)) {
            drop = true;
            break;
          }
        if (drop) continue;
        kept.push_back(i);
        selected.insert(selected.end(), {b, cl, i});
      }
    }
  }
  ir::Tensor y = ctx.make_tensor(DType::kInt64, {static_cast<int64_t>(selected.size() / 3), 3});
  std::copy(selected.begin(), selected.end(), y.data<int64_t>());
  ctx.set_output(0, y);
}

}  // namespace

void register_detection_ops(OpRegistry& r) {
  r.add(OpDef{"", "RoiAlign", 10, kNoMaxOpset, infer_roi_align, run_roi_align});
  r.add(OpDef{"", "MaxRoiPool", 1, kNoMaxOpset, infer_max_roi_pool, run_max_roi_pool});
  r.add(OpDef{"", "NonMaxSuppression", 10, kNoMaxOpset, infer_nms, run_nms});
}

}  // namespace kiln::ops::nn
