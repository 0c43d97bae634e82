#include "courier/supervision.hpp"

#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <atomic>
#include <catch2/catch.hpp>
#include <cstdint>
#include <exception>
#include <future>
#include <latch>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
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

// Reads the exception's contents. Call it only after the thread that threw has
// dropped its references (for an actor's handler: after a later message of
// that actor was handled), because ThreadSanitizer cannot see libstdc++'s
// uninstrumented exception_ptr reference counting and would report that
// thread's final release as racing with this read.
int code_of(const std::exception_ptr& e) {
  try {
    if (e) std::rethrow_exception(e);
  } catch (const custom_error& c) {
    return c.code;
  } catch (...) {
  }
  return -1;
}

using test_support::holds;

// Signals a std::promise when the object holding it is destroyed. Moves carry
// the signal along; copies (the restart factory's) do not.
struct lifetime {
  std::shared_ptr<std::promise<void>> on_destroy;

  lifetime() = default;
  explicit lifetime(std::shared_ptr<std::promise<void>> p) : on_destroy(std::move(p)) {}
  lifetime(lifetime&& o) noexcept : on_destroy(std::move(o.on_destroy)) {}
  lifetime(const lifetime&) {}
  lifetime& operator=(lifetime&&) = delete;
  lifetime& operator=(const lifetime&) = delete;
  ~lifetime() {
    if (on_destroy) on_destroy->set_value();
  }
};

struct Inc {};
struct Boom {};
struct Get {};
using counter_msg = std::variant<Inc, Boom, Get>;

// Boom changes the State, then throws with the new value as the error code.
struct counter {
  int value = 0;
  lifetime life{};

  void handle(Inc) { ++value; }
  int handle(Boom) {
    ++value;
    throw custom_error(value);
  }
  int handle(Get) const { return value; }
};

using counter_actor = courier::actor<counter, counter_msg>;

// What the failure hook saw. The hook runs inside the actor; the mutex keeps
// the test's reads obviously race-free.
struct hook_log {
  std::mutex mutex;
  std::vector<courier::failure_kind> kinds;
  std::vector<std::exception_ptr> errors;
  int outside_actor = 0;
  std::optional<courier::actor_executor> executor;

  std::function<void(const courier::failure&)> hook() {
    return [this](const courier::failure& f) {
      std::optional<courier::actor_executor> ex;
      try {
        ex = courier::this_actor_executor();
      } catch (const courier::usage_error&) {
      }
      std::lock_guard<std::mutex> lock(mutex);
      kinds.push_back(f.kind);
      errors.push_back(f.error);
      if (!ex || !ex->running_in_this_thread()) ++outside_actor;
      executor = ex;
    };
  }
  std::size_t count() {
    std::lock_guard<std::mutex> lock(mutex);
    return kinds.size();
  }
};

courier::spawn_options<counter> options(courier::failure_policy policy, hook_log* log = nullptr,
                                        std::function<counter()> factory = {}) {
  return courier::spawn_options<counter>{policy, std::move(factory), log ? log->hook() : nullptr};
}

}  // namespace

// --- resume ---------------------------------------------------------------------------

TEST_CASE("supervision: resume keeps the State as the throwing handler left it", "[supervision]") {
  courier::thread_pool pool(2);
  hook_log log;
  SECTION("explicit resume") {
    auto a = courier::spawn<counter, counter_msg>(pool, counter{},
                                                  options(courier::failure_policy::resume, &log));
    a.tell(Inc{});
    a.tell(Inc{});
    a.tell(Boom{});  // value 3, then throws
    a.tell(Inc{});
    CHECK(a.ask(Get{}).get() == 4);
    CHECK_THROWS_AS(a.ask(Boom{}).get(), custom_error);  // value 5
    CHECK(a.ask(Get{}).get() == 5);
    CHECK_FALSE(a.stopped());
    CHECK(log.count() == 2);
  }
  SECTION("resume is the default") {
    CHECK(courier::spawn_options<counter>{}.policy == courier::failure_policy::resume);
    auto a = courier::spawn<counter, counter_msg>(pool, counter{});
    a.tell(Boom{});
    a.tell(Boom{});
    a.tell(Inc{});
    CHECK(a.ask(Get{}).get() == 3);
    CHECK_FALSE(a.stopped());
  }
}

// --- stop -------------------------------------------------------------------------------

TEST_CASE("supervision: stop ends the actor and pending and later asks fail with actor_stopped",
          "[supervision]") {
  courier::thread_pool pool(2);
  hook_log log;
  auto destroyed = std::make_shared<std::promise<void>>();
  auto state_gone = destroyed->get_future();
  auto a = courier::spawn<counter, counter_msg>(pool, counter{0, lifetime(destroyed)},
                                                options(courier::failure_policy::stop, &log));

  SECTION("after a failed tell") {
    a.tell(Inc{});
    a.tell(Boom{});
    // Queued after Boom by the same thread, so still pending when it fails.
    std::vector<courier::future<int>> pending;
    for (int i = 0; i < 5; ++i) pending.push_back(a.ask(Get{}));
    for (auto& f : pending) CHECK_THROWS_AS(f.get(), courier::actor_stopped);
    CHECK(a.stopped());
    CHECK(log.count() == 1);
  }
  SECTION("after a failed ask: the asker gets the handler's exception") {
    auto boom = a.ask(Boom{});
    auto pending = a.ask(Get{});
    CHECK_THROWS_AS(boom.get(), custom_error);
    CHECK_THROWS_AS(pending.get(), courier::actor_stopped);
    CHECK(a.stopped());
  }
  // Either way: later asks fail at once, tells are refused, the State is gone.
  CHECK_THROWS_AS(a.ask(Get{}).get(), courier::actor_stopped);
  CHECK_THROWS_AS(a.ask(Boom{}).get(), courier::actor_stopped);
  CHECK_FALSE(a.try_tell(Inc{}));
  CHECK_NOTHROW(a.tell(Inc{}));  // dropped
  state_gone.get();
  CHECK(log.count() == 1);  // nothing else ran
}

// --- restart ----------------------------------------------------------------------------

TEST_CASE("supervision: restart replaces the State with one from the factory", "[supervision]") {
  courier::thread_pool pool(2);
  hook_log log;
  auto factory_calls = std::make_shared<std::atomic<int>>(0);
  auto destroyed = std::make_shared<std::promise<void>>();
  auto first_state_gone = destroyed->get_future();
  auto a = courier::spawn<counter, counter_msg>(
      pool, counter{50, lifetime(destroyed)},
      options(courier::failure_policy::restart, &log, [factory_calls] {
        factory_calls->fetch_add(1);
        return counter{100};
      }));
  CHECK(factory_calls->load() == 0);  // not called at spawn
  a.tell(Inc{});
  CHECK(a.ask(Get{}).get() == 51);
  a.tell(Boom{});
  CHECK(a.ask(Get{}).get() == 100);
  first_state_gone.get();  // the old State was destroyed
  a.tell(Inc{});
  CHECK(a.ask(Get{}).get() == 101);
  CHECK_THROWS_AS(a.ask(Boom{}).get(), custom_error);  // 102, then restart
  CHECK(a.ask(Get{}).get() == 100);
  CHECK(factory_calls->load() == 2);
  CHECK(log.count() == 2);
  CHECK_FALSE(a.stopped());
}

TEST_CASE("supervision: restart's default factory copies the spawn-time State", "[supervision]") {
  courier::thread_pool pool(2);
  auto a = courier::spawn<counter, counter_msg>(pool, counter{7},
                                                options(courier::failure_policy::restart));
  for (int i = 0; i < 5; ++i) a.tell(Inc{});
  CHECK(a.ask(Get{}).get() == 12);
  a.tell(Boom{});
  CHECK(a.ask(Get{}).get() == 7);
  // The copy is the spawn-time State, not the State at the last restart.
  a.tell(Inc{});
  a.tell(Inc{});
  CHECK_THROWS_AS(a.ask(Boom{}).get(), custom_error);
  CHECK(a.ask(Get{}).get() == 7);
}

TEST_CASE("supervision: a restart factory that throws stops the actor", "[supervision]") {
  courier::thread_pool pool(2);
  hook_log log;
  auto a = courier::spawn<counter, counter_msg>(
      pool, counter{1}, options(courier::failure_policy::restart, &log, []() -> counter {
        throw std::runtime_error("no fresh state today");
      }));
  a.tell(Inc{});
  auto boom = a.ask(Boom{}).then([](courier::result<int> r) { return r.error(); });
  auto pending = a.ask(Get{});
  CHECK_THROWS_AS(pending.get(), courier::actor_stopped);
  CHECK(code_of(boom.get()) == 3);
  CHECK(a.stopped());
  CHECK_THROWS_AS(a.ask(Get{}).get(), courier::actor_stopped);
  CHECK(log.count() == 1);  // the factory's failure is not reported as another failure
}

TEST_CASE("supervision: restart with a non-copyable State needs a factory", "[supervision]") {
  struct unique_counter {
    std::unique_ptr<int> value = std::make_unique<int>(0);
    void handle(Inc) { ++*value; }
    int handle(Boom) { throw custom_error(++*value); }
    int handle(Get) const { return *value; }
  };
  static_assert(!std::is_copy_constructible_v<unique_counter>);
  courier::thread_pool pool(1);

  SECTION("without one, spawn throws usage_error") {
    courier::spawn_options<unique_counter> opts;
    opts.policy = courier::failure_policy::restart;
    CHECK_THROWS_AS((courier::spawn<unique_counter, counter_msg>(pool, unique_counter{}, opts)),
                    courier::usage_error);
  }
  SECTION("with one, restart works") {
    courier::spawn_options<unique_counter> opts{courier::failure_policy::restart,
                                                [] { return unique_counter{}; }, nullptr};
    auto a = courier::spawn<unique_counter, counter_msg>(pool, unique_counter{}, opts);
    a.tell(Inc{});
    a.tell(Inc{});
    CHECK(a.ask(Get{}).get() == 2);
    a.tell(Boom{});
    CHECK(a.ask(Get{}).get() == 0);
  }
  SECTION("other policies need no factory") {
    auto a = courier::spawn<unique_counter, counter_msg>(
        pool, unique_counter{},
        courier::spawn_options<unique_counter>{courier::failure_policy::stop, {}, {}});
    a.tell(Inc{});
    CHECK(a.ask(Get{}).get() == 1);
  }
}

// --- restart from the last good State ---------------------------------------------------------

namespace {

template <class State>
courier::spawn_options<State> from_last_good(
    std::function<void(const courier::failure&)> hook = nullptr) {
  courier::spawn_options<State> o;
  o.policy = courier::failure_policy::restart;
  o.restart_from = courier::restart_point::last_good;
  o.on_failure = std::move(hook);
  return o;
}

struct Await {
  courier::future<int> amount;
};
struct PostInc {};
struct PostBoom {};
using ledger_msg = std::variant<Inc, Boom, Get, Await, PostInc, PostBoom>;

// Changes its value in handlers, in continuations and in plain handlers
// posted to its own executor; Boom, a negative amount and PostBoom's second
// plain handler change it before they throw.
struct ledger {
  int value = 0;

  void handle(Inc) { ++value; }
  int handle(Boom) {
    ++value;
    throw custom_error(value);
  }
  int handle(Get) const { return value; }
  courier::future<int> handle(Await a) {
    return std::move(a.amount).then([this](int v) {
      value += v;
      if (v < 0) throw custom_error(value);
      return value;
    });
  }
  void handle(PostInc) {
    asio::post(courier::this_actor_executor(), [this] { value += 1000; });
  }
  // Two plain handlers in a row: the first succeeds, the second fails.
  void handle(PostBoom) {
    handle(PostInc{});
    asio::post(courier::this_actor_executor(), [this] {
      value += 100;
      throw custom_error(value);
    });
  }
};

// What a probe saw: copies of its State, restores, handlers and the hook, in
// order. Copies and moves throw on demand.
struct probe_control {
  std::atomic<int> copies{0};
  std::atomic<bool> copy_throws{false};
  std::atomic<bool> move_throws{false};
  std::mutex mutex;
  std::vector<std::string> events;

  void note(std::string e) {
    std::lock_guard<std::mutex> lock(mutex);
    events.push_back(std::move(e));
  }
  void copied() {
    if (copy_throws.load()) throw std::bad_alloc();
    copies.fetch_add(1);
    note("copy");
  }
  std::vector<std::string> seen() {
    std::lock_guard<std::mutex> lock(mutex);
    return events;
  }
  void forget() {
    std::lock_guard<std::mutex> lock(mutex);
    events.clear();
  }
};

struct probe {
  int value = 0;
  std::shared_ptr<probe_control> control;

  probe(int v, std::shared_ptr<probe_control> c) : value(v), control(std::move(c)) {}
  probe(const probe& o) : value(o.value), control(o.control) { control->copied(); }
  probe(probe&& o) : value(o.value), control(o.control) {
    if (control->move_throws.load()) throw std::runtime_error("move failed");
    control->note("move");
  }
  probe& operator=(const probe& o) {
    o.control->copied();
    value = o.value;
    control = o.control;
    return *this;
  }
  probe& operator=(probe&&) = delete;

  void handle(Inc) {
    ++value;
    control->note("inc");
  }
  int handle(Boom) {
    ++value;
    control->note("boom");
    throw custom_error(value);
  }
  int handle(Get) const { return value; }
};

}  // namespace

TEST_CASE("supervision: restart from the last good State undoes only the failing tell",
          "[supervision][last_good]") {
  courier::thread_pool pool(2);
  hook_log log;
  auto a =
      courier::spawn<counter, counter_msg>(pool, counter{10}, from_last_good<counter>(log.hook()));
  for (int i = 0; i < 5; ++i) a.tell(Inc{});
  a.tell(Boom{});  // 16, then throws: back to 15, not to the spawn-time 10
  CHECK(a.ask(Get{}).get() == 15);
  a.tell(Inc{});
  a.tell(Boom{});
  a.tell(Boom{});  // two failures in a row restore the same State
  a.tell(Inc{});
  CHECK(a.ask(Get{}).get() == 17);
  CHECK_FALSE(a.stopped());
  std::lock_guard<std::mutex> lock(log.mutex);
  REQUIRE(log.kinds.size() == 3);
  for (auto k : log.kinds) CHECK(k == courier::failure_kind::tell);
  CHECK(code_of(log.errors[0]) == 16);
  CHECK(code_of(log.errors[1]) == 17);
  CHECK(code_of(log.errors[2]) == 17);
}

TEST_CASE("supervision: restart from the last good State after a failed ask",
          "[supervision][last_good]") {
  courier::thread_pool pool(2);
  hook_log log;
  auto a =
      courier::spawn<counter, counter_msg>(pool, counter{}, from_last_good<counter>(log.hook()));
  for (int i = 0; i < 3; ++i) a.tell(Inc{});
  // The asker gets the handler's exception, thrown with the value it left (4).
  auto error = a.ask(Boom{}).then([](courier::result<int> r) { return r.error(); }).get();
  REQUIRE(error);
  // Messages after the failed one see the State before it.
  CHECK(a.ask(Get{}).get() == 3);
  CHECK(code_of(error) == 4);
  a.tell(Inc{});
  CHECK(a.ask(Get{}).get() == 4);
  CHECK_THROWS_AS(a.ask(Boom{}).get(), custom_error);
  CHECK(a.ask(Get{}).get() == 4);
  CHECK_FALSE(a.stopped());
  std::lock_guard<std::mutex> lock(log.mutex);
  REQUIRE(log.kinds.size() == 2);
  CHECK(log.kinds[0] == courier::failure_kind::ask);
  CHECK(log.kinds[1] == courier::failure_kind::ask);
  CHECK(log.errors[0] == error);
}

TEST_CASE("supervision: restart from the last good State keeps what continuations did",
          "[supervision][last_good]") {
  courier::thread_pool pool(2);
  hook_log log;
  auto a = courier::spawn<ledger, ledger_msg>(pool, ledger{}, from_last_good<ledger>(log.hook()));

  // A continuation's change is part of the last good State of later handlers.
  courier::promise<int> ten;
  auto added = a.ask(Await{ten.get_future()});
  a.tell(Inc{});
  ten.set_value(10);  // the continuation runs after Inc, as a message of the actor
  CHECK(added.get() == 11);
  a.tell(Boom{});
  CHECK(a.ask(Get{}).get() == 11);

  // A continuation that throws is not a handler failure: its future fails,
  // no hook runs, and what it changed stays.
  courier::promise<int> minus_five;
  auto failed = a.ask(Await{minus_five.get_future()});
  minus_five.set_value(-5);
  CHECK_THROWS_AS(failed.get(), custom_error);
  CHECK(a.ask(Get{}).get() == 6);
  a.tell(Boom{});
  CHECK(a.ask(Get{}).get() == 6);
  CHECK(log.count() == 2);
  CHECK_FALSE(a.stopped());
}

TEST_CASE("supervision: restart from the last good State after a failing plain handler",
          "[supervision][last_good]") {
  courier::thread_pool pool(2);
  hook_log log;
  auto a = courier::spawn<ledger, ledger_msg>(pool, ledger{}, from_last_good<ledger>(log.hook()));
  a.tell(Inc{});
  // Each handler posts its plain handler before replying, so the plain
  // handler runs before the Get asked next.
  a.ask(PostInc{}).get();
  CHECK(a.ask(Get{}).get() == 1001);  // a plain handler that succeeded is kept
  a.ask(PostBoom{}).get();
  CHECK(a.ask(Get{}).get() == 2001);  // the failing one's +100 is undone, not the +1000
  a.tell(Boom{});
  CHECK(a.ask(Get{}).get() == 2001);
  CHECK_FALSE(a.stopped());
  std::lock_guard<std::mutex> lock(log.mutex);
  REQUIRE(log.kinds.size() == 2);
  CHECK(log.kinds[0] == courier::failure_kind::handler);
  CHECK(log.kinds[1] == courier::failure_kind::tell);
  CHECK(code_of(log.errors[0]) == 2101);
}

TEST_CASE("supervision: the State is copied once per handler and only for the last good State",
          "[supervision][last_good]") {
  courier::thread_pool pool(2);
  auto control = std::make_shared<probe_control>();
  SECTION("restart from the last good State") {
    auto a = courier::spawn<probe, counter_msg>(pool, probe{0, control}, from_last_good<probe>());
    for (int i = 0; i < 10; ++i) a.tell(Inc{});
    CHECK(a.ask(Get{}).get() == 10);
    CHECK(control->copies.load() == 11);
    a.tell(Boom{});                       // one copy before it; restoring moves
    CHECK(a.ask(Get{}).get() == 10);      // and one before Get
    CHECK(control->copies.load() == 13);  // restoring copied nothing
  }
  SECTION("restart from the factory, as before, copies nothing") {
    courier::spawn_options<probe> opts;
    opts.policy = courier::failure_policy::restart;
    opts.factory = [control] { return probe{100, control}; };
    CHECK(opts.restart_from == courier::restart_point::initial);  // the default
    auto a = courier::spawn<probe, counter_msg>(pool, probe{0, control}, opts);
    for (int i = 0; i < 10; ++i) a.tell(Inc{});
    CHECK(a.ask(Get{}).get() == 10);
    a.tell(Boom{});
    CHECK(a.ask(Get{}).get() == 100);  // the factory's State, not the last good one
    CHECK(control->copies.load() == 0);
  }
  SECTION("the other policies copy nothing") {
    for (auto policy : {courier::failure_policy::resume, courier::failure_policy::stop}) {
      courier::spawn_options<probe> opts;
      opts.policy = policy;
      auto a = courier::spawn<probe, counter_msg>(pool, probe{0, control}, opts);
      for (int i = 0; i < 10; ++i) a.tell(Inc{});
      CHECK(a.ask(Get{}).get() == 10);
    }
    CHECK(control->copies.load() == 0);
  }
}

TEST_CASE("supervision: the hook runs before the last good State is restored",
          "[supervision][last_good]") {
  // Order: copy, handler, hook, restore, then the asker is woken.
  courier::thread_pool pool(2);
  auto control = std::make_shared<probe_control>();
  auto a = courier::spawn<probe, counter_msg>(
      pool, probe{0, control},
      from_last_good<probe>([control](const courier::failure&) { control->note("hook"); }));
  control->forget();  // the moves of spawn(); nothing has run in the actor yet
  a.tell(Inc{});
  a.ask(Boom{})
      .then([control](courier::result<int> r) { control->note(r.has_value() ? "reply" : "asker"); })
      .get();
  CHECK(a.ask(Get{}).get() == 1);
  const std::vector<std::string> expected{"copy", "inc",  "copy",  "boom",
                                          "hook", "move", "asker", "copy"};
  CHECK(control->seen() == expected);
}

TEST_CASE("supervision: a State copy or restore that throws stops the actor when it is needed",
          "[supervision][last_good]") {
  courier::thread_pool pool(2);
  hook_log log;
  auto control = std::make_shared<probe_control>();
  auto a = courier::spawn<probe, counter_msg>(pool, probe{0, control},
                                              from_last_good<probe>(log.hook()));
  a.tell(Inc{});
  a.tell(Inc{});
  CHECK(a.ask(Get{}).get() == 2);

  SECTION("a failed copy before a handler that succeeds changes nothing") {
    control->copy_throws = true;
    a.ask(Inc{}).get();
    control->copy_throws = false;
    CHECK(a.ask(Get{}).get() == 3);
    a.tell(Boom{});  // the copy before it worked again
    CHECK(a.ask(Get{}).get() == 3);
    CHECK_FALSE(a.stopped());
    CHECK(log.count() == 1);
  }
  SECTION("a failed copy before a handler that fails: nothing to restore") {
    control->copy_throws = true;
    CHECK_THROWS_AS(a.ask(Boom{}).get(), custom_error);  // the handler's error, not the copy's
    CHECK(a.stopped());
    CHECK_THROWS_AS(a.ask(Get{}).get(), courier::actor_stopped);
    CHECK(log.count() == 1);
  }
  SECTION("restoring throws") {
    control->move_throws = true;
    CHECK_THROWS_AS(a.ask(Boom{}).get(), custom_error);
    CHECK(a.stopped());
    CHECK_THROWS_AS(a.ask(Get{}).get(), courier::actor_stopped);
    CHECK(log.count() == 1);
  }
}

TEST_CASE("supervision: restart_point::last_good is checked at spawn", "[supervision][last_good]") {
  courier::thread_pool pool(1);
  SECTION("it needs the restart policy") {
    auto opts = from_last_good<counter>();
    opts.policy = courier::failure_policy::resume;
    CHECK_THROWS_AS((courier::spawn<counter, counter_msg>(pool, counter{}, opts)),
                    courier::usage_error);
  }
  SECTION("it takes no factory") {
    auto opts = from_last_good<counter>();
    opts.factory = [] { return counter{}; };
    CHECK_THROWS_AS((courier::spawn<counter, counter_msg>(pool, counter{}, opts)),
                    courier::usage_error);
  }
  SECTION("it needs a copyable State") {
    struct unique_value {
      std::unique_ptr<int> value = std::make_unique<int>(0);
      void handle(Inc) { ++*value; }
      int handle(Boom) { throw custom_error(++*value); }
      int handle(Get) const { return *value; }
    };
    CHECK_THROWS_AS((courier::spawn<unique_value, counter_msg>(pool, unique_value{},
                                                               from_last_good<unique_value>())),
                    courier::usage_error);
  }
}

// --- the failure hook -----------------------------------------------------------------------

TEST_CASE("supervision: the hook sees tell failures as failure_kind::tell", "[supervision]") {
  courier::thread_pool pool(2);
  hook_log log;
  auto a = courier::spawn<counter, counter_msg>(pool, counter{},
                                                options(courier::failure_policy::resume, &log));
  a.tell(Boom{});
  a.tell(Inc{});
  a.tell(Boom{});
  CHECK(a.ask(Get{}).get() == 3);  // the hook for the last Boom ran before Get
  std::lock_guard<std::mutex> lock(log.mutex);
  REQUIRE(log.kinds.size() == 2);
  CHECK(log.kinds[0] == courier::failure_kind::tell);
  CHECK(log.kinds[1] == courier::failure_kind::tell);
  CHECK(code_of(log.errors[0]) == 1);
  CHECK(code_of(log.errors[1]) == 3);
  CHECK(log.outside_actor == 0);  // the hook runs inside the actor
  REQUIRE(log.executor);
  CHECK(*log.executor == a.get_executor());
}

TEST_CASE("supervision: ask failures reach the hook as failure_kind::ask and the asker",
          "[supervision]") {
  courier::thread_pool pool(2);
  hook_log log;
  auto a = courier::spawn<counter, counter_msg>(pool, counter{},
                                                options(courier::failure_policy::resume, &log));
  auto asker_error = a.ask(Boom{}).then([](courier::result<int> r) { return r.error(); }).get();
  CHECK(a.ask(Get{}).get() == 1);
  CHECK(code_of(asker_error) == 1);
  std::lock_guard<std::mutex> lock(log.mutex);
  REQUIRE(log.kinds.size() == 1);
  CHECK(log.kinds[0] == courier::failure_kind::ask);
  CHECK(log.errors[0] == asker_error);  // the very same exception object
  CHECK(log.outside_actor == 0);
}

TEST_CASE("supervision: failing handlers on the actor's executor are failure_kind::handler",
          "[supervision]") {
  courier::thread_pool pool(2);
  hook_log log;
  SECTION("resume: the actor keeps going") {
    auto a = courier::spawn<counter, counter_msg>(pool, counter{},
                                                  options(courier::failure_policy::resume, &log));
    asio::post(a.get_executor(), [] { throw custom_error(41); });
    asio::steady_timer timer(a.get_executor());
    timer.expires_after(std::chrono::milliseconds(0));
    std::promise<void> timer_fired;
    timer.async_wait([&timer_fired](std::error_code) {
      timer_fired.set_value();
      throw custom_error(42);
    });
    timer_fired.get_future().get();
    a.tell(Inc{});
    CHECK(a.ask(Get{}).get() == 1);
    std::lock_guard<std::mutex> lock(log.mutex);
    REQUIRE(log.kinds.size() == 2);
    CHECK(log.kinds[0] == courier::failure_kind::handler);
    CHECK(log.kinds[1] == courier::failure_kind::handler);
    CHECK(code_of(log.errors[0]) == 41);
    CHECK(code_of(log.errors[1]) == 42);
    CHECK(log.outside_actor == 0);
  }
  SECTION("stop: the actor stops") {
    auto a = courier::spawn<counter, counter_msg>(pool, counter{},
                                                  options(courier::failure_policy::stop, &log));
    asio::post(a.get_executor(), [] { throw custom_error(1); });
    CHECK_THROWS_AS(a.ask(Get{}).get(), courier::actor_stopped);
    CHECK(a.stopped());
    CHECK(log.count() == 1);
  }
  SECTION("restart: the State is replaced") {
    auto a = courier::spawn<counter, counter_msg>(pool, counter{9},
                                                  options(courier::failure_policy::restart, &log));
    a.tell(Inc{});
    asio::post(a.get_executor(), [] { throw custom_error(1); });
    CHECK(a.ask(Get{}).get() == 9);
    CHECK(log.count() == 1);
  }
}

TEST_CASE("supervision: an exception thrown by the hook is ignored", "[supervision]") {
  courier::thread_pool pool(2);
  auto hook_calls = std::make_shared<std::atomic<int>>(0);
  auto hook = [hook_calls](const courier::failure&) {
    hook_calls->fetch_add(1);
    throw std::runtime_error("hook failed");
  };
  SECTION("resume") {
    auto a = courier::spawn<counter, counter_msg>(
        pool, counter{},
        courier::spawn_options<counter>{courier::failure_policy::resume, {}, hook});
    a.tell(Boom{});
    CHECK_THROWS_AS(a.ask(Boom{}).get(), custom_error);
    a.tell(Inc{});
    CHECK(a.ask(Get{}).get() == 3);
    CHECK(hook_calls->load() == 2);
  }
  SECTION("stop is still applied") {
    auto a = courier::spawn<counter, counter_msg>(
        pool, counter{}, courier::spawn_options<counter>{courier::failure_policy::stop, {}, hook});
    a.tell(Boom{});
    CHECK_THROWS_AS(a.ask(Get{}).get(), courier::actor_stopped);
    CHECK(hook_calls->load() == 1);
  }
}

// --- the required scenario ------------------------------------------------------------------

namespace {

struct Deposit {
  std::uint64_t amount;
};
struct Balance {};
using account_msg = std::variant<Deposit, Balance>;

struct account {
  std::uint64_t balance = 0;
  std::uint64_t handle(Deposit d) { return balance += d.amount; }
  std::uint64_t handle(Balance) const { return balance; }
};

struct Work {};
struct Stats {};
using thrower_msg = std::variant<Work, Stats>;

// Throws on every third Work, with that Work's 1-based number as the code.
struct thrower {
  int seen = 0;
  int handle(Work) {
    ++seen;
    if (seen % 3 == 0) throw custom_error(seen);
    return seen;
  }
  int handle(Stats) const { return seen; }
};

}  // namespace

TEST_CASE("supervision: an actor throwing on every third message while others keep working",
          "[supervision][pool]") {
  auto threads = GENERATE(1, 2, 4);
  courier::thread_pool pool(static_cast<std::size_t>(threads));

  constexpr int senders = 4;
  constexpr int normal_actors = 3;
  constexpr int tells_per_sender = 200;
  constexpr int asks = 150;

  auto tell_failures = std::make_shared<std::atomic<int>>(0);
  auto ask_failures = std::make_shared<std::atomic<int>>(0);
  auto other_failures = std::make_shared<std::atomic<int>>(0);
  courier::spawn_options<thrower> opts;
  opts.policy = courier::failure_policy::resume;
  opts.on_failure = [=](const courier::failure& f) {
    if (f.kind == courier::failure_kind::tell && holds<custom_error>(f.error))
      tell_failures->fetch_add(1);
    else if (f.kind == courier::failure_kind::ask && holds<custom_error>(f.error))
      ask_failures->fetch_add(1);
    else
      other_failures->fetch_add(1);
  };
  auto bad = courier::spawn<thrower, thrower_msg>(pool, thrower{}, opts);

  std::vector<courier::actor<account, account_msg>> good;
  for (int i = 0; i < normal_actors; ++i)
    good.push_back(courier::spawn<account, account_msg>(pool, account{}));

  // Every sender tells the thrower and deposits into every account, asking
  // for a receipt now and then, all concurrently.
  std::vector<std::vector<courier::future<std::uint64_t>>> receipts(senders);
  std::vector<std::thread> threads_out;
  for (int s = 0; s < senders; ++s) {
    threads_out.emplace_back([&, s] {
      for (int k = 1; k <= tells_per_sender; ++k) {
        bad.tell(Work{});
        for (auto& g : good) {
          if (k % 10 == 0)
            receipts[static_cast<std::size_t>(s)].push_back(
                g.ask(Deposit{static_cast<std::uint64_t>(k)}));
          else
            g.tell(Deposit{static_cast<std::uint64_t>(k)});
        }
      }
    });
  }
  for (auto& t : threads_out) t.join();

  // Every tell above happens-before these asks, so their numbers are known.
  constexpr int told = senders * tells_per_sender;
  // Each reply as (value, error): its error is inspected only after Stats.
  std::vector<courier::future<std::pair<int, std::exception_ptr>>> replies;
  for (int i = 0; i < asks; ++i)
    replies.push_back(bad.ask(Work{}).then([](courier::result<int> r) {
      return r.has_value() ? std::make_pair(r.value(), std::exception_ptr())
                           : std::make_pair(0, r.error());
    }));

  // Stats is handled after every Work and every failure's hook.
  CHECK(bad.ask(Stats{}).get() == told + asks);

  int wrong = 0;
  int asks_thrown = 0;
  for (int i = 0; i < asks; ++i) {
    const int number = told + i + 1;
    const auto [value, error] = replies[static_cast<std::size_t>(i)].get();
    const int outcome = error ? -code_of(error) : value;
    if (number % 3 == 0) {
      ++asks_thrown;
      if (outcome != -number) ++wrong;
    } else if (outcome != number) {
      ++wrong;
    }
  }
  CHECK(wrong == 0);

  CHECK_FALSE(bad.stopped());
  CHECK(tell_failures->load() == told / 3);
  CHECK(ask_failures->load() == asks_thrown);
  CHECK(other_failures->load() == 0);
  CHECK(tell_failures->load() + ask_failures->load() == (told + asks) / 3);

  // The other actors were never disturbed.
  std::uint64_t per_sender = 0;
  for (int k = 1; k <= tells_per_sender; ++k) per_sender += static_cast<std::uint64_t>(k);
  for (auto& g : good) {
    CHECK_FALSE(g.stopped());
    CHECK(g.ask(Balance{}).get() == per_sender * senders);
  }
  for (auto& per : receipts)
    for (auto& r : per) CHECK(r.get() <= per_sender * senders);
}

TEST_CASE("supervision: a failed ask returns after the hook ran and the policy applied",
          "[supervision]") {
  // The asker is woken only once the failure has been handled, so what it
  // checks next already reflects the policy and the hook.
  const int threads = GENERATE(1, 2, 4);
  courier::thread_pool pool{static_cast<std::size_t>(threads)};
  for (int i = 0; i < 200; ++i) {
    hook_log log;
    auto a = courier::spawn<counter, counter_msg>(pool, counter{},
                                                  options(courier::failure_policy::stop, &log));
    CHECK_THROWS_AS(a.ask(Boom{}).get(), custom_error);
    REQUIRE(a.stopped());
    REQUIRE(log.count() == 1);
  }
}

TEST_CASE("supervision: the hook and the policy apply before the asker wakes", "[supervision]") {
  // Order: handler, hook, the policy (the actor stopped, or the factory's
  // State in place), then the asker is woken. The asker's continuation is
  // attached while the actor cannot run yet, so it runs on the thread that
  // completes the ask, at that moment. (The last good State has its own test.)
  const auto policy = GENERATE(courier::failure_policy::resume, courier::failure_policy::stop,
                               courier::failure_policy::restart);
  courier::thread_pool pool(1);
  auto control = std::make_shared<probe_control>();
  courier::spawn_options<probe> opts;
  opts.policy = policy;
  opts.on_failure = [control](const courier::failure&) { control->note("hook"); };
  if (policy == courier::failure_policy::restart)
    opts.factory = [control] {
      control->note("factory");
      return probe{100, control};
    };
  auto a = courier::spawn<probe, counter_msg>(pool, probe{0, control}, opts);
  // Hold the only worker until the continuation is attached.
  std::latch holding(1);
  std::latch release(1);
  asio::post(pool.get_executor(), [&] {
    holding.count_down();
    release.wait();
  });
  holding.wait();
  control->forget();  // the moves of spawn()
  auto woken = a.ask(Boom{}).then([control, a](courier::result<int> r) {
    if (r.has_value())
      control->note("reply");
    else
      control->note(a.stopped() ? "asker, stopped" : "asker");
  });
  release.count_down();
  woken.get();
  std::vector<std::string> seen;
  for (const auto& e : control->seen())
    if (e != "move") seen.push_back(e);  // how a State is put in place
  switch (policy) {
    case courier::failure_policy::resume:
      CHECK(seen == std::vector<std::string>{"boom", "hook", "asker"});
      CHECK(a.ask(Get{}).get() == 1);
      break;
    case courier::failure_policy::stop:
      CHECK(seen == std::vector<std::string>{"boom", "hook", "asker, stopped"});
      CHECK_THROWS_AS(a.ask(Get{}).get(), courier::actor_stopped);
      break;
    case courier::failure_policy::restart:
      CHECK(seen == std::vector<std::string>{"boom", "hook", "factory", "asker"});
      CHECK(a.ask(Get{}).get() == 100);
      break;
  }
}

TEST_CASE(
    "supervision: a handler that would reply later but throws first fails the ask with its "
    "exception",
    "[supervision]") {
  // The handler's return type is a future, but it throws before making one:
  // the asker gets that exception (not broken_promise), after the hook and
  // the policy.
  struct Later {};
  struct deferring {
    courier::future<int> handle(Later) { throw custom_error(7); }
  };
  const int threads = GENERATE(1, 2);
  courier::thread_pool pool{static_cast<std::size_t>(threads)};
  for (int i = 0; i < 50; ++i) {
    auto hooked = std::make_shared<std::atomic<int>>(0);
    courier::spawn_options<deferring> o;
    o.policy = courier::failure_policy::stop;
    o.on_failure = [hooked](const courier::failure&) { hooked->fetch_add(1); };
    auto a = courier::spawn<deferring, Later>(pool, deferring{}, o);
    CHECK_THROWS_AS(a.ask(Later{}).get(), custom_error);
    REQUIRE(a.stopped());
    REQUIRE(hooked->load() == 1);
  }
}
