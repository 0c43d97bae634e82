// per_thread.hpp: one T per thread that uses it, per owning object, found
// without a lock after the first use; the owner can visit every thread's T.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

namespace bank::serve {

/// A T for each thread that calls local(), created on its first call (under
/// a mutex, once per thread), then found through a thread_local pointer.
/// Each T lives as long as the per_thread object, so for_each() may read
/// those of threads that have ended.
///
/// Thread safety: local() and for_each() may be called from any thread at
/// once; a thread's T is its own, and for_each() may only read what its
/// thread writes atomically. A thread remembers the T of one per_thread
/// object at a time (of each T type): one that uses two objects in turn gets a
/// new T at each switch, which is correct but wastes memory.
template <class T>
class per_thread {
 public:
  per_thread() : id_(next_id()) {}
  per_thread(const per_thread&) = delete;
  per_thread& operator=(const per_thread&) = delete;

  T& local() {
    // Ids, not addresses, name the owner: a new object may reuse a dead one's.
    thread_local std::uint64_t owner = 0;
    thread_local T* mine = nullptr;
    if (owner != id_) {
      std::lock_guard<std::mutex> lock(mutex_);
      all_.push_back(std::make_unique<T>());
      mine = all_.back().get();
      owner = id_;
    }
    return *mine;
  }

  template <class F>
  void for_each(F f) const {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const auto& t : all_) f(*t);
  }

 private:
  static std::uint64_t next_id() {
    static std::atomic<std::uint64_t> next{1};
    return next.fetch_add(1, std::memory_order_relaxed);
  }

  const std::uint64_t id_;
  mutable std::mutex mutex_;
  std::vector<std::unique_ptr<T>> all_;
};

}  // namespace bank::serve
