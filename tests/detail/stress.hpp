// Helpers for the stress cases of the tests of courier's internals.
#pragma once

#include <cstddef>
#include <latch>
#include <thread>
#include <vector>

namespace detail_test {

// Runs body(0), ..., body(n - 1), each on a thread of its own, released
// together so that they overlap, and returns once every one has finished.
// Catch's assertions are not thread-safe: a body records what it saw and the
// test checks it after run_threads returns.
template <class Body>
void run_threads(int n, Body body) {
  std::latch start(n);
  std::vector<std::thread> threads;
  threads.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i)
    threads.emplace_back([&start, &body, i] {
      start.arrive_and_wait();
      body(i);
    });
  for (std::thread& t : threads) t.join();
}

// The iterations of a stress loop: `n` in a plain or ASan build, half of
// it under ThreadSanitizer, which runs these loops many times slower and
// reports a missing ordering from its first few hundred races.
constexpr int iterations(int n) {
#if defined(__SANITIZE_THREAD__)
  return n / 2;
#else
  return n;
#endif
}

}  // namespace detail_test
