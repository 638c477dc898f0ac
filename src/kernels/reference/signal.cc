// Signal ops: DFT, STFT, the cosine-sum windows (Hann, Hamming, Blackman) and MelWeightMatrix.
// Transforms are computed in double whatever the element type and rounded once on store. Complex values
// travel as a trailing dimension of 2 (real, imaginary); real signals have a trailing dimension of 1.
#include <cmath>
#include <complex>
#include <limits>
#include <numbers>
#include <optional>
#include <type_traits>
#include <vector>

#include "kernels/reference/common.h"
#include "kernels/reference/from_double.h"
#include "ops/registry.h"

namespace kiln::ops {

void register_signal_ops(OpRegistry& r);

namespace {

using Complex = std::complex<double>;

// A scalar integer input's value: the window size, the DFT length, the frame step.
int64_t int_scalar_input(const KernelContext& ctx, size_t i, const char* what) {
  const ir::Tensor& t = ctx.input(i);
  if (!ir::is_integer(t.dtype())) ctx.fail(what, " must be an integer tensor, got ", ir::dtype_name(t.dtype()));
  if (t.numel() != 1) ctx.fail(what, " must be a scalar, got shape ", ir::to_string(t.shape()));
  return t.as_int64(0);
}

double float_scalar_input(const KernelContext& ctx, size_t i, const char* what) {
  const ir::Tensor& t = ctx.input(i);
  if (t.dtype() == ir::DType::kString || t.dtype() == ir::DType::kComplex64 || t.dtype() == ir::DType::kComplex128 ||
      t.dtype() == ir::DType::kBool)
    ctx.fail(what, " must be a numeric tensor, got ", ir::dtype_name(t.dtype()));
  if (t.numel() != 1) ctx.fail(what, " must be a scalar, got shape ", ir::to_string(t.shape()));
  return t.as_double(0);
}

// The value of a scalar integer input when known before running.
std::optional<int64_t> known_int_scalar(const InferenceContext& ctx, size_t i) {
  if (!ctx.has_input(i)) return std::nullopt;
  const ir::Tensor* v = ctx.input_value(i);
  if (!v || v->numel() != 1 || !ir::is_integer(v->dtype())) return std::nullopt;
  return v->as_int64(0);
}

void check_float_input(const NodeView& node, ir::DType t, const char* what) {
  if (t != ir::DType::kUndefined && !ir::is_float(t))
    node.fail(what, " must be a floating-point tensor, got ", ir::dtype_name(t));
}

void check_int_input(const NodeView& node, ir::DType t, const char* what) {
  if (t != ir::DType::kUndefined && !ir::is_integer(t))
    node.fail(what, " must be an integer tensor, got ", ir::dtype_name(t));
}

// ---------------------------------------------------------------------------------------------------
// Fourier transform of one line. Powers of two use an iterative radix-2 FFT; small lengths a direct sum
// with exact twiddle indices; other lengths Bluestein's chirp-z, which reduces to a power-of-two FFT so
// that every length costs O(n log n).

class FourierPlan {
 public:
  explicit FourierPlan(int64_t n) : n_(static_cast<size_t>(n)) {
    if (is_pow2(n_)) {
      twiddles_ = make_twiddles(n_);
    } else if (n_ <= kDirectMax) {
      twiddles_ = make_twiddles(n_);
    } else {
      m_ = 1;
      while (m_ < 2 * n_ - 1) m_ <<= 1;
      twiddles_ = make_twiddles(m_);
      // chirp[k] = exp(-i pi k^2 / n); k^2 is reduced mod 2n first so the angle stays exact.
      chirp_.resize(n_);
      for (size_t k = 0; k < n_; ++k) {
        uint64_t k2 = (static_cast<uint64_t>(k) * k) % (2 * static_cast<uint64_t>(n_));
        chirp_[k] = std::polar(1.0, -std::numbers::pi * static_cast<double>(k2) / static_cast<double>(n_));
      }
      std::vector<Complex> b(m_, Complex(0, 0));
      b[0] = std::conj(chirp_[0]);
      for (size_t k = 1; k < n_; ++k) b[k] = b[m_ - k] = std::conj(chirp_[k]);
      fft_pow2(b, twiddles_);
      chirp_spectrum_ = std::move(b);
    }
  }

  // In place, unscaled: X[k] = sum_t x[t] exp(-+2 pi i k t / n), the sign + for the inverse.
  void run(std::vector<Complex>& a, bool inverse) const {
    // The inverse transform is the conjugate of the forward transform of the conjugate.
    if (inverse)
      for (auto& v : a) v = std::conj(v);
    forward(a);
    if (inverse)
      for (auto& v : a) v = std::conj(v);
  }

 private:
  static constexpr size_t kDirectMax = 64;

  static bool is_pow2(size_t n) { return n > 0 && (n & (n - 1)) == 0; }

  static std::vector<Complex> make_twiddles(size_t n) {
    std::vector<Complex> w(n);
    for (size_t j = 0; j < n; ++j)
      w[j] = std::polar(1.0, -2.0 * std::numbers::pi * static_cast<double>(j) / static_cast<double>(n));
    return w;
  }

  // Radix-2 decimation in time; `w` holds the twiddles of a.size().
  static void fft_pow2(std::vector<Complex>& a, const std::vector<Complex>& w) {
    size_t n = a.size();
    for (size_t i = 1, j = 0; i < n; ++i) {
      size_t bit = n >> 1;
      for (; j & bit; bit >>= 1) j ^= bit;
      j ^= bit;
      if (i < j) std::swap(a[i], a[j]);
    }
    for (size_t len = 2; len <= n; len <<= 1) {
      size_t step = n / len;
      for (size_t i = 0; i < n; i += len) {
        for (size_t j = 0; j < len / 2; ++j) {
          Complex u = a[i + j];
          Complex v = a[i + j + len / 2] * w[j * step];
          a[i + j] = u + v;
          a[i + j + len / 2] = u - v;
        }
      }
    }
  }

  void forward(std::vector<Complex>& a) const {
    if (is_pow2(n_)) {
      fft_pow2(a, twiddles_);
    } else if (n_ <= kDirectMax) {
      std::vector<Complex> out(n_);
      for (size_t k = 0; k < n_; ++k) {
        Complex s(0, 0);
        for (size_t t = 0; t < n_; ++t) s += a[t] * twiddles_[(k * t) % n_];
        out[k] = s;
      }
      a = std::move(out);
    } else {
      std::vector<Complex> c(m_, Complex(0, 0));
      for (size_t k = 0; k < n_; ++k) c[k] = a[k] * chirp_[k];
      fft_pow2(c, twiddles_);
      for (size_t k = 0; k < m_; ++k) c[k] = std::conj(c[k] * chirp_spectrum_[k]);
      fft_pow2(c, twiddles_);  // inverse as conj(fft(conj))
      double scale = 1.0 / static_cast<double>(m_);
      for (size_t k = 0; k < n_; ++k) a[k] = chirp_[k] * std::conj(c[k]) * scale;
    }
  }

  size_t n_;
  size_t m_ = 0;
  std::vector<Complex> twiddles_;
  std::vector<Complex> chirp_;
  std::vector<Complex> chirp_spectrum_;
};

// ---------------------------------------------------------------------------------------------------
// DFT. Opset 17 takes the axis as an attribute (default 1); opset 20 as an optional third input
// (default -2). onesided with inverse=0 is a real-to-complex transform (RFFT); with inverse=1 it takes a
// one-sided spectrum and returns the real signal (IRFFT).

struct DftConfig {
  bool inverse = false;
  bool onesided = false;
  bool irfft() const { return inverse && onesided; }
};

int64_t dft_axis_in_range(const NodeView& node, int64_t axis, int64_t rank) {
  int64_t a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a > rank - 2)
    node.fail("axis ", axis, " is out of range for an input of rank ", rank,
              " (the last dimension holds the real and imaginary parts)");
  return a;
}

DftConfig dft_config(const NodeView& node) {
  DftConfig c;
  int64_t inverse = node.attr_int("inverse", 0);
  int64_t onesided = node.attr_int("onesided", 0);
  if (inverse != 0 && inverse != 1) node.fail("attribute inverse must be 0 or 1, got ", inverse);
  if (onesided != 0 && onesided != 1) node.fail("attribute onesided must be 0 or 1, got ", onesided);
  c.inverse = inverse == 1;
  c.onesided = onesided == 1;
  return c;
}

void infer_dft(InferenceContext& ctx) {
  const ir::Type& in = ctx.input_type(0);
  check_float_input(ctx, in.dtype, "input");
  DftConfig cfg = dft_config(ctx);
  if (ctx.has_input(1)) check_int_input(ctx, ctx.input_type(1).dtype, "dft_length");
  if (!in.shape) {
    ctx.set_output(0, in.dtype, std::nullopt);
    return;
  }
  const ir::Shape& s = *in.shape;
  int64_t rank = static_cast<int64_t>(s.rank());
  if (rank < 2) ctx.fail("input must have rank >= 2 ([..., signal, 1 or 2]), got rank ", rank);
  const ir::Dim& last = s.dims.back();
  if (last.is_static() && last.value != 1 && last.value != 2)
    ctx.fail("the last input dimension must be 1 (real) or 2 (complex), got ", last.value);

  std::optional<int64_t> axis;
  if (ctx.opset() >= 20) {
    if (!ctx.has_input(2))
      axis = -2;
    else
      axis = known_int_scalar(ctx, 2);
  } else {
    axis = ctx.attr_int("axis", 1);
  }
  ir::Shape out = s;
  out.dims.back() = ir::Dim(cfg.irfft() ? 1 : 2);
  if (!axis) {
    for (int64_t i = 0; i + 1 < rank; ++i) out.dims[static_cast<size_t>(i)] = ir::Dim();
    ctx.set_output(0, in.dtype, out);
    return;
  }
  size_t a = static_cast<size_t>(dft_axis_in_range(ctx, *axis, rank));
  const ir::Dim& n_in = s.dims[a];
  std::optional<int64_t> length;
  if (ctx.has_input(1)) {
    length = known_int_scalar(ctx, 1);
    if (length && *length < 1) ctx.fail("dft_length must be positive, got ", *length);
  } else if (n_in.is_static()) {
    length = cfg.irfft() ? 2 * (n_in.value - 1) : n_in.value;
    if (*length < 1) ctx.fail("the DFT length (", *length, ") must be positive");
  }
  ir::Dim out_len;
  if (length) {
    out_len = (cfg.onesided && !cfg.inverse) ? *length / 2 + 1 : *length;
  } else if (!ctx.has_input(1) && !cfg.onesided) {
    out_len = n_in;  // the length of the transformed axis is kept, symbolic or not
  }
  out.dims[a] = out_len;
  ctx.set_output(0, in.dtype, out);
}

void run_dft(KernelContext& ctx) {
  const ir::Tensor& x = ctx.input(0);
  check_float_input(ctx, x.dtype(), "input");
  DftConfig cfg = dft_config(ctx);
  int64_t rank = static_cast<int64_t>(x.rank());
  if (rank < 2) ctx.fail("input must have rank >= 2 ([..., signal, 1 or 2]), got shape ", ir::to_string(x.shape()));
  int64_t comps = x.shape().back();
  if (comps != 1 && comps != 2)
    ctx.fail("the last input dimension must be 1 (real) or 2 (complex), got shape ", ir::to_string(x.shape()));

  int64_t axis_value = 1;
  if (ctx.opset() >= 20)
    axis_value = ctx.has_input(2) ? int_scalar_input(ctx, 2, "axis") : -2;
  else
    axis_value = ctx.attr_int("axis", 1);
  size_t axis = static_cast<size_t>(dft_axis_in_range(ctx, axis_value, rank));

  int64_t n_in = x.dim(axis);
  int64_t length = 0;
  if (ctx.has_input(1)) {
    length = int_scalar_input(ctx, 1, "dft_length");
    if (length < 1) ctx.fail("dft_length must be positive, got ", length);
  } else {
    length = cfg.irfft() ? 2 * (n_in - 1) : n_in;
    if (length < 1) ctx.fail("the DFT length (", length, ", from an axis of size ", n_in, ") must be positive");
  }
  int64_t out_len = (cfg.onesided && !cfg.inverse) ? length / 2 + 1 : length;
  int64_t out_comps = cfg.irfft() ? 1 : 2;

  std::vector<int64_t> out_shape = x.shape();
  out_shape[axis] = out_len;
  out_shape.back() = out_comps;
  ir::Tensor out = ctx.make_tensor(x.dtype(), out_shape);

  int64_t outer = 1, inner = 1;
  for (size_t i = 0; i < axis; ++i) outer *= x.dim(i);
  for (size_t i = axis + 1; i + 1 < x.rank(); ++i) inner *= x.dim(i);
  if (outer * inner == 0) {
    ctx.set_output(0, std::move(out));
    return;
  }

  FourierPlan plan(length);
  ir::visit_float_dtype(x.dtype(), [&]<class T>() {
    const T* in = x.data<T>();
    T* o = out.data<T>();
    std::vector<Complex> line(static_cast<size_t>(length));
    auto at = [&](int64_t b, int64_t t, int64_t i) {
      const T* p = in + ((b * n_in + t) * inner + i) * comps;
      return Complex(static_cast<double>(p[0]), comps == 2 ? static_cast<double>(p[1]) : 0.0);
    };
    for (int64_t b = 0; b < outer; ++b) {
      for (int64_t i = 0; i < inner; ++i) {
        if (cfg.irfft()) {
          // Rebuild the full spectrum from its Hermitian half; bins beyond the input are zero.
          for (int64_t k = 0; k < length; ++k) {
            Complex v(0, 0);
            if (k <= length / 2) {
              if (k < n_in) v = at(b, k, i);
            } else if (length - k < n_in) {
              v = std::conj(at(b, length - k, i));
            }
            line[static_cast<size_t>(k)] = v;
          }
        } else {
          for (int64_t t = 0; t < length; ++t) line[static_cast<size_t>(t)] = t < n_in ? at(b, t, i) : Complex(0, 0);
        }
        plan.run(line, cfg.inverse);
        double scale = cfg.inverse ? 1.0 / static_cast<double>(length) : 1.0;
        for (int64_t k = 0; k < out_len; ++k) {
          T* p = o + ((b * out_len + k) * inner + i) * out_comps;
          Complex v = line[static_cast<size_t>(k)] * scale;
          p[0] = from_double<T>(v.real());
          if (out_comps == 2) p[1] = from_double<T>(v.imag());
        }
      }
    }
  });
  ctx.set_output(0, std::move(out));
}

// ---------------------------------------------------------------------------------------------------
// STFT: frames of frame_length samples every frame_step samples, each multiplied by the window and
// transformed with a DFT of frame_length points. Output [batch, frames, bins, 2].

void infer_stft(InferenceContext& ctx) {
  const ir::Type& in = ctx.input_type(0);
  check_float_input(ctx, in.dtype, "signal");
  check_int_input(ctx, ctx.input_type(1).dtype, "frame_step");
  int64_t onesided = ctx.attr_int("onesided", 1);
  if (onesided != 0 && onesided != 1) ctx.fail("attribute onesided must be 0 or 1, got ", onesided);
  if (!in.shape) {
    ctx.set_output(0, in.dtype, ir::Shape(std::vector<ir::Dim>{ir::Dim(), ir::Dim(), ir::Dim(), ir::Dim(2)}));
    return;
  }
  const ir::Shape& s = *in.shape;
  if (s.rank() != 3) ctx.fail("signal must have shape [batch, signal_length, 1 or 2], got rank ", s.rank());
  if (s[2].is_static() && s[2].value != 1 && s[2].value != 2)
    ctx.fail("the last signal dimension must be 1 (real) or 2 (complex), got ", s[2].value);

  std::optional<int64_t> frame_length;
  std::optional<int64_t> window_length;
  if (ctx.has_input(2)) {
    const ir::Type& w = ctx.input_type(2);
    check_float_input(ctx, w.dtype, "window");
    if (w.shape) {
      if (w.shape->rank() != 1) ctx.fail("window must have rank 1, got rank ", w.shape->rank());
      if ((*w.shape)[0].is_static()) window_length = (*w.shape)[0].value;
    }
  }
  if (ctx.has_input(3)) {
    check_int_input(ctx, ctx.input_type(3).dtype, "frame_length");
    frame_length = known_int_scalar(ctx, 3);
  } else if (ctx.has_input(2)) {
    frame_length = window_length;
  } else if (s[1].is_static()) {
    frame_length = s[1].value;
  }
  if (frame_length && *frame_length < 1) ctx.fail("frame_length must be positive, got ", *frame_length);
  if (frame_length && window_length && *frame_length != *window_length)
    ctx.fail("window length ", *window_length, " differs from frame_length ", *frame_length);
  std::optional<int64_t> step = known_int_scalar(ctx, 1);
  if (step && *step < 1) ctx.fail("frame_step must be positive, got ", *step);

  ir::Dim frames, bins;
  if (frame_length) {
    bins = onesided ? *frame_length / 2 + 1 : *frame_length;
    if (step && s[1].is_static()) {
      if (s[1].value < *frame_length)
        ctx.fail("signal length ", s[1].value, " is shorter than frame_length ", *frame_length);
      frames = (s[1].value - *frame_length) / *step + 1;
    }
  }
  ctx.set_output(0, in.dtype, ir::Shape(std::vector<ir::Dim>{s[0], frames, bins, ir::Dim(2)}));
}

void run_stft(KernelContext& ctx) {
  const ir::Tensor& x = ctx.input(0);
  check_float_input(ctx, x.dtype(), "signal");
  if (x.rank() != 3 || (x.dim(2) != 1 && x.dim(2) != 2))
    ctx.fail("signal must have shape [batch, signal_length, 1 or 2], got ", ir::to_string(x.shape()));
  int64_t onesided = ctx.attr_int("onesided", 1);
  if (onesided != 0 && onesided != 1) ctx.fail("attribute onesided must be 0 or 1, got ", onesided);
  int64_t batch = x.dim(0), signal_length = x.dim(1), comps = x.dim(2);

  int64_t step = int_scalar_input(ctx, 1, "frame_step");
  if (step < 1) ctx.fail("frame_step must be positive, got ", step);
  const ir::Tensor* window = ctx.has_input(2) ? &ctx.input(2) : nullptr;
  if (window) {
    check_float_input(ctx, window->dtype(), "window");
    if (window->rank() != 1) ctx.fail("window must have rank 1, got shape ", ir::to_string(window->shape()));
  }
  int64_t frame_length = 0;
  if (ctx.has_input(3))
    frame_length = int_scalar_input(ctx, 3, "frame_length");
  else if (window)
    frame_length = window->dim(0);
  else
    frame_length = signal_length;
  if (frame_length < 1) ctx.fail("frame_length must be positive, got ", frame_length);
  if (window && window->dim(0) != frame_length)
    ctx.fail("window length ", window->dim(0), " differs from frame_length ", frame_length);
  if (signal_length < frame_length)
    ctx.fail("signal length ", signal_length, " is shorter than frame_length ", frame_length);

  int64_t frames = (signal_length - frame_length) / step + 1;
  int64_t bins = onesided ? frame_length / 2 + 1 : frame_length;
  ir::Tensor out = ctx.make_tensor(x.dtype(), {batch, frames, bins, 2});
  std::vector<double> w(static_cast<size_t>(frame_length), 1.0);
  if (window)
    for (int64_t t = 0; t < frame_length; ++t) w[static_cast<size_t>(t)] = window->as_double(t);

  FourierPlan plan(frame_length);
  ir::visit_float_dtype(x.dtype(), [&]<class T>() {
    const T* in = x.data<T>();
    T* o = out.data<T>();
    std::vector<Complex> line(static_cast<size_t>(frame_length));
    for (int64_t b = 0; b < batch; ++b) {
      for (int64_t f = 0; f < frames; ++f) {
        for (int64_t t = 0; t < frame_length; ++t) {
          const T* p = in + (b * signal_length + f * step + t) * comps;
          Complex v(static_cast<double>(p[0]), comps == 2 ? static_cast<double>(p[1]) : 0.0);
          line[static_cast<size_t>(t)] = v * w[static_cast<size_t>(t)];
        }
        plan.run(line, false);
        T* q = o + ((b * frames + f) * bins) * 2;
        for (int64_t k = 0; k < bins; ++k) {
          q[2 * k] = from_double<T>(line[static_cast<size_t>(k)].real());
          q[2 * k + 1] = from_double<T>(line[static_cast<size_t>(k)].imag());
        }
      }
    }
  });
  ctx.set_output(0, std::move(out));
}

// ---------------------------------------------------------------------------------------------------
// Windows: w[n] = a0 - a1 cos(2 pi n / N) + a2 cos(4 pi n / N), N = size (periodic) or size - 1.

struct CosineSum {
  double a0, a1, a2;
};

ir::DType window_output_dtype(const NodeView& node) {
  int64_t code = node.attr_int("output_datatype", static_cast<int64_t>(ir::DType::kFloat32));
  if (!ir::dtype_is_valid(static_cast<int32_t>(code))) node.fail("output_datatype ", code, " is not a valid type");
  auto t = static_cast<ir::DType>(code);
  if (!ir::is_float(t) && !ir::is_integer(t))
    node.fail("output_datatype must be a floating-point or integer type, got ", ir::dtype_name(t));
  return t;
}

void infer_window(InferenceContext& ctx) {
  check_int_input(ctx, ctx.input_type(0).dtype, "size");
  ir::DType t = window_output_dtype(ctx);
  std::optional<int64_t> size = known_int_scalar(ctx, 0);
  if (size && *size < 0) ctx.fail("size must be non-negative, got ", *size);
  ctx.set_output(0, t, ir::Shape(std::vector<ir::Dim>{size ? ir::Dim(*size) : ir::Dim()}));
}

KernelFn window_kernel(CosineSum c) {
  return [c](KernelContext& ctx) {
    int64_t size = int_scalar_input(ctx, 0, "size");
    if (size < 0) ctx.fail("size must be non-negative, got ", size);
    int64_t periodic = ctx.attr_int("periodic", 1);
    if (periodic != 0 && periodic != 1) ctx.fail("attribute periodic must be 0 or 1, got ", periodic);
    ir::DType dt = window_output_dtype(ctx);
    ir::Tensor out = ctx.make_tensor(dt, {size});
    int64_t denom = periodic ? size : size - 1;
    ir::visit_numeric_dtype(dt, [&]<class T>() {
      T* o = out.data<T>();
      for (int64_t n = 0; n < size; ++n) {
        // A symmetric window of one point would divide by zero; it is [1], as in numpy and torch.
        double v = 1.0;
        if (denom > 0) {
          double phase = 2.0 * std::numbers::pi * static_cast<double>(n) / static_cast<double>(denom);
          v = c.a0 - c.a1 * std::cos(phase) + c.a2 * std::cos(2.0 * phase);
        }
        o[n] = from_double<T>(v);
      }
    });
    ctx.set_output(0, std::move(out));
  };
}

// ---------------------------------------------------------------------------------------------------
// MelWeightMatrix: triangular filters on the mel scale, mapping [dft_length/2 + 1] spectrum bins to
// num_mel_bins. Follows the ONNX reference: band edges are floored to spectrum bins.

void infer_mel(InferenceContext& ctx) {
  check_int_input(ctx, ctx.input_type(0).dtype, "num_mel_bins");
  check_int_input(ctx, ctx.input_type(1).dtype, "dft_length");
  check_int_input(ctx, ctx.input_type(2).dtype, "sample_rate");
  check_float_input(ctx, ctx.input_type(3).dtype, "lower_edge_hertz");
  check_float_input(ctx, ctx.input_type(4).dtype, "upper_edge_hertz");
  ir::DType t = window_output_dtype(ctx);
  std::optional<int64_t> mel = known_int_scalar(ctx, 0), dft = known_int_scalar(ctx, 1);
  if (mel && *mel < 1) ctx.fail("num_mel_bins must be positive, got ", *mel);
  if (dft && *dft < 1) ctx.fail("dft_length must be positive, got ", *dft);
  ir::Dim rows = dft ? ir::Dim(*dft / 2 + 1) : ir::Dim();
  ir::Dim cols = mel ? ir::Dim(*mel) : ir::Dim();
  ctx.set_output(0, t, ir::Shape(std::vector<ir::Dim>{rows, cols}));
}

void run_mel(KernelContext& ctx) {
  int64_t num_mel = int_scalar_input(ctx, 0, "num_mel_bins");
  int64_t dft_length = int_scalar_input(ctx, 1, "dft_length");
  int64_t sample_rate = int_scalar_input(ctx, 2, "sample_rate");
  double lower = float_scalar_input(ctx, 3, "lower_edge_hertz");
  double upper = float_scalar_input(ctx, 4, "upper_edge_hertz");
  if (num_mel < 1) ctx.fail("num_mel_bins must be positive, got ", num_mel);
  if (dft_length < 1) ctx.fail("dft_length must be positive, got ", dft_length);
  if (sample_rate < 1) ctx.fail("sample_rate must be positive, got ", sample_rate);
  if (!(lower >= 0) || !(upper > lower) || !std::isfinite(upper))
    ctx.fail("edge frequencies must satisfy 0 <= lower_edge_hertz < upper_edge_hertz, got ", lower, " and ", upper);
  ir::DType dt = window_output_dtype(ctx);
  int64_t spectrum_bins = dft_length / 2 + 1;
  ir::Tensor out = ctx.make_tensor(dt, {spectrum_bins, num_mel});

  auto hz_to_mel = [](double hz) { return 2595.0 * std::log10(1.0 + hz / 700.0); };
  double low_mel = hz_to_mel(lower), high_mel = hz_to_mel(upper);
  double mel_step = (high_mel - low_mel) / static_cast<double>(num_mel + 2);
  std::vector<int64_t> edge(static_cast<size_t>(num_mel + 2));
  for (size_t i = 0; i < edge.size(); ++i) {
    double mel = static_cast<double>(i) * mel_step + low_mel;
    double hz = 700.0 * (std::pow(10.0, mel / 2595.0) - 1.0);
    edge[i] =
        static_cast<int64_t>(std::floor(static_cast<double>(dft_length + 1) * hz / static_cast<double>(sample_rate)));
  }

  std::vector<double> w(static_cast<size_t>(spectrum_bins * num_mel), 0.0);
  // Edges above the spectrum (upper_edge_hertz beyond the Nyquist frequency) are cut off.
  auto set = [&](int64_t j, int64_t i, double v) {
    if (j >= 0 && j < spectrum_bins) w[static_cast<size_t>(j * num_mel + i)] = v;
  };
  for (int64_t i = 0; i < num_mel; ++i) {
    int64_t left = edge[static_cast<size_t>(i)], center = edge[static_cast<size_t>(i + 1)],
            right = edge[static_cast<size_t>(i + 2)];
    if (center == left) {
      set(center, i, 1.0);
    } else {
      for (int64_t j = left; j <= center; ++j)
        set(j, i, static_cast<double>(j - left) / static_cast<double>(center - left));
    }
    if (right > center)
      for (int64_t j = center; j < right; ++j)
        set(j, i, static_cast<double>(right - j) / static_cast<double>(right - center));
  }
  ir::visit_numeric_dtype(dt, [&]<class T>() {
    T* o = out.data<T>();
    for (size_t k = 0; k < w.size(); ++k) o[k] = from_double<T>(w[k]);
  });
  ctx.set_output(0, std::move(out));
}

}  // namespace

void register_signal_ops(OpRegistry& r) {
  r.add(OpDef{"", "DFT", 17, kMaxOnnxOpset, infer_dft, run_dft});
  r.add(OpDef{"", "STFT", 17, kMaxOnnxOpset, infer_stft, run_stft});
  r.add(OpDef{"", "HannWindow", 17, kMaxOnnxOpset, infer_window, window_kernel({0.5, 0.5, 0.0})});
  // ONNX's Hamming coefficients are 25/46 and 21/46, not the rounded 0.54 and 0.46.
  r.add(OpDef{"", "HammingWindow", 17, kMaxOnnxOpset, infer_window, window_kernel({25.0 / 46.0, 21.0 / 46.0, 0.0})});
  r.add(OpDef{"", "BlackmanWindow", 17, kMaxOnnxOpset, infer_window, window_kernel({0.42, 0.5, 0.08})});
  r.add(OpDef{"", "MelWeightMatrix", 17, kMaxOnnxOpset, infer_mel, run_mel});
}

}  // namespace kiln::ops
