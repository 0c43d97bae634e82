// Timers of actors: tell_after(), tell_every(), courier::timer and
// courier::steady_timer on the steady clock (their virtual-time behaviour is
// in testing_test.cpp).
#include <courier.hpp>

#include <asio/io_context.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <memory>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <variant>
#include <vector>

#include "support.hpp"

using namespace std::chrono_literals;
using test_support::wait_until;

namespace {

struct Tick {};
struct Count {};
struct Nap {
  std::chrono::milliseconds length;
};
struct WakeNapper {};
using tick_msg = std::variant<Tick, Count, Nap, WakeNapper>;

// Counts ticks (in the State and in a counter that outlives restarts), and
// throws at every `throw_every`th tick.
struct ticked {
  std::shared_ptr<std::atomic<int>> seen = std::make_shared<std::atomic<int>>(0);
  int throw_every = 0;
  int in_state = 0;
  courier::steady_timer* napping = nullptr;

  void handle(Tick) {
    const int n = ++*seen;
    ++in_state;
    if (throw_every != 0 && n % throw_every == 0) throw std::runtime_error("tick failed");
  }
  int handle(Count) const { return seen->load(); }
  // Sleeps `length` on a courier::steady_timer; returns 1 if it expired,
  // 0 if it was cancelled.
  asio::awaitable<int> handle(Nap n) {
    courier::steady_timer t(co_await asio::this_coro::executor, n.length);
    napping = &t;
    std::error_code ec;
    try {
      co_await t.async_wait(asio::use_awaitable);
    } catch (const std::system_error& e) {
      ec = e.code();
    }
    napping = nullptr;
    co_return ec ? 0 : 1;
  }
  int handle(WakeNapper) {
    if (napping == nullptr) return -1;
    return static_cast<int>(napping->cancel());
  }
};

using ticker = courier::actor<ticked, tick_msg>;

// Waits until `a` has seen at least `n` ticks.
bool ticks_reach(const ticker& a, int n) {
  return wait_until([&] { return a.ask(Count{}).get() >= n; });
}

}  // namespace

TEST_CASE("timer: tell_after sends one message after the delay", "[timer]") {
  const std::size_t threads = GENERATE(1, 2, 4);
  courier::thread_pool pool(threads);
  auto a = courier::spawn<ticked, tick_msg>(pool);
  auto t = a.tell_after(2ms, Tick{});
  REQUIRE(ticks_reach(a, 1));
  std::this_thread::sleep_for(20ms);
  CHECK(a.ask(Count{}).get() == 1);
  t.cancel();  // after it fired: nothing to do
  t.cancel();
}

TEST_CASE("timer: tell_every repeats until cancelled, then sends nothing more", "[timer]") {
  const std::size_t threads = GENERATE(1, 2, 4);
  courier::thread_pool pool(threads);
  auto a = courier::spawn<ticked, tick_msg>(pool);
  courier::timer t = a.tell_every(1ms, Tick{});
  REQUIRE(ticks_reach(a, 5));
  // Cancelling from another thread, twice at once: idempotent.
  std::thread other([&] { t.cancel(); });
  t.cancel();
  other.join();
  const int after_cancel = a.ask(Count{}).get();
  std::this_thread::sleep_for(20ms);
  CHECK(a.ask(Count{}).get() == after_cancel);
}

TEST_CASE("timer: destroying the handle ends the timer, a moved-from handle is empty", "[timer]") {
  courier::thread_pool pool(2);
  auto a = courier::spawn<ticked, tick_msg>(pool);
  courier::timer kept;
  CHECK_FALSE(kept);
  {
    courier::timer t = a.tell_every(1ms, Tick{});
    CHECK(t);
    REQUIRE(ticks_reach(a, 3));
    kept = std::move(t);
    CHECK_FALSE(t);  // NOLINT(bugprone-use-after-move): a moved-from handle is empty
  }
  REQUIRE(ticks_reach(a, 5));  // the timer moved on with the handle
  kept = courier::timer();     // assigning over it ends it
  const int after = a.ask(Count{}).get();
  std::this_thread::sleep_for(20ms);
  CHECK(a.ask(Count{}).get() == after);
}

TEST_CASE("timer: a timer ends with its actor", "[timer]") {
  // On an io_context a pending timer is outstanding work: run() returns only
  // once the actor's stop has ended its timer, while the handle still lives.
  asio::io_context io;
  ticked s;
  auto seen = s.seen;
  auto a = courier::spawn<ticked, tick_msg>(io, std::move(s));
  courier::timer t = a.tell_every(1ms, Tick{});
  std::atomic<bool> returned{false};
  std::thread runner([&] {
    io.run();
    returned = true;
  });
  REQUIRE(wait_until([&] { return seen->load() >= 3; }));
  a.stop();
  const bool ended = wait_until([&] { return returned.load(); });
  if (!ended) io.stop();
  runner.join();
  CHECK(ended);
  const int final_count = seen->load();
  std::this_thread::sleep_for(10ms);
  CHECK(seen->load() == final_count);
  // A timer made after the stop never fires; cancelling it is harmless.
  courier::timer late = a.tell_after(0ms, Tick{});
  late.cancel();
  io.restart();
  io.run_for(10ms);
  CHECK(seen->load() == final_count);
}

TEST_CASE("timer: a restart keeps the timer", "[timer]") {
  const std::size_t threads = GENERATE(1, 2, 4);
  courier::thread_pool pool(threads);
  ticked s;
  s.throw_every = 2;
  auto seen = s.seen;
  courier::spawn_options<ticked> restart;
  restart.policy = courier::failure_policy::restart;
  auto a = courier::spawn<ticked, tick_msg>(pool, std::move(s), std::move(restart));
  auto t = a.tell_every(1ms, Tick{});
  // Every second tick throws and restarts the actor; the ticks go on.
  REQUIRE(wait_until([&] { return seen->load() >= 7; }));
  CHECK_FALSE(a.stopped());
}

TEST_CASE("timer: tell_every refuses a period that is not positive", "[timer]") {
  courier::thread_pool pool(1);
  auto a = courier::spawn<ticked, tick_msg>(pool);
  CHECK_THROWS_AS(a.tell_every(0ms, Tick{}), courier::usage_error);
  CHECK_THROWS_AS(a.tell_every(-1s, Tick{}), courier::usage_error);
  ticker empty;
  CHECK_THROWS_AS(empty.tell_after(1ms, Tick{}), courier::usage_error);
}

TEST_CASE("timer: steady_timer inside a coroutine handler expires or is cancelled", "[timer]") {
  const std::size_t threads = GENERATE(1, 2, 4);
  courier::thread_pool pool(threads);
  courier::spawn_options<ticked> interleave;
  interleave.reentrancy = courier::reentrancy::interleave;
  auto a = courier::spawn<ticked, tick_msg>(pool, ticked{}, std::move(interleave));
  CHECK(a.ask(Nap{2ms}).get() == 1);
  // A nap of an hour, woken by the next message (interleave mode).
  auto nap = a.ask(Nap{1h});
  int woken = -1;
  REQUIRE(wait_until([&] {
    woken = a.ask(WakeNapper{}).get();
    return woken != -1;
  }));
  CHECK(woken == 1);
  CHECK(nap.get() == 0);
}

TEST_CASE("timer: an actor's stop racing the destruction of its timers", "[timer]") {
  // The stop ends every timer while other handles are being destroyed: each
  // timer goes exactly once (ASan and TSan watch this).
  for (int round = 0; round < 40; ++round) {
    courier::thread_pool pool(2);
    auto a = courier::spawn<ticked, tick_msg>(pool);
    std::vector<courier::timer> timers;
    for (int i = 0; i < 16; ++i) timers.push_back(a.tell_every(1ms, Tick{}));
    std::thread stopper([&] { a.stop(); });
    timers.clear();
    stopper.join();
    CHECK(a.stopped());
  }
}

namespace {
// Counts the live instances of a local of a coroutine frame.
struct frame_local {
  std::shared_ptr<std::atomic<int>> live;
  explicit frame_local(std::shared_ptr<std::atomic<int>> l) : live(std::move(l)) { ++*live; }
  frame_local(const frame_local&) = delete;
  frame_local& operator=(const frame_local&) = delete;
  ~frame_local() { --*live; }
};
struct Sleep {
  std::shared_ptr<std::atomic<int>> live;
};
struct sleeper {
  asio::awaitable<void> handle(Sleep s) {
    frame_local local(s.live);
    courier::steady_timer t(co_await asio::this_coro::executor, 1h);
    co_await t.async_wait(asio::use_awaitable);
  }
};
}  // namespace

TEST_CASE("timer: a coroutine asleep on a steady_timer goes with its context", "[timer]") {
  auto live = std::make_shared<std::atomic<int>>(0);
  SECTION("an io_context") {
    courier::actor<sleeper, std::variant<Sleep>> a;
    {
      asio::io_context io;
      a = courier::spawn<sleeper, std::variant<Sleep>>(io);
      a.tell(Sleep{live});
      io.run_for(10ms);
      CHECK(live->load() == 1);
    }
    CHECK(live->load() == 0);
  }
  SECTION("a thread_pool") {
    {
      courier::thread_pool pool(2);
      auto a = courier::spawn<sleeper, std::variant<Sleep>>(pool);
      a.tell(Sleep{live});
      REQUIRE(wait_until([&] { return live->load() == 1; }));
    }
    CHECK(live->load() == 0);
  }
}

TEST_CASE("timer: steady_timer needs an actor's executor", "[timer]") {
  asio::io_context io;
  CHECK_THROWS_AS(courier::steady_timer(io.get_executor()), courier::usage_error);
}
