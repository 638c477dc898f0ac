#include "runtime/random_inputs.h"

#include <algorithm>
#include <random>

namespace kiln::runtime {

std::vector<int64_t> concrete_shape(const ir::ValueInfo& input, const std::map<std::string, int64_t>& dims) {
  if (!input.type.is_tensor()) fail("input \"", input.name, "\" is not a tensor; cannot generate it");
  if (!input.type.shape) fail("input \"", input.name, "\" has no declared shape; give it with --input");
  std::vector<int64_t> shape;
  for (const auto& d : input.type.shape->dims) {
    if (d.is_static()) {
      shape.push_back(d.value);
      continue;
    }
    auto it = dims.find(d.symbol);
    shape.push_back(it != dims.end() ? it->second : 1);
  }
  return shape;
}

namespace {
bool name_has(const std::string& name, const char* part) {
  std::string lower = name;
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  return lower.find(part) != std::string::npos;
}
}  // namespace

ir::Tensor random_input(const ir::ValueInfo& input, const std::map<std::string, int64_t>& dims, uint64_t seed) {
  ir::Tensor t(input.type.dtype, concrete_shape(input, dims));
  std::mt19937_64 rng(seed);
  const bool mask = name_has(input.name, "mask");
  const bool token_type = name_has(input.name, "token_type") || name_has(input.name, "segment");
  ir::visit_dtype(t.dtype(), [&]<class T>() {
    T* p = t.data<T>();
    for (int64_t i = 0; i < t.numel(); ++i) {
      if constexpr (std::is_same_v<T, std::string>) {
        p[i] = "";
      } else if constexpr (std::is_same_v<T, bool>) {
        p[i] = true;
      } else if constexpr (std::is_same_v<T, std::complex<float>> || std::is_same_v<T, std::complex<double>>) {
        p[i] = T(0, 0);
      } else if constexpr (std::is_integral_v<T>) {
        // Token ids stay within any vocabulary's first 100 entries; masks are all ones.
        p[i] = mask ? T(1) : token_type ? T(0) : static_cast<T>(std::uniform_int_distribution<int>(0, 99)(rng));
      } else {
        p[i] = T(static_cast<float>(std::normal_distribution<double>(0, 1)(rng)));
      }
    }
  });
  return t;
}

}  // namespace kiln::runtime
