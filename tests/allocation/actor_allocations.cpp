// How many allocations spawning an actor costs, counted by replacing the
// global operator new: one for the actor itself; one more for the kept copy
// of restart_point::last_good; and one for each std::function (factory, hook,
// or the kept initial State of a restart with no factory) whose callable is
// too large for std::function to hold inline. Only the spawning thread's
// allocations are counted: the pool's worker may allocate for itself (its
// thread's first use of Asio, for one) at any moment, which is not the
// actor's cost. Exits non-zero, naming the case, when a count differs. Run by ctest in the plain
// build only (the sanitizers bring allocators of their own).

// GCC pairs the replaced operator new with the free() in the replaced delete
// once both are inlined and calls them mismatched; they match (malloc/free).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

#include <array>
#include <courier.hpp>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <new>

namespace {

// Allocations made by the calling thread.
constinit thread_local long allocations = 0;

struct small_state {
  long balance = 0;
  void handle(long d) { balance += d; }
};

struct large_state {
  std::array<long, 16> balances{};
  void handle(long d) { balances[0] += d; }
};

int failures = 0;

// Counts the allocations made by `make`, which builds spawn options and
// spawns one actor with them: what the actor owns for as long as it lives.
template <class Make>
void expect(const char* what, long expected, Make make) {
  const long before = allocations;
  auto a = make();
  const long counted = allocations - before;
  std::printf("%-62s %ld allocation(s)\n", what, counted);
  if (counted != expected) {
    std::printf("  expected %ld\n", expected);
    ++failures;
  }
}

}  // namespace

void* operator new(std::size_t n) {
  ++allocations;
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

int main() {
  courier::thread_pool pool{1};
  using courier::failure_policy;
  using courier::restart_point;

  expect("default options", 1, [&] { return courier::spawn<small_state, long>(pool); });
  expect("default options, a 128-byte State", 1,
         [&] { return courier::spawn<large_state, long>(pool); });
  expect("restart, no factory, an 8-byte State (kept inline)", 1, [&] {
    courier::spawn_options<small_state> o;
    o.policy = failure_policy::restart;
    return courier::spawn<small_state, long>(pool, small_state{}, std::move(o));
  });
  expect("restart, no factory, a 128-byte State (kept apart)", 2, [&] {
    courier::spawn_options<large_state> o;
    o.policy = failure_policy::restart;
    return courier::spawn<large_state, long>(pool, large_state{}, std::move(o));
  });
  expect("restart from the last good State", 2, [&] {
    courier::spawn_options<small_state> o;
    o.policy = failure_policy::restart;
    o.restart_from = restart_point::last_good;
    return courier::spawn<small_state, long>(pool, small_state{}, std::move(o));
  });
  expect("a hook that captures nothing", 1, [&] {
    courier::spawn_options<small_state> o;
    o.on_failure = [](const courier::failure&) {};
    return courier::spawn<small_state, long>(pool, small_state{}, std::move(o));
  });
  expect("a hook that captures 64 bytes", 2, [&] {
    courier::spawn_options<small_state> o;
    o.on_failure = [bytes = std::array<char, 64>{}](const courier::failure&) { (void)bytes; };
    return courier::spawn<small_state, long>(pool, small_state{}, std::move(o));
  });

  if (failures != 0) {
    std::printf("%d case(s) differ\n", failures);
    return 1;
  }
  std::printf("allocation counts as documented\n");
  return 0;
}
