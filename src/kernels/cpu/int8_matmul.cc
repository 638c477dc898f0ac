#include "kernels/cpu/int8_matmul.h"

#include "kernels/cpu/onednn_int8_matmul.h"
#include "kernels/cpu/onednn_matmul.h"
#include "kernels/cpu/thread_buffer.h"

namespace kiln::kernels::cpu {

namespace {
struct DequantizedActivations {};  // names the float32 path's per-thread buffer
}  // namespace

Int8MatMul::Int8MatMul(int64_t k, int64_t n, const int8_t* b, const std::vector<float>& b_scale, const float* bias)
    : k_(k), n_(n) {
  const bool per_column = b_scale.size() > 1;
  if (int8_matmul_is_fast()) {
    int8_ = std::make_unique<PackedInt8MatMul>(k, n, b, b_scale.data(), per_column, bias);
    return;
  }
  std::vector<float> w(static_cast<size_t>(k * n));
  for (int64_t r = 0; r < k; ++r)
    for (int64_t c = 0; c < n; ++c)
      w[static_cast<size_t>(r * n + c)] = static_cast<float>(b[r * n + c]) * b_scale[per_column ? static_cast<size_t>(c) : 0];
  MatMulSpec spec;
  spec.k = k;
  spec.n = n;
  spec.has_bias = bias != nullptr;
  f32_ = std::make_unique<PackedMatMul>(spec, w.data(), bias);
}

Int8MatMul::~Int8MatMul() = default;

void Int8MatMul::run(int64_t m, const uint8_t* a, float a_scale, uint8_t a_zero_point, float* y) const {
  if (int8_) {
    int8_->run(m, a, k_, a_scale, a_zero_point, y, n_);
    return;
  }
  const int64_t count = m * k_;
  float* d = reinterpret_cast<float*>(thread_buffer<DequantizedActivations>(sizeof(float) * static_cast<size_t>(count)));
  const float zp = a_zero_point;
  for (int64_t i = 0; i < count; ++i) d[i] = (static_cast<float>(a[i]) - zp) * a_scale;
  f32_->run(m, d, k_, y, n_);
}

std::string Int8MatMul::implementation() const {
  return int8_ ? "onednn int8" : gemm_engine_implementation(f32_->engine()) + " float32 (int8 is not faster here)";
}

}  // namespace kiln::kernels::cpu
