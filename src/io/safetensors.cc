#include "io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <tuple>

#include "ir/shape.h"

namespace kiln::io {

namespace {

using Json = nlohmann::json;

// The reference implementation refuses larger headers; a bigger length means the file is not safetensors.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

struct SafetensorsType {
  const char* name;
  ir::DType dtype;
};
constexpr SafetensorsType kTypes[] = {
    {"F64", ir::DType::kFloat64},   {"F32", ir::DType::kFloat32}, {"F16", ir::DType::kFloat16},
    {"BF16", ir::DType::kBFloat16}, {"I64", ir::DType::kInt64},   {"I32", ir::DType::kInt32},
    {"I16", ir::DType::kInt16},     {"I8", ir::DType::kInt8},     {"U64", ir::DType::kUInt64},
    {"U32", ir::DType::kUInt32},    {"U16", ir::DType::kUInt16},  {"U8", ir::DType::kUInt8},
    {"BOOL", ir::DType::kBool},
};

ir::DType dtype_from_safetensors(const std::string& name) {
  for (const auto& t : kTypes)
    if (name == t.name) return t.dtype;
  return ir::DType::kUndefined;
}

const char* safetensors_name(ir::DType dtype) {
  for (const auto& t : kTypes)
    if (dtype == t.dtype) return t.name;
  return nullptr;
}

// nlohmann quotes the bytes it choked on, which may be control characters or broken UTF-8; errors must
// stay one printable line.
std::string printable(std::string s) {
  for (char& c : s)
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) c = '?';
  return s;
}

std::string shape_text(const Json& shape) { return printable(shape.dump()); }

// Parses the header, refusing duplicate keys: nlohmann would silently keep the last, hiding a tensor
// whose bytes would then go unchecked.
Json parse_header(const char* begin, const char* end, const std::string& path) {
  std::vector<std::set<std::string>> open_objects;
  std::string duplicate;
  auto callback = [&](int, Json::parse_event_t event, Json& parsed) {
    if (event == Json::parse_event_t::object_start) {
      open_objects.emplace_back();
    } else if (event == Json::parse_event_t::object_end) {
      open_objects.pop_back();
    } else if (event == Json::parse_event_t::key && duplicate.empty() && !open_objects.empty()) {
      const auto& key = parsed.get_ref<const std::string&>();
      if (!open_objects.back().insert(key).second) duplicate = key;
    }
    return true;
  };
  Json header;
  try {
    header = Json::parse(begin, end, callback);
  } catch (const Json::exception& e) {
    fail(path, ": header is not valid JSON: ", printable(e.what()));
  }
  if (!duplicate.empty()) fail(path, ": header has the key \"", printable(duplicate), "\" twice");
  if (!header.is_object()) fail(path, ": header must be a JSON object, got ", header.type_name());
  return header;
}

SafetensorsEntry parse_entry(const std::string& path, const std::string& name, const Json& info, uint64_t data_size) {
  const std::string who = str(path, ": tensor \"", name, "\"");
  if (!info.is_object()) fail(who, " must be an object with dtype, shape and data_offsets, got ", info.type_name());
  for (const char* key : {"dtype", "shape", "data_offsets"})
    if (!info.contains(key)) fail(who, " has no \"", key, "\"");

  SafetensorsEntry e;
  e.name = name;
  const Json& dtype = info["dtype"];
  if (!dtype.is_string()) fail(who, ": dtype must be a string, got ", dtype.type_name());
  e.dtype_name = dtype.get<std::string>();
  e.dtype = dtype_from_safetensors(e.dtype_name);
  if (e.dtype == ir::DType::kUndefined) {
    bool float8 = e.dtype_name.rfind("F8_", 0) == 0;
    fail(path, ": unsupported dtype \"", printable(e.dtype_name), "\" for tensor \"", name, "\"",
         float8 ? " (kiln has no float8 element type)" : "");
  }

  const Json& shape = info["shape"];
  if (!shape.is_array()) fail(who, ": shape must be an array of integers, got ", shape.type_name());
  int64_t numel = 1;
  for (const Json& d : shape) {
    if (!d.is_number_integer()) fail(who, ": shape must be an array of integers, got ", shape_text(shape));
    if (d.is_number_unsigned() ? d.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX) : d.get<int64_t>() < 0)
      fail(who, " has shape ", shape_text(shape), " with a ",
           d.is_number_unsigned() ? "dimension too large for int64" : "negative dimension");
    int64_t dim = d.get<int64_t>();
    if (__builtin_mul_overflow(numel, dim, &numel))
      fail(who, " has shape ", shape_text(shape), " whose element count overflows int64");
    e.shape.push_back(dim);
  }
  uint64_t needed = 0;
  if (__builtin_mul_overflow(static_cast<uint64_t>(numel), ir::dtype_size(e.dtype), &needed))
    fail(who, " has shape ", shape_text(shape), " whose byte count overflows");

  const Json& offsets = info["data_offsets"];
  if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
      !offsets[1].is_number_unsigned())
    fail(who, ": data_offsets must be two non-negative integers, got ", printable(offsets.dump()));
  e.begin = offsets[0].get<uint64_t>();
  e.end = offsets[1].get<uint64_t>();
  if (e.begin > e.end) fail(who, " has data_offsets [", e.begin, ", ", e.end, "] with begin after end");
  if (e.end > data_size)
    fail(who, " data [", e.begin, ", ", e.end, ") runs past the end of the data (", data_size,
         " bytes) — the file is truncated?");
  if (e.end - e.begin != needed)
    fail(who, " has ", e.end - e.begin, " bytes but ", e.dtype_name, ir::to_string(e.shape), " needs ", needed);
  return e;
}

std::map<std::string, std::string> parse_metadata(const std::string& path, const Json& metadata) {
  if (!metadata.is_object()) fail(path, ": __metadata__ must be an object of strings, got ", metadata.type_name());
  std::map<std::string, std::string> out;
  for (const auto& [key, value] : metadata.items()) {
    if (!value.is_string())
      fail(path, ": __metadata__ must map strings to strings, but \"", printable(key), "\" is a ", value.type_name());
    out[key] = value.get<std::string>();
  }
  return out;
}

void put_u64_le(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out += static_cast<char>((v >> (8 * i)) & 0xff);
}

}  // namespace

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(path, ": cannot open file: ", std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    fail(path, ": cannot stat file: ", std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    fail(path, ": not a regular file");
  }
  size_t size = static_cast<size_t>(st.st_size);
  if (size < 8) {
    ::close(fd);
    fail(path, ": file is only ", size, " bytes, too short for the 8-byte header length of a safetensors file");
  }
  void* addr = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  int map_errno = errno;
  ::close(fd);  // the mapping keeps its own reference to the file
  if (addr == MAP_FAILED) fail(path, ": cannot map file: ", std::strerror(map_errno));

  SafetensorsFile f;
  f.path_ = path;
  f.mapping_ = std::shared_ptr<void>(addr, [size](void* p) { ::munmap(p, size); });
  f.base_ = static_cast<const uint8_t*>(addr);
  f.size_ = size;

  uint64_t header_len = 0;
  for (int i = 0; i < 8; ++i) header_len |= static_cast<uint64_t>(f.base_[i]) << (8 * i);
  if (header_len > kMaxHeaderBytes)
    fail(path, ": header length ", header_len, " exceeds the limit of ", kMaxHeaderBytes,
         " bytes; not a safetensors file?");
  if (header_len > size - 8)
    fail(path, ": header of ", header_len, " bytes runs past the end of the file (", size, " bytes)");
  f.data_begin_ = 8 + header_len;
  const uint64_t data_size = size - f.data_begin_;

  const char* header_begin = reinterpret_cast<const char*>(f.base_ + 8);
  Json header = parse_header(header_begin, header_begin + header_len, path);
  for (const auto& [name, info] : header.items()) {
    if (name == "__metadata__") {
      f.metadata_ = parse_metadata(path, info);
      continue;
    }
    f.entries_.push_back(parse_entry(path, name, info, data_size));
  }

  std::sort(f.entries_.begin(), f.entries_.end(), [](const SafetensorsEntry& a, const SafetensorsEntry& b) {
    return std::tie(a.begin, a.end, a.name) < std::tie(b.begin, b.end, b.name);
  });
  // Sorted by begin, a tensor overlaps an earlier one exactly when it starts before the furthest end seen.
  // Zero-size tensors occupy no bytes and overlap nothing.
  const SafetensorsEntry* furthest = nullptr;
  for (size_t i = 0; i < f.entries_.size(); ++i) {
    const SafetensorsEntry& e = f.entries_[i];
    f.index_[e.name] = i;
    if (e.begin == e.end) continue;
    if (furthest && e.begin < furthest->end)
      fail(path, ": tensors \"", furthest->name, "\" [", furthest->begin, ", ", furthest->end, ") and \"", e.name,
           "\" [", e.begin, ", ", e.end, ") overlap");
    if (!furthest || e.end > furthest->end) furthest = &e;
  }
  return f;
}

const SafetensorsEntry* SafetensorsFile::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &entries_[it->second];
}

ir::Tensor SafetensorsFile::tensor(const std::string& name) const {
  const SafetensorsEntry* e = find(name);
  if (!e) fail(path_, ": no tensor \"", name, "\" in the file");
  const uint8_t* data = base_ + data_begin_ + e->begin;
  size_t nbytes = e->end - e->begin;
  if (e->dtype == ir::DType::kBool)  // any other byte would be undefined behaviour when read as bool
    for (size_t i = 0; i < nbytes; ++i)
      if (data[i] > 1)
        fail(path_, ": tensor \"", name, "\" has byte ", static_cast<int>(data[i]), " at element ", i,
             " of a BOOL tensor (must be 0 or 1)");
  if (reinterpret_cast<uintptr_t>(data) % ir::dtype_size(e->dtype) == 0)
    return ir::Tensor::view(e->dtype, e->shape, mapping_, const_cast<uint8_t*>(data));
  // Misaligned (the writer packs tensors without padding): loads through a misaligned pointer are
  // undefined behaviour and fault on some targets, so pay for a copy.
  ir::Tensor t(e->dtype, e->shape);
  std::memcpy(t.raw(), data, nbytes);
  return t;
}

bool SafetensorsFile::is_mapped(const ir::Tensor& t) const {
  auto p = reinterpret_cast<uintptr_t>(t.raw());
  auto base = reinterpret_cast<uintptr_t>(base_);
  return base_ && p >= base && p <= base + size_;  // <= admits a zero-size tensor at the very end
}

void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, ir::Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  // ordered_json keeps the tensors in the order given, so the header reads like the data buffer.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    if (name == "__metadata__") fail(path, ": a tensor cannot be named \"__metadata__\"");
    if (header.contains(name)) fail(path, ": tensor \"", name, "\" given twice");
    if (!t.defined()) fail(path, ": tensor \"", name, "\" is undefined");
    const char* dtype = safetensors_name(t.dtype());
    if (!dtype) fail(path, ": cannot write tensor \"", name, "\": safetensors has no ", t.dtype(), " type");
    header[name] = {{"dtype", dtype}, {"shape", t.shape()}, {"data_offsets", {offset, offset + t.nbytes()}}};
    offset += t.nbytes();
  }
  std::string json = header.dump();
  json.append((8 - json.size() % 8) % 8, ' ');

  std::string prefix;
  put_u64_le(prefix, json.size());
  prefix += json;

  // The pid keeps two processes writing the same checkpoint from clobbering each other's temporary file.
  std::string tmp = path + ".tmp" + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) fail(path, ": cannot write file");
    out.write(prefix.data(), static_cast<std::streamsize>(prefix.size()));
    for (const auto& [name, t] : tensors)
      if (t.nbytes()) out.write(static_cast<const char*>(t.raw()), static_cast<std::streamsize>(t.nbytes()));
    out.close();
    if (!out) {
      std::error_code ignored;
      std::filesystem::remove(tmp, ignored);
      fail(path, ": write failed");
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::error_code ignored;
    std::filesystem::remove(tmp, ignored);
    fail(path, ": cannot rename temporary file: ", ec.message());
  }
}

}  // namespace kiln::io
