// A per-thread cache of small blocks, and the depot through which threads
// pass whole batches of them to each other.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <mutex>
#include <new>
#include <utility>

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
  // many at once; a smaller depot would send the surplus back to the heap
  // only for the senders to allocate it again. At most 8 MiB stay cached
  // over all classes.
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

  // Lifetime of a thread's cache (see recycled.hpp): unborn until first
  // used, then alive, then dead once its thread began to exit.
  enum lifetime : unsigned char { unborn, alive, dead };
  lifetime state() const noexcept { return state_; }
  void set_alive() noexcept { state_ = alive; }

  // Gives every cached block back to the heap; the cache serves no more.
  void retire() noexcept {
    state_ = dead;
    for (auto& list : lists_)
      while (block* b = list.head) {
        list.head = b->next;
        std::free(b);
      }
  }

 private:
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

  static std::size_t index(std::size_t size) noexcept { return (size - 1) / granule; }
  free_list lists_[classes] = {};
  lifetime state_ = unborn;
};

}  // namespace courier::detail
