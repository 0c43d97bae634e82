// ref_counted, registered_ref_counted and ref_ptr on their own: adopt, share,
// copy, move and reset; deletion exactly once, when the last reference goes,
// whatever the initial count; try_add_ref refused once the count reached
// zero; and many threads copying, dropping and looking up references.
#include "courier/detail/ref_counted.hpp"

#include <atomic>
#include <barrier>
#include <catch2/catch.hpp>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "stress.hpp"

namespace {

using courier::detail::ref_counted;
using courier::detail::ref_ptr;
using courier::detail::registered_ref_counted;

// Counts its destructions in a counter the test owns.
struct counted : ref_counted {
  explicit counted(std::atomic<int>& destroyed, std::uint32_t initial = 1)
      : ref_counted(initial), destroyed_(&destroyed) {}
  ~counted() override { destroyed_->fetch_add(1, std::memory_order_relaxed); }
  int value = 7;

 private:
  std::atomic<int>* destroyed_;
};

struct derived final : counted {
  using counted::counted;
};

// A registered object that, while being destroyed, checks that no one can
// take a reference to it any more.
struct registered final : registered_ref_counted {
  explicit registered(std::atomic<int>& destroyed, std::atomic<int>& taken_while_dying)
      : destroyed_(&destroyed), taken_while_dying_(&taken_while_dying) {}
  ~registered() override {
    if (try_add_ref()) taken_while_dying_->fetch_add(1, std::memory_order_relaxed);
    destroyed_->fetch_add(1, std::memory_order_relaxed);
  }

 private:
  std::atomic<int>* destroyed_;
  std::atomic<int>* taken_while_dying_;
};

// Copies per object and thread in the ref_ptr stress case.
constexpr int copies = 20;

// Shared by `holders` threads, each writing only its own slot; the
// destructor checks that it sees every write.
struct shared_object final : ref_counted {
  shared_object(std::uint32_t holders, std::atomic<int>& destroyed, std::atomic<int>& short_sums)
      : ref_counted(holders), slots(holders, 0), destroyed_(&destroyed), short_sums_(&short_sums) {}
  ~shared_object() override {
    long sum = 0;
    for (long s : slots) sum += s;
    if (sum != static_cast<long>(slots.size()) * copies) short_sums_->fetch_add(1);
    destroyed_->fetch_add(1, std::memory_order_relaxed);
  }
  std::vector<long> slots;

 private:
  std::atomic<int>* destroyed_;
  std::atomic<int>* short_sums_;
};

// A registry of one object: a plain pointer, cleared by the object's
// destructor, and read under the lock together with try_add_ref.
struct registry_entry;
struct registry {
  std::mutex mutex;
  registry_entry* slot = nullptr;
};
struct registry_entry final : registered_ref_counted {
  static constexpr int magic = 0x5eed;
  registry_entry(registry& r, std::atomic<int>& destroyed) : registry_(&r), destroyed_(&destroyed) {
    r.slot = this;
  }
  ~registry_entry() override {
    {
      std::lock_guard<std::mutex> lock(registry_->mutex);
      registry_->slot = nullptr;
    }
    value = 0;
    destroyed_->fetch_add(1, std::memory_order_relaxed);
  }
  int value = magic;

 private:
  registry* registry_;
  std::atomic<int>* destroyed_;
};

// How many objects were not destroyed exactly once, by their counters.
int not_destroyed_once(const std::vector<std::atomic<int>>& destroyed) {
  int n = 0;
  for (const auto& d : destroyed) n += d.load() != 1;
  return n;
}

}  // namespace

TEST_CASE("ref_ptr: adopt takes over the creator's reference, the last drop deletes once",
          "[ref_counted]") {
  std::atomic<int> destroyed{0};
  {
    auto p = ref_ptr<counted>::adopt(new counted(destroyed));
    REQUIRE(p);
    CHECK(p->value == 7);
    CHECK((*p).value == 7);
    CHECK(destroyed.load() == 0);
  }
  CHECK(destroyed.load() == 1);
}

TEST_CASE("ref_ptr: share adds a reference to one already held", "[ref_counted]") {
  std::atomic<int> destroyed{0};
  auto* raw = new counted(destroyed);
  auto a = ref_ptr<counted>::adopt(raw);
  {
    auto b = ref_ptr<counted>::share(raw);
    CHECK(b == a);
    CHECK(b.get() == raw);
  }
  CHECK(destroyed.load() == 0);
  a.reset();
  CHECK_FALSE(a);
  CHECK(destroyed.load() == 1);
  CHECK_FALSE(ref_ptr<counted>::share(nullptr));
}

TEST_CASE("ref_ptr: copies and moves keep the count, the last holder deletes", "[ref_counted]") {
  std::atomic<int> destroyed{0};
  auto a = ref_ptr<counted>::adopt(new counted(destroyed));
  counted* const raw = a.get();

  ref_ptr<counted> b = a;  // copy: two references
  ref_ptr<counted> c = std::move(b);
  CHECK_FALSE(b);
  CHECK(c.get() == raw);

  ref_ptr<counted> d;
  d = a;  // copy assignment: three references
  ref_ptr<counted> e;
  e = std::move(c);  // move assignment: still three
  CHECK_FALSE(c);
  auto& alias = d;
  d = alias;  // self-assignment changes nothing
  CHECK(d.get() == raw);

  ref_ptr<counted> f = ref_ptr<counted>::adopt(new counted(destroyed));
  f = e;  // the object f held goes, raw gains a holder
  CHECK(destroyed.load() == 1);
  f.swap(b);
  CHECK_FALSE(f);
  CHECK(b.get() == raw);

  // Holders of raw: a, d, e, b.
  a.reset();
  d.reset();
  e = nullptr;
  CHECK(destroyed.load() == 1);
  b.reset();
  CHECK(destroyed.load() == 2);
}

TEST_CASE("ref_ptr: a handle of a derived type moves into a handle of its base", "[ref_counted]") {
  std::atomic<int> destroyed{0};
  auto d = ref_ptr<derived>::adopt(new derived(destroyed));
  derived* const raw = d.get();
  ref_ptr<counted> base = std::move(d);
  CHECK_FALSE(d);
  CHECK(base.get() == raw);
  CHECK(destroyed.load() == 0);
  base.reset();
  CHECK(destroyed.load() == 1);
}

TEST_CASE("ref_ptr: detach hands the reference back without dropping it", "[ref_counted]") {
  std::atomic<int> destroyed{0};
  auto p = ref_ptr<counted>::adopt(new counted(destroyed));
  counted* raw = p.detach();
  CHECK_FALSE(p);
  p.reset();  // empty: drops nothing
  CHECK(destroyed.load() == 0);
  ref_ptr<counted>::adopt(raw).reset();
  CHECK(destroyed.load() == 1);
}

TEST_CASE("ref_counted: an object made with several references lives until each is dropped",
          "[ref_counted]") {
  std::atomic<int> destroyed{0};
  auto* three = new counted(destroyed, 3);
  three->release();
  three->release();
  CHECK(destroyed.load() == 0);
  three->add_ref();
  three->release();
  CHECK(destroyed.load() == 0);
  three->release();
  CHECK(destroyed.load() == 1);

  // Two handles, each adopting one of the two initial references.
  auto* two = new counted(destroyed, 2);
  auto a = ref_ptr<counted>::adopt(two);
  auto b = ref_ptr<counted>::adopt(two);
  a.reset();
  CHECK(destroyed.load() == 1);
  b.reset();
  CHECK(destroyed.load() == 2);
}

TEST_CASE("registered_ref_counted: try_add_ref takes a reference while the object lives",
          "[ref_counted]") {
  std::atomic<int> destroyed{0};
  std::atomic<int> taken_while_dying{0};
  auto* raw = new registered(destroyed, taken_while_dying);
  REQUIRE(raw->try_add_ref());
  REQUIRE(raw->try_add_ref());
  raw->release();
  raw->release();
  CHECK(destroyed.load() == 0);
  raw->release();
  CHECK(destroyed.load() == 1);
  // Every release counted down to zero before the destructor ran, so its
  // own try_add_ref was refused: no shortcut left the count at one.
  CHECK(taken_while_dying.load() == 0);

  {
    auto p = ref_ptr<registered>::adopt(new registered(destroyed, taken_while_dying));
    auto q = p;
  }
  CHECK(destroyed.load() == 2);
  CHECK(taken_while_dying.load() == 0);
}

// Every thread adopts one of an object's initial references, copies, moves
// and drops handles to it, writes its own slot and lets go; the object must
// outlive every holder, be deleted exactly once, and its destructor see every
// slot's write. The threads take each object together and drop it together,
// so that the final drops race, the last one through the count-of-one
// shortcut.
TEST_CASE("ref_ptr: many threads copying and dropping references to one object",
          "[ref_counted][stress]") {
  const int threads = GENERATE(2, 4, 8);
  const int objects = detail_test::iterations(1600);
  std::vector<std::atomic<int>> destroyed(static_cast<std::size_t>(objects));
  std::atomic<int> short_sums{0};
  std::vector<shared_object*> shared_objects;
  for (std::size_t i = 0; i < destroyed.size(); ++i)
    shared_objects.push_back(
        new shared_object(static_cast<std::uint32_t>(threads), destroyed[i], short_sums));
  std::atomic<int> seen_dead{0};
  std::barrier<> next_object(threads);
  std::vector<std::atomic<int>> done_copying(destroyed.size());

  detail_test::run_threads(threads, [&](int id) {
    const auto slot = static_cast<std::size_t>(id);
    for (std::size_t i = 0; i < shared_objects.size(); ++i) {
      next_object.arrive_and_wait();
      auto mine = ref_ptr<shared_object>::adopt(shared_objects[i]);
      for (int k = 0; k < copies; ++k) {
        ref_ptr<shared_object> copy = mine;
        ref_ptr<shared_object> moved = std::move(copy);
        ref_ptr<shared_object> other;
        other = moved;
        moved.reset();
        mine = other;
        if (destroyed[i].load(std::memory_order_relaxed) != 0) seen_dead.fetch_add(1);
      }
      // Only the final drops follow, once every thread is done copying: the
      // last drop's own load must then order the others' writes before the
      // destructor (the relaxed count orders nothing).
      done_copying[i].fetch_add(1, std::memory_order_relaxed);
      while (done_copying[i].load(std::memory_order_relaxed) < threads) std::this_thread::yield();
      mine->slots[slot] = copies;
    }
  });

  CHECK(not_destroyed_once(destroyed) == 0);
  CHECK(seen_dead.load() == 0);
  CHECK(short_sums.load() == 0);
}

// A registry reaches objects through plain pointers and takes references
// with try_add_ref under its lock; an object's destructor removes it under
// the same lock. While the owner drops its reference, every other thread
// keeps looking the object up until it is gone: each lookup must get a live
// object or be refused, and each object must die exactly once.
TEST_CASE("registered_ref_counted: lookups through a registry race the last release",
          "[ref_counted][stress]") {
  const int threads = GENERATE(2, 4, 8);
  const int objects = detail_test::iterations(2000);
  std::vector<registry> registries(static_cast<std::size_t>(objects));
  std::vector<std::atomic<int>> destroyed(registries.size());
  std::vector<registry_entry*> owned;  // the owner's references
  for (std::size_t i = 0; i < registries.size(); ++i)
    owned.push_back(new registry_entry(registries[i], destroyed[i]));
  // Lookers that have reached each object: the owner lets an object go once
  // they all look at it (this paces, it orders nothing).
  std::vector<std::atomic<int>> arrived(registries.size());
  std::atomic<int> hits{0};
  std::atomic<int> refused{0};
  std::atomic<int> bad{0};

  // One lookup in registry i: false once the object is gone.
  const auto look_up = [&](std::size_t i) {
    ref_ptr<registry_entry> got;
    {
      std::lock_guard<std::mutex> lock(registries[i].mutex);
      registry_entry* e = registries[i].slot;
      if (e == nullptr) return false;
      if (!e->try_add_ref()) {
        refused.fetch_add(1, std::memory_order_relaxed);
        return true;
      }
      got = ref_ptr<registry_entry>::adopt(e);
    }
    hits.fetch_add(1, std::memory_order_relaxed);
    if (got->value != registry_entry::magic || destroyed[i].load(std::memory_order_relaxed) != 0)
      bad.fetch_add(1);
    return true;
  };

  detail_test::run_threads(threads, [&](int id) {
    for (std::size_t i = 0; i < registries.size(); ++i) {
      if (id == 0) {
        while (arrived[i].load(std::memory_order_relaxed) < threads - 1) std::this_thread::yield();
        ref_ptr<registry_entry>::adopt(owned[i]).reset();
      } else {
        arrived[i].fetch_add(1, std::memory_order_relaxed);
        while (look_up(i)) std::this_thread::yield();
      }
    }
  });

  INFO(hits.load() << " lookups took a reference, " << refused.load() << " were refused");
  CHECK(not_destroyed_once(destroyed) == 0);
  CHECK(bad.load() == 0);
}
