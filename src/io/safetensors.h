// safetensors checkpoints (https://github.com/huggingface/safetensors): an 8-byte little-endian header
// length N, N bytes of JSON naming each tensor's dtype, shape and byte range, then the data buffer.
// The reader maps the file and hands out views into the mapping, so opening a large checkpoint costs
// neither time nor memory until the weights are touched.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "ir/tensor.h"

namespace kiln::io {

struct SafetensorsEntry {
  std::string name;
  std::string dtype_name;  // as written in the file, e.g. "BF16"
  ir::DType dtype = ir::DType::kUndefined;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // byte offsets within the data buffer
};

// An open checkpoint. Copies share the mapping, which lives as long as any copy or any tensor viewing it.
class SafetensorsFile {
 public:
  // Memory-maps the file (read-only, MAP_PRIVATE) and validates the header and every entry; throws
  // kiln::Error with a one-line message naming the file (and the tensor, where one is at fault).
  // Stricter than the reference on duplicate keys and bool bytes; more lenient in that gaps between
  // tensors and bytes after the last one are tolerated (they are unreachable, not harmful).
  static SafetensorsFile open(const std::string& path);

  const std::string& path() const { return path_; }
  const std::vector<SafetensorsEntry>& entries() const { return entries_; }  // in data-offset order
  const SafetensorsEntry* find(const std::string& name) const;               // nullptr when absent
  // The tensor's data without copying when its offset is aligned for its element type (a view that keeps
  // the mapping alive), else a copy. The mapping is read-only: writing through a view faults, so callers
  // that mutate weights in place must clone() first. Throws naming the tensor when absent.
  ir::Tensor tensor(const std::string& name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // Whether t's data lies inside this file's mapping, i.e. tensor() returned a view rather than a copy.
  bool is_mapped(const ir::Tensor& t) const;

 private:
  SafetensorsFile() = default;

  std::string path_;
  std::shared_ptr<void> mapping_;  // munmaps when the last file copy or view goes
  const uint8_t* base_ = nullptr;
  size_t size_ = 0;
  size_t data_begin_ = 0;  // 8 + header length
  std::vector<SafetensorsEntry> entries_;
  std::unordered_map<std::string, size_t> index_;  // name -> position in entries_
  std::map<std::string, std::string> metadata_;
};

// Tensors are written in the given order with no padding between them, as the reference requires a
// contiguous buffer; a tensor after an odd-sized one may therefore be misaligned and read back as a copy.
// The header is padded with spaces to a multiple of 8 bytes as the reference does. Written to a temporary
// file in the same folder and renamed into place when complete, so readers never see a partial file.
void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, ir::Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace kiln::io
