// mpsc_queue on its own: FIFO order, the stub node going back in across empty
// and non-empty, what pop()'s `busy` and pushed_since_empty() report, and
// many producers against one consumer.
#include "courier/detail/actor/mpsc_queue.hpp"

#include <atomic>
#include <catch2/catch.hpp>
#include <cstddef>
#include <deque>
#include <thread>
#include <vector>

#include "stress.hpp"

namespace {

using courier::detail::mailbox_node;
using courier::detail::mpsc_queue;

// A node that says who pushed it and where it stands in that producer's
// stream. Never run: the tests only queue and dequeue.
struct test_node final : mailbox_node {
  explicit test_node(int s = 0, int p = 0) : seq(s), producer(p) {}
  void run(courier::detail::continuation_home&) noexcept override {}
  void abandon() noexcept override {}
  int seq;
  int producer;
};

// The seq of the node pop() returns, or -1 when it reports the queue empty;
// -2 when it reports a half-pushed node, which a single thread never leaves.
int pop_seq(mpsc_queue& q) {
  bool busy = true;
  mailbox_node* n = q.pop(busy);
  if (busy) return -2;
  return n ? static_cast<test_node*>(n)->seq : -1;
}

}  // namespace

TEST_CASE("mpsc_queue: a new queue is empty and not busy", "[mpsc_queue]") {
  mpsc_queue q;
  CHECK_FALSE(q.pushed_since_empty());
  CHECK(pop_seq(q) == -1);
  CHECK(pop_seq(q) == -1);
  CHECK_FALSE(q.pushed_since_empty());
}

TEST_CASE("mpsc_queue: pops in push order", "[mpsc_queue]") {
  mpsc_queue q;
  std::deque<test_node> nodes;
  for (int i = 0; i < 10; ++i) q.push(&nodes.emplace_back(i));
  for (int i = 0; i < 10; ++i) CHECK(pop_seq(q) == i);
  CHECK(pop_seq(q) == -1);
}

TEST_CASE("mpsc_queue: the stub goes back in across empty and non-empty", "[mpsc_queue]") {
  mpsc_queue q;
  test_node a(1), b(2), c(3), d(4);

  // One node at a time: each pop takes the last node, so the stub goes back
  // in behind it every time.
  for (int round = 0; round < 3; ++round) {
    q.push(&a);
    CHECK(pop_seq(q) == 1);
    CHECK(pop_seq(q) == -1);
  }

  // Pushes while non-empty, including behind the re-inserted stub.
  q.push(&a);
  q.push(&b);
  CHECK(pop_seq(q) == 1);
  q.push(&c);
  CHECK(pop_seq(q) == 2);
  CHECK(pop_seq(q) == 3);
  q.push(&d);
  q.push(&a);  // a node goes round again once popped
  CHECK(pop_seq(q) == 4);
  q.push(&b);
  CHECK(pop_seq(q) == 1);
  CHECK(pop_seq(q) == 2);
  CHECK(pop_seq(q) == -1);

  // Growing and draining runs, each from an empty queue.
  std::deque<test_node> nodes;
  for (int i = 0; i < 8; ++i) nodes.emplace_back(10 + i);
  for (int n = 1; n <= 8; ++n) {
    for (int i = 0; i < n; ++i) q.push(&nodes[static_cast<std::size_t>(i)]);
    for (int i = 0; i < n; ++i) CHECK(pop_seq(q) == 10 + i);
    CHECK(pop_seq(q) == -1);
  }
}

TEST_CASE("mpsc_queue: pushed_since_empty tells whether a push followed the last empty pop",
          "[mpsc_queue]") {
  mpsc_queue q;
  test_node a(1), b(2);
  q.push(&a);
  CHECK(q.pushed_since_empty());
  q.push(&b);
  CHECK(pop_seq(q) == 1);
  CHECK(q.pushed_since_empty());
  CHECK(pop_seq(q) == 2);
  CHECK(pop_seq(q) == -1);
  CHECK_FALSE(q.pushed_since_empty());
  q.push(&a);
  CHECK(q.pushed_since_empty());
  CHECK(pop_seq(q) == 1);
  CHECK(pop_seq(q) == -1);
  CHECK_FALSE(q.pushed_since_empty());
}

// Each producer pushes its own numbered stream; the consumer checks that each
// stream arrives whole, once and in order, and that an empty (not busy) pop
// never hides a push that had already returned when the pop began.
TEST_CASE("mpsc_queue: many producers, one consumer: per-producer FIFO, nothing lost or doubled",
          "[mpsc_queue][stress]") {
  const int producers = GENERATE(2, 4, 8);
  const int per_producer = detail_test::iterations(160000) / producers;
  const int total = producers * per_producer;

  mpsc_queue q;
  std::vector<std::deque<test_node>> nodes(static_cast<std::size_t>(producers));
  for (auto& own : nodes)
    for (int i = 0; i < per_producer; ++i) own.emplace_back();
  std::atomic<int> completed{0};  // pushes that have returned

  std::vector<int> next_seq(static_cast<std::size_t>(producers), 0);
  int received = 0;
  int out_of_order = 0;
  int foreign = 0;
  int hidden = 0;  // empty pops that missed a completed push
  int busy_pops = 0;

  detail_test::run_threads(producers + 1, [&](int id) {
    if (id < producers) {
      std::deque<test_node>& own = nodes[static_cast<std::size_t>(id)];
      for (int i = 0; i < per_producer; ++i) {
        test_node& n = own[static_cast<std::size_t>(i)];
        // Written here, read by the consumer: the push must publish them.
        n.seq = i;
        n.producer = id;
        q.push(&n);
        completed.fetch_add(1, std::memory_order_seq_cst);
      }
      return;
    }
    // A backlog first, popped by following the links alone: nothing else
    // (the pacing load is relaxed) orders the producers' writes before the
    // consumer's reads.
    while (completed.load(std::memory_order_relaxed) < total / 2) std::this_thread::yield();
    bool caught_up = false;
    while (received < total) {
      // Once the consumer has caught up, it notes how many pushes had
      // returned before each pop; not while it drains, where this load
      // would order the pushes by itself.
      const int completed_before = caught_up ? completed.load(std::memory_order_seq_cst) : 0;
      bool busy = false;
      mailbox_node* m = q.pop(busy);
      if (m == nullptr) {
        if (busy)
          ++busy_pops;
        else if (received < completed_before)
          ++hidden;
        caught_up = true;
        continue;
      }
      caught_up = false;
      const auto* n = static_cast<const test_node*>(m);
      if (n->producer < 0 || n->producer >= producers) {
        ++foreign;
        ++received;
        continue;
      }
      int& expected = next_seq[static_cast<std::size_t>(n->producer)];
      if (n->seq != expected) ++out_of_order;
      expected = n->seq + 1;
      ++received;
    }
  });

  INFO("busy pops: " << busy_pops);
  CHECK(received == total);
  CHECK(out_of_order == 0);
  CHECK(foreign == 0);
  CHECK(hidden == 0);
  for (int seq : next_seq) CHECK(seq == per_producer);
  // Every producer has returned: nothing half-pushed is left.
  CHECK(pop_seq(q) == -1);
  CHECK_FALSE(q.pushed_since_empty());
}
