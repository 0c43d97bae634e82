#include "courier/errors.hpp"

#include <asio/post.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <exception>
#include <future>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <variant>

#include "courier.hpp"
#include "support.hpp"

namespace {

struct Deposit {
  std::uint64_t amount;
};
struct Balance {};
struct Fail {};
struct Hang {};
using account_msg = std::variant<Deposit, Balance, Fail, Hang>;

struct account {
  std::uint64_t balance = 0;
  std::optional<courier::promise<std::uint64_t>> never_answered;

  void handle(Deposit d) { balance += d.amount; }
  std::uint64_t handle(Balance) const { return balance; }
  std::uint64_t handle(Fail) { throw std::logic_error("handler failed"); }
  // A deferred reply that never comes: its promise is kept, unset, in the State.
  courier::future<std::uint64_t> handle(Hang) {
    never_answered.emplace();
    return never_answered->get_future();
  }
};

using account_actor = courier::actor<account, account_msg>;

// Runs `f` on a worker of `pool` and returns the exception it threw (or null).
template <class F>
std::exception_ptr exception_on_worker(courier::thread_pool& pool, F f) {
  std::promise<std::exception_ptr> done;
  auto result = done.get_future();
  asio::post(pool.get_executor(), [&done, &f] {
    try {
      f();
      done.set_value(nullptr);
    } catch (...) {
      done.set_value(std::current_exception());
    }
  });
  return result.get();
}

using test_support::holds;

}  // namespace

TEST_CASE("errors: every courier error derives from courier::error", "[errors]") {
  static_assert(std::is_base_of_v<std::runtime_error, courier::error>);
  static_assert(std::is_base_of_v<courier::error, courier::actor_stopped>);
  static_assert(std::is_base_of_v<courier::error, courier::ask_timeout>);
  static_assert(std::is_base_of_v<courier::error, courier::broken_promise>);
  static_assert(std::is_base_of_v<courier::error, courier::usage_error>);
  static_assert(std::is_base_of_v<courier::error, courier::would_block>);
  static_assert(std::is_base_of_v<courier::usage_error, courier::would_block>);
  // The lifecycle errors are siblings, not variants of usage_error.
  static_assert(!std::is_base_of_v<courier::usage_error, courier::actor_stopped>);
  static_assert(!std::is_base_of_v<courier::usage_error, courier::ask_timeout>);
  static_assert(!std::is_base_of_v<courier::usage_error, courier::broken_promise>);

  // The same, as a caller sees it: one catch clause for all of them.
  auto caught_as_error = [](auto thrown) {
    try {
      throw thrown;
    } catch (const courier::error&) {
      return true;
    } catch (...) {
      return false;
    }
  };
  CHECK(caught_as_error(courier::error("courier: x")));
  CHECK(caught_as_error(courier::actor_stopped()));
  CHECK(caught_as_error(courier::actor_stopped("courier: custom")));
  CHECK(caught_as_error(courier::ask_timeout()));
  CHECK(caught_as_error(courier::broken_promise()));
  CHECK(caught_as_error(courier::usage_error("x")));
  CHECK(caught_as_error(courier::would_block()));
  CHECK_THROWS_AS(throw courier::would_block(), courier::usage_error);
  CHECK_THROWS_AS(throw courier::actor_stopped(), std::runtime_error);
}

TEST_CASE("errors: messages are non-empty and start with \"courier:\"", "[errors]") {
  const std::string messages[] = {
      courier::actor_stopped().what(),  courier::ask_timeout().what(),
      courier::broken_promise().what(), courier::usage_error("something").what(),
      courier::usage_error("").what(),  courier::would_block().what(),
  };
  for (const std::string& m : messages) {
    INFO(m);
    CHECK(m.size() > std::string("courier:").size());
    CHECK(m.rfind("courier:", 0) == 0);
  }
  // usage_error adds the prefix to the caller's text.
  CHECK(std::string(courier::usage_error("bad call").what()) == "courier: bad call");
  // The explicit forms keep the caller's text as it is.
  CHECK(std::string(courier::actor_stopped("courier: why").what()) == "courier: why");
  CHECK(std::string(courier::error("courier: base").what()) == "courier: base");
}

TEST_CASE("errors: invalid futures raise usage_error", "[errors]") {
  courier::future<int> empty;
  CHECK_FALSE(empty.valid());
  CHECK_THROWS_AS(empty.get(), courier::usage_error);
  CHECK_THROWS_AS(empty.ready(), courier::usage_error);
  CHECK_THROWS_AS(empty.wait(), courier::usage_error);
  CHECK_THROWS_AS(empty.then([](int) {}), courier::usage_error);
  CHECK_THROWS_WITH(empty.get(), Catch::StartsWith("courier:"));

  courier::future<void> empty_void;
  CHECK_THROWS_AS(empty_void.get(), courier::usage_error);
  CHECK_THROWS_AS(empty_void.then([] {}), courier::usage_error);

  SECTION("consumed by get()") {
    auto f = courier::make_ready_future(1);
    CHECK(f.get() == 1);
    CHECK_FALSE(f.valid());
    CHECK_THROWS_AS(f.get(), courier::usage_error);
  }
  SECTION("consumed by then()") {
    auto f = courier::make_ready_future(1);
    auto g = f.then([](int v) { return v; });
    CHECK_FALSE(f.valid());
    CHECK_THROWS_AS(f.then([](int v) { return v; }), courier::usage_error);
    CHECK(g.get() == 1);
  }
  SECTION("moved from") {
    auto f = courier::make_ready_future(1);
    auto g = std::move(f);
    CHECK_THROWS_AS(f.get(), courier::usage_error);  // NOLINT(bugprone-use-after-move)
    CHECK(g.get() == 1);
  }
}

TEST_CASE("errors: promise misuse raises usage_error", "[errors]") {
  SECTION("get_future twice") {
    courier::promise<int> p;
    auto f = p.get_future();
    CHECK_THROWS_AS(p.get_future(), courier::usage_error);
    p.set_value(1);
    CHECK(f.get() == 1);  // the first future is unaffected
  }
  SECTION("get_future on a moved-from promise") {
    courier::promise<void> p;
    courier::promise<void> q = std::move(p);
    CHECK_THROWS_AS(p.get_future(), courier::usage_error);  // NOLINT(bugprone-use-after-move)
    CHECK_NOTHROW(q.get_future());
  }
  SECTION("set twice") {
    courier::promise<int> p;
    auto f = p.get_future();
    p.set_value(1);
    CHECK_THROWS_AS(p.set_value(2), courier::usage_error);
    CHECK_THROWS_AS(p.set_exception(std::make_exception_ptr(std::runtime_error("x"))),
                    courier::usage_error);
    CHECK(f.get() == 1);
  }
  SECTION("set_exception(nullptr)") {
    courier::promise<int> p;
    CHECK_THROWS_AS(p.set_exception(nullptr), courier::usage_error);
    p.set_value(3);  // the failed call stored nothing
    CHECK(p.get_future().get() == 3);
  }
  SECTION("result::failure(nullptr)") {
    CHECK_THROWS_AS(courier::result<int>::failure(nullptr), courier::usage_error);
  }
}

TEST_CASE("errors: operations on an empty actor handle raise usage_error", "[errors]") {
  account_actor a;
  CHECK_FALSE(static_cast<bool>(a));
  CHECK_THROWS_AS(a.tell(Deposit{1}), courier::usage_error);
  CHECK_THROWS_AS(a.tell(account_msg(Deposit{1})), courier::usage_error);
  CHECK_THROWS_AS(a.try_tell(Deposit{1}), courier::usage_error);
  CHECK_THROWS_AS(a.ask(Balance{}), courier::usage_error);
  CHECK_THROWS_AS(a.ask(Balance{}, std::chrono::seconds(1)), courier::usage_error);
  CHECK_THROWS_AS(a.async_ask(Balance{}, [](std::exception_ptr, std::uint64_t) {}),
                  courier::usage_error);
  CHECK_THROWS_AS(a.stop(), courier::usage_error);
  CHECK_THROWS_AS(a.stopped(), courier::usage_error);
  CHECK_THROWS_AS(a.get_executor(), courier::usage_error);
  CHECK_THROWS_WITH(a.stop(), Catch::StartsWith("courier:"));
}

TEST_CASE("errors: thread_pool and spawn misuse raise usage_error", "[errors]") {
  SECTION("a pool of zero threads") {
    CHECK_THROWS_AS(courier::thread_pool(0), courier::usage_error);
  }
  SECTION("spawn on a stopped pool") {
    courier::thread_pool pool(1);
    pool.stop();
    CHECK_THROWS_AS((courier::spawn<account, account_msg>(pool, account{})), courier::usage_error);
  }
  SECTION("stop() and wait() from the pool's own worker") {
    courier::thread_pool pool(2);
    CHECK(holds<courier::usage_error>(exception_on_worker(pool, [&pool] { pool.stop(); })));
    CHECK(holds<courier::usage_error>(exception_on_worker(pool, [&pool] { pool.wait(); })));
    CHECK_FALSE(pool.stopped());
  }
  SECTION("restart without a factory for a non-copyable State") {
    struct unique_state {
      std::unique_ptr<int> p;
      void handle(Deposit) {}
    };
    courier::thread_pool pool(1);
    courier::spawn_options<unique_state> options;
    options.policy = courier::failure_policy::restart;
    CHECK_THROWS_AS((courier::spawn<unique_state, Deposit>(pool, unique_state{}, options)),
                    courier::usage_error);
  }
  SECTION("this_actor_executor() outside every actor") {
    CHECK_THROWS_AS(courier::this_actor_executor(), courier::usage_error);
  }
}

TEST_CASE("errors: blocking where it could deadlock raises would_block", "[errors]") {
  courier::thread_pool pool(2);
  SECTION("on a pool worker") {
    courier::promise<int> p;
    auto f = p.get_future();
    auto e = exception_on_worker(pool, [&f] { (void)f.get(); });
    CHECK(holds<courier::would_block>(e));
    CHECK(holds<courier::usage_error>(e));
    CHECK(f.valid());
    p.set_value(5);
    CHECK(f.get() == 5);
  }
  SECTION("inside an actor") {
    struct blocker {
      courier::future<int> pending;
      std::string handle(Balance) {
        try {
          (void)pending.get();
          return "no exception";
        } catch (const courier::would_block& e) {
          return e.what();
        }
      }
    };
    courier::promise<int> p;
    auto a = courier::spawn<blocker, Balance>(pool, blocker{p.get_future()});
    CHECK_THAT(a.ask(Balance{}).get(), Catch::StartsWith("courier:"));
  }
}

TEST_CASE("errors: lifecycle failures raise their own types", "[errors]") {
  courier::thread_pool pool(2);
  auto a = courier::spawn<account, account_msg>(pool, account{100, {}});

  SECTION("broken_promise: a promise dropped unset") {
    courier::future<int> f;
    {
      courier::promise<int> p;
      f = p.get_future();
    }
    CHECK_THROWS_AS(f.get(), courier::broken_promise);
  }
  SECTION("ask_timeout: a reply that never comes") {
    auto f = a.ask(Hang{}, std::chrono::milliseconds(1));
    CHECK_THROWS_AS(f.get(), courier::ask_timeout);
    CHECK(a.ask(Balance{}).get() == 100);  // the actor is fine
  }
  SECTION("actor_stopped: asks after stop") {
    a.stop();
    CHECK_THROWS_AS(a.ask(Balance{}).get(), courier::actor_stopped);
    CHECK_THROWS_AS(a.ask(Balance{}, std::chrono::seconds(10)).get(), courier::actor_stopped);
  }
  SECTION("actor_stopped: asks after the pool stopped") {
    pool.stop();
    CHECK_THROWS_AS(a.ask(Balance{}).get(), courier::actor_stopped);
  }
  SECTION("a caller can catch every lifecycle failure as courier::error") {
    a.stop();
    CHECK_THROWS_AS(a.ask(Balance{}).get(), courier::error);
  }
}

TEST_CASE("errors: a handler's exception reaches the asker unwrapped", "[errors]") {
  courier::thread_pool pool(1);
  auto a = courier::spawn<account, account_msg>(pool, account{});
  CHECK_THROWS_AS(a.ask(Fail{}).get(), std::logic_error);
  CHECK_FALSE(holds<courier::error>(
      a.ask(Fail{}).then([](courier::result<std::uint64_t> r) { return r.error(); }).get()));

  // Inspect the exception's contents only once the worker has left the
  // handler's catch block (the next ask is handled after it): ThreadSanitizer
  // cannot see libstdc++'s uninstrumented exception_ptr reference counting and
  // would otherwise report the worker's final release racing with this read.
  auto e = a.ask(Fail{}).then([](courier::result<std::uint64_t> r) { return r.error(); }).get();
  CHECK(a.ask(Balance{}).get() == 0);
  try {
    std::rethrow_exception(e);
  } catch (const std::logic_error& le) {
    CHECK(std::string(le.what()) == "handler failed");
  }
}
