// The per-shape cache of oneDNN primitives that PackedMatMul and PackedConv keep: at most `capacity`
// entries, the least recently used dropped first. Entries are shared_ptr so that one evicted while
// another thread runs it lives on until that run ends. Not locked itself: the owner calls it under the
// lock that also guards what make() touches (its packed weights).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

namespace kiln::kernels::cpu {

template <class Entry>
class PrimitiveLru {
 public:
  explicit PrimitiveLru(size_t capacity) : capacity_(capacity) {}

  // The entry whose `geometry` equals `key`, made by make() on a miss (once per key: the caller holds
  // its lock, so two threads missing on one key build it once).
  template <class Key, class Make>
  std::shared_ptr<const Entry> find_or_make(const Key& key, Make&& make) {
    ++clock_;
    for (auto& [last_use, e] : entries_) {
      if (e->geometry == key) {
        last_use = clock_;
        return e;
      }
    }
    std::shared_ptr<const Entry> e = make();
    if (entries_.size() >= capacity_) {
      auto oldest = entries_.begin();
      for (auto it = entries_.begin(); it != entries_.end(); ++it)
        if (it->first < oldest->first) oldest = it;
      entries_.erase(oldest);
    }
    entries_.emplace_back(clock_, e);
    return e;
  }

  size_t size() const { return entries_.size(); }

 private:
  size_t capacity_;
  uint64_t clock_ = 0;
  std::vector<std::pair<uint64_t, std::shared_ptr<const Entry>>> entries_;  // (last use, entry)
};

}  // namespace kiln::kernels::cpu
