#include <courier.hpp>

#include "courier/testing.hpp"

#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <set>
#include <string>
#include <variant>
#include <vector>

namespace {

// The order in which `count` posted handlers ran under `seed`.
std::vector<int> order_of(std::uint64_t seed, int count) {
  courier::testing::deterministic_context ctx(seed);
  std::vector<int> order;
  for (int i = 0; i < count; ++i)
    asio::post(ctx.get_executor(), [&order, i] { order.push_back(i); });
  CHECK(ctx.ready() == static_cast<std::size_t>(count));
  CHECK(ctx.run() == static_cast<std::size_t>(count));
  return order;
}

struct Note {
  char who;
  int seq;
};
struct Read {};
using log_msg = std::variant<Note, Read>;
struct shared_log {
  std::string* out;
  int* handled = nullptr;  // notes handled, if set
  void handle(Note n) {
    *out += n.who + std::to_string(n.seq);
    if (handled) ++*handled;
  }
  int handle(Read) const { return static_cast<int>(out->size()); }
};

// The notes of `who` in `out`, in the order they were handled.
std::string notes_of(char who, const std::string& out) {
  std::string mine;
  for (std::size_t i = 0; i + 1 < out.size(); i += 2)
    if (out[i] == who) mine += out.substr(i, 2);
  return mine;
}

}  // namespace

TEST_CASE("testing: the same seed replays the same order, seeds differ", "[testing]") {
  CHECK(order_of(7, 20) == order_of(7, 20));
  std::set<std::vector<int>> seen;
  for (std::uint64_t seed = 0; seed < 50; ++seed) seen.insert(order_of(seed, 8));
  CHECK(seen.size() > 40);
}

TEST_CASE("testing: run() runs what handlers submit, run_one() reports an empty queue",
          "[testing]") {
  courier::testing::deterministic_context ctx(1);
  CHECK_FALSE(ctx.run_one());
  int depth = 0;
  auto ex = ctx.get_executor();
  asio::post(ex, [&] {
    CHECK(ex.running_in_this_thread());
    asio::post(ex, [&] { depth = 2; });
    depth = 1;
  });
  CHECK_FALSE(ex.running_in_this_thread());
  CHECK(ctx.run() == 2);
  CHECK(depth == 2);
  CHECK(ctx.seed() == 1);
}

TEST_CASE("testing: actors on a deterministic context, one message per step", "[testing]") {
  // Two actors append to one string each time they handle a note; with a
  // batch of 1 the context chooses between them at every message, so over a
  // few seeds both "a0 first" and "b0 first" must appear.
  std::set<std::string> firsts;
  for (std::uint64_t seed = 0; seed < 64; ++seed) {
    INFO("seed " << seed);
    courier::testing::deterministic_context ctx(seed);
    std::string out;
    int handled = 0;
    courier::spawn_options<shared_log> one_at_a_time;
    one_at_a_time.batch = 1;
    auto a = courier::spawn<shared_log, log_msg>(ctx, shared_log{&out, &handled}, one_at_a_time);
    auto b = courier::spawn<shared_log, log_msg>(ctx, shared_log{&out, &handled}, one_at_a_time);
    int sent = 0;
    for (int i = 0; i < 3; ++i) {
      a.tell(Note{'a', i});
      b.tell(Note{'b', i});
      sent += 2;
    }
    auto size = a.ask(Read{});
    ctx.run();
    REQUIRE(size.ready());
    // a's three notes were handled before its Read; some of b's may have been.
    CHECK(size.get() >= 6);
    // Every note sent was handled, once, in its sender's order.
    CHECK(handled == sent);
    CHECK(notes_of('a', out) == "a0a1a2");
    CHECK(notes_of('b', out) == "b0b1b2");
    firsts.insert(out.substr(0, 2));
  }
  CHECK(firsts == std::set<std::string>{"a0", "b0"});
}

TEST_CASE("testing: destroying the context abandons its actors' asks", "[testing]") {
  courier::future<int> pending;
  std::string out;
  {
    courier::testing::deterministic_context ctx(3);
    auto a = courier::spawn<shared_log, log_msg>(ctx, shared_log{&out});
    pending = a.ask(Read{});
  }
  REQUIRE(pending.ready());
  CHECK_THROWS_AS(pending.get(), courier::actor_stopped);
}

TEST_CASE("testing: spawn rejects a batch of zero", "[testing]") {
  courier::testing::deterministic_context ctx(4);
  std::string out;
  courier::spawn_options<shared_log> none;
  none.batch = 0;
  CHECK_THROWS_AS((courier::spawn<shared_log, log_msg>(ctx, shared_log{&out}, none)),
                  courier::usage_error);
}

TEST_CASE("testing: destroying the context with deadlines set", "[testing]") {
  // Deadlines follow the virtual clock: run() reaches them, and destroying
  // the context drops those still set, failing their asks.
  for (std::uint64_t seed = 0; seed < 200; ++seed) {
    courier::future<int> reply;
    {
      courier::testing::deterministic_context ctx(seed);
      courier::spawn_options<shared_log> one_at_a_time;
      one_at_a_time.batch = 1;
      std::string out;
      auto log = courier::spawn<shared_log, log_msg>(ctx, shared_log{&out}, one_at_a_time);
      reply = log.ask(Read{}, std::chrono::microseconds(seed % 7));
      if (seed % 2 == 0) {
        ctx.run();
        REQUIRE(reply.ready());
        CHECK(reply.get() == 0);
      }
    }
    if (seed % 2 == 1) {
      REQUIRE(reply.ready());
      CHECK_THROWS_AS(reply.get(), courier::actor_stopped);
    }
  }
}

// --- virtual time --------------------------------------------------------------

namespace {

using namespace std::chrono_literals;
using virtual_context = courier::testing::deterministic_context;

struct Tick {
  char who;
};
struct Hold {};  // answered never
struct Nap {
  std::chrono::seconds length;
  char who;
};
struct Stamp {};  // answered with the time
using clock_msg = std::variant<Tick, Hold, Nap, Stamp>;

// Logs what it handles with the virtual time, in seconds.
struct clocked {
  virtual_context* ctx;
  std::vector<std::string>* log;
  std::vector<courier::promise<int>> held;

  clocked(virtual_context* c, std::vector<std::string>* l) : ctx(c), log(l) {}
  clocked(clocked&&) = default;

  long seconds() const { return static_cast<long>(ctx->now().time_since_epoch() / 1s); }
  void note(char who) { log->push_back(std::string(1, who) + "@" + std::to_string(seconds())); }

  void handle(Tick t) { note(t.who); }
  courier::future<int> handle(Hold) {
    held.emplace_back();
    return held.back().get_future();
  }
  asio::awaitable<long> handle(Nap n) {
    courier::steady_timer t(co_await asio::this_coro::executor, n.length);
    co_await t.async_wait(asio::use_awaitable);
    note(n.who);
    co_return seconds();
  }
  long handle(Stamp) { return seconds(); }
};

courier::spawn_options<clocked> one_at_a_time() {
  courier::spawn_options<clocked> o;
  o.batch = 1;
  return o;
}

}  // namespace

TEST_CASE("testing: run() jumps the virtual clock to the next timer", "[testing][time]") {
  virtual_context ctx(11);
  std::vector<std::string> log;
  auto a = courier::spawn<clocked, clock_msg>(ctx, clocked(&ctx, &log), one_at_a_time());
  CHECK(ctx.now() == virtual_context::time_point());
  auto later = a.tell_after(3h, Tick{'x'});
  auto sooner = a.tell_after(1h, Tick{'y'});
  auto same = a.tell_after(1h, Tick{'z'});  // same time: in the order they were set
  ctx.run();
  CHECK(log == std::vector<std::string>{"y@3600", "z@3600", "x@10800"});
  CHECK(ctx.now() == virtual_context::time_point(3h));
}

TEST_CASE("testing: advance() fires what is due and runs nothing", "[testing][time]") {
  virtual_context ctx(12);
  std::vector<std::string> log;
  auto a = courier::spawn<clocked, clock_msg>(ctx, clocked(&ctx, &log), one_at_a_time());
  auto t = a.tell_after(10s, Tick{'a'});
  ctx.advance(5s);
  CHECK(ctx.ready() == 0);
  ctx.advance(5s);
  CHECK(ctx.ready() == 1);
  CHECK(log.empty());
  ctx.run();
  CHECK(log == std::vector<std::string>{"a@10"});
  CHECK(ctx.now() == virtual_context::time_point(10s));
}

TEST_CASE("testing: tell_every on the virtual clock, until cancelled", "[testing][time]") {
  virtual_context ctx(13);
  std::vector<std::string> log;
  auto a = courier::spawn<clocked, clock_msg>(ctx, clocked(&ctx, &log), one_at_a_time());
  courier::timer t = a.tell_every(2s, Tick{'t'});
  ctx.run_for(7s);
  CHECK(log == std::vector<std::string>{"t@2", "t@4", "t@6"});
  CHECK(ctx.now() == virtual_context::time_point(7s));
  t.cancel();
  ctx.run();  // nothing set any more: run() ends
  CHECK(log.size() == 3);
  CHECK(ctx.now() == virtual_context::time_point(7s));
}

TEST_CASE("testing: an ask's deadline of hours expires at once in virtual time",
          "[testing][time]") {
  virtual_context ctx(14);
  std::vector<std::string> log;
  auto a = courier::spawn<clocked, clock_msg>(ctx, clocked(&ctx, &log), one_at_a_time());
  // The handler ran and never answered: ask_timeout, after exactly 2 hours.
  auto silent = a.ask(Hold{}, 2h);
  ctx.run();
  REQUIRE(silent.ready());
  CHECK_THROWS_AS(silent.get(), courier::ask_timeout);
  CHECK(ctx.now() == virtual_context::time_point(2h));
  // Queued behind a coroutine that naps 5 hours (atomic: nothing else runs
  // meanwhile), an ask with a deadline of 1 hour expires unrun.
  auto nap = a.ask(Nap{5h, 'n'});
  auto stamp = a.ask(Stamp{}, 1h);
  ctx.run();
  REQUIRE(stamp.ready());
  CHECK_THROWS_AS(stamp.get(), courier::ask_expired);
  CHECK(nap.get() == 7 * 3600);
  CHECK(log == std::vector<std::string>{"n@25200"});
}

namespace {

// What three actors do over a simulated day, with timers of every kind.
std::vector<std::string> a_day(std::uint64_t seed) {
  virtual_context ctx(seed);
  std::vector<std::string> log;
  courier::spawn_options<clocked> interleave = one_at_a_time();
  interleave.reentrancy = courier::reentrancy::interleave;
  auto a = courier::spawn<clocked, clock_msg>(ctx, clocked(&ctx, &log), one_at_a_time());
  auto b = courier::spawn<clocked, clock_msg>(ctx, clocked(&ctx, &log), one_at_a_time());
  auto c = courier::spawn<clocked, clock_msg>(ctx, clocked(&ctx, &log), std::move(interleave));
  auto hourly = a.tell_every(1h, Tick{'a'});
  auto twice = b.tell_every(30min, Tick{'b'});
  auto noon = c.tell_after(12h, Tick{'c'});
  std::vector<courier::future<long>> naps;
  for (int i = 0; i < 6; ++i) naps.push_back(c.ask(Nap{std::chrono::hours(4 * i), 'n'}));
  auto late = b.ask(Hold{}, 20h);
  ctx.run_for(24h);
  log.push_back(late.ready() ? "late:timeout" : "late:pending");
  return log;
}

}  // namespace

TEST_CASE("testing: a simulated day runs at once and replays by seed", "[testing][time]") {
  const auto start = std::chrono::steady_clock::now();
  for (std::uint64_t seed : {1u, 2u, 3u}) {
    const std::vector<std::string> first = a_day(seed);
    CHECK(first == a_day(seed));
    // 24 hourly, 48 half-hourly, the noon tick, six naps, the deadline.
    CHECK(first.size() == 24 + 48 + 1 + 6 + 1);
    CHECK(first.back() == "late:timeout");
  }
  // Not a timing assertion: the record of how long three simulated days took.
  INFO("three simulated days took "
       << std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() << " s");
  SUCCEED();
}
