// Miscellaneous ops: Det here; signal, random, string and training ops in their own files
// (signal.cc, random.cc, strings.cc, training.cc), all registered from register_misc_ops.
#include <cmath>
#include <type_traits>
#include <utility>
#include <vector>

#include "kernels/reference/common.h"
#include "ops/registry.h"

namespace kiln::ops {

// Defined in the sibling files of this family.
void register_signal_ops(OpRegistry& r);
void register_random_ops(OpRegistry& r);
void register_string_ops(OpRegistry& r);
void register_training_ops(OpRegistry& r);

namespace {

// Det: determinant of each [M, M] matrix of the last two dimensions, by LU decomposition with partial
// pivoting in double.

void infer_det(InferenceContext& ctx) {
  const ir::Type& in = ctx.input_type(0);
  if (in.dtype != ir::DType::kUndefined && !ir::is_float(in.dtype))
    ctx.fail("input must be a floating-point tensor, got ", ir::dtype_name(in.dtype));
  if (!in.shape) {
    ctx.set_output(0, in.dtype, std::nullopt);
    return;
  }
  const ir::Shape& s = *in.shape;
  if (s.rank() < 2) ctx.fail("input must have rank >= 2 ([*, M, M]), got rank ", s.rank());
  const ir::Dim& rows = s[s.rank() - 2];
  const ir::Dim& cols = s[s.rank() - 1];
  if (rows.is_static() && cols.is_static() && rows.value != cols.value)
    ctx.fail("input matrices must be square, got shape ", ir::to_string(s));
  ctx.set_output(0, in.dtype, ir::Shape(std::vector<ir::Dim>(s.dims.begin(), s.dims.end() - 2)));
}

double determinant(std::vector<double>& a, int64_t m) {
  double det = 1.0;
  for (int64_t col = 0; col < m; ++col) {
    int64_t pivot = col;
    for (int64_t r = col + 1; r < m; ++r)
      if (std::fabs(a[static_cast<size_t>(r * m + col)]) > std::fabs(a[static_cast<size_t>(pivot * m + col)]))
        pivot = r;
    double p = a[static_cast<size_t>(pivot * m + col)];
    if (p == 0.0) return 0.0;
    if (pivot != col) {
      for (int64_t c = 0; c < m; ++c)
        std::swap(a[static_cast<size_t>(pivot * m + c)], a[static_cast<size_t>(col * m + c)]);
      det = -det;
    }
    det *= p;
    for (int64_t r = col + 1; r < m; ++r) {
      double f = a[static_cast<size_t>(r * m + col)] / p;
      if (f == 0.0) continue;
      for (int64_t c = col + 1; c < m; ++c)
        a[static_cast<size_t>(r * m + c)] -= f * a[static_cast<size_t>(col * m + c)];
    }
  }
  return det;
}

void run_det(KernelContext& ctx) {
  const ir::Tensor& x = ctx.input(0);
  if (!ir::is_float(x.dtype())) ctx.fail("input must be a floating-point tensor, got ", ir::dtype_name(x.dtype()));
  if (x.rank() < 2) ctx.fail("input must have rank >= 2 ([*, M, M]), got shape ", ir::to_string(x.shape()));
  int64_t m = x.dim(x.rank() - 1);
  if (x.dim(x.rank() - 2) != m) ctx.fail("input matrices must be square, got shape ", ir::to_string(x.shape()));
  std::vector<int64_t> out_shape(x.shape().begin(), x.shape().end() - 2);
  ir::Tensor out = ctx.make_tensor(x.dtype(), out_shape);
  int64_t count = out.numel();
  ir::visit_float_dtype(x.dtype(), [&]<class T>() {
    const T* in = x.data<T>();
    T* o = out.data<T>();
    std::vector<double> a(static_cast<size_t>(m * m));
    for (int64_t b = 0; b < count; ++b) {
      for (int64_t k = 0; k < m * m; ++k) a[static_cast<size_t>(k)] = static_cast<double>(in[b * m * m + k]);
      double d = determinant(a, m);
      if constexpr (std::is_same_v<T, double>)
        o[b] = d;
      else
        o[b] = T(static_cast<float>(d));
    }
  });
  ctx.set_output(0, std::move(out));
}

}  // namespace

void register_misc_ops(OpRegistry& r) {
  r.add(OpDef{"", "Det", 11, kMaxOnnxOpset, infer_det, run_det});
  register_signal_ops(r);
  register_random_ops(r);
  register_string_ops(r);
  register_training_ops(r);
  void register_string_ops_opset20(OpRegistry&);  // strings_ops20.cc: StringConcat, StringSplit, RegexFullMatch
  register_string_ops_opset20(r);
}

}  // namespace kiln::ops
