// local_queue on its own: owner pushes, anyone pops with a CAS, fixed
// capacity, and the stealing rule.
#include "courier/detail/scheduler/local_queue.hpp"

#include <atomic>
#include <catch2/catch.hpp>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "stress.hpp"
#include "test_task.hpp"

namespace {

using courier::detail::local_queue;
using courier::detail::task;
using detail_test::id_of;
using detail_test::make_tasks;
using detail_test::payload_of;
using detail_test::pop_record;
using detail_test::test_task;

}  // namespace

TEST_CASE("local_queue: an empty queue pops null", "[local_queue]") {
  local_queue q;
  CHECK(q.empty());
  CHECK(q.size() == 0);
  CHECK(q.pop() == nullptr);
  CHECK_FALSE(q.worth_stealing());
}

TEST_CASE("local_queue: pops in push order, with the resumed mark removed", "[local_queue]") {
  local_queue q;
  auto tasks = make_tasks(4);
  CHECK(q.push(&tasks[0]));
  CHECK(q.push(&tasks[1], true));
  CHECK(q.push(&tasks[2], false));
  CHECK(q.push(&tasks[3], true));
  CHECK(q.size() == 4);
  CHECK_FALSE(q.empty());
  for (auto& t : tasks) CHECK(q.pop() == &t);
  CHECK(q.pop() == nullptr);
  CHECK(q.empty());
}

TEST_CASE("local_queue: a full queue refuses the push and takes one again after a pop",
          "[local_queue]") {
  local_queue q;
  auto tasks = make_tasks(local_queue::capacity + 1);
  for (std::uint32_t i = 0; i < local_queue::capacity; ++i) CHECK(q.push(&tasks[i]));
  CHECK(q.size() == local_queue::capacity);
  CHECK_FALSE(q.push(&tasks[local_queue::capacity]));
  CHECK_FALSE(q.push(&tasks[local_queue::capacity], true));
  CHECK(q.size() == local_queue::capacity);
  CHECK(q.pop() == &tasks[0]);
  CHECK(q.push(&tasks[local_queue::capacity]));
  CHECK_FALSE(q.push(&tasks[0]));
  // The refused task was not queued; the one pushed after the pop comes last.
  for (std::uint32_t i = 1; i <= local_queue::capacity; ++i)
    CHECK(id_of(q.pop()) == static_cast<int>(i));
  CHECK(q.pop() == nullptr);
}

TEST_CASE("local_queue: order holds as the indices wrap around the slots", "[local_queue]") {
  local_queue q;
  auto tasks = make_tasks(3 * local_queue::capacity);
  const auto task_at = [&](int k) { return &tasks[static_cast<std::size_t>(k) % tasks.size()]; };
  // Bursts of pushes and pops that keep between 1 and capacity - 1 tasks
  // queued while the indices go round the slots many times.
  int pushed = 0;
  int popped = 0;
  int refused = 0;
  int out_of_order = 0;
  for (int round = 0; round < 40; ++round) {
    const int burst = round % 2 ? 200 : 37;
    for (int i = 0; i < burst && q.size() < local_queue::capacity - 1; ++i)
      if (!q.push(task_at(pushed++), round % 3 == 0)) ++refused;
    while (q.size() > 1)
      if (q.pop() != task_at(popped++)) ++out_of_order;
  }
  CHECK(popped > static_cast<int>(8 * local_queue::capacity));
  CHECK(refused == 0);
  CHECK(out_of_order == 0);
  CHECK(q.size() == 1);
  CHECK(q.pop() == task_at(popped));
}

TEST_CASE("local_queue: worth_stealing leaves a lone task and a pair of resumed tasks",
          "[local_queue]") {
  local_queue q;
  auto tasks = make_tasks(4);
  const auto fill = [&](std::vector<bool> resumed) {
    while (q.pop() != nullptr) {
    }
    for (std::size_t i = 0; i < resumed.size(); ++i) REQUIRE(q.push(&tasks[i], resumed[i]));
  };

  fill({false});
  CHECK_FALSE(q.worth_stealing());  // a lone task
  fill({true});
  CHECK_FALSE(q.worth_stealing());
  fill({false, false});
  CHECK(q.worth_stealing());
  fill({true, false});
  CHECK(q.worth_stealing());
  fill({false, true});
  CHECK(q.worth_stealing());
  fill({true, true});
  CHECK_FALSE(q.worth_stealing());  // two busy actors feeding each other
  fill({true, true, true});
  CHECK(q.worth_stealing());  // the pair rule covers exactly two

  // The rule looks at the two tasks still queued, not at earlier slots.
  fill({false, true, true});
  CHECK(q.worth_stealing());
  CHECK(q.pop() == &tasks[0]);
  CHECK_FALSE(q.worth_stealing());
  CHECK(q.pop() == &tasks[1]);
  CHECK_FALSE(q.worth_stealing());
  fill({true, true, false});
  CHECK(q.pop() == &tasks[0]);
  CHECK(q.worth_stealing());
}

// The owner pushes every task once (popping some itself, and one whenever the
// queue is full) while thieves pop from the same queue; every task must come
// out exactly once, with the payload written before its push.
TEST_CASE("local_queue: an owner and thieves: every task popped exactly once",
          "[local_queue][stress]") {
  const int threads = GENERATE(2, 4, 8);
  const int n = detail_test::iterations(200000);
  auto tasks = make_tasks(n);
  local_queue q;
  std::atomic<int> taken{0};
  std::vector<pop_record> records(static_cast<std::size_t>(threads));

  detail_test::run_threads(threads, [&](int id) {
    pop_record& r = records[static_cast<std::size_t>(id)];
    const auto pop_one = [&]() -> bool {
      task* t = q.pop();
      if (t == nullptr) return false;
      r.take(t, tasks);
      taken.fetch_add(1, std::memory_order_relaxed);
      return true;
    };
    if (id == 0) {  // the owner
      for (int i = 0; i < n; ++i) {
        test_task& t = tasks[static_cast<std::size_t>(i)];
        t.payload = payload_of(i);
        const bool resumed = i % 3 == 0;
        while (!q.push(&t, resumed)) pop_one();
        if (i % 5 == 0) pop_one();
      }
    }
    // Thieves take only what the stealing rule offers; the owner drains the
    // rest.
    while (taken.load(std::memory_order_relaxed) < n)
      if (id == 0 || q.worth_stealing()) pop_one();
  });

  pop_record all;
  for (const pop_record& r : records) all.merge(r);
  CHECK(all.taken == n);
  CHECK(all.foreign == 0);
  CHECK(all.stale == 0);
  CHECK(all.twice == 0);
  int not_once = 0;
  for (const test_task& t : tasks) not_once += t.pops.load() != 1;
  CHECK(not_once == 0);
  CHECK(q.empty());
}
