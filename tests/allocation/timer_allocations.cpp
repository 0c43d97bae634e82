// Timers allocate nothing when they fire: counted by replacing the global
// operator new, on every thread (the expiry arrives on Asio's timer thread,
// the message is handled on a pool worker). After a warm-up, a window of
// firings of a tell_every() timer must make no allocation at all. Exits non-zero,
// naming the case, when one does. Run by ctest in the plain build only.

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

#include <courier.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <thread>
#include <variant>

namespace {

std::atomic<long> allocations{0};

struct Tick {};
struct ticked {
  std::atomic<long>* seen;
  void handle(Tick) { seen->fetch_add(1); }
};

int failures = 0;

// Waits (at most 30 s) until `seen` reaches `n`.
bool reach(const std::atomic<long>& seen, long n) {
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (seen.load() < n) {
    if (std::chrono::steady_clock::now() > give_up) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

void expect_none(const char* what, const std::atomic<long>& seen) {
  if (!reach(seen, 20)) {
    std::printf("%s: the timer did not fire\n", what);
    ++failures;
    return;
  }
  const long before = allocations.load();
  const long first = seen.load();
  if (!reach(seen, first + 200)) {
    std::printf("%s: the timer stopped firing\n", what);
    ++failures;
    return;
  }
  const long counted = allocations.load() - before;
  std::printf("%-40s %ld allocation(s) in %ld firings\n", what, counted, seen.load() - first);
  if (counted != 0) ++failures;
}

}  // namespace

void* operator new(std::size_t n) {
  allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

int main() {
  courier::thread_pool pool{2};
  std::atomic<long> seen{0};
  auto a = courier::spawn<ticked, std::variant<Tick>>(pool, ticked{&seen});
  {
    courier::timer t = a.tell_every(std::chrono::microseconds(200), Tick{});
    expect_none("tell_every to a plain handler", seen);
  }
  if (failures != 0) {
    std::printf("%d case(s) allocated\n", failures);
    return 1;
  }
  std::printf("no allocation per firing\n");
  return 0;
}
