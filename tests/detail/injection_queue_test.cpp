// injection_queue on its own: a locked FIFO that close() shuts to push() but
// not to push_always().
#include "courier/detail/scheduler/injection_queue.hpp"

#include <atomic>
#include <catch2/catch.hpp>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "stress.hpp"
#include "test_task.hpp"

namespace {

using courier::detail::injection_queue;
using courier::detail::task;
using detail_test::id_of;
using detail_test::make_tasks;
using detail_test::payload_of;
using detail_test::pop_record;
using detail_test::test_task;

}  // namespace

TEST_CASE("injection_queue: FIFO, and empty() follows its contents", "[injection_queue]") {
  injection_queue q;
  auto tasks = make_tasks(5);
  CHECK(q.empty());
  CHECK(q.pop() == nullptr);
  for (auto& t : tasks) CHECK(q.push(&t));
  CHECK_FALSE(q.empty());
  CHECK(q.pop() == &tasks[0]);
  CHECK(q.pop() == &tasks[1]);
  q.push_always(&tasks[0]);  // a task goes round again once popped
  for (int id : {2, 3, 4}) CHECK(id_of(q.pop()) == id);
  CHECK_FALSE(q.empty());
  CHECK(q.pop() == &tasks[0]);
  CHECK(q.empty());
  CHECK(q.pop() == nullptr);
}

TEST_CASE("injection_queue: close() refuses push() but push_always() still queues",
          "[injection_queue]") {
  injection_queue q;
  auto tasks = make_tasks(4);
  CHECK(q.push(&tasks[0]));
  q.close();
  CHECK_FALSE(q.push(&tasks[1]));
  q.push_always(&tasks[2]);
  q.close();  // closing twice changes nothing
  CHECK_FALSE(q.push(&tasks[3]));
  CHECK(q.pop() == &tasks[0]);
  CHECK(q.pop() == &tasks[2]);
  CHECK(q.pop() == nullptr);
  CHECK(q.empty());
}

// Producers push (and the first one closes the queue half-way) while
// consumers pop: every accepted task comes out exactly once, no refused one
// does, and the queue is empty at the end.
TEST_CASE("injection_queue: pushes, pops and a close from many threads",
          "[injection_queue][stress]") {
  const int threads = GENERATE(2, 4, 8);
  const int producers = threads / 2;
  const int per_producer = detail_test::iterations(100000) / producers;
  const int n = producers * per_producer;
  auto tasks = make_tasks(n);
  injection_queue q;
  std::atomic<int> producers_done{0};
  std::vector<int> accepted(static_cast<std::size_t>(producers), 0);
  std::vector<pop_record> records(static_cast<std::size_t>(threads));

  detail_test::run_threads(threads, [&](int id) {
    if (id < producers) {
      for (int i = 0; i < per_producer; ++i) {
        const int k = id * per_producer + i;
        test_task& t = tasks[static_cast<std::size_t>(k)];
        t.payload = payload_of(k);
        if (q.push(&t)) ++accepted[static_cast<std::size_t>(id)];
        if (id == 0 && i == per_producer / 2) q.close();
      }
      producers_done.fetch_add(1, std::memory_order_release);
      return;
    }
    pop_record& r = records[static_cast<std::size_t>(id)];
    for (;;) {
      // Read before the pop: once every producer is done and the queue is
      // empty, nothing more can come.
      const bool last = producers_done.load(std::memory_order_acquire) == producers;
      task* t = q.pop();
      if (t != nullptr)
        r.take(t, tasks);
      else if (last)
        break;
    }
  });

  int total_accepted = 0;
  for (int a : accepted) total_accepted += a;
  pop_record all;
  for (const pop_record& r : records) all.merge(r);
  // The first producer pushed half its stream before it closed the queue.
  CHECK(accepted[0] == per_producer / 2 + 1);
  CHECK(all.taken == total_accepted);
  CHECK(all.foreign == 0);
  CHECK(all.stale == 0);
  CHECK(all.twice == 0);
  CHECK(q.empty());
  CHECK(q.pop() == nullptr);
}
