// Storing a double computed in a kernel into an element of type T: float-like types round through float
// (double stays exact), bool is "not zero", and integer types saturate (NaN gives 0), so that no input
// reaches the undefined out-of-range cast.
#pragma once

#include <cmath>
#include <limits>
#include <type_traits>

#include "common/half.h"

namespace kiln::ops {

template <class T>
constexpr bool kIsFloatLike = std::is_floating_point_v<T> || std::is_same_v<T, Float16> || std::is_same_v<T, BFloat16>;

template <class T>
T from_double(double v) {
  if constexpr (std::is_same_v<T, bool>) {
    return v != 0;
  } else if constexpr (kIsFloatLike<T>) {
    if constexpr (std::is_same_v<T, double>)
      return v;
    else
      return T(static_cast<float>(v));
  } else {
    if (std::isnan(v)) return T(0);
    if (v <= static_cast<double>(std::numeric_limits<T>::lowest())) return std::numeric_limits<T>::lowest();
    if (v >= static_cast<double>(std::numeric_limits<T>::max())) return std::numeric_limits<T>::max();
    return static_cast<T>(v);
  }
}

}  // namespace kiln::ops
