// Int8MatMul: the product of uint8 activations (with a scale and zero point per call) and constant int8
// weights (zero point 0, a scale per tensor or per column), plus a bias, on any CPU:
//
//     y[M,N] = a_scale * b_scale[n] * sum_k (A[m,k] - a_zero_point) * B[k,n] + bias[n]
//
// Where int8 is fast (VNNI or AMX: int8_matmul_is_fast()) through PackedInt8MatMul; elsewhere in float32,
// by PackedMatMul on the weights dequantized once (b_scale * B) and A dequantized per call ((A - zero
// point) * a_scale): the same products of the same quantized values, so a model's quantization error is
// the same on every CPU (the float32 roundings of the two paths differ in the last bits), at float32
// speed there. The kernels of DynamicQuantizeMatMul and QAttention share it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace kiln::kernels::cpu {

class PackedInt8MatMul;
class PackedMatMul;

class Int8MatMul {
 public:
  // b: [K,N] row-major; b_scale: 1 or N values; bias: N values or null. No pointer is kept.
  Int8MatMul(int64_t k, int64_t n, const int8_t* b, const std::vector<float>& b_scale, const float* bias);
  ~Int8MatMul();
  Int8MatMul(const Int8MatMul&) = delete;
  Int8MatMul& operator=(const Int8MatMul&) = delete;

  // M = m rows of A (K apart, dense) into y (N apart, dense). Thread-safe.
  void run(int64_t m, const uint8_t* a, float a_scale, uint8_t a_zero_point, float* y) const;

  int64_t k() const { return k_; }
  int64_t n() const { return n_; }
  // For profiles: "onednn int8", or the float32 engine's name with "(int8 is not faster here)".
  std::string implementation() const;

 private:
  int64_t k_, n_;
  std::unique_ptr<PackedInt8MatMul> int8_;
  std::unique_ptr<PackedMatMul> f32_;
};

}  // namespace kiln::kernels::cpu
