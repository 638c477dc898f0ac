// Generated inputs for a model: the right dtype and shape for each input, with values that make sense
// for common input kinds (masks of ones, token ids in a small range, images ~N(0,1)).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "ir/graph.h"

namespace kiln::runtime {

// Shape of an input with symbolic dims resolved from `dims` (unlisted ones: 1; unknown dims: 1).
std::vector<int64_t> concrete_shape(const ir::ValueInfo& input, const std::map<std::string, int64_t>& dims);

ir::Tensor random_input(const ir::ValueInfo& input, const std::map<std::string, int64_t>& dims, uint64_t seed);

}  // namespace kiln::runtime
