// A task for the tests of the scheduler's queues, and the record a popping
// thread keeps of what it took.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "courier/detail/scheduler/task.hpp"

namespace detail_test {

// A task the queues only carry: never run nor discarded. `payload` is written
// by the pushing thread just before each push and checked by the popper, so a
// pop that does not see the push's writes is reported (and flagged by TSan).
struct test_task final : courier::detail::task {
  void run() noexcept override {}
  void discard() noexcept override {}
  int id = 0;
  int payload = 0;
  std::atomic<int> pops{0};
};

inline std::vector<test_task> make_tasks(int n) {
  std::vector<test_task> tasks(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) tasks[static_cast<std::size_t>(i)].id = i;
  return tasks;
}

// The id of the task a queue hands out, or -1 for none.
inline int id_of(courier::detail::task* t) { return t ? static_cast<test_task*>(t)->id : -1; }

constexpr int payload_of(int id) { return id * 7 + 3; }

// What a popping thread saw of the tasks it took.
struct pop_record {
  int taken = 0;
  int foreign = 0;  // not the address of one of the test's tasks
  int stale = 0;    // payload not the one written before the push
  int twice = 0;    // already taken by someone
  void take(courier::detail::task* t, std::vector<test_task>& tasks) {
    // By address, so that a task still carrying a mark in its low bits (the
    // local queue's resumed mark, one byte past it) counts as foreign.
    const auto at = reinterpret_cast<std::uintptr_t>(t);
    const auto first = reinterpret_cast<std::uintptr_t>(tasks.data());
    if (at < first || (at - first) % sizeof(test_task) != 0 ||
        (at - first) / sizeof(test_task) >= tasks.size()) {
      ++foreign;
      return;
    }
    auto* tt = static_cast<test_task*>(t);
    ++taken;
    if (tt->payload != payload_of(tt->id)) ++stale;
    if (tt->pops.fetch_add(1, std::memory_order_relaxed) != 0) ++twice;
  }
  void merge(const pop_record& o) {
    taken += o.taken;
    foreign += o.foreign;
    stale += o.stale;
    twice += o.twice;
  }
};

}  // namespace detail_test
