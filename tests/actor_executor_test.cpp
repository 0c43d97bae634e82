#include "courier/actor_executor.hpp"

#include <asio/any_io_executor.hpp>
#include <asio/bind_executor.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/dispatch.hpp>
#include <asio/experimental/deferred.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/use_future.hpp>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdint>
#include <exception>
#include <future>
#include <latch>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "courier/actor.hpp"
#include "courier/thread_pool.hpp"
#include "support.hpp"

namespace {

struct custom_error : std::runtime_error {
  explicit custom_error(int c) : std::runtime_error("custom"), code(c) {}
  int code;
};

using test_support::holds;

// Counters with no lock of their own: only the actor's serialization keeps
// them consistent (ThreadSanitizer reports any handler that runs outside it).
struct plain_counts {
  std::uint64_t by_message = 0;
  std::uint64_t by_handler = 0;
  std::uint64_t by_coroutine = 0;
  std::uint64_t total = 0;
};

struct Bump {};
struct Total {};
struct Append {
  int value;
};
struct Log {};
struct Probe {};
using tally_msg = std::variant<Bump, Total, Append, Log, Probe>;

struct tally {
  std::shared_ptr<plain_counts> counts = std::make_shared<plain_counts>();
  std::vector<std::string> log;
  std::vector<int> sequence;

  void handle(Bump) {
    ++counts->by_message;
    ++counts->total;
  }
  std::uint64_t handle(Total) const { return counts->total; }
  void handle(Append a) { sequence.push_back(a.value); }
  std::vector<std::string> handle(Log) const { return log; }

  // dispatch() from inside runs at once; post() and blocking.never queue.
  bool handle(Probe) {
    auto ex = courier::this_actor_executor();
    log.push_back("handler start");
    asio::dispatch(ex, [this] { log.push_back("dispatched"); });
    asio::post(ex, [this] { log.push_back("posted"); });
    asio::require(ex, asio::execution::blocking.never).execute([this] {
      log.push_back("executed never");
    });
    ex.execute([this] { log.push_back("executed possibly"); });
    log.push_back("handler end");
    return ex.running_in_this_thread();
  }
};

using tally_actor = courier::actor<tally, tally_msg>;

// Counts itself down in a latch when destroyed, after dropping its token, so
// that a handler that captured it can be seen destroyed rather than run.
struct sentinel {
  std::shared_ptr<int> token;
  std::latch* destroyed;
  std::shared_ptr<std::atomic<int>> ran;

  sentinel(std::shared_ptr<int> t, std::latch* d, std::shared_ptr<std::atomic<int>> r)
      : token(std::move(t)), destroyed(d), ran(std::move(r)) {}
  sentinel(sentinel&& o) noexcept
      : token(std::move(o.token)),
        destroyed(std::exchange(o.destroyed, nullptr)),
        ran(std::move(o.ran)) {}
  sentinel(const sentinel&) = delete;
  ~sentinel() {
    token.reset();
    if (destroyed) destroyed->count_down();
  }
  void operator()() const { ran->fetch_add(1); }
};

}  // namespace

// --- an Asio executor ---------------------------------------------------------------------

TEST_CASE("actor_executor: is an Asio executor with strand-like properties", "[actor_executor]") {
  static_assert(asio::execution::is_executor<courier::actor_executor>::value);
  static_assert(std::is_same_v<tally_actor::executor_type, courier::actor_executor>);
  courier::thread_pool pool(1);
  auto a = courier::spawn<tally, tally_msg>(pool, tally{});
  auto b = courier::spawn<tally, tally_msg>(pool, tally{});
  auto ex = a.get_executor();

  CHECK(&asio::query(ex, asio::execution::context) ==
        &asio::query(pool.get_executor(), asio::execution::context));
  CHECK(asio::query(ex, asio::execution::blocking) == asio::execution::blocking.possibly);
  auto never = asio::require(ex, asio::execution::blocking.never);
  CHECK(asio::query(never, asio::execution::blocking) == asio::execution::blocking.never);
  auto possibly = asio::require(never, asio::execution::blocking.possibly);
  CHECK(possibly == ex);

  CHECK(ex == a.get_executor());
  CHECK(ex != b.get_executor());
  CHECK(never != ex);
  CHECK_FALSE(ex.running_in_this_thread());

  // It converts to the executor type Asio's I/O objects use.
  asio::any_io_executor any = ex;
  REQUIRE(any.target<courier::actor_executor>() != nullptr);
  CHECK(*any.target<courier::actor_executor>() == ex);
}

TEST_CASE("actor_executor: posted handlers run serialized with messages", "[actor_executor]") {
  auto threads = GENERATE(1, 2, 4);
  courier::thread_pool pool(static_cast<std::size_t>(threads));
  auto counts = std::make_shared<plain_counts>();
  auto a = courier::spawn<tally, tally_msg>(pool, tally{counts, {}, {}});

  constexpr int senders = 4;
  constexpr std::uint64_t per_sender = 1000;
  std::atomic<int> outside{0};
  std::vector<std::thread> ts;
  for (int s = 0; s < senders; ++s) {
    ts.emplace_back([&, s] {
      const auto ex = a.get_executor();
      for (std::uint64_t i = 0; i < per_sender; ++i) {
        a.tell(Bump{});
        auto handler = [counts, ex, &outside] {
          if (!ex.running_in_this_thread()) outside.fetch_add(1);
          ++counts->by_handler;
          ++counts->total;
        };
        // Alternate the ways in: post, dispatch (from outside: queues), execute.
        switch ((i + static_cast<std::uint64_t>(s)) % 3) {
          case 0:
            asio::post(ex, handler);
            break;
          case 1:
            asio::dispatch(ex, handler);
            break;
          default:
            ex.execute(handler);
            break;
        }
      }
    });
  }
  for (auto& t : ts) t.join();

  // Every post above happens-before this ask, so it is handled after them all.
  CHECK(a.ask(Total{}).get() == 2 * senders * per_sender);
  CHECK(counts->by_message == senders * per_sender);
  CHECK(counts->by_handler == senders * per_sender);
  CHECK(outside.load() == 0);
}

TEST_CASE("actor_executor: handlers and messages from one thread run in submission order",
          "[actor_executor]") {
  // Posted handlers reach the State through a pointer fetched by an ask; they
  // run inside the actor, so using it there is safe.
  struct StatePtr {};
  struct Dump {};
  struct seq_state {
    std::vector<int> seq;
    void handle(int v) { seq.push_back(v); }
    std::vector<int>* handle(StatePtr) { return &seq; }
    std::vector<int> handle(Dump) const { return seq; }
  };
  courier::thread_pool pool(2);
  auto s = courier::spawn<seq_state, std::variant<int, StatePtr, Dump>>(pool, seq_state{});
  std::vector<int>* seq = s.ask(StatePtr{}).get();
  constexpr int n = 2000;
  for (int i = 0; i < n; ++i) {
    if (i % 2 == 0)
      s.tell(i);
    else
      asio::post(s.get_executor(), [seq, i] { seq->push_back(i); });
  }
  std::vector<int> expected(n);
  for (int i = 0; i < n; ++i) expected[static_cast<std::size_t>(i)] = i;
  CHECK(s.ask(Dump{}).get() == expected);
}

// --- timers ---------------------------------------------------------------------------------

TEST_CASE("actor_executor: a steady_timer on the actor's executor fires inside the actor",
          "[actor_executor]") {
  auto threads = GENERATE(1, 2, 4);
  courier::thread_pool pool(static_cast<std::size_t>(threads));
  auto counts = std::make_shared<plain_counts>();
  auto a = courier::spawn<tally, tally_msg>(pool, tally{counts, {}, {}});
  const auto home = a.get_executor();

  SECTION("expiry") {
    constexpr int timers_n = 20;
    std::vector<std::unique_ptr<asio::steady_timer>> timers;
    std::vector<std::future<bool>> fired;
    for (int i = 0; i < timers_n; ++i) {
      timers.push_back(std::make_unique<asio::steady_timer>(a.get_executor()));
      timers.back()->expires_after(std::chrono::milliseconds(i % 3));
      auto done = std::make_shared<std::promise<bool>>();
      fired.push_back(done->get_future());
      timers.back()->async_wait([done, counts, home](std::error_code ec) {
        ++counts->by_handler;  // races with the Bumps unless serialized
        ++counts->total;
        done->set_value(!ec && courier::this_actor_executor() == home &&
                        home.running_in_this_thread());
      });
    }
    for (int i = 0; i < 200; ++i) a.tell(Bump{});
    for (auto& f : fired) CHECK(f.get());
    CHECK(a.ask(Total{}).get() == 200 + timers_n);
  }
  SECTION("cancellation delivers operation_aborted inside the actor") {
    asio::steady_timer timer(a.get_executor());
    timer.expires_after(std::chrono::hours(1));
    std::promise<std::pair<std::error_code, bool>> done;
    timer.async_wait([&done, home](std::error_code ec) {
      done.set_value({ec, home.running_in_this_thread()});
    });
    timer.cancel();
    auto [ec, inside] = done.get_future().get();
    CHECK(ec == asio::error::operation_aborted);
    CHECK(inside);
  }
}

// --- dispatch versus post ---------------------------------------------------------------------

TEST_CASE("actor_executor: dispatch inside the actor runs inline, post queues",
          "[actor_executor]") {
  courier::thread_pool pool(2);
  auto a = courier::spawn<tally, tally_msg>(pool, tally{});
  CHECK(a.ask(Probe{}).get());
  const std::vector<std::string> expected{"handler start", "dispatched", "executed possibly",
                                          "handler end",   "posted",     "executed never"};
  CHECK(a.ask(Log{}).get() == expected);
}

TEST_CASE("actor_executor: dispatch from outside the actor queues", "[actor_executor]") {
  courier::thread_pool pool(2);
  auto a = courier::spawn<tally, tally_msg>(pool, tally{});
  const auto home = a.get_executor();
  const auto caller = std::this_thread::get_id();
  std::promise<std::pair<std::thread::id, bool>> done;
  asio::dispatch(home, [&done, home] {
    done.set_value({std::this_thread::get_id(), home.running_in_this_thread()});
  });
  auto [where, inside] = done.get_future().get();
  CHECK(where != caller);
  CHECK(inside);
}

// --- after stop ---------------------------------------------------------------------------------

TEST_CASE("actor_executor: after stop, submitted handlers are destroyed without running",
          "[actor_executor]") {
  struct Block {};
  struct blocker {
    std::shared_ptr<std::promise<void>> entered;
    std::shared_future<void> gate;
    int handle(Block) {
      entered->set_value();
      gate.wait();  // a plain std wait: the test releases it
      return 1;
    }
  };
  auto threads = GENERATE(1, 2);
  courier::thread_pool pool(static_cast<std::size_t>(threads));
  auto token = std::make_shared<int>(0);
  auto ran = std::make_shared<std::atomic<int>>(0);

  SECTION("handlers queued while the actor was busy") {
    auto entered = std::make_shared<std::promise<void>>();
    std::promise<void> release;
    auto a = courier::spawn<blocker, Block>(pool, blocker{entered, release.get_future().share()});
    auto busy = a.ask(Block{});
    entered->get_future().wait();

    constexpr int queued = 10;
    std::latch destroyed(queued);
    for (int i = 0; i < queued; ++i) {
      if (i % 2 == 0)
        asio::post(a.get_executor(), sentinel(token, &destroyed, ran));
      else
        a.get_executor().execute(sentinel(token, &destroyed, ran));
    }
    a.stop();
    release.set_value();
    CHECK(busy.get() == 1);  // the handler running at the stop finishes
    destroyed.wait();
    CHECK(ran->load() == 0);
    CHECK(token.use_count() == 1);
  }
  SECTION("handlers submitted after the stop") {
    auto a = courier::spawn<tally, tally_msg>(pool, tally{});
    a.stop();
    std::latch destroyed(3);
    asio::post(a.get_executor(), sentinel(token, &destroyed, ran));
    asio::dispatch(a.get_executor(), sentinel(token, &destroyed, ran));
    a.get_executor().execute(sentinel(token, &destroyed, ran));
    destroyed.wait();
    CHECK(ran->load() == 0);
    CHECK(token.use_count() == 1);
  }
  SECTION("a timer that fires after the stop") {
    auto a = courier::spawn<tally, tally_msg>(pool, tally{});
    asio::steady_timer timer(a.get_executor());
    a.stop();
    std::latch destroyed(1);
    timer.expires_after(std::chrono::milliseconds(0));
    timer.async_wait([s = sentinel(token, &destroyed, ran)](std::error_code) { s(); });
    destroyed.wait();
    CHECK(ran->load() == 0);
    CHECK(token.use_count() == 1);
  }
}

// --- this_actor_executor ---------------------------------------------------------------------

TEST_CASE("actor_executor: this_actor_executor() names the running actor, and only inside one",
          "[actor_executor]") {
  courier::thread_pool pool(2);
  SECTION("outside every actor: usage_error") {
    CHECK_THROWS_AS(courier::this_actor_executor(), courier::usage_error);
    std::promise<std::exception_ptr> on_worker;
    asio::post(pool.get_executor(), [&on_worker] {
      try {
        (void)courier::this_actor_executor();
        on_worker.set_value(nullptr);
      } catch (...) {
        on_worker.set_value(std::current_exception());
      }
    });
    CHECK(holds<courier::usage_error>(on_worker.get_future().get()));
  }
  SECTION("inside a handler and a posted handler: the actor's executor") {
    struct Who {};
    struct who_state {
      courier::actor_executor handle(Who) { return courier::this_actor_executor(); }
    };
    auto a = courier::spawn<who_state, Who>(pool, who_state{});
    CHECK(a.ask(Who{}).get() == a.get_executor());
    std::promise<bool> same;
    asio::post(a.get_executor(), [&same, home = a.get_executor()] {
      same.set_value(courier::this_actor_executor() == home);
    });
    CHECK(same.get_future().get());
  }
}

// --- co_spawn -----------------------------------------------------------------------------------

// Coroutine tests need Asio's co_await support (GCC 10+, or Clang with a
// standard library whose <coroutine> it accepts).
#if defined(ASIO_HAS_CO_AWAIT)

namespace {

// Runs inside the actor whose executor it was spawned on: touches the shared
// plain counters between suspensions, while the actor handles Bumps.
asio::awaitable<std::uint64_t> bump_from_coroutine(courier::actor_executor home,
                                                   std::shared_ptr<plain_counts> counts,
                                                   int rounds) {
  auto ex = co_await asio::this_coro::executor;
  for (int i = 0; i < rounds; ++i) {
    if (!home.running_in_this_thread()) throw std::logic_error("resumed outside the actor");
    ++counts->by_coroutine;
    ++counts->total;
    if (i % 2 == 0) {
      co_await asio::post(ex, asio::use_awaitable);
    } else {
      asio::steady_timer t(ex);
      t.expires_after(std::chrono::milliseconds(0));
      co_await t.async_wait(asio::use_awaitable);
    }
  }
  if (!home.running_in_this_thread()) throw std::logic_error("finished outside the actor");
  co_return counts->by_coroutine;
}

}  // namespace

TEST_CASE("actor_executor: co_spawn runs a coroutine inside the actor", "[actor_executor]") {
  auto threads = GENERATE(1, 2, 4);
  courier::thread_pool pool(static_cast<std::size_t>(threads));
  auto counts = std::make_shared<plain_counts>();
  auto a = courier::spawn<tally, tally_msg>(pool, tally{counts, {}, {}});

  constexpr int coroutines = 4;
  constexpr int rounds = 50;
  constexpr int bumps = 500;
  std::vector<std::future<std::uint64_t>> done;
  for (int c = 0; c < coroutines; ++c)
    done.push_back(asio::co_spawn(
        a.get_executor(), bump_from_coroutine(a.get_executor(), counts, rounds), asio::use_future));
  std::thread bumper([&a] {
    for (int i = 0; i < bumps; ++i) a.tell(Bump{});
  });
  bumper.join();
  for (auto& d : done) CHECK(d.get() <= coroutines * rounds);
  CHECK(a.ask(Total{}).get() == coroutines * rounds + bumps);
  CHECK(counts->by_coroutine == coroutines * rounds);
}

TEST_CASE("actor_executor: a coroutine on one actor awaits another and resumes at home",
          "[actor_executor]") {
  courier::thread_pool pool(2);
  auto counts = std::make_shared<plain_counts>();
  auto home_actor = courier::spawn<tally, tally_msg>(pool, tally{counts, {}, {}});
  auto other = courier::spawn<tally, tally_msg>(pool, tally{});
  for (int i = 0; i < 5; ++i) other.tell(Bump{});

  auto coro = [](courier::actor_executor home, tally_actor peer,
                 std::shared_ptr<plain_counts> c) -> asio::awaitable<bool> {
    const std::uint64_t peers = co_await peer.async_ask(Total{}, asio::use_awaitable);
    c->total += peers;  // touches home's State after resuming
    co_return home.running_in_this_thread() && peers == 5;
  };
  auto f = asio::co_spawn(home_actor.get_executor(), coro(home_actor.get_executor(), other, counts),
                          asio::use_future);
  CHECK(f.get());
  CHECK(home_actor.ask(Total{}).get() == 5);
}

TEST_CASE("actor_executor: co_spawn onto a stopped actor never runs the coroutine",
          "[actor_executor]") {
  courier::thread_pool pool(1);
  auto a = courier::spawn<tally, tally_msg>(pool, tally{});
  a.stop();
  auto ran = std::make_shared<std::atomic<bool>>(false);
  auto coro = [](std::shared_ptr<std::atomic<bool>> flag) -> asio::awaitable<void> {
    flag->store(true);
    co_return;
  };
  auto f = asio::co_spawn(a.get_executor(), coro(ran), asio::use_future);
  CHECK_THROWS(f.get());  // the completion handler was destroyed unrun
  CHECK_FALSE(ran->load());
}

#endif  // ASIO_HAS_CO_AWAIT

// --- async_ask ---------------------------------------------------------------------------------

namespace {

struct Deposit {
  std::uint64_t amount;
};
struct Balance {};
struct Fail {};
struct FailVoid {};
using account_msg = std::variant<Deposit, Balance, Fail, FailVoid>;

// Deposit and FailVoid have void replies: their async_ask completion
// signature is void(std::exception_ptr).
struct account {
  std::uint64_t balance = 0;
  void handle(Deposit d) { balance += d.amount; }
  std::uint64_t handle(Balance) const { return balance; }
  std::uint64_t handle(Fail) { throw custom_error(7); }
  void handle(FailVoid) { throw custom_error(8); }
};

using account_actor = courier::actor<account, account_msg>;

}  // namespace

TEST_CASE("actor_executor: async_ask with a callback", "[actor_executor][async_ask]") {
  courier::thread_pool pool(2);
  auto a = courier::spawn<account, account_msg>(pool, account{100});

  SECTION("runs on the actor's pool, outside the actor") {
    std::promise<std::tuple<std::exception_ptr, std::uint64_t, bool>> done;
    a.async_ask(Balance{}, [&done](std::exception_ptr e, std::uint64_t v) {
      bool outside = false;
      try {
        (void)courier::this_actor_executor();
      } catch (const courier::usage_error&) {
        outside = true;
      }
      done.set_value({e, v, outside});
    });
    auto [e, v, outside] = done.get_future().get();
    CHECK_FALSE(e);
    CHECK(v == 100);
    CHECK(outside);
  }
  SECTION("a void reply") {
    std::promise<std::exception_ptr> done;
    a.async_ask(Deposit{5}, [&done](std::exception_ptr e) { done.set_value(e); });
    CHECK_FALSE(done.get_future().get());
    CHECK(a.ask(Balance{}).get() == 105);
  }
  SECTION("called from inside another actor") {
    struct Relay {};
    struct relay_state {
      account_actor target;
      std::shared_ptr<std::promise<std::pair<std::uint64_t, bool>>> done;
      void handle(Relay) {
        // By default the completion runs outside every actor; bound to this
        // actor's executor it runs inside this one.
        target.async_ask(
            Balance{},
            asio::bind_executor(
                courier::this_actor_executor(), [d = done](std::exception_ptr, std::uint64_t v) {
                  d->set_value({v, courier::this_actor_executor().running_in_this_thread()});
                }));
      }
    };
    auto done = std::make_shared<std::promise<std::pair<std::uint64_t, bool>>>();
    auto relay = courier::spawn<relay_state, Relay>(pool, relay_state{a, done});
    relay.tell(Relay{});
    auto [v, inside] = done->get_future().get();
    CHECK(v == 100);
    CHECK(inside);
  }
  SECTION("bound to an io_context run by the test thread") {
    asio::io_context io;
    std::thread::id where;
    std::uint64_t value = 0;
    a.async_ask(Balance{}, asio::bind_executor(io, [&](std::exception_ptr e, std::uint64_t v) {
                  CHECK_FALSE(e);
                  where = std::this_thread::get_id();
                  value = v;
                }));
    // The pending ask counts as work: run() returns only after the callback.
    io.run();
    CHECK(where == std::this_thread::get_id());
    CHECK(value == 100);
  }
  SECTION("the handler throws: the exception and a value-initialized reply") {
    std::promise<std::pair<std::exception_ptr, std::uint64_t>> done;
    a.async_ask(Fail{}, [&done](std::exception_ptr e, std::uint64_t v) { done.set_value({e, v}); });
    auto [e, v] = done.get_future().get();
    CHECK(holds<custom_error>(e));
    CHECK(v == 0);

    std::promise<std::exception_ptr> done_void;
    a.async_ask(FailVoid{}, [&done_void](std::exception_ptr ev) { done_void.set_value(ev); });
    CHECK(holds<custom_error>(done_void.get_future().get()));
  }
  SECTION("after stop: actor_stopped") {
    a.stop();
    std::promise<std::exception_ptr> done;
    a.async_ask(Balance{}, [&done](std::exception_ptr e, std::uint64_t) { done.set_value(e); });
    CHECK(holds<courier::actor_stopped>(done.get_future().get()));
  }
}

TEST_CASE("actor_executor: async_ask with asio::use_future", "[actor_executor][async_ask]") {
  auto threads = GENERATE(1, 2, 4);
  courier::thread_pool pool(static_cast<std::size_t>(threads));
  auto a = courier::spawn<account, account_msg>(pool, account{10});

  SECTION("values, from several foreign threads at once") {
    constexpr int askers = 4;
    constexpr int per_asker = 100;
    std::vector<std::thread> ts;
    std::atomic<int> wrong{0};
    for (int t = 0; t < askers; ++t) {
      ts.emplace_back([&] {
        std::vector<std::future<void>> deposits;
        for (int i = 0; i < per_asker; ++i)
          deposits.push_back(a.async_ask(Deposit{1}, asio::use_future));
        for (auto& d : deposits) d.get();
        if (a.async_ask(Balance{}, asio::use_future).get() < 10 + per_asker) wrong.fetch_add(1);
      });
    }
    for (auto& t : ts) t.join();
    CHECK(wrong.load() == 0);
    CHECK(a.async_ask(Balance{}, asio::use_future).get() == 10 + askers * per_asker);
  }
  SECTION("the handler throws") {
    auto f = a.async_ask(Fail{}, asio::use_future);
    CHECK_THROWS_AS(f.get(), custom_error);
    auto g = a.async_ask(FailVoid{}, asio::use_future);
    CHECK_THROWS_AS(g.get(), custom_error);
  }
  SECTION("after stop") {
    a.stop();
    CHECK_THROWS_AS(a.async_ask(Balance{}, asio::use_future).get(), courier::actor_stopped);
    CHECK_THROWS_AS(a.async_ask(Deposit{1}, asio::use_future).get(), courier::actor_stopped);
  }
}

#if defined(ASIO_HAS_CO_AWAIT)

namespace {

// Asks through co_await; reports what it saw as a string.
asio::awaitable<std::string> ask_with_await(account_actor a) {
  std::string out;
  co_await a.async_ask(Deposit{5}, asio::use_awaitable);
  out += std::to_string(co_await a.async_ask(Balance{}, asio::use_awaitable));
  try {
    (void)co_await a.async_ask(Fail{}, asio::use_awaitable);
    out += " no-throw";
  } catch (const custom_error&) {
    out += " threw";
  }
  try {
    co_await a.async_ask(FailVoid{}, asio::use_awaitable);
    out += " no-throw";
  } catch (const custom_error&) {
    out += " threw";
  }
  a.stop();
  try {
    co_await a.async_ask(Deposit{1}, asio::use_awaitable);
    out += " no-throw";
  } catch (const courier::actor_stopped&) {
    out += " stopped";
  }
  try {
    (void)co_await a.async_ask(Balance{}, asio::use_awaitable);
    out += " no-throw";
  } catch (const courier::actor_stopped&) {
    out += " stopped";
  }
  co_return out;
}

}  // namespace

TEST_CASE("actor_executor: async_ask with asio::use_awaitable", "[actor_executor][async_ask]") {
  courier::thread_pool pool(2);
  auto a = courier::spawn<account, account_msg>(pool, account{1});

  SECTION("on an io_context run by the test thread") {
    asio::io_context io;
    std::string seen;
    std::thread::id resumed_on;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
          seen = co_await ask_with_await(a);
          resumed_on = std::this_thread::get_id();
        },
        asio::detached);
    io.run();
    CHECK(seen == "6 threw threw stopped stopped");
    CHECK(resumed_on == std::this_thread::get_id());
  }
  SECTION("on the pool") {
    auto f = asio::co_spawn(pool.get_executor(), ask_with_await(a), asio::use_future);
    CHECK(f.get() == "6 threw threw stopped stopped");
  }
}

#endif  // ASIO_HAS_CO_AWAIT

TEST_CASE("actor_executor: async_ask with asio::experimental::deferred",
          "[actor_executor][async_ask]") {
  courier::thread_pool pool(2);
  auto a = courier::spawn<account, account_msg>(pool, account{0});

  auto deposit = a.async_ask(Deposit{3}, asio::experimental::deferred);
  // Nothing is sent until the deferred operation is launched.
  CHECK(a.ask(Balance{}).get() == 0);
  std::promise<std::exception_ptr> deposited;
  std::move(deposit)([&deposited](std::exception_ptr e) { deposited.set_value(e); });
  CHECK_FALSE(deposited.get_future().get());
  CHECK(a.ask(Balance{}).get() == 3);

  auto balance = a.async_ask(Balance{}, asio::experimental::deferred);
  std::promise<std::uint64_t> got;
  std::move(balance)([&got](std::exception_ptr e, std::uint64_t v) { got.set_value(e ? 999 : v); });
  CHECK(got.get_future().get() == 3);

  SECTION("errors") {
    auto fail = a.async_ask(Fail{}, asio::experimental::deferred);
    CHECK_THROWS_AS(std::move(fail)(asio::use_future).get(), custom_error);
    auto late = a.async_ask(Balance{}, asio::experimental::deferred);
    a.stop();  // before the deferred ask is launched
    CHECK_THROWS_AS(std::move(late)(asio::use_future).get(), courier::actor_stopped);
  }
#if defined(ASIO_HAS_CO_AWAIT)
  SECTION("co_await of a deferred ask") {
    asio::io_context io;
    std::uint64_t seen = 0;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
          // Asio 1.22 cannot co_await a deferred operation directly; launch
          // it with use_awaitable.
          auto op = a.async_ask(Balance{}, asio::experimental::deferred);
          seen = co_await std::move(op)(asio::use_awaitable);
        },
        asio::detached);
    io.run();
    CHECK(seen == 3);
  }
#endif
}
