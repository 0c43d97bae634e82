// block_cache and recycled on their own: size classes, a freed block coming
// back, a thread's surplus travelling to another thread through the depot in
// batches, the depot's bound, one cache per thread emptied at thread exit, and
// one thread freeing what others allocate. `recycled` (the operator new and
// delete that route through the cache) is off in sanitizer builds, so most
// cases drive block_cache directly and mean the same in every build; those of
// the recycled path itself check the cache only where it is enabled.
//
// The depot is shared by the whole process. Each case that predicts what the
// depot holds uses a size class of its own and leaves that class as it found
// it: 5 (161 to 192 bytes) and 7 (225 to 256); the fan-in case uses classes 0
// to 4 and predicts nothing about the depot.
#include "courier/detail/recycled.hpp"

#include <algorithm>
#include <atomic>
#include <barrier>
#include <catch2/catch.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_set>
#include <vector>

#include "stress.hpp"

namespace {

using courier::detail::block_cache;
using courier::detail::recycled;

// Runs `body` with the cache of a new thread, which starts empty and is
// emptied into the heap when the thread exits.
template <class Body>
void with_fresh_cache(Body body) {
  std::thread([&body] { body(*courier::detail::local_block_cache()); }).join();
}

// What the documented policy predicts for one class: a thread's free list
// (newest last) and the depot's batches (newest last), for a thread that
// starts with an empty list and a depot with no batches of the class.
struct cache_model {
  explicit cache_model(std::size_t c) : max_batches(block_cache::max_batches(c)) {}

  void deallocate(void* p) {
    if (list.size() == block_cache::max_cached) {
      // The newest batch_size blocks go to the depot, or back to the heap
      // once it holds max_batches.
      const auto first = list.end() - block_cache::batch_size;
      if (depot.size() < max_batches) depot.emplace_back(first, list.end());
      list.erase(first, list.end());
    }
    list.push_back(p);
  }
  // The blocks of every batch in the depot.
  std::set<void*> in_depot() const {
    std::set<void*> all;
    for (const auto& batch : depot) all.insert(batch.begin(), batch.end());
    return all;
  }

  std::size_t max_batches;
  std::vector<void*> list;
  std::vector<std::vector<void*>> depot;
};

// Allocates `n` blocks of `size` on a fresh thread and frees them there in
// allocation order, alongside the model. Then checks that the thread's own
// next allocations come from its list, newest first, exactly as predicted.
cache_model free_on_fresh_thread(std::size_t size, std::size_t n, bool& own_list_as_predicted) {
  cache_model model((size - 1) / block_cache::granule);
  with_fresh_cache([&](block_cache& cache) {
    std::vector<void*> blocks;
    for (std::size_t i = 0; i < n; ++i) blocks.push_back(cache.allocate(size));
    for (void* p : blocks) {
      cache.deallocate(p, size);
      model.deallocate(p);
    }
    std::vector<void*> again;
    for (std::size_t i = 0; i < model.list.size(); ++i) again.push_back(cache.allocate(size));
    own_list_as_predicted = std::equal(again.begin(), again.end(), model.list.rbegin());
    for (void* p : again) cache.deallocate(p, size);
  });
  return model;
}

// Allocates `n` blocks of `size` on a fresh thread and returns them, live.
std::vector<void*> allocate_on_fresh_thread(std::size_t size, std::size_t n) {
  std::vector<void*> blocks;
  with_fresh_cache([&](block_cache& cache) {
    for (std::size_t i = 0; i < n; ++i) blocks.push_back(cache.allocate(size));
  });
  return blocks;
}

}  // namespace

TEST_CASE("block_cache: sizes round up to 32-byte classes, cached up to 256 bytes",
          "[block_cache]") {
  CHECK(block_cache::rounded(1) == 32);
  CHECK(block_cache::rounded(32) == 32);
  CHECK(block_cache::rounded(33) == 64);
  CHECK(block_cache::rounded(200) == 224);
  CHECK(block_cache::rounded(256) == 256);
  CHECK(block_cache::cached_size(1));
  CHECK(block_cache::cached_size(256));
  CHECK_FALSE(block_cache::cached_size(257));
  // The depot's bound is depot_bytes in every class: as many whole batches
  // as fit.
  for (std::size_t c = 0; c < block_cache::classes; ++c) {
    const std::size_t batch_bytes = block_cache::batch_size * block_cache::granule * (c + 1);
    CHECK(block_cache::max_batches(c) * batch_bytes <= block_cache::depot_bytes);
    CHECK((block_cache::max_batches(c) + 1) * batch_bytes > block_cache::depot_bytes);
  }
}

TEST_CASE("block_cache: a freed block is the next one handed out in its size class",
          "[block_cache]") {
  bool reused = false, lifo = false, other_class_fresh = false;
  with_fresh_cache([&](block_cache& cache) {
    void* p = cache.allocate(40);
    // Every block has its class's full size, whatever size asked for it
    // (AddressSanitizer checks the write).
    std::memset(p, 0xab, block_cache::rounded(40));
    cache.deallocate(p, 40);
    void* q = cache.allocate(64);  // same class: 33 to 64 bytes
    reused = q == p;
    std::memset(q, 0xcd, 64);

    void* r = cache.allocate(33);
    cache.deallocate(q, 64);
    cache.deallocate(r, 33);
    void* r2 = cache.allocate(50);
    void* q2 = cache.allocate(60);
    lifo = r2 == r && q2 == q;

    cache.deallocate(q2, 60);
    void* other = cache.allocate(100);  // class 65 to 96: q2 stays cached
    other_class_fresh = other != q2;
    cache.deallocate(other, 100);
    cache.deallocate(r2, 50);
  });
  CHECK(reused);
  CHECK(lifo);
  CHECK(other_class_fresh);
}

TEST_CASE(
    "block_cache: past max_cached a thread hands its newest batch to the depot, and "
    "another thread's cache takes it",
    "[block_cache]") {
  constexpr std::size_t size = 192;  // class 5
  bool own_list_as_predicted = false;
  // One more free than max_cached: exactly one batch goes to the depot.
  const cache_model model =
      free_on_fresh_thread(size, block_cache::max_cached + 1, own_list_as_predicted);
  REQUIRE(model.depot.size() == 1);
  CHECK(model.list.size() == block_cache::max_cached + 1 - block_cache::batch_size);
  CHECK(own_list_as_predicted);

  // Another thread, whose list is empty, takes that batch whole.
  const std::vector<void*> taken = allocate_on_fresh_thread(161, block_cache::batch_size);
  CHECK(std::set<void*>(taken.begin(), taken.end()) == model.in_depot());
  for (void* p : taken) std::free(p);  // every block comes from malloc
}

TEST_CASE("block_cache: the depot keeps at most max_batches batches of a class", "[block_cache]") {
  constexpr std::size_t size = 256;  // class 7
  const std::size_t max = block_cache::max_batches(7);
  bool own_list_as_predicted = false;
  // Two batches more than the depot keeps: the last two go back to the heap.
  const cache_model model = free_on_fresh_thread(
      size, block_cache::max_cached + (max + 2) * block_cache::batch_size, own_list_as_predicted);
  REQUIRE(model.depot.size() == max);
  CHECK(own_list_as_predicted);

  // Emptying the depot yields exactly the first max batches given.
  const std::vector<void*> taken = allocate_on_fresh_thread(225, max * block_cache::batch_size);
  CHECK(std::set<void*>(taken.begin(), taken.end()) == model.in_depot());
  for (void* p : taken) std::free(p);
}

TEST_CASE("block_cache: local() is one cache per thread", "[block_cache]") {
  block_cache* const mine = courier::detail::local_block_cache();
  REQUIRE(mine != nullptr);
  CHECK(courier::detail::local_block_cache() == mine);
  block_cache* theirs = nullptr;
  bool stable = false;
  std::thread([&] {
    theirs = courier::detail::local_block_cache();
    stable = courier::detail::local_block_cache() == theirs;
  }).join();
  CHECK(theirs != nullptr);
  CHECK(theirs != mine);
  CHECK(stable);
}

namespace {

struct small_node : recycled {
  char bytes[40];
};

// Run by a thread-local object's destructor: whether the thread's cache is
// still reachable, after a node allocated and freed there.
bool cache_reachable_at_exit() {
  delete new small_node;  // the cache, or the heap once it is gone
  return courier::detail::local_block_cache() != nullptr;
}

struct exit_probe {
  ~exit_probe() { *reachable = cache_reachable_at_exit(); }
  bool* reachable = nullptr;
};

}  // namespace

// A thread-local object destroyed after the cache's reaper (it was made
// before the cache was first used) finds no cache: blocks go to the heap from
// then on. One destroyed before the reaper still finds it. The reaper gives
// the cached blocks back to the heap (in an ASan build, LeakSanitizer reports
// them at exit otherwise).
TEST_CASE("block_cache: a thread's cache is emptied and closed when the thread exits",
          "[block_cache]") {
  bool before_reaper = false;
  bool after_reaper = true;
  std::thread([&] {
    thread_local exit_probe made_before_cache;
    made_before_cache.reachable = &after_reaper;
    block_cache& cache = *courier::detail::local_block_cache();
    thread_local exit_probe made_after_cache;
    made_after_cache.reachable = &before_reaper;
    std::vector<void*> blocks;
    for (int i = 0; i < 300; ++i) blocks.push_back(cache.allocate(48));
    for (void* p : blocks) cache.deallocate(p, 48);
  }).join();
  CHECK(before_reaper);
  CHECK_FALSE(after_reaper);
}

namespace {

struct base_node : recycled {
  virtual ~base_node() = default;
  char tag = 0;
};
struct big_node final : base_node {
  char bytes[184];  // 193 to 224 bytes in all: class 6
};
struct alignas(64) aligned_node : recycled {
  char bytes[64];
};
struct large_node : recycled {
  char bytes[300];
};

}  // namespace

// Only where recycled::enabled (not under ASan or TSan, which must see every
// node go back to the heap) do these cases check that nodes come from the
// cache; elsewhere they check only that the operators work.
TEST_CASE("recycled: a deleted node's block serves the next node of its class (plain builds)",
          "[recycled]") {
  bool same_block = false, base_elsewhere = false, by_dynamic_size = false;
  std::thread([&] {
    auto* a = new small_node;
    void* const first = a;
    delete a;
    auto* b = new small_node;
    same_block = b == first;
    delete b;

    // Deleted through its base, a node goes back by its own size: its block
    // serves the next node of that size, not the next base.
    base_node* big = new big_node;
    void* const big_block = big;
    big->tag = 1;
    delete big;
    auto* base = new base_node;
    base_elsewhere = static_cast<void*>(base) != big_block;
    auto* big_again = new big_node;
    by_dynamic_size = static_cast<void*>(big_again) == big_block;
    delete base;
    delete big_again;
  }).join();
  if constexpr (recycled::enabled) {
    CHECK(same_block);
    CHECK(base_elsewhere);
    CHECK(by_dynamic_size);
  }
}

TEST_CASE("recycled: over-aligned and large nodes bypass the cache", "[recycled]") {
  auto* a = new aligned_node;
  CHECK(reinterpret_cast<std::uintptr_t>(a) % 64 == 0);
  a->bytes[63] = 1;
  delete a;
  auto* l = new large_node;
  l->bytes[299] = 1;
  delete l;
}

namespace {

// A block as its allocating thread stamped it; the freeing thread checks the
// stamp before it frees the block.
struct stamp {
  int allocator;
  int round;
  int index;
  int size;
  bool operator==(const stamp&) const = default;
};

// Sizes in classes 0 to 4, each with room for a stamp.
int fan_in_size(int i) { return 24 + 32 * (i % 5); }

}  // namespace

// Allocators (every thread but one) allocate a round of blocks each, stamp
// them and record them in the round's set of live blocks; the last thread
// frees the previous round's blocks meanwhile. The freeing thread's cache
// overflows into the depot and the allocators' caches, never refilled by
// frees of their own, take batches from it. No block may be handed out twice
// while live, and each must keep its stamp until freed.
TEST_CASE("block_cache: one thread frees what the others allocate", "[block_cache][stress]") {
  const int threads = GENERATE(2, 4, 8);
  const int allocators = threads - 1;
  const int rounds = detail_test::iterations(64);
  const int per_round = 600;  // more than max_cached: caches overflow every round

  struct live_block {
    void* p;
    stamp s;
  };
  std::vector<std::vector<live_block>> handed(static_cast<std::size_t>(allocators));
  std::vector<live_block> to_free;
  std::mutex live_mutex;
  std::unordered_set<void*> live;  // this round's blocks
  int doubled = 0;                 // under live_mutex
  std::atomic<int> bad_stamps{0};
  std::atomic<int> freed{0};
  const auto next_round = [&]() noexcept {
    to_free.clear();
    for (auto& h : handed) {
      to_free.insert(to_free.end(), h.begin(), h.end());
      h.clear();
    }
    live.clear();
  };
  std::barrier sync(threads, next_round);

  detail_test::run_threads(threads, [&](int id) {
    block_cache& cache = *courier::detail::local_block_cache();
    for (int round = 0; round <= rounds; ++round) {
      if (id == allocators) {
        for (const live_block& b : to_free) {
          stamp seen;
          std::memcpy(&seen, b.p, sizeof seen);
          if (!(seen == b.s)) bad_stamps.fetch_add(1, std::memory_order_relaxed);
          cache.deallocate(b.p, static_cast<std::size_t>(b.s.size));
          freed.fetch_add(1, std::memory_order_relaxed);
        }
      } else if (round < rounds) {
        std::vector<live_block>& mine = handed[static_cast<std::size_t>(id)];
        for (int i = 0; i < per_round; ++i) {
          const stamp s{id, round, i, fan_in_size(i + id)};
          void* p = cache.allocate(static_cast<std::size_t>(s.size));
          std::memcpy(p, &s, sizeof s);
          mine.push_back({p, s});
        }
        std::lock_guard<std::mutex> lock(live_mutex);
        for (const live_block& b : mine) doubled += !live.insert(b.p).second;
      }
      sync.arrive_and_wait();
    }
  });

  CHECK(doubled == 0);
  CHECK(bad_stamps.load() == 0);
  CHECK(freed.load() == allocators * rounds * per_round);
}
