// The per-shape cache of oneDNN primitives that PackedMatMul and PackedConv keep: at most `capacity`
// entries, the least recently used dropped first. Entries are shared_ptr so that one evicted while
// another thread runs it lives on until that run ends. Not locked itself: the owner calls it under the
// lock that also guards what make() touches (its packed weights).
//
// And, per entry, the pool of what a running call holds for itself (IdlePool below).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
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

// Objects that a call holds for itself while it runs (a primitive's memory objects, bound to that call's
// pointers): a call takes one and gives it back, so calls running at once never share one. One is made
// only when more calls overlap than ever before, and room is kept for every one made, so that in steady
// state neither taking nor giving back allocates. Thread-safe.
template <class T>
class IdlePool {
 public:
  // Gives the object back to the pool when it goes out of scope (also when the call throws).
  class Lease {
   public:
    Lease(IdlePool& pool, std::unique_ptr<T> t) : pool_(pool), t_(std::move(t)) {}
    ~Lease() {
      if (t_) pool_.put_back(std::move(t_));
    }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    T* operator->() const { return t_.get(); }
    T& operator*() const { return *t_; }

   private:
    IdlePool& pool_;
    std::unique_ptr<T> t_;
  };

  // An idle object, or make()'s (a std::unique_ptr<T>) when every one made is in use.
  template <class Make>
  Lease take(Make&& make) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!idle_.empty()) {
        std::unique_ptr<T> t = std::move(idle_.back());
        idle_.pop_back();
        return Lease(*this, std::move(t));
      }
      idle_.reserve(++made_);
    }
    return Lease(*this, make());
  }

 private:
  void put_back(std::unique_ptr<T> t) {
    std::lock_guard<std::mutex> lock(mutex_);
    idle_.push_back(std::move(t));  // within the room reserved when it was made
  }

  std::mutex mutex_;
  std::vector<std::unique_ptr<T>> idle_;
  size_t made_ = 0;
};

}  // namespace kiln::kernels::cpu
