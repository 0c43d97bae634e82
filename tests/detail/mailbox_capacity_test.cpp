// mailbox_capacity on its own: reserve() up to the bound and refusals past
// it, admit() counting past the bound, release() giving places back, senders
// waiting for room served oldest first once the count is down to half the
// capacity, a stop failing every waiter, blocking_room_waiter, and many
// senders against one consumer, with and without a stop half-way.
#include "courier/detail/actor/mailbox_capacity.hpp"

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <thread>
#include <vector>

#include "courier/detail/actor/mpsc_queue.hpp"
#include "stress.hpp"
#include "test_node.hpp"

namespace {

using courier::detail::blocking_room_waiter;
using courier::detail::mailbox_capacity;
using courier::detail::mailbox_node;
using courier::detail::mpsc_queue;
using courier::detail::room_waiter;
using detail_test::test_node;

// The actor's side, for one thread: records the ids of the nodes queued into
// reserved places, in order.
struct recording_sink {
  recording_sink() { posted.reserve(64); }
  bool stopped() const noexcept { return stop; }
  void post_reserved(mailbox_node* n) noexcept { posted.push_back(static_cast<test_node*>(n)->id); }
  bool stop = false;
  std::vector<int> posted;
};

// A sender waiting for room that records what done() reported, and where.
struct recording_waiter final : room_waiter {
  explicit recording_waiter(test_node& n) : room_waiter(&n) {}
  void done(bool q) noexcept override {
    ++calls;
    queued = q;
    thread = std::this_thread::get_id();
  }
  int calls = 0;
  bool queued = false;
  std::thread::id thread;
};

// Takes every place of a mailbox of capacity `capacity`.
void fill(mailbox_capacity& c, recording_sink& sink, std::uint32_t capacity) {
  for (std::uint32_t i = 0; i < capacity; ++i) REQUIRE(c.reserve(sink));
}

// How many reserve() calls in a row succeed, at most `limit`; the places
// taken are given back, so the count is left as it was.
std::uint32_t free_places(mailbox_capacity& c, recording_sink& sink, std::uint32_t limit) {
  std::uint32_t n = 0;
  while (n < limit && c.reserve(sink)) ++n;
  c.release(n, sink);
  return n;
}

}  // namespace

TEST_CASE("mailbox_capacity: unbounded never refuses and never counts", "[mailbox_capacity]") {
  mailbox_capacity c;  // capacity 0 until set
  recording_sink sink;
  int refused = 0;
  for (int i = 0; i < 1000; ++i) {
    if (!c.reserve(sink)) ++refused;
    c.admit();
  }
  CHECK(refused == 0);
  c.release(3, sink);

  test_node n(7);
  recording_waiter w(n);
  c.wait_for_room(&w, sink);
  CHECK(w.calls == 1);
  CHECK(w.queued);
  CHECK(sink.posted == std::vector<int>{7});
  c.stopped(sink);  // no waiter to fail
  CHECK(w.calls == 1);

  // White-box probe, outside the contract (the bound is set before any use):
  // nothing above was counted, so a bound set now starts from an empty count.
  c.set_capacity(2);
  CHECK(free_places(c, sink, 10) == 2);
}

TEST_CASE("mailbox_capacity: reserve() takes places up to the bound, release(n) gives n back",
          "[mailbox_capacity]") {
  const std::uint32_t capacity = GENERATE(1u, 2u, 3u, 8u);
  mailbox_capacity c;
  c.set_capacity(capacity);
  recording_sink sink;

  for (std::uint32_t i = 0; i < capacity; ++i) CHECK(c.reserve(sink));
  // Refusals leave nothing behind.
  for (int i = 0; i < 3; ++i) CHECK_FALSE(c.reserve(sink));

  c.release(1, sink);
  CHECK(c.reserve(sink));
  CHECK_FALSE(c.reserve(sink));

  c.release(capacity, sink);
  CHECK(free_places(c, sink, capacity + 5) == capacity);
  if (capacity > 1) {
    fill(c, sink, capacity);
    c.release(capacity - 1, sink);
    CHECK(free_places(c, sink, capacity + 5) == capacity - 1);
    c.release(1, sink);
  }
  CHECK(free_places(c, sink, capacity + 5) == capacity);
  CHECK(sink.posted.empty());  // reserve() only counts: the caller queues
}

TEST_CASE("mailbox_capacity: admit() counts past the bound", "[mailbox_capacity]") {
  mailbox_capacity c;
  c.set_capacity(2);
  recording_sink sink;

  for (int i = 0; i < 3; ++i) c.admit();  // 3 of 2
  CHECK_FALSE(c.reserve(sink));
  c.release(1, sink);  // 2 of 2
  CHECK_FALSE(c.reserve(sink));
  c.release(1, sink);  // 1 of 2
  CHECK(c.reserve(sink));
  CHECK_FALSE(c.reserve(sink));

  // Admitted on top of a full mailbox, and given back like any other node.
  c.admit();
  c.admit();  // 4 of 2
  c.release(3, sink);
  CHECK(free_places(c, sink, 5) == 1);
  c.release(1, sink);
  CHECK(free_places(c, sink, 5) == 2);
}

namespace {

// Waiters for a full mailbox, more than it can take at once, then releases
// one place at a time. Checks against a model of the count that nothing is
// served until the count is down to half the capacity, that each release down
// to half then serves as many waiters as there is room for, and that those
// left over wait for the next one; returns the ids in the order they were
// queued.
std::vector<int> serve_in_rounds(std::uint32_t capacity, int waiters) {
  mailbox_capacity c;
  c.set_capacity(capacity);
  recording_sink sink;
  fill(c, sink, capacity);

  std::deque<test_node> nodes;
  std::deque<recording_waiter> ws;
  for (int i = 0; i < waiters; ++i) {
    ws.emplace_back(nodes.emplace_back(i));
    c.wait_for_room(&ws.back(), sink);
  }
  for (const recording_waiter& w : ws) CHECK(w.calls == 0);
  CHECK(sink.posted.empty());

  std::uint32_t count = capacity;
  std::size_t served = 0;
  int releases = 0;
  while (served < ws.size() && releases < 1000) {
    c.release(1, sink);
    ++releases;
    --count;
    if (count <= capacity / 2)
      for (; served < ws.size() && count < capacity; ++served) ++count;
    INFO("capacity " << capacity << ", release " << releases << ", count " << count);
    REQUIRE(sink.posted.size() == served);
  }
  CHECK(served == ws.size());
  for (const recording_waiter& w : ws) {
    CHECK(w.calls == 1);
    CHECK(w.queued);
  }
  for (const test_node& n : nodes) CHECK(n.abandons == 0);
  CHECK(free_places(c, sink, capacity + 1) == capacity - count);
  return sink.posted;
}

std::vector<int> iota(int from, int to) {
  std::vector<int> v;
  for (int i = from; i < to; ++i) v.push_back(i);
  return v;
}

}  // namespace

TEST_CASE("mailbox_capacity: waiters are served once the count is down to half, oldest first",
          "[mailbox_capacity]") {
  const std::uint32_t capacity = GENERATE(1u, 2u, 4u, 5u, 8u);
  const int waiters = static_cast<int>(capacity) + 3;
  std::vector<int> posted = serve_in_rounds(capacity, waiters);
  // The first release down to half serves the oldest, in order.
  const int first_round = static_cast<int>(capacity - capacity / 2);
  REQUIRE(posted.size() == static_cast<std::size_t>(waiters));
  CHECK(std::vector<int>(posted.begin(), posted.begin() + first_round) == iota(0, first_round));
  // Everyone is served, once.
  std::sort(posted.begin(), posted.end());
  CHECK(posted == iota(0, waiters));
}

// Waiters a round leaves over are served first, in their order, in the next.
TEST_CASE("mailbox_capacity: waiters left over keep their turn in later rounds",
          "[mailbox_capacity]") {
  CHECK(serve_in_rounds(4, 7) == iota(0, 7));
}

TEST_CASE("mailbox_capacity: one release past half serves the waiters at once",
          "[mailbox_capacity]") {
  mailbox_capacity c;
  c.set_capacity(8);
  recording_sink sink;
  fill(c, sink, 8);
  test_node a(1), b(2);
  recording_waiter wa(a), wb(b);
  c.wait_for_room(&wa, sink);
  c.wait_for_room(&wb, sink);

  c.release(3, sink);  // 5 of 8: room, but not down to half
  CHECK(wa.calls == 0);
  CHECK(sink.posted.empty());
  c.release(3, sink);  // 2 of 8
  CHECK(sink.posted == std::vector<int>{1, 2});
  CHECK(wa.calls == 1);
  CHECK(wb.calls == 1);
  CHECK(free_places(c, sink, 10) == 4);
}

TEST_CASE("mailbox_capacity: wait_for_room with room completes at once, on the caller's thread",
          "[mailbox_capacity]") {
  mailbox_capacity c;
  c.set_capacity(3);
  recording_sink sink;
  REQUIRE(c.reserve(sink));

  test_node a(1);
  recording_waiter wa(a);
  c.wait_for_room(&wa, sink);
  CHECK(wa.calls == 1);
  CHECK(wa.queued);
  CHECK(wa.thread == std::this_thread::get_id());
  CHECK(sink.posted == std::vector<int>{1});

  test_node b(2);
  recording_waiter wb(b);
  std::thread::id other;
  std::thread t([&] {
    other = std::this_thread::get_id();
    c.wait_for_room(&wb, sink);
  });
  t.join();
  CHECK(wb.calls == 1);
  CHECK(wb.queued);
  CHECK(wb.thread == other);
  CHECK(sink.posted == std::vector<int>{1, 2});

  // Full now: the next one waits.
  test_node d(3);
  recording_waiter wd(d);
  c.wait_for_room(&wd, sink);
  CHECK(wd.calls == 0);
  c.release(2, sink);  // 1 of 3
  CHECK(wd.calls == 1);
  CHECK(sink.posted == std::vector<int>{1, 2, 3});
}

TEST_CASE("mailbox_capacity: a stop fails every waiter and every later one", "[mailbox_capacity]") {
  mailbox_capacity c;
  c.set_capacity(4);
  recording_sink sink;
  fill(c, sink, 4);
  std::uint32_t count = 4;
  std::deque<test_node> nodes;
  std::deque<recording_waiter> ws;
  for (int i = 0; i < 3; ++i) {
    ws.emplace_back(nodes.emplace_back(i));
    c.wait_for_room(&ws.back(), sink);
  }

  const auto all_failed = [&] {
    for (std::size_t i = 0; i < ws.size(); ++i) {
      INFO("waiter " << i);
      CHECK(ws[i].calls == 1);
      CHECK_FALSE(ws[i].queued);
      CHECK(nodes[i].abandons == 1);
    }
    CHECK(sink.posted.empty());
  };

  SECTION("stopped() fails them") {
    sink.stop = true;  // as actor_base::stop(): the actor first, then its capacity
    c.stopped(sink);
    all_failed();
    c.stopped(sink);  // a second stop finds nobody
    all_failed();
  }
  SECTION("a release down to half after the actor stopped fails them") {
    sink.stop = true;
    c.release(1, sink);  // 3 of 4
    CHECK(ws[0].calls == 0);
    c.release(1, sink);  // 2 of 4
    count = 2;
    all_failed();
  }

  // A waiter that arrives later is failed at once, room or not.
  ws.emplace_back(nodes.emplace_back(10));
  c.wait_for_room(&ws.back(), sink);
  all_failed();
  c.release(count, sink);
  ws.emplace_back(nodes.emplace_back(11));
  c.wait_for_room(&ws.back(), sink);
  all_failed();
  CHECK(free_places(c, sink, 5) == 4);  // failing took no place
  all_failed();
}

TEST_CASE("blocking_room_waiter: wait() returns what done() reported", "[mailbox_capacity]") {
  const bool outcome = GENERATE(true, false);
  test_node n(1);

  SECTION("done() while the sender sleeps") {
    blocking_room_waiter w(&n);
    std::atomic<bool> returned{false};
    bool seen = !outcome;
    std::thread t([&] {
      seen = w.wait();
      returned.store(true, std::memory_order_release);
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    CHECK_FALSE(returned.load(std::memory_order_acquire));
    w.done(outcome);
    t.join();
    CHECK(seen == outcome);
  }
  SECTION("done() before wait()") {
    blocking_room_waiter w(&n);
    w.done(outcome);
    CHECK(w.wait() == outcome);
    CHECK(w.wait() == outcome);
  }
  SECTION("served by a release or failed by a stop, on another thread than the sleeper") {
    mailbox_capacity c;
    c.set_capacity(1);
    recording_sink sink;
    fill(c, sink, 1);
    blocking_room_waiter w(&n);
    c.wait_for_room(&w, sink);
    bool seen = !outcome;
    std::atomic<bool> returned{false};
    std::thread t([&] {
      seen = w.wait();
      returned.store(true, std::memory_order_release);
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (outcome) {
      c.release(1, sink);
    } else {
      sink.stop = true;
      c.stopped(sink);
    }
    // done() was called before release() or stopped() returned, if at all:
    // a sleeper still asleep after a while is never woken, so wake it here
    // rather than hang the test.
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!returned.load(std::memory_order_acquire) && std::chrono::steady_clock::now() < give_up)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    const bool woken = returned.load(std::memory_order_acquire);
    CHECK(woken);
    if (!woken) w.done(!outcome);
    t.join();
    if (woken) CHECK(seen == outcome);
    CHECK(sink.posted == (outcome ? std::vector<int>{1} : std::vector<int>{}));
    CHECK(n.abandons == (outcome ? 0 : 1));
  }
}

namespace {

// A message of the stress cases, with everything that happened to it. Its
// counters, like every count the stress cases keep, are relaxed: only the
// structure under test may order one thread's writes before another's reads.
struct stress_node final : mailbox_node {
  stress_node(int s, int i, std::atomic<int>& all_settled)
      : sender(s), index(i), settled(&all_settled) {}
  void run(courier::detail::continuation_home&) noexcept override {}
  void abandon() noexcept override {
    abandons.fetch_add(1, std::memory_order_relaxed);
    settled->fetch_add(1, std::memory_order_relaxed);
  }
  const int sender;
  const int index;
  std::atomic<int>* const settled;  // run or abandoned, of all nodes
  bool admitted = false;            // admit()ted, not reserve()d
  int payload = 0;                  // written by the sender, read by the consumer
  std::atomic<int> posts{0};        // queued by post_reserved
  std::atomic<int> runs{0};         // taken out by the consumer before the stop
  std::atomic<int> abandons{0};
  std::atomic<int> dones{0};        // room_waiter::done calls
  std::atomic<int> done_queued{0};  // of which done(true)
};

constexpr int payload_of(int sender, int index) { return sender * 100003 + index; }

// The actor's side, for many threads: nodes go to an mpsc_queue that one
// consumer drains, as an actor's mailbox does; once stopped, a node is
// abandoned and its place given back, as actor_base::post_reserved does.
struct queue_sink {
  queue_sink(mailbox_capacity& c, std::uint32_t cap) : room(&c), capacity(cap) {}
  bool stopped() const noexcept { return stop.load(std::memory_order_acquire); }
  void post_reserved(mailbox_node* m) noexcept {
    auto* n = static_cast<stress_node*>(m);
    if (stopped()) {
      n->abandon();
      room->release(1, *this);
      return;
    }
    n->posts.fetch_add(1, std::memory_order_relaxed);
    // Counted after the place was taken, uncounted by the consumer before it
    // gives the place back: never more than the places reserve() handed out.
    if (!n->admitted &&
        reserved_in_flight.fetch_add(1, std::memory_order_relaxed) + 1 > static_cast<int>(capacity))
      over_bound.fetch_add(1, std::memory_order_relaxed);
    queue.push(n);
  }
  mailbox_capacity* room;
  std::uint32_t capacity;
  mpsc_queue queue;
  std::atomic<bool> stop{false};
  std::atomic<int> reserved_in_flight{0};
  std::atomic<int> over_bound{0};
};

// A sender waiting without blocking, as send_async's waiter does; `window`
// counts its sender's waiters not done yet.
struct async_waiter final : room_waiter {
  async_waiter(stress_node& n, std::atomic<int>& w) : room_waiter(&n), node(&n), window(&w) {}
  void done(bool queued) noexcept override {
    if (queued) node->done_queued.fetch_add(1, std::memory_order_relaxed);
    node->dones.fetch_add(1, std::memory_order_relaxed);
    window->fetch_sub(1, std::memory_order_relaxed);
    delete this;
  }
  stress_node* node;
  std::atomic<int>* window;
};

enum class waiting { async, blocking };

// Senders each queue `per_sender` messages into a mailbox of capacity
// `capacity`, one in 16 admitted past the bound, the rest reserved or, when
// refused, handed to a waiter (async senders go on with up to 4 waiters
// outstanding); one consumer takes them out in batches of up to 3 and gives
// their places back as actor_base::drain does. With `stop_half_way`, the
// consumer stops the actor once it has taken half of them.
class capacity_run {
 public:
  capacity_run(int senders, int per_sender, std::uint32_t capacity, waiting mode,
               bool stop_half_way)
      : senders_(senders),
        per_sender_(per_sender),
        capacity_(capacity),
        mode_(mode),
        stop_half_way_(stop_half_way),
        sink_(room_, capacity),
        nodes_(static_cast<std::size_t>(senders)),
        windows_(static_cast<std::size_t>(senders)) {
    room_.set_capacity(capacity);
    for (int s = 0; s < senders; ++s)
      for (int i = 0; i < per_sender; ++i)
        nodes_[static_cast<std::size_t>(s)].emplace_back(s, i, settled_);
  }

  void run() {
    detail_test::run_threads(senders_ + 1, [this](int id) {
      if (id < senders_)
        send(id);
      else
        consume();
    });
  }

  void check();

 private:
  static constexpr int window = 4;

  int total() const { return senders_ * per_sender_; }

  void send(int id) {
    std::atomic<int>& outstanding = windows_[static_cast<std::size_t>(id)];
    for (stress_node& n : nodes_[static_cast<std::size_t>(id)]) {
      n.payload = payload_of(n.sender, n.index);
      if (n.index % 16 == 15) {
        n.admitted = true;
        room_.admit();
        sink_.post_reserved(&n);
        continue;
      }
      if (room_.reserve(sink_)) {
        sink_.post_reserved(&n);
        continue;
      }
      waits_.fetch_add(1, std::memory_order_relaxed);
      if (mode_ == waiting::async) {
        while (outstanding.load(std::memory_order_relaxed) >= window) std::this_thread::yield();
        outstanding.fetch_add(1, std::memory_order_relaxed);
        room_.wait_for_room(new async_waiter(n, outstanding), sink_);
      } else {
        blocking_room_waiter w(&n);
        room_.wait_for_room(&w, sink_);
        const bool queued = w.wait();
        if (queued) n.done_queued.fetch_add(1, std::memory_order_relaxed);
        n.dones.fetch_add(1, std::memory_order_relaxed);
      }
    }
  }

  void stop() {
    // As actor_base::stop(): the actor first, then its capacity.
    sink_.stop.store(true, std::memory_order_seq_cst);
    room_.stopped(sink_);
    stopped_ = true;
  }

  void consume() {
    constexpr std::uint64_t batch = 3;
    // A lost waiter shows as no message settled for a long while.
    int last_settled = -1;
    auto stalled_since = std::chrono::steady_clock::now();
    while (settled_.load(std::memory_order_relaxed) < total()) {
      if (stop_half_way_ && !stopped_ && taken_ >= total() / 2) stop();
      bool busy = false;
      std::uint64_t popped = 0;
      for (; popped < batch; ++popped) {
        mailbox_node* m = sink_.queue.pop(busy);
        if (m == nullptr) break;
        take(static_cast<stress_node*>(m));
        if (popped == 0) room_.release(1, sink_);
      }
      if (popped > 1) room_.release(popped - 1, sink_);
      if (popped == 0) {
        const int now_settled = settled_.load(std::memory_order_relaxed);
        const auto now = std::chrono::steady_clock::now();
        if (now_settled != last_settled) {
          last_settled = now_settled;
          stalled_since = now;
        } else if (!stalled_ && now - stalled_since > std::chrono::seconds(5)) {
          // A waiter was lost: fail it now, so that its sender returns and
          // nothing is left pointing at the nodes.
          stalled_ = true;
          if (!stopped_) stop();
        }
        std::this_thread::yield();
      }
    }
  }

  // Called before the node's place goes back.
  void take(stress_node* n) {
    ++taken_;
    if (n->payload != payload_of(n->sender, n->index)) ++stale_;
    if (!n->admitted) sink_.reserved_in_flight.fetch_sub(1, std::memory_order_relaxed);
    if (sink_.stopped()) {
      n->abandon();
    } else {
      n->runs.fetch_add(1, std::memory_order_relaxed);
      settled_.fetch_add(1, std::memory_order_relaxed);
    }
  }

  const int senders_;
  const int per_sender_;
  const std::uint32_t capacity_;
  const waiting mode_;
  const bool stop_half_way_;
  mailbox_capacity room_;
  queue_sink sink_;
  std::vector<std::deque<stress_node>> nodes_;
  std::vector<std::atomic<int>> windows_;
  std::atomic<int> settled_{0};
  std::atomic<int> waits_{0};
  // The consumer's.
  bool stalled_ = false;
  bool stopped_ = false;
  int taken_ = 0;
  int stale_ = 0;  // payload not the one written before the message was sent
};

void capacity_run::check() {
  int posted_twice = 0, settled_twice = 0, unsettled = 0, ran_unposted = 0;
  int waited = 0, done_twice = 0, failed = 0, failed_but_posted = 0, abandoned = 0, posted = 0;
  for (const std::deque<stress_node>& own : nodes_) {
    for (const stress_node& n : own) {
      const int posts = n.posts.load(), runs = n.runs.load(), abandons = n.abandons.load();
      const int dones = n.dones.load(), done_queued = n.done_queued.load();
      if (posts > 1) ++posted_twice;
      if (posts == 1) ++posted;
      if (runs + abandons > 1) ++settled_twice;
      if (runs + abandons == 0) ++unsettled;
      if (runs == 1 && posts == 0) ++ran_unposted;
      if (dones > 1) ++done_twice;
      if (dones == 1) ++waited;
      if (dones == 1 && done_queued == 0) {
        ++failed;
        if (posts != 0 || abandons != 1) ++failed_but_posted;
      }
      abandoned += abandons;
    }
  }
  INFO("senders " << senders_ << ", capacity " << capacity_ << ", "
                  << (mode_ == waiting::async ? "async" : "blocking") << " waiters, "
                  << waits_.load() << " waits, " << failed << " failed, " << abandoned
                  << " abandoned");
  CHECK_FALSE(stalled_);
  CHECK(waits_.load() > 0);  // the case did exercise the waiters
  CHECK(waited == waits_.load());
  CHECK(done_twice == 0);
  CHECK(posted_twice == 0);
  CHECK(settled_twice == 0);
  CHECK(unsettled == 0);
  CHECK(ran_unposted == 0);
  CHECK(failed_but_posted == 0);
  CHECK(stale_ == 0);
  CHECK(sink_.over_bound.load() == 0);
  CHECK(sink_.reserved_in_flight.load() == 0);
  bool busy = true;
  CHECK(sink_.queue.pop(busy) == nullptr);
  CHECK_FALSE(busy);
  if (stop_half_way_) {
    CHECK(stopped_);
    CHECK(abandoned > 0);
  } else {
    CHECK(failed == 0);
    CHECK(abandoned == 0);
    CHECK(posted == total());
    CHECK(taken_ == total());
  }
  // Every place went back: the quiet mailbox has all of its room again.
  std::uint32_t free = 0;
  while (free <= capacity_ && room_.reserve(sink_)) ++free;
  CHECK(free == capacity_);
  room_.release(free, sink_);
}

}  // namespace

namespace {

void stress(bool stop_half_way) {
  const int senders = GENERATE(2, 4, 8);
  const waiting mode = GENERATE(waiting::async, waiting::blocking);
  const std::uint32_t capacity = GENERATE(1u, 4u);
  capacity_run r(senders, detail_test::iterations(16000) / senders, capacity, mode, stop_half_way);
  r.run();
  r.check();
}

}  // namespace

TEST_CASE("mailbox_capacity: many senders, one consumer: each message queued once, no waiter lost",
          "[mailbox_capacity][stress]") {
  stress(false);
}

TEST_CASE("mailbox_capacity: a stop half-way fails the waiters, none hangs",
          "[mailbox_capacity][stress]") {
  stress(true);
}
