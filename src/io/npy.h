// NumPy .npy files (format versions 1-3, little-endian, C order): the exchange format for inputs and
// outputs of `kiln run`, and for test fixtures.
#pragma once

#include <string>

#include "ir/tensor.h"

namespace kiln::io {

ir::Tensor read_npy(const std::string& path);
ir::Tensor parse_npy(const std::string& bytes, const std::string& label);
// Writes to a temporary name and renames when complete.
void write_npy(const std::string& path, const ir::Tensor& t);
std::string serialize_npy(const ir::Tensor& t);
// The file name (without ".npy") that holds the value `name` in a folder of .npy files: characters
// outside [A-Za-z0-9._-] become '_' (so "input:0" is input_0.npy), and "." / ".." / "" get a leading '_'.
std::string npy_file_stem(const std::string& name);

}  // namespace kiln::io
