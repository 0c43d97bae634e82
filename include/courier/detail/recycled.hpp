// A per-thread cache of small blocks for courier's short-lived nodes:
// messages, asks, continuations and posted handlers.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <mutex>
#include <new>
#include <utility>

// GCC pairs the class-specific operator new below with the free() that the
// matching operator delete calls once both are inlined, and warns that they
// do not match; they do (every block comes from malloc).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace courier::detail {

// Freed blocks go to the freeing thread's cache and the next node of the
// same size class comes from it, so a steady flow of messages reuses a
// working set of blocks without calling the allocator. A block freed on
// another thread than the one that allocated it simply changes caches.
//
// When one thread frees what another allocates (many senders, one actor), the
// freeing thread's cache fills and the allocating thread's runs dry; full
// batches then travel between them through a shared depot, one lock per
// `batch_size` blocks, instead of every block going through the heap. Each
// class keeps at most `max_cached` blocks per thread and `depot_bytes` worth
// of batches in the depot; the rest go back to the heap, as does a thread's
// cache when it exits.
class block_cache {
 public:
  static constexpr std::size_t granule = 32;
  static constexpr std::size_t classes = 8;  // blocks up to 256 bytes
  static constexpr unsigned max_cached = 256;
  static constexpr unsigned batch_size = 128;
  // The depot's bound per class, in bytes: 32,768 blocks of the smallest
  // class (a tell with a small message), two full mailboxes of the default
  // capacity. A fan-in whose queue swings between empty and full frees that
  // many at once; a depot a quarter this size sent the surplus back to the
  // heap, and the senders allocated it again (W3 called malloc 7 times as
  // often). At most 8 MiB stay cached over all classes.
  static constexpr std::size_t depot_bytes = std::size_t{1} << 20;
  static constexpr unsigned max_batches(std::size_t c) noexcept {
    return static_cast<unsigned>(depot_bytes / (batch_size * granule * (c + 1)));
  }

  constexpr block_cache() noexcept = default;
  block_cache(const block_cache&) = delete;
  block_cache& operator=(const block_cache&) = delete;

  static bool cached_size(std::size_t size) noexcept { return size <= granule * classes; }
  // Blocks come from malloc: every path, cached or not, frees with free.
  static void* heap_allocate(std::size_t size) {
    if (void* p = std::malloc(size)) return p;
    throw std::bad_alloc();
  }

  // Every block of a class has the class's full size, wherever it came from.
  static std::size_t rounded(std::size_t size) noexcept {
    return ((size - 1) / granule + 1) * granule;
  }

  void* allocate(std::size_t size) {
    const std::size_t c = index(size);
    free_list& list = lists_[c];
    if (list.head == nullptr) {
      list.head = the_depot().take(c);
      if (list.head != nullptr) list.count = batch_size;
    }
    if (block* b = list.head) {
      list.head = b->next;
      --list.count;
      return b;
    }
    return heap_allocate(rounded(size));
  }

  void deallocate(void* p, std::size_t size) noexcept {
    const std::size_t c = index(size);
    free_list& list = lists_[c];
    if (list.count == max_cached) {
      // Hand the newest batch_size blocks to the depot in one piece.
      block* first = list.head;
      block* last = first;
      for (unsigned i = 1; i < batch_size; ++i) last = last->next;
      list.head = last->next;
      list.count -= batch_size;
      last->next = nullptr;
      the_depot().give(c, first);
    }
    block* b = static_cast<block*>(p);
    b->next = list.head;
    list.head = b;
    ++list.count;
  }

  // The calling thread's cache, or null once the thread is tearing down
  // its thread-local objects (the heap serves from then on). The cache is
  // trivially destructible and constant-initialized, so reaching it is a
  // plain thread-local access; the first call on a thread registers the
  // reaper that empties it when the thread exits.
  static block_cache* local() noexcept;

 private:
  friend struct block_cache_reaper;

  // Gives every cached block back to the heap; the cache serves no more.
  void retire() noexcept {
    state_ = dead;
    for (auto& list : lists_)
      while (block* b = list.head) {
        list.head = b->next;
        std::free(b);
      }
  }

  // Laid over a free block (every block has room for both).
  struct block {
    block* next;
    block* next_batch;  // in the depot: the first block of the next batch
  };
  struct free_list {
    block* head = nullptr;
    unsigned count = 0;
  };

  // Batches of exactly batch_size blocks, chained through their first
  // blocks.
  class depot {
   public:
    block* take(std::size_t c) noexcept {
      std::lock_guard<std::mutex> lock(mutex_);
      block* first = batches_[c];
      if (first != nullptr) {
        batches_[c] = first->next_batch;
        --count_[c];
      }
      return first;
    }

    void give(std::size_t c, block* first) noexcept {
      {
        std::lock_guard<std::mutex> lock(mutex_);
        if (count_[c] < max_batches(c)) {
          first->next_batch = batches_[c];
          batches_[c] = first;
          ++count_[c];
          return;
        }
      }
      while (first != nullptr) std::free(std::exchange(first, first->next));
    }

   private:
    std::mutex mutex_;
    block* batches_[classes] = {};
    unsigned count_[classes] = {};
  };

  // Shared by every thread and never destroyed, so that a thread exiting
  // late (after static destruction began) still finds it.
  static depot& the_depot() noexcept {
    static depot* d = new depot;
    return *d;
  }

  enum lifetime : unsigned char { unborn, alive, dead };

  static std::size_t index(std::size_t size) noexcept { return (size - 1) / granule; }
  free_list lists_[classes] = {};
  lifetime state_ = unborn;
};

inline constinit thread_local block_cache this_thread_blocks;

// Empties this thread's cache when the thread exits.
struct block_cache_reaper {
  block_cache_reaper() = default;
  block_cache_reaper(const block_cache_reaper&) = delete;
  block_cache_reaper& operator=(const block_cache_reaper&) = delete;
  ~block_cache_reaper() { this_thread_blocks.retire(); }
};

inline block_cache* block_cache::local() noexcept {
  block_cache& cache = this_thread_blocks;
  if (cache.state_ == alive) [[likely]]
    return &cache;
  if (cache.state_ == dead) return nullptr;
  thread_local block_cache_reaper reaper;
  (void)reaper;
  cache.state_ = alive;
  return &cache;
}

// A base that gives a node class the cache as its allocator. Sanitizer
// builds use the heap directly, so that a use after free is still caught.
struct recycled {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  static constexpr bool enabled = false;
#else
  static constexpr bool enabled = true;
#endif

  static void* operator new(std::size_t size) {
    if (enabled && block_cache::cached_size(size)) {
      if (block_cache* cache = block_cache::local()) return cache->allocate(size);
      return block_cache::heap_allocate(block_cache::rounded(size));
    }
    return ::operator new(size);
  }
  static void operator delete(void* p, std::size_t size) noexcept {
    if (enabled && block_cache::cached_size(size)) {
      if (block_cache* cache = block_cache::local()) return cache->deallocate(p, size);
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
