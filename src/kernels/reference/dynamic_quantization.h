// DynamicQuantizeLinear's rule for a uint8 scale and zero point, and for quantizing one float32 value,
// shared by the reference kernels (DynamicQuantizeLinear, com.microsoft.DynamicQuantizeMatMul) and the
// fast ones (kernels/cpu/activation_quantization.h, whose vector loop computes the same): one
// definition, so that every path quantizes a tensor identically.
//
// The range is extended to include 0 (so that 0 is exact); scale = (max - min) / 255, and an empty range
// (all zeros) takes scale 1, zero point 0, as ONNX's reference does. A value then quantizes to
// saturate(round_half_even(x / scale) + zero_point): the division is float32, as in ONNX's reference.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace kiln::ops {

struct DynamicQuantization {
  float scale = 1.0f;
  uint8_t zero_point = 0;
};

// From the data's minimum and maximum (NaN skipped by the caller's comparisons).
inline DynamicQuantization dynamic_quantization(float min_x, float max_x) {
  const float lo = std::min(min_x, 0.0f), hi = std::max(max_x, 0.0f);
  DynamicQuantization q;
  q.scale = hi == lo ? 1.0f : (hi - lo) / 255.0f;
  const float zp = std::clamp(0.0f - lo / q.scale, 0.0f, 255.0f);
  q.zero_point = static_cast<uint8_t>(std::nearbyint(zp));  // half to even in the default rounding mode
  return q;
}

// One value, as DynamicQuantizeLinear writes it; NaN becomes 0 (ONNX leaves it undefined).
inline uint8_t quantize_u8(float x, DynamicQuantization q) {
  const float v = std::nearbyint(x / q.scale) + static_cast<float>(q.zero_point);
  if (!(v > 0.0f)) return 0;
  return v >= 255.0f ? uint8_t{255} : static_cast<uint8_t>(v);
}

}  // namespace kiln::ops
