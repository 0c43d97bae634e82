// The allocator of courier's short-lived nodes (messages, asks,
// continuations, posted handlers): each thread's block cache.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <new>

#include "courier/detail/block_cache.hpp"
#include "courier/detail/this_thread.hpp"

// GCC pairs the class-specific operator new below with the free() that the
// matching operator delete calls once both are inlined, and warns that they
// do not match; they do (every block comes from malloc).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace courier::detail {

// Empties the thread's cache when the thread exits.
struct block_cache_reaper {
  block_cache_reaper() = default;
  block_cache_reaper(const block_cache_reaper&) = delete;
  block_cache_reaper& operator=(const block_cache_reaper&) = delete;
  ~block_cache_reaper() { this_thread.blocks.retire(); }
};

// The calling thread's cache, or null once the thread is tearing down its
// thread-local objects (the heap serves from then on). The first call on a
// thread registers the reaper that empties the cache when the thread exits.
inline block_cache* local_block_cache() noexcept {
  block_cache& cache = this_thread.blocks;
  if (cache.state() == block_cache::alive) [[likely]]
    return &cache;
  if (cache.state() == block_cache::dead) return nullptr;
  thread_local block_cache_reaper reaper;
  (void)reaper;
  cache.set_alive();
  return &cache;
}

// A base that gives a node class the cache as its allocator. Sanitizer
// builds use the heap directly, so that a use after free is still caught
// (unless COURIER_RECYCLE_UNDER_SANITIZERS is defined: the tests build one
// program that way, so that the sanitizers watch the recycling itself).
struct recycled {
#if (defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)) && \
    !defined(COURIER_RECYCLE_UNDER_SANITIZERS)
  static constexpr bool enabled = false;
#else
  static constexpr bool enabled = true;
#endif

  static void* operator new(std::size_t size) {
    if (enabled && block_cache::cached_size(size)) {
      if (block_cache* cache = local_block_cache()) return cache->allocate(size);
      return block_cache::heap_allocate(block_cache::rounded(size));
    }
    return ::operator new(size);
  }
  static void operator delete(void* p, std::size_t size) noexcept {
    if (enabled && block_cache::cached_size(size)) {
      if (block_cache* cache = local_block_cache()) return cache->deallocate(p, size);
      return std::free(p);
    }
    ::operator delete(p);
  }
  // Over-aligned nodes (a message type with a large alignas) bypass the cache.
  static void* operator new(std::size_t size, std::align_val_t al) {
    return ::operator new(size, al);
  }
  static void operator delete(void* p, std::size_t, std::align_val_t al) noexcept {
    ::operator delete(p, al);
  }
};

}  // namespace courier::detail

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
