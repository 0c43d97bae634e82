// Coroutine handlers: a handle(M) that returns asio::awaitable<R>, and what
// the actor does while it is suspended (courier::reentrancy).
#include <courier.hpp>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

#include "support.hpp"

namespace {

using namespace std::chrono_literals;
using test_support::holds;
using test_support::wait_until;

// A gate a coroutine can wait at: the test opens it from outside. Waiting is
// an ask whose reply (a future) completes when the gate opens, so the
// coroutine suspends on an ordinary courier ask.
struct wait_at_gate {};
struct open_gate {};
struct gate_state {
  gate_state() = default;
  gate_state(gate_state&&) = default;
  gate_state(const gate_state&) = delete;
  bool open = false;
  std::vector<courier::promise<void>> waiting;
  courier::future<void> handle(wait_at_gate) {
    courier::promise<void> p;
    auto f = p.get_future();
    if (open) {
      p.set_value();
    } else {
      waiting.push_back(std::move(p));
    }
    return f;
  }
  void handle(open_gate) {
    open = true;
    for (auto& p : waiting) p.set_value();
    waiting.clear();
  }
};
using gate = courier::actor<gate_state, std::variant<wait_at_gate, open_gate>>;

gate make_gate(courier::thread_pool& pool, bool open = false) {
  auto g = courier::spawn<gate_state, std::variant<wait_at_gate, open_gate>>(pool);
  if (open) g.tell(open_gate{});
  return g;
}

// Counts the live instances of a local of a coroutine frame.
std::atomic<int> frame_locals{0};
struct frame_local {
  frame_local() { ++frame_locals; }
  frame_local(const frame_local&) = delete;
  ~frame_local() { --frame_locals; }
};

struct record {
  int value;
};
struct slow_record {  // records value + 1000 before the gate, value after it
  int value;
};
struct throw_before {};
struct throw_after {};
struct slow_fail {  // records value, waits at the gate, throws
  int value;
};
struct history {};
struct check_executor {};
struct relay {  // asks the gate from inside a coroutine, then records
  int value;
};

using msg = std::variant<record, slow_record, throw_before, throw_after, history, check_executor,
                         relay, slow_fail>;

struct recorder {
  gate g;
  std::vector<int> seen;
  // Written by the destructor of a local of slow_record's frame; on the heap,
  // so that a write after the State is destroyed is caught by ASan.
  std::shared_ptr<int> frames_done = std::make_shared<int>(0);

  // A local whose destructor touches the State, as RAII cleanup may.
  struct state_touching_local {
    recorder* r;
    ~state_touching_local() { ++*r->frames_done; }
  };

  void handle(record r) { seen.push_back(r.value); }

  asio::awaitable<int> handle(slow_record r) {
    frame_local local;
    state_touching_local touch{this};
    seen.push_back(r.value + 1000);
    co_await g.async_ask(wait_at_gate{}, asio::use_awaitable);
    seen.push_back(r.value);
    co_return static_cast<int>(seen.size());
  }

  asio::awaitable<void> handle(throw_before) {
    seen.push_back(-1);
    throw std::runtime_error("before");
    co_return;
  }

  asio::awaitable<void> handle(throw_after) {
    seen.push_back(-2);
    co_await g.async_ask(wait_at_gate{}, asio::use_awaitable);
    seen.push_back(-3);
    throw std::runtime_error("after");
  }

  std::vector<int> handle(history) { return seen; }

  // Whether every resumption runs inside this actor.
  asio::awaitable<bool> handle(check_executor) {
    auto ex = co_await asio::this_coro::executor;
    const bool before = ex.target<courier::actor_executor>() != nullptr &&
                        ex.target<courier::actor_executor>()->running_in_this_thread();
    asio::steady_timer t(ex, 1ms);
    co_await t.async_wait(asio::use_awaitable);
    const bool after = ex.target<courier::actor_executor>()->running_in_this_thread();
    co_return before&& after;
  }

  asio::awaitable<void> handle(slow_fail f) {
    seen.push_back(f.value);
    co_await g.async_ask(wait_at_gate{}, asio::use_awaitable);
    throw std::runtime_error("slow_fail");
  }

  asio::awaitable<void> handle(relay r) {
    co_await g.async_ask(wait_at_gate{}, asio::use_awaitable);
    seen.push_back(r.value);
  }
};

using recorder_actor = courier::actor<recorder, msg>;

recorder_actor spawn_recorder(courier::thread_pool& pool, const gate& g,
                              courier::reentrancy mode = courier::reentrancy::atomic,
                              courier::spawn_options<recorder> o = {}) {
  o.reentrancy = mode;
  return courier::spawn<recorder, msg>(pool, recorder{g, {}}, std::move(o));
}

std::vector<int> history_of(const recorder_actor& a) { return a.ask(history{}).get(); }

}  // namespace

TEST_CASE("coroutine: an ask of a coroutine handler completes with what it co_returns",
          "[coroutine]") {
  for (std::size_t threads : {1, 2, 4}) {
    courier::thread_pool pool{threads};
    auto g = make_gate(pool, true);
    auto a = spawn_recorder(pool, g);
    CHECK(a.ask(slow_record{7}).get() == 2);
    CHECK(history_of(a) == std::vector<int>{1007, 7});
  }
}

TEST_CASE("coroutine: co_await this_coro::executor is the actor's, before and after a suspension",
          "[coroutine]") {
  for (std::size_t threads : {1, 2, 4}) {
    courier::thread_pool pool{threads};
    auto g = make_gate(pool);
    auto a = spawn_recorder(pool, g);
    CHECK(a.ask(check_executor{}).get());
  }
}

TEST_CASE("coroutine: atomic: what is sent after a suspended handler's message waits for it",
          "[coroutine]") {
  for (std::size_t threads : {1, 2, 4}) {
    courier::thread_pool pool{threads};
    auto g = make_gate(pool);
    auto a = spawn_recorder(pool, g);
    auto slow = a.ask(slow_record{1});
    for (int i = 2; i <= 20; ++i) a.tell(record{i});
    auto seen_meanwhile = a.ask(history{});
    // Nothing after slow_record runs while it waits at the gate.
    std::this_thread::sleep_for(20ms);
    CHECK_FALSE(seen_meanwhile.ready());
    CHECK_FALSE(slow.ready());
    g.tell(open_gate{});
    CHECK(slow.get() == 2);
    std::vector<int> expected{1001, 1};
    for (int i = 2; i <= 20; ++i) expected.push_back(i);
    CHECK(seen_meanwhile.get() == expected);
  }
}

TEST_CASE("coroutine: atomic: held messages keep their place in the mailbox's bound",
          "[coroutine]") {
  courier::thread_pool pool{2};
  auto g = make_gate(pool);
  courier::spawn_options<recorder> o;
  o.capacity = 4;
  auto a = spawn_recorder(pool, g, courier::reentrancy::atomic, o);
  auto slow = a.ask(slow_record{1});
  REQUIRE(wait_until([&] { return frame_locals.load() == 1; }));
  int queued = 0;
  for (int i = 0; i < 10; ++i) queued += a.try_tell(record{i}) ? 1 : 0;
  CHECK(queued == 4);
  g.tell(open_gate{});
  CHECK(slow.get() == 2);
  CHECK(history_of(a).size() == 6);
}

TEST_CASE("coroutine: interleave: other messages run while a handler is suspended", "[coroutine]") {
  for (std::size_t threads : {1, 2, 4}) {
    courier::thread_pool pool{threads};
    auto g = make_gate(pool);
    auto a = spawn_recorder(pool, g, courier::reentrancy::interleave);
    auto slow = a.ask(slow_record{1});
    for (int i = 2; i <= 5; ++i) a.tell(record{i});
    // Handled while slow_record waits at the gate.
    CHECK(history_of(a) == std::vector<int>{1001, 2, 3, 4, 5});
    CHECK_FALSE(slow.ready());
    g.tell(open_gate{});
    // The coroutine resumes and sees the State the others left.
    CHECK(slow.get() == 6);
    CHECK(history_of(a) == std::vector<int>{1001, 2, 3, 4, 5, 1});
  }
}

TEST_CASE("coroutine: exceptions before and after a co_await reach the asker and the policy",
          "[coroutine]") {
  for (std::size_t threads : {1, 2, 4}) {
    courier::thread_pool pool{threads};
    auto g = make_gate(pool, true);
    std::atomic<int> asks_failed{0};
    std::atomic<int> tells_failed{0};
    courier::spawn_options<recorder> o;
    o.on_failure = [&](const courier::failure& f) {
      if (f.kind == courier::failure_kind::ask) ++asks_failed;
      if (f.kind == courier::failure_kind::tell) ++tells_failed;
    };
    auto a = spawn_recorder(pool, g, courier::reentrancy::atomic, o);
    CHECK_THROWS_WITH(a.ask(throw_before{}).get(), "before");
    CHECK_THROWS_WITH(a.ask(throw_after{}).get(), "after");
    CHECK(asks_failed.load() == 2);
    a.tell(throw_after{});
    CHECK(history_of(a) == std::vector<int>{-1, -2, -3, -2, -3});
    CHECK(tells_failed.load() == 1);
  }
}

TEST_CASE("coroutine: restart from the last good State rolls the whole coroutine back",
          "[coroutine]") {
  for (std::size_t threads : {1, 2, 4}) {
    courier::thread_pool pool{threads};
    auto g = make_gate(pool, true);
    courier::spawn_options<recorder> o;
    o.policy = courier::failure_policy::restart;
    o.restart_from = courier::restart_point::last_good;
    auto a = spawn_recorder(pool, g, courier::reentrancy::atomic, o);
    a.tell(record{1});
    // -2 before the co_await and -3 after it are both undone.
    CHECK_THROWS_WITH(a.ask(throw_after{}).get(), "after");
    CHECK(history_of(a) == std::vector<int>{1});
  }
}

TEST_CASE(
    "coroutine: interleave: restart from the last good State restores the State from "
    "before the most recent message, at every failure",
    "[coroutine]") {
  for (std::size_t threads : {1, 2, 4}) {
    courier::thread_pool pool{threads};
    auto g = make_gate(pool);
    courier::spawn_options<recorder> o;
    o.policy = courier::failure_policy::restart;
    o.restart_from = courier::restart_point::last_good;
    auto a = spawn_recorder(pool, g, courier::reentrancy::interleave, o);
    a.tell(record{1});
    auto first = a.ask(slow_fail{2});
    auto second = a.ask(slow_fail{3});
    CHECK(history_of(a) == std::vector<int>{1, 2, 3});
    g.tell(open_gate{});
    CHECK_THROWS_WITH(first.get(), "slow_fail");
    CHECK_THROWS_WITH(second.get(), "slow_fail");
    // Both failures restart the actor (neither stops it), each from the copy
    // taken before the most recent message (history, asked above).
    CHECK_FALSE(a.stopped());
    CHECK(history_of(a) == std::vector<int>{1, 2, 3});
  }
}

TEST_CASE("coroutine: a stop while a handler is suspended fails its ask and destroys its frame",
          "[coroutine]") {
  for (std::size_t threads : {1, 2, 4}) {
    courier::thread_pool pool{threads};
    auto g = make_gate(pool);
    auto a = spawn_recorder(pool, g);
    auto slow = a.ask(slow_record{1});
    auto later = a.ask(history{});
    REQUIRE(wait_until([&] { return frame_locals.load() == 1; }));
    a.stop();
    CHECK_THROWS_AS(slow.get(), courier::actor_stopped);
    CHECK_THROWS_AS(later.get(), courier::actor_stopped);
    // The frame goes once what it awaits completes into the stopped actor.
    g.tell(open_gate{});
    CHECK(wait_until([&] { return frame_locals.load() == 0; }));
  }
}

TEST_CASE("coroutine: a pool destroyed under a suspended handler destroys its frame",
          "[coroutine]") {
  courier::future<int> slow;
  {
    courier::thread_pool pool{2};
    auto g = make_gate(pool);
    auto a = spawn_recorder(pool, g);
    slow = a.ask(slow_record{1});
    REQUIRE(wait_until([&] { return frame_locals.load() == 1; }));
  }
  CHECK_THROWS_AS(slow.get(), courier::actor_stopped);
  CHECK(frame_locals.load() == 0);
}

TEST_CASE("coroutine: a told message's coroutine runs, also through the whole variant",
          "[coroutine]") {
  courier::thread_pool pool{2};
  auto g = make_gate(pool, true);
  auto a = spawn_recorder(pool, g);
  a.tell(relay{5});
  a.tell(msg{relay{6}});
  a.tell(record{7});
  CHECK(history_of(a) == std::vector<int>{5, 6, 7});
}

namespace {

// Actors in a ring, each with reentrancy::atomic. Told to, a member waits at
// a gate and then asks the next one for a poke (a plain handler); or asks
// itself; or asks the next one to do the same, down the ring.
struct poke {};
struct wait_then_poke_next {};
struct ask_myself {};
struct call_next {};

// A plain actor (no coroutine) whose handler forwards an ask and replies
// with its reply.
struct relay_poke {};
struct relay_member {
  std::function<courier::future<int>()> forward;
  courier::future<int> handle(relay_poke) { return forward(); }
};
using relay_actor = courier::actor<relay_member, std::variant<relay_poke>>;
struct call_via {
  relay_actor relay;
};

struct ring_member;
using ring_msg = std::variant<poke, wait_then_poke_next, ask_myself, call_next, call_via>;
using ring_actor = courier::actor<ring_member, ring_msg>;
// Filled by the test once every member is spawned, before any message.
using ring_handles = std::shared_ptr<std::vector<ring_actor>>;

struct ring_member {
  gate g;
  ring_handles ring;
  std::size_t index = 0;
  int pokes = 0;

  const ring_actor& me() const { return (*ring)[index]; }
  const ring_actor& next() const { return (*ring)[(index + 1) % ring->size()]; }

  int handle(poke) { return ++pokes; }

  asio::awaitable<int> handle(wait_then_poke_next) {
    co_await g.async_ask(wait_at_gate{}, asio::use_awaitable);
    co_return co_await next().async_ask(poke{}, asio::use_awaitable);
  }

  asio::awaitable<int> handle(ask_myself) {
    co_return co_await me().async_ask(poke{}, asio::use_awaitable);
  }

  asio::awaitable<int> handle(call_next) {
    co_return co_await next().async_ask(call_next{}, asio::use_awaitable);
  }

  asio::awaitable<int> handle(call_via c) {
    co_return co_await c.relay.async_ask(relay_poke{}, asio::use_awaitable);
  }
};

ring_handles make_ring(courier::thread_pool& pool, const gate& g, std::size_t n) {
  auto ring = std::make_shared<std::vector<ring_actor>>();
  for (std::size_t i = 0; i < n; ++i)
    ring->push_back(courier::spawn<ring_member, ring_msg>(pool, ring_member{g, ring, i, 0}));
  return ring;
}

// Breaks the ring's reference cycle (each member holds the ring).
void stop_ring(const ring_handles& ring) {
  for (auto& a : *ring) a.stop();
  ring->clear();
}

}  // namespace

TEST_CASE("coroutine: an atomic coroutine asking its own actor gets would_deadlock",
          "[coroutine]") {
  for (std::size_t threads : {1, 2, 4}) {
    courier::thread_pool pool{threads};
    auto g = make_gate(pool);
    auto ring = make_ring(pool, g, 1);
    CHECK_THROWS_AS((*ring)[0].ask(ask_myself{}).get(), courier::would_deadlock);
    // Nothing was sent: the poke never ran.
    CHECK((*ring)[0].ask(poke{}).get() == 1);
    stop_ring(ring);
  }
}

TEST_CASE(
    "coroutine: a call that comes back to an atomic actor through another gets "
    "would_deadlock",
    "[coroutine]") {
  for (std::size_t threads : {1, 2, 4}) {
    courier::thread_pool pool{threads};
    auto g = make_gate(pool);
    for (std::size_t n : {2, 3}) {
      auto ring = make_ring(pool, g, n);
      CHECK_THROWS_AS((*ring)[0].ask(call_next{}).get(), courier::would_deadlock);
      stop_ring(ring);
    }
  }
}

TEST_CASE(
    "coroutine: independent atomic coroutines that would wait on each other: exactly one "
    "ask is refused, the others complete",
    "[coroutine]") {
  for (std::size_t threads : {1, 2, 4}) {
    for (std::size_t n : {2, 3}) {
      courier::thread_pool pool{threads};
      auto g = make_gate(pool);
      auto ring = make_ring(pool, g, n);
      std::vector<courier::future<int>> calls;
      for (auto& a : *ring) calls.push_back(a.ask(wait_then_poke_next{}));
      // Every member is now held by its coroutine, waiting at the gate; the
      // gate opens them together, and each asks the next for a poke.
      g.tell(open_gate{});
      int refused = 0;
      int poked = 0;
      for (auto& f : calls) {
        try {
          const int pokes = f.get();
          CHECK(pokes == 1);
          ++poked;
        } catch (const courier::would_deadlock&) {
          ++refused;
        }
      }
      CHECK(refused == 1);
      CHECK(poked == static_cast<int>(n) - 1);
      stop_ring(ring);
    }
  }
}

TEST_CASE(
    "coroutine: a call that comes back to an atomic actor through plain handlers that forward "
    "it gets would_deadlock",
    "[coroutine]") {
  for (std::size_t threads : {1, 2, 4}) {
    courier::thread_pool pool{threads};
    auto g = make_gate(pool);
    auto ring = make_ring(pool, g, 2);
    const ring_actor a = (*ring)[0];
    const ring_actor other = (*ring)[1];
    auto relay_to = [&](std::function<courier::future<int>()> f) {
      return courier::spawn<relay_member, std::variant<relay_poke>>(pool,
                                                                    relay_member{std::move(f)});
    };
    // A's coroutine asks a relay, which asks A back.
    relay_actor back = relay_to([a] { return a.ask(poke{}); });
    CHECK_THROWS_AS(a.ask(call_via{back}).get(), courier::would_deadlock);
    // Through two relays.
    relay_actor second = relay_to([a] { return a.ask(poke{}); });
    relay_actor first = relay_to([second] { return second.ask(relay_poke{}); });
    CHECK_THROWS_AS(a.ask(call_via{first}).get(), courier::would_deadlock);
    // Through a relay, another atomic coroutine and a relay.
    relay_actor last = relay_to([a] { return a.ask(poke{}); });
    relay_actor via_other = relay_to([other, last] { return other.ask(call_via{last}); });
    CHECK_THROWS_AS(a.ask(call_via{via_other}).get(), courier::would_deadlock);
    // A relay to an actor that does not wait for A completes.
    relay_actor elsewhere = relay_to([other] { return other.ask(poke{}); });
    CHECK(a.ask(call_via{elsewhere}).get() == 1);
    // Nothing refused ran: A was poked by no relay.
    CHECK(a.ask(poke{}).get() == 1);
    for (auto* r : {&back, &second, &first, &last, &via_other, &elsewhere}) r->stop();
    stop_ring(ring);
  }
}

namespace {
struct await_gate {};
struct spawn_child {};
struct awaiting_state {
  gate g;
  std::shared_ptr<std::atomic<int>> children = std::make_shared<std::atomic<int>>(0);
  asio::awaitable<int> handle(await_gate) {
    co_await g.async_ask(wait_at_gate{}, asio::use_awaitable);
    co_return 1;
  }
  asio::awaitable<void> child() {
    co_await g.async_ask(wait_at_gate{}, asio::use_awaitable);
    ++*children;
  }
  asio::awaitable<void> handle(spawn_child) {
    asio::co_spawn(co_await asio::this_coro::executor, child(), asio::detached);
    co_return;
  }
};
using awaiting = courier::actor<awaiting_state, std::variant<await_gate, spawn_child>>;
}  // namespace

TEST_CASE("coroutine: a suspended coroutine is outstanding work on its io_context", "[coroutine]") {
  courier::thread_pool pool(1);
  asio::io_context ioc;
  gate g = make_gate(pool);
  auto a =
      courier::spawn<awaiting_state, std::variant<await_gate, spawn_child>>(ioc, awaiting_state{g});
  auto f = a.ask(await_gate{});
  std::thread opener([&] {
    std::this_thread::sleep_for(50ms);
    g.tell(open_gate{});
  });
  ioc.run();  // returns only once the coroutine has ended
  opener.join();
  REQUIRE(f.ready());
  CHECK(f.get() == 1);
  g.stop();
  // The pool's worker that delivered the reply may still be returning from
  // its post to the io_context: end the pool before the io_context goes.
  pool.stop();
}

TEST_CASE("coroutine: a coroutine co_spawned on a turn's executor outlives the turn",
          "[coroutine]") {
  courier::thread_pool pool(1);
  asio::io_context ioc;
  gate g = make_gate(pool);
  auto state = awaiting_state{g};
  auto children = state.children;
  auto a =
      courier::spawn<awaiting_state, std::variant<await_gate, spawn_child>>(ioc, std::move(state));
  a.tell(spawn_child{});
  // The turn ends on a thread that then exits, with its pool of frame caches.
  std::thread([&] { ioc.run_for(100ms); }).join();
  g.tell(open_gate{});
  ioc.restart();
  ioc.run();
  CHECK(children->load() == 1);
  a.stop();
  g.stop();
  // The pool's worker that delivered the reply may still be returning from
  // its post to the io_context: end the pool before the io_context goes.
  pool.stop();
}
