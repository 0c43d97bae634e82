// mailbox on its own: the activation protocol (push() and claim() hand the
// duty to schedule a drain to exactly one caller, release() gives it up or
// keeps it), the stop and State-release flags, the batch, leftovers abandoned
// on destruction, and many producers whose drains (on the producers' own
// threads, on workers in batches, racing a stop) never overlap and leave
// nothing behind.
#include "courier/detail/actor/mailbox.hpp"

#include <atomic>
#include <barrier>
#include <catch2/catch.hpp>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "stress.hpp"
#include "test_node.hpp"

namespace {

using courier::detail::mailbox;
using courier::detail::mailbox_node;
using detail_test::test_node;

// The id of the node pop() returns, or -1 when it reports the mailbox empty;
// -2 when it reports a half-pushed node, which a single thread never leaves.
int pop_id(mailbox& m) {
  bool busy = true;
  mailbox_node* n = m.pop(busy);
  if (busy) return -2;
  return n ? static_cast<test_node*>(n)->id : -1;
}

constexpr auto no_more = [] { return false; };

}  // namespace

TEST_CASE("mailbox: the first push schedules, later ones do not until the drain gives up",
          "[mailbox]") {
  mailbox m;
  test_node a(1), b(2), c(3), d(4);
  CHECK(m.push(&a));
  CHECK_FALSE(m.push(&b));
  CHECK_FALSE(m.push(&c));
  CHECK(pop_id(m) == 1);
  CHECK_FALSE(m.push(&d));  // still scheduled while the drain runs
  CHECK(pop_id(m) == 2);
  CHECK(pop_id(m) == 3);
  CHECK(pop_id(m) == 4);
  CHECK(pop_id(m) == -1);
  CHECK_FALSE(m.release(no_more));  // empty: the activation is given up

  // Idle again: the next push schedules again, and so on, round after round.
  for (int round = 0; round < 3; ++round) {
    CHECK(m.push(&a));
    CHECK_FALSE(m.push(&b));
    CHECK(pop_id(m) == 1);
    CHECK(pop_id(m) == 2);
    CHECK(pop_id(m) == -1);
    CHECK_FALSE(m.release(no_more));
  }
  CHECK(a.abandons + b.abandons + c.abandons + d.abandons == 0);
}

TEST_CASE("mailbox: a release that finds a node pushed meanwhile keeps the activation",
          "[mailbox]") {
  mailbox m;
  test_node a(1), b(2);
  CHECK(m.push(&a));
  CHECK(pop_id(m) == 1);
  CHECK(pop_id(m) == -1);
  CHECK_FALSE(m.push(&b));  // the drain has not given up yet: nobody else schedules
  CHECK(m.release(no_more));
  // The holder drains on; nobody else was told to schedule.
  CHECK_FALSE(m.claim());
  CHECK(pop_id(m) == 2);
  CHECK(pop_id(m) == -1);
  CHECK_FALSE(m.release(no_more));
  CHECK(m.claim());  // idle now
  CHECK_FALSE(m.release(no_more));
}

TEST_CASE("mailbox: more() is asked after the activation is given up, and keeps it", "[mailbox]") {
  mailbox m;
  test_node a(1);
  REQUIRE(m.push(&a));
  CHECK(pop_id(m) == 1);
  CHECK(pop_id(m) == -1);

  SECTION("more() says no: the activation is gone, a push inside it schedules") {
    std::optional<bool> pushed;
    CHECK_FALSE(m.release([&] {
      pushed = m.push(&a);
      return false;
    }));
    REQUIRE(pushed.has_value());
    CHECK(*pushed);  // the flag was clear when more() ran
    // The pusher holds the activation now.
    CHECK_FALSE(m.claim());
    CHECK(pop_id(m) == 1);
    CHECK(pop_id(m) == -1);
    CHECK_FALSE(m.release(no_more));
  }
  SECTION("more() says yes: the holder takes the activation back") {
    int asked = 0;
    CHECK(m.release([&] {
      ++asked;
      return true;
    }));
    CHECK(asked == 1);
    CHECK_FALSE(m.claim());
    CHECK_FALSE(m.push(&a));
    CHECK(pop_id(m) == 1);
    CHECK_FALSE(m.release(no_more));
  }
  SECTION("more() says yes but a claim inside it took the activation first") {
    std::optional<bool> claimed;
    CHECK_FALSE(m.release([&] {
      claimed = m.claim();
      return true;
    }));
    REQUIRE(claimed.has_value());
    CHECK(*claimed);  // the claimer holds it, not the releaser
    CHECK_FALSE(m.release(no_more));
  }
  SECTION("more() is not asked when a node was pushed meanwhile") {
    int asked = 0;
    CHECK_FALSE(m.push(&a));
    CHECK(m.release([&] {
      ++asked;
      return false;
    }));
    CHECK(asked == 0);
    CHECK(pop_id(m) == 1);
    CHECK_FALSE(m.release(no_more));
  }
  CHECK(m.claim());  // every section leaves the mailbox idle
  CHECK(pop_id(m) == -1);
  CHECK_FALSE(m.release(no_more));
}

TEST_CASE("mailbox: claim() takes the activation without queuing anything", "[mailbox]") {
  mailbox m;
  test_node a(1);
  CHECK(m.claim());
  CHECK_FALSE(m.claim());
  CHECK_FALSE(m.push(&a));    // claimed: the push needs no schedule of its own
  CHECK(m.release(no_more));  // and the release sees it
  CHECK(pop_id(m) == 1);
  CHECK_FALSE(m.release(no_more));
  CHECK(m.claim());
  CHECK(pop_id(m) == -1);
  CHECK_FALSE(m.release(no_more));
}

TEST_CASE("mailbox: stop() is true once, set_stopped() sets the same flag", "[mailbox]") {
  mailbox m;
  CHECK_FALSE(m.stopped());
  SECTION("stop()") {
    CHECK(m.stop());
    CHECK(m.stopped());
    CHECK_FALSE(m.stop());
    CHECK(m.stopped());
  }
  SECTION("set_stopped(), then stop()") {
    m.set_stopped();
    CHECK(m.stopped());
    CHECK_FALSE(m.stop());  // already stopped: nobody is first any more
    m.set_stopped();
    CHECK(m.stopped());
  }
}

TEST_CASE("mailbox: the State is released once, and is pending only after a stop", "[mailbox]") {
  mailbox m;
  CHECK_FALSE(m.state_release_pending());
  SECTION("stopped first") {
    CHECK(m.stop());
    CHECK(m.state_release_pending());
    CHECK(m.take_state_release());
    CHECK_FALSE(m.state_release_pending());
    CHECK_FALSE(m.take_state_release());
    CHECK_FALSE(m.state_release_pending());
  }
  SECTION("set_stopped() makes it pending too") {
    m.set_stopped();
    CHECK(m.state_release_pending());
    CHECK(m.take_state_release());
    CHECK_FALSE(m.state_release_pending());
  }
  SECTION("released before any stop") {
    CHECK(m.take_state_release());
    CHECK_FALSE(m.take_state_release());
    CHECK(m.stop());
    CHECK_FALSE(m.state_release_pending());
  }
}

// The interleaving actor_base::drain() guards against with more(): the
// holder has looked at stopped() and found it false, a stop() then finds the
// activation held and leaves the State to the holder, which would otherwise
// give the activation up with the State never released.
TEST_CASE("mailbox: a stop that finds the activation held leaves the State to its release",
          "[mailbox]") {
  mailbox m;
  test_node a(1);
  REQUIRE(m.push(&a));
  CHECK(pop_id(m) == 1);
  CHECK(pop_id(m) == -1);
  CHECK_FALSE(m.stopped());  // the holder's last look

  CHECK(m.stop());
  CHECK_FALSE(m.claim());  // held: the stopper schedules nothing

  const auto pending = [&m] { return m.state_release_pending(); };
  CHECK(m.release(pending));  // kept, with the State still to release
  CHECK(m.stopped());
  CHECK(m.take_state_release());
  CHECK_FALSE(m.release(pending));  // released: now the activation goes
  CHECK(m.claim());
  CHECK_FALSE(m.release(no_more));
}

TEST_CASE("mailbox: the batch is 64 until set", "[mailbox]") {
  mailbox m;
  CHECK(m.batch() == 64);
  m.set_batch(1);
  CHECK(m.batch() == 1);
  m.set_batch(1000);
  CHECK(m.batch() == 1000);
}

TEST_CASE("mailbox: nodes still queued are abandoned when it is destroyed", "[mailbox]") {
  std::deque<test_node> nodes;
  for (int i = 0; i < 5; ++i) nodes.emplace_back(i);
  {
    mailbox m;
    for (test_node& n : nodes) (void)m.push(&n);
    CHECK(pop_id(m) == 0);
    CHECK(pop_id(m) == 1);
  }
  CHECK(nodes[0].abandons == 0);
  CHECK(nodes[1].abandons == 0);
  for (std::size_t i = 2; i < nodes.size(); ++i) CHECK(nodes[i].abandons == 1);
  { mailbox empty; }  // nothing to abandon
}

namespace {

// A node of the stress cases, with who pushed it and what happened to it.
struct stress_node final : mailbox_node {
  stress_node(int p, int s) : producer(p), seq(s) {}
  void run(courier::detail::continuation_home&) noexcept override {}
  void abandon() noexcept override { abandons.fetch_add(1, std::memory_order_relaxed); }
  const int producer;
  const int seq;
  int payload = 0;  // written by the producer before the push
  std::atomic<int> pops{0};
  std::atomic<int> abandons{0};
};

constexpr int payload_of(int producer, int seq) { return producer * 1000003 + seq; }

// What an actor's State would be: touched only by the holder of the
// activation, with no lock or atomic of its own, so that TSan reports a
// handover of the activation that does not order one drain before the next.
struct drained_state {
  explicit drained_state(int producers) : next_seq(static_cast<std::size_t>(producers), 0) {}
  std::vector<int> next_seq;  // per producer: nodes must come out in push order
  int handled = 0;
  int out_of_order = 0;
  int stale = 0;
  int state_releases = 0;
  int releases = 0;
  int kept = 0;  // releases that kept the activation
};

// One round of a stress case: a mailbox, its producers' nodes, and the drain.
class drain_run {
 public:
  drain_run(int producers, int per_producer)
      : producers_(producers), per_producer_(per_producer), state_(producers) {
    nodes_.resize(static_cast<std::size_t>(producers));
    for (int p = 0; p < producers; ++p)
      for (int s = 0; s < per_producer; ++s) nodes_[static_cast<std::size_t>(p)].emplace_back(p, s);
  }

  int producers() const { return producers_; }
  int per_producer() const { return per_producer_; }
  int total() const { return producers_ * per_producer_; }
  mailbox& box() { return box_; }
  const drained_state& state() const { return state_; }

  // Pushes a producer's node; true when the caller must drain.
  bool push(int producer, int seq) {
    stress_node& n = nodes_[static_cast<std::size_t>(producer)][static_cast<std::size_t>(seq)];
    n.payload = payload_of(producer, seq);
    return box_.push(&n);
  }

  // The holder of the activation calls this on entry and leave() before it
  // gives the activation up: two holders at once show as an overlap. Relaxed,
  // so that the count orders nothing: the handover of the activation must
  // order one drain before the next by itself.
  void enter() {
    if (draining_.fetch_add(1, std::memory_order_relaxed) != 0)
      overlaps_.fetch_add(1, std::memory_order_relaxed);
  }
  void leave() { draining_.fetch_sub(1, std::memory_order_relaxed); }

  // Pops up to `limit` nodes. Returns how many; `busy` as pop() reports it.
  int drain_some(int limit, bool& busy) {
    int popped = 0;
    while (popped < limit) {
      mailbox_node* m = box_.pop(busy);
      if (m == nullptr) break;
      ++popped;
      handle(static_cast<stress_node*>(m));
    }
    return popped;
  }

  // Drains as actor_base::drain() does, on the calling thread, until the
  // mailbox is empty and release() lets the activation go. Releases the
  // State once the actor is stopped.
  void drain_inline() {
    enter();
    for (;;) {
      bool busy = false;
      drain_some(total(), busy);
      if (busy) {
        std::this_thread::yield();
        continue;
      }
      if (box_.stopped() && box_.take_state_release()) ++state_.state_releases;
      // Every other time, a window for producers to push in before the
      // release: the race release() is written for.
      if (++state_.releases % 2 == 0) std::this_thread::yield();
      leave();
      if (!box_.release([this] { return box_.state_release_pending(); })) return;
      ++state_.kept;
      enter();
    }
  }

  // What went wrong in this round, or an empty string. Once every thread is
  // done: it claims the activation to check that nobody held it.
  std::string problems(bool stopped) {
    int popped_twice = 0, never_popped = 0, abandoned = 0;
    for (const auto& own : nodes_)
      for (const stress_node& n : own) {
        const int pops = n.pops.load();
        if (pops > 1) ++popped_twice;
        if (pops == 0) ++never_popped;
        abandoned += n.abandons.load();
      }
    int short_streams = 0;
    for (int next : state_.next_seq)
      if (next != per_producer_) ++short_streams;
    std::ostringstream out;
    const auto report = [&out](int n, const char* what) {
      if (n != 0) out << n << ' ' << what << "; ";
    };
    report(overlaps_.load(), "overlapping drains");
    report(popped_twice, "nodes popped twice");
    report(never_popped, "nodes never popped");
    report(abandoned, "nodes abandoned");
    report(total() - state_.handled, "nodes not handled");
    report(state_.out_of_order, "nodes out of order");
    report(state_.stale, "nodes with a stale payload");
    report(short_streams, "producers not handled to the end");
    // Nothing was left without an activation: the mailbox is idle and empty.
    if (!box_.claim()) out << "the activation is still held; ";
    bool busy = false;
    if (box_.pop(busy) != nullptr || busy) out << "a node is left in the mailbox; ";
    if (box_.release([] { return false; })) out << "release() kept the activation; ";
    if (box_.stopped() != stopped) out << "stopped() is " << box_.stopped() << "; ";
    if (stopped) {
      report(state_.state_releases - 1, "State releases too many (or -1: none)");
      if (box_.state_release_pending()) out << "a State release is still pending; ";
    }
    return out.str();
  }

 private:
  void handle(stress_node* n) {
    if (n->pops.fetch_add(1, std::memory_order_relaxed) != 0) return;
    ++state_.handled;
    if (n->payload != payload_of(n->producer, n->seq)) ++state_.stale;
    int& next = state_.next_seq[static_cast<std::size_t>(n->producer)];
    if (n->seq != next) ++state_.out_of_order;
    next = n->seq + 1;
  }

  const int producers_;
  const int per_producer_;
  // Declared first, destroyed last: ~mailbox abandons whatever a failed
  // round left queued.
  std::vector<std::deque<stress_node>> nodes_;
  mailbox box_;
  drained_state state_;
  std::atomic<int> draining_{0};
  std::atomic<int> overlaps_{0};
};

// Runs `rounds` rounds of `per_producer` nodes per producer on the same
// `threads` threads, each round on a drain_run of its own, the threads
// meeting at a barrier before each; body(run, round, id) is thread id's
// part of a round. Many short rounds, each checked once it is over, rather than one
// long one: a node left behind without an activation is only seen at the
// end, and a later push would otherwise take it along.
template <class Body>
std::deque<drain_run> run_rounds(int threads, int producers, int rounds, int per_producer,
                                 Body body) {
  std::deque<drain_run> runs;
  for (int round = 0; round < rounds; ++round) runs.emplace_back(producers, per_producer);
  std::barrier next_round(threads);
  detail_test::run_threads(threads, [&](int id) {
    for (int round = 0; round < rounds; ++round) {
      next_round.arrive_and_wait();
      body(runs[static_cast<std::size_t>(round)], round, id);
    }
  });
  return runs;
}

// Checks every round, reporting the first that went wrong.
void check_rounds(std::deque<drain_run>& runs, bool stopped) {
  int bad = 0;
  std::string first;
  for (std::size_t round = 0; round < runs.size(); ++round) {
    std::string p = runs[round].problems(stopped);
    if (!p.empty() && bad++ == 0) first = "round " + std::to_string(round) + ": " + p;
  }
  INFO(bad << " of " << runs.size() << " rounds went wrong; the first, " << first);
  CHECK(bad == 0);
}

constexpr int per_producer = 64;

}  // namespace

// Each producer that push() tells to schedule drains at once on its own
// thread, as an actor on an inline executor would.
TEST_CASE("mailbox: producers that drain themselves: one drainer at a time, nothing left behind",
          "[mailbox][stress]") {
  const int producers = GENERATE(2, 4, 8);
  // Short rounds: a node left behind is seen only when it was pushed last.
  constexpr int per_round = 16;
  const int rounds = detail_test::iterations(6400) / producers;
  auto runs = run_rounds(producers, producers, rounds, per_round, [](drain_run& r, int, int id) {
    for (int s = 0; s < r.per_producer(); ++s) {
      if (r.push(id, s)) r.drain_inline();
      if (s % 16 == 15) std::this_thread::yield();
    }
  });
  int kept = 0;
  for (const drain_run& r : runs) kept += r.state().kept;
  INFO(producers << " producers; " << kept << " releases kept the activation");
  check_rounds(runs, false);
}

namespace {

// One round's executor for the worker case: a count of queued activations
// under a lock, and when a node was last popped, to tell a stall.
struct round_executor {
  std::mutex mutex;
  std::condition_variable wake;
  int queued = 0;
  std::atomic<int> popped{0};
  std::atomic<std::int64_t> last_pop_ms{0};
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();

  std::int64_t elapsed_ms() const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                 start)
        .count();
  }
  void schedule() {
    std::lock_guard<std::mutex> lock(mutex);
    ++queued;
    wake.notify_one();
  }
};

// Runs one activation of `r`, as actor_base::drain() does: at most `batch`
// nodes, then (or while a producer is mid-push) it keeps the activation and
// queues it again; otherwise it releases it, or drains on if release() says
// so.
void run_activation(drain_run& r, round_executor& ex) {
  constexpr int batch = 16;
  r.enter();
  for (;;) {
    bool busy = false;
    const int n = r.drain_some(batch, busy);
    ex.popped.fetch_add(n, std::memory_order_relaxed);
    if (n > 0) ex.last_pop_ms.store(ex.elapsed_ms(), std::memory_order_relaxed);
    if (n == batch || busy) {
      r.leave();
      ex.schedule();
      return;
    }
    r.leave();
    if (!r.box().release(no_more)) return;
    r.enter();
  }
}

// A worker's part of a round: runs the round's activations until every node
// is out and none is queued, or until no node has been popped for a while.
void work(drain_run& r, round_executor& ex, std::atomic<bool>& stalled) {
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(ex.mutex);
      ex.wake.wait_for(lock, std::chrono::milliseconds(1), [&] { return ex.queued > 0; });
      if (ex.queued == 0) {
        if (ex.popped.load(std::memory_order_relaxed) == r.total()) return;
        if (stalled.load(std::memory_order_relaxed)) return;
        if (ex.elapsed_ms() - ex.last_pop_ms.load(std::memory_order_relaxed) > 2000) {
          stalled.store(true, std::memory_order_relaxed);
          return;
        }
        continue;
      }
      --ex.queued;
    }
    run_activation(r, ex);
  }
}

}  // namespace

// Activations go to two worker threads through a locked queue, as to an
// executor, and run in batches, so the activation moves between threads
// while held as well as when released.
TEST_CASE("mailbox: activations run by workers in batches: one drainer at a time, nothing left",
          "[mailbox][stress]") {
  const int producers = GENERATE(2, 4, 8);
  constexpr int workers = 2;
  const int rounds = detail_test::iterations(800) / producers;
  std::deque<round_executor> executors(static_cast<std::size_t>(rounds));
  // Once a round has stalled, the workers give the later ones up at once.
  std::atomic<bool> stalled{false};

  auto runs = run_rounds(producers + workers, producers, rounds, per_producer,
                         [&](drain_run& r, int round, int id) {
                           round_executor& ex = executors[static_cast<std::size_t>(round)];
                           if (id < producers) {
                             for (int s = 0; s < r.per_producer(); ++s)
                               if (r.push(id, s)) ex.schedule();
                             return;
                           }
                           work(r, ex, stalled);
                         });
  // Activations queued after the workers left a round (a push whose node an
  // earlier drain had already taken): they run here.
  int late = 0;
  for (std::size_t round = 0; round < runs.size(); ++round)
    for (; executors[round].queued > 0; --executors[round].queued) {
      ++late;
      run_activation(runs[round], executors[round]);
    }
  INFO(producers << " producers; " << late << " late activations");
  CHECK_FALSE(stalled.load());
  check_rounds(runs, false);
}

// A stop races the drains: in each round, once half the nodes are pushed,
// the stopper stops the actor and claims the activation, and drains if it
// got it. Whoever drains after the stop releases the State, exactly once: a
// release() that would give the activation up while the State is still to
// be released (more() = state_release_pending) keeps it instead.
TEST_CASE("mailbox: a stop racing the drains releases the State exactly once",
          "[mailbox][stress]") {
  const int producers = GENERATE(2, 4, 8);
  const int rounds = detail_test::iterations(1600) / producers;
  std::vector<std::atomic<int>> pushed(static_cast<std::size_t>(rounds));
  int stopper_drained = 0;

  auto runs = run_rounds(producers + 1, producers, rounds, per_producer,
                         [&](drain_run& r, int round, int id) {
                           std::atomic<int>& round_pushed = pushed[static_cast<std::size_t>(round)];
                           if (id < producers) {
                             for (int s = 0; s < r.per_producer(); ++s) {
                               if (r.push(id, s)) r.drain_inline();
                               round_pushed.fetch_add(1, std::memory_order_relaxed);
                             }
                             return;
                           }
                           while (round_pushed.load(std::memory_order_relaxed) < r.total() / 2)
                             std::this_thread::yield();
                           if (r.box().stop() && r.box().claim()) {
                             ++stopper_drained;
                             r.drain_inline();
                           }
                         });
  INFO(producers << " producers; the stopper drained in " << stopper_drained << " of " << rounds
                 << " rounds");
  check_rounds(runs, true);
}
