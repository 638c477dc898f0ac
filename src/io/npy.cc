#include "io/npy.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "ir/shape.h"

namespace kiln::io {

namespace {

struct NpyType {
  const char* descr;
  ir::DType dtype;
};
constexpr NpyType kTypes[] = {
    {"<f4", ir::DType::kFloat32},   {"<f8", ir::DType::kFloat64},     {"<f2", ir::DType::kFloat16},
    {"|i1", ir::DType::kInt8},      {"<i2", ir::DType::kInt16},       {"<i4", ir::DType::kInt32},
    {"<i8", ir::DType::kInt64},     {"|u1", ir::DType::kUInt8},       {"<u2", ir::DType::kUInt16},
    {"<u4", ir::DType::kUInt32},    {"<u8", ir::DType::kUInt64},      {"|b1", ir::DType::kBool},
    {"<c8", ir::DType::kComplex64}, {"<c16", ir::DType::kComplex128},
};

// Value of `'key': value` in the header dict, as raw text up to the next top-level comma or brace.
std::string header_field(const std::string& header, const std::string& key, const std::string& label) {
  size_t k = header.find("'" + key + "'");
  if (k == std::string::npos) fail(label, ": .npy header has no '", key, "'");
  size_t colon = header.find(':', k);
  if (colon == std::string::npos) fail(label, ": malformed .npy header");
  size_t start = colon + 1;
  while (start < header.size() && header[start] == ' ') ++start;
  int depth = 0;
  size_t end = start;
  for (; end < header.size(); ++end) {
    char c = header[end];
    if (c == '(' || c == '[') ++depth;
    if (c == ')' || c == ']') --depth;
    if (depth == 0 && (c == ',' || c == '}')) break;
    if (depth < 0) break;
  }
  if (header[start] == '(') {  // include the closing parenthesis
    size_t close = header.find(')', start);
    if (close == std::string::npos) fail(label, ": malformed shape in .npy header");
    return header.substr(start, close - start + 1);
  }
  return header.substr(start, end - start);
}

}  // namespace

ir::Tensor parse_npy(const std::string& bytes, const std::string& label) {
  if (bytes.size() < 10 || std::memcmp(bytes.data(), "\x93NUMPY", 6) != 0) fail(label, ": not a .npy file");
  int major = static_cast<unsigned char>(bytes[6]);
  size_t header_len = 0, offset = 0;
  if (major == 1) {
    header_len =
        static_cast<unsigned char>(bytes[8]) | (static_cast<size_t>(static_cast<unsigned char>(bytes[9])) << 8);
    offset = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) fail(label, ": truncated .npy header");
    for (int i = 0; i < 4; ++i) header_len |= static_cast<size_t>(static_cast<unsigned char>(bytes[8 + i])) << (8 * i);
    offset = 12;
  } else {
    fail(label, ": unsupported .npy version ", major);
  }
  if (offset + header_len > bytes.size()) fail(label, ": truncated .npy header");
  std::string header = bytes.substr(offset, header_len);
  std::string descr = header_field(header, "descr", label);
  std::string fortran = header_field(header, "fortran_order", label);
  std::string shape_text = header_field(header, "shape", label);
  descr.erase(std::remove(descr.begin(), descr.end(), '\''), descr.end());
  descr.erase(std::remove(descr.begin(), descr.end(), ' '), descr.end());
  if (fortran.find("True") != std::string::npos) fail(label, ": Fortran-ordered arrays are not supported");
  ir::DType dtype = ir::DType::kUndefined;
  for (const auto& t : kTypes)
    if (descr == t.descr) dtype = t.dtype;
  if (descr == "<b1" || descr == "b1") dtype = ir::DType::kBool;
  if (descr == "<u1") dtype = ir::DType::kUInt8;
  if (descr == "<i1") dtype = ir::DType::kInt8;
  if (dtype == ir::DType::kUndefined) fail(label, ": unsupported .npy element type '", descr, "'");
  std::vector<int64_t> shape;
  {
    std::string inner = shape_text.substr(1, shape_text.size() - 2);
    std::stringstream ss(inner);
    std::string item;
    while (std::getline(ss, item, ',')) {
      size_t a = item.find_first_not_of(' ');
      if (a == std::string::npos) continue;
      try {
        size_t used = 0;
        long long v = std::stoll(item.substr(a), &used);
        shape.push_back(v);
      } catch (const std::exception&) {
        fail(label, ": malformed shape ", shape_text, " in .npy header");
      }
    }
  }
  ir::Tensor t(dtype, shape);
  size_t data_offset = offset + header_len;
  if (bytes.size() - data_offset != t.nbytes())
    fail(label, ": .npy data has ", bytes.size() - data_offset, " bytes, shape ", ir::to_string(shape), " of ", dtype,
         " needs ", t.nbytes());
  if (t.nbytes()) std::memcpy(t.raw(), bytes.data() + data_offset, t.nbytes());
  return t;
}

ir::Tensor read_npy(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, ": cannot open file");
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_npy(ss.str(), path);
}

std::string serialize_npy(const ir::Tensor& t) {
  const char* descr = nullptr;
  for (const auto& k : kTypes)
    if (k.dtype == t.dtype()) {
      descr = k.descr;
      break;
    }
  if (!descr) fail("cannot write a ", t.dtype(), " tensor as .npy");
  // numpy writes "()" for scalars, "(3,)" for rank 1 and "(2, 3)" above.
  std::string shape = "(";
  for (size_t i = 0; i < t.rank(); ++i) shape += (i ? ", " : "") + std::to_string(t.dim(i));
  shape += t.rank() == 1 ? ",)" : ")";
  std::string header = std::string("{'descr': '") + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
  size_t total = 10 + header.size() + 1;
  size_t pad = (64 - total % 64) % 64;
  header += std::string(pad, ' ') + "\n";
  std::string out = "\x93NUMPY";
  out += '\x01';
  out += '\x00';
  out += static_cast<char>(header.size() & 0xff);
  out += static_cast<char>((header.size() >> 8) & 0xff);
  out += header;
  out.append(static_cast<const char*>(t.raw()), t.nbytes());
  return out;
}

void write_npy(const std::string& path, const ir::Tensor& t) {
  std::string bytes = serialize_npy(t);
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) fail(path, ": cannot write file");
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out) fail(path, ": write failed");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) fail(path, ": cannot rename temporary file: ", ec.message());
}

std::string npy_file_stem(const std::string& name) {
  std::string s = name;
  for (char& c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-')) c = '_';
  if (s.empty() || s == "." || s == "..") s = "_" + s;
  return s;
}

}  // namespace kiln::io
