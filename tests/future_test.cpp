#include "courier/future.hpp"

#include <asio/post.hpp>
#include <atomic>
#include <catch2/catch.hpp>
#include <cstdint>
#include <exception>
#include <future>
#include <latch>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
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

std::exception_ptr make_error(int code) { return std::make_exception_ptr(custom_error(code)); }

// The code of the custom_error that get() throws, or -1 for any other outcome.
template <class T>
int error_code_of(courier::future<T>& f) {
  try {
    (void)f.get();
  } catch (const custom_error& e) {
    return e.code;
  } catch (...) {
  }
  return -1;
}

using test_support::holds;

// Runs `f` on a worker of `pool` and waits (with std::future, outside courier).
template <class F>
auto run_on(courier::thread_pool& pool, F f) {
  std::packaged_task<std::invoke_result_t<F&>()> task(std::move(f));
  auto result = task.get_future();
  asio::post(pool.get_executor(), [&task] { task(); });
  return result.get();
}

// Completing the promise at the head of a pending chain runs every link on
// the completing thread, one after another (not nested: see the stack test).
constexpr int pending_links = 10000;

}  // namespace

// --- basics ----------------------------------------------------------------------

TEST_CASE("future: a value set before get() is returned", "[future]") {
  courier::promise<std::string> p;
  auto f = p.get_future();
  CHECK(f.valid());
  CHECK_FALSE(f.ready());
  p.set_value("hello");
  CHECK(f.ready());
  CHECK(f.valid());
  CHECK(f.get() == "hello");
  CHECK_FALSE(f.valid());  // consumed
}

TEST_CASE("future: wait() does not consume the future", "[future]") {
  courier::promise<int> p;
  auto f = p.get_future();
  p.set_value(4);
  f.wait();
  f.wait();
  CHECK(f.valid());
  CHECK(f.get() == 4);
}

TEST_CASE("future: an exception set before get() is rethrown", "[future]") {
  courier::promise<int> p;
  auto f = p.get_future();
  p.set_exception(make_error(11));
  CHECK(f.ready());
  CHECK(error_code_of(f) == 11);
  CHECK_FALSE(f.valid());
}

TEST_CASE("future: move-only values travel through get() and then()", "[future]") {
  courier::promise<std::unique_ptr<int>> p;
  auto f = p.get_future().then([](std::unique_ptr<int> v) {
    *v += 1;
    return v;
  });
  p.set_value(std::make_unique<int>(41));
  std::unique_ptr<int> v = f.get();
  REQUIRE(v);
  CHECK(*v == 42);
}

TEST_CASE("future: get() returns a value set later by a foreign thread", "[future]") {
  courier::promise<int> p;
  auto f = p.get_future();
  std::thread setter([p = std::move(p)]() mutable { p.set_value(9); });
  CHECK(f.get() == 9);
  setter.join();
}

TEST_CASE("future<void>: set before and after get()", "[future]") {
  SECTION("before") {
    courier::promise<void> p;
    auto f = p.get_future();
    CHECK_FALSE(f.ready());
    p.set_value();
    CHECK(f.ready());
    CHECK_NOTHROW(f.get());
    CHECK_FALSE(f.valid());
  }
  SECTION("after, from a foreign thread") {
    courier::promise<void> p;
    auto f = p.get_future();
    std::thread setter([p = std::move(p)]() mutable { p.set_value(); });
    CHECK_NOTHROW(f.get());
    setter.join();
  }
  SECTION("an exception") {
    courier::promise<void> p;
    auto f = p.get_future();
    p.set_exception(make_error(2));
    CHECK(error_code_of(f) == 2);
  }
}

// --- then() ------------------------------------------------------------------------

TEST_CASE("future: then() by value", "[future][then]") {
  SECTION("attached after the value is in: runs at once, inside then()") {
    bool ran = false;
    const auto caller = std::this_thread::get_id();
    std::thread::id where;
    auto f = courier::make_ready_future(2).then([&](int v) {
      ran = true;
      where = std::this_thread::get_id();
      return v * 3;
    });
    CHECK(ran);
    CHECK(where == caller);
    CHECK(f.ready());
    CHECK(f.get() == 6);
  }
  SECTION("attached before: runs on the thread that completes the promise") {
    courier::promise<int> p;
    std::thread::id where;
    auto f = p.get_future().then([&](int v) {
      where = std::this_thread::get_id();
      return std::to_string(v);
    });
    static_assert(std::is_same_v<decltype(f), courier::future<std::string>>);
    CHECK_FALSE(f.ready());
    std::thread::id setter_id;
    std::thread setter([&] {
      setter_id = std::this_thread::get_id();
      p.set_value(5);
    });
    setter.join();
    CHECK(where == setter_id);
    CHECK(f.get() == "5");
  }
  SECTION("a continuation returning void gives future<void>") {
    int seen = 0;
    auto f = courier::make_ready_future(7).then([&](int v) { seen = v; });
    static_assert(std::is_same_v<decltype(f), courier::future<void>>);
    CHECK_NOTHROW(f.get());
    CHECK(seen == 7);
  }
  SECTION("a move-only continuation") {
    auto owned = std::make_unique<int>(10);
    auto f = courier::make_ready_future(5).then(
        [o = std::move(owned)](int v) mutable { return *o + v; });
    CHECK(f.get() == 15);
  }
}

TEST_CASE("future: then() by result<T> sees values and errors", "[future][then]") {
  SECTION("a value") {
    auto f = courier::make_ready_future(3).then([](courier::result<int> r) {
      REQUIRE(r.has_value());
      return r.value() + 1;
    });
    CHECK(f.get() == 4);
  }
  SECTION("an error, which the continuation can recover from") {
    courier::promise<int> p;
    auto f = p.get_future().then([](courier::result<int>&& r) {
      CHECK_FALSE(r.has_value());
      try {
        r.value();
      } catch (const custom_error& e) {
        return e.code * 100;
      }
      return -1;
    });
    p.set_exception(make_error(5));
    CHECK(f.get() == 500);
  }
  SECTION("an error passed on by rethrowing it") {
    auto f = courier::make_failed_future<int>(make_error(6)).then([](courier::result<int> r) {
      return r.value();
    });
    CHECK(error_code_of(f) == 6);
  }
}

TEST_CASE("future: errors skip value continuations and propagate", "[future][then]") {
  courier::promise<int> p;
  int calls = 0;
  auto f = p.get_future()
               .then([&](int v) {
                 ++calls;
                 return v + 1;
               })
               .then([&](int v) {
                 ++calls;
                 return std::to_string(v);
               })
               .then([&](const std::string&) { ++calls; })
               .then([&] { ++calls; });
  p.set_exception(make_error(13));
  CHECK(calls == 0);
  SECTION("to get()") { CHECK(error_code_of(f) == 13); }
  SECTION("to a result continuation at the end of the chain") {
    auto g = f.then([](courier::result<void> r) { return holds<custom_error>(r.error()); });
    CHECK(g.get());
  }
}

TEST_CASE("future: a continuation returning future<U> is flattened", "[future][then]") {
  SECTION("inner future already complete") {
    auto f = courier::make_ready_future(2).then(
        [](int v) { return courier::make_ready_future(std::to_string(v)); });
    static_assert(std::is_same_v<decltype(f), courier::future<std::string>>);
    CHECK(f.get() == "2");
  }
  SECTION("inner future completed later by a foreign thread") {
    courier::promise<int> inner;
    courier::promise<int> outer;
    auto f = outer.get_future().then([&](int v) {
      CHECK(v == 1);
      return inner.get_future();
    });
    static_assert(std::is_same_v<decltype(f), courier::future<int>>);
    outer.set_value(1);
    CHECK_FALSE(f.ready());
    std::thread setter([&] { inner.set_value(77); });
    CHECK(f.get() == 77);
    setter.join();
  }
  SECTION("inner future fails") {
    auto f = courier::make_ready_future(2).then(
        [](int) { return courier::make_failed_future<double>(make_error(21)); });
    static_assert(std::is_same_v<decltype(f), courier::future<double>>);
    CHECK(error_code_of(f) == 21);
  }
  SECTION("inner future<void>") {
    courier::promise<void> inner;
    auto f = courier::make_ready_future().then([&] { return inner.get_future(); });
    static_assert(std::is_same_v<decltype(f), courier::future<void>>);
    CHECK_FALSE(f.ready());
    inner.set_value();
    CHECK_NOTHROW(f.get());
  }
  SECTION("inner promise dropped: broken_promise") {
    auto f = courier::make_ready_future(1).then(
        [](int) { return courier::promise<int>().get_future(); });
    CHECK_THROWS_AS(f.get(), courier::broken_promise);
  }
  SECTION("an invalid inner future fails the result instead of hanging") {
    auto f = courier::make_ready_future(1).then([](int) { return courier::future<int>(); });
    CHECK_THROWS_AS(f.get(), courier::error);
  }
}

TEST_CASE("future: an exception thrown by a continuation fails the next future", "[future][then]") {
  int later_calls = 0;
  courier::promise<int> p;
  auto failed = p.get_future().then([](int v) -> int { throw custom_error(v); });
  SECTION("to get()") {
    p.set_value(31);
    CHECK(error_code_of(failed) == 31);
  }
  SECTION("past later value continuations, to a result continuation") {
    auto f =
        failed.then([&](int v) { return ++later_calls + v; }).then([&](courier::result<int> r) {
          CHECK_FALSE(r.has_value());
          return holds<custom_error>(r.error());
        });
    p.set_value(32);
    CHECK(f.get());
    CHECK(later_calls == 0);
  }
  SECTION("from a result continuation too") {
    auto f = failed.then([](courier::result<int>) -> int { throw custom_error(99); });
    p.set_value(1);
    CHECK(error_code_of(f) == 99);
  }
  SECTION("from a void continuation of future<void>") {
    auto f = courier::make_ready_future().then([] { throw custom_error(3); });
    CHECK(error_code_of(f) == 3);
  }
}

TEST_CASE("future: a chain of 10,000 thens", "[future][then]") {
  constexpr int links = 10000;
  SECTION("built on a pending future, then completed") {
    courier::promise<int> p;
    auto f = p.get_future();
    for (int i = 0; i < pending_links; ++i) f = f.then([](int v) { return v + 1; });
    CHECK_FALSE(f.ready());
    p.set_value(0);
    CHECK(f.get() == pending_links);
  }
  SECTION("built on a ready future") {
    auto f = courier::make_ready_future(0);
    for (int i = 0; i < links; ++i) f = f.then([](int v) { return v + 1; });
    CHECK(f.get() == links);
  }
  SECTION("an error at the start skips every link") {
    courier::promise<int> p;
    int calls = 0;
    auto f = p.get_future();
    for (int i = 0; i < pending_links; ++i)
      f = f.then([&calls](int v) {
        ++calls;
        return v + 1;
      });
    p.set_exception(make_error(1));
    CHECK(error_code_of(f) == 1);
    CHECK(calls == 0);
  }
  SECTION("future<void>, completed from a foreign thread") {
    courier::promise<void> p;
    int calls = 0;
    auto f = p.get_future();
    for (int i = 0; i < pending_links; ++i) f = f.then([&calls] { ++calls; });
    std::thread setter([&p] { p.set_value(); });
    setter.join();
    CHECK_NOTHROW(f.get());
    CHECK(calls == pending_links);
  }
}

TEST_CASE("future<void>: then() by value and by result<void>", "[future][then]") {
  SECTION("by value") {
    courier::promise<void> p;
    auto f = p.get_future().then([] { return 5; });
    static_assert(std::is_same_v<decltype(f), courier::future<int>>);
    p.set_value();
    CHECK(f.get() == 5);
  }
  SECTION("by result, with a value") {
    auto f =
        courier::make_ready_future().then([](courier::result<void> r) { return r.has_value(); });
    CHECK(f.get());
  }
  SECTION("by result, with an error") {
    auto f =
        courier::make_failed_future<void>(make_error(4)).then([](const courier::result<void>& r) {
          return holds<custom_error>(r.error());
        });
    CHECK(f.get());
  }
  SECTION("an error skips a value continuation") {
    bool ran = false;
    auto f = courier::make_failed_future<void>(make_error(8)).then([&] { ran = true; });
    CHECK(error_code_of(f) == 8);
    CHECK_FALSE(ran);
  }
}

// --- promise rules -------------------------------------------------------------

TEST_CASE("future: a promise destroyed unset breaks its future", "[future][promise]") {
  SECTION("get()") {
    courier::future<int> f;
    {
      courier::promise<int> p;
      f = p.get_future();
    }
    CHECK(f.ready());
    CHECK_THROWS_AS(f.get(), courier::broken_promise);
  }
  SECTION("a result continuation sees broken_promise") {
    auto p = std::make_unique<courier::promise<int>>();
    auto f = p->get_future().then(
        [](courier::result<int> r) { return holds<courier::broken_promise>(r.error()); });
    p.reset();
    CHECK(f.get());
  }
  SECTION("from a foreign thread while get() waits") {
    courier::promise<int> p;
    auto f = p.get_future();
    std::thread dropper([p = std::move(p)]() mutable { courier::promise<int> gone(std::move(p)); });
    CHECK_THROWS_AS(f.get(), courier::broken_promise);
    dropper.join();
  }
  SECTION("replaced by move assignment") {
    courier::promise<int> p;
    auto f = p.get_future();
    p = courier::promise<int>();
    CHECK_THROWS_AS(f.get(), courier::broken_promise);
    auto g = p.get_future();  // the new state is usable
    p.set_value(1);
    CHECK(g.get() == 1);
  }
  SECTION("future<void>") {
    courier::future<void> f;
    {
      courier::promise<void> p;
      f = p.get_future();
    }
    CHECK_THROWS_AS(f.get(), courier::broken_promise);
  }
  SECTION("a promise destroyed after setting changes nothing") {
    courier::future<int> f;
    {
      courier::promise<int> p;
      f = p.get_future();
      p.set_value(3);
    }
    CHECK(f.get() == 3);
  }
  SECTION("a moved-from promise destroyed does not break the future") {
    courier::promise<int> p;
    auto f = p.get_future();
    auto q = std::make_unique<courier::promise<int>>(std::move(p));
    { courier::promise<int> drop(std::move(p)); }  // NOLINT(bugprone-use-after-move)
    CHECK_FALSE(f.ready());
    q->set_value(8);
    CHECK(f.get() == 8);
  }
}

TEST_CASE("future: setting a promise twice throws usage_error", "[future][promise]") {
  SECTION("set_value twice") {
    courier::promise<int> p;
    auto f = p.get_future();
    p.set_value(1);
    CHECK_THROWS_AS(p.set_value(2), courier::usage_error);
    CHECK(f.get() == 1);
  }
  SECTION("set_exception after set_value") {
    courier::promise<int> p;
    auto f = p.get_future();
    p.set_value(1);
    CHECK_THROWS_AS(p.set_exception(make_error(1)), courier::usage_error);
    CHECK(f.get() == 1);
  }
  SECTION("set_value after set_exception") {
    courier::promise<int> p;
    auto f = p.get_future();
    p.set_exception(make_error(7));
    CHECK_THROWS_AS(p.set_value(1), courier::usage_error);
    CHECK(error_code_of(f) == 7);
  }
  SECTION("future<void>") {
    courier::promise<void> p;
    auto f = p.get_future();
    p.set_value();
    CHECK_THROWS_AS(p.set_value(), courier::usage_error);
    CHECK_THROWS_AS(p.set_exception(make_error(1)), courier::usage_error);
    CHECK_NOTHROW(f.get());
  }
  SECTION("after the future was consumed") {
    courier::promise<int> p;
    auto f = p.get_future();
    p.set_value(1);
    CHECK(f.get() == 1);
    CHECK_THROWS_AS(p.set_value(2), courier::usage_error);
  }
}

TEST_CASE("future: try_set_* store only the first result", "[future][promise]") {
  SECTION("try_set_value first") {
    courier::promise<int> p;
    auto f = p.get_future();
    CHECK(p.try_set_value(1));
    CHECK_FALSE(p.try_set_value(2));
    CHECK_FALSE(p.try_set_exception(make_error(3)));
    CHECK_FALSE(p.try_set_result(courier::result<int>(std::in_place, 4)));
    CHECK_THROWS_AS(p.set_value(5), courier::usage_error);
    CHECK(f.get() == 1);
  }
  SECTION("try_set_exception first") {
    courier::promise<int> p;
    auto f = p.get_future();
    CHECK(p.try_set_exception(make_error(3)));
    CHECK_FALSE(p.try_set_value(2));
    CHECK(error_code_of(f) == 3);
  }
  SECTION("try_set_result first, with a value and with an error") {
    courier::promise<int> p;
    auto f = p.get_future();
    CHECK(p.try_set_result(courier::result<int>(std::in_place, 4)));
    CHECK_FALSE(p.try_set_result(courier::result<int>::failure(make_error(1))));
    CHECK(f.get() == 4);

    courier::promise<int> q;
    auto g = q.get_future();
    CHECK(q.try_set_result(courier::result<int>::failure(make_error(6))));
    CHECK_FALSE(q.try_set_value(1));
    CHECK(error_code_of(g) == 6);
  }
  SECTION("try_set_exception(nullptr) stores nothing") {
    courier::promise<int> p;
    auto f = p.get_future();
    CHECK_FALSE(p.try_set_exception(nullptr));
    CHECK_FALSE(f.ready());
    CHECK(p.try_set_value(2));
    CHECK(f.get() == 2);
  }
  SECTION("a moved-from promise") {
    courier::promise<int> p;
    courier::promise<int> q = std::move(p);
    // NOLINTBEGIN(bugprone-use-after-move)
    CHECK_FALSE(p.try_set_value(1));
    CHECK_FALSE(p.try_set_exception(make_error(1)));
    CHECK_FALSE(p.try_set_result(courier::result<int>(std::in_place, 1)));
    // NOLINTEND(bugprone-use-after-move)
    CHECK(q.try_set_value(2));
    CHECK(q.get_future().get() == 2);
  }
  SECTION("future<void>") {
    courier::promise<void> p;
    auto f = p.get_future();
    CHECK(p.try_set_value());
    CHECK_FALSE(p.try_set_value());
    CHECK_FALSE(p.try_set_exception(make_error(1)));
    CHECK_FALSE(p.try_set_result(courier::result<void>::failure(make_error(1))));
    CHECK_NOTHROW(f.get());
  }
}

TEST_CASE("future: make_ready_future and make_failed_future", "[future]") {
  auto a = courier::make_ready_future(std::string("x"));
  static_assert(std::is_same_v<decltype(a), courier::future<std::string>>);
  CHECK(a.ready());
  CHECK(a.get() == "x");

  const int lvalue = 3;
  auto b = courier::make_ready_future(lvalue);  // decays const int& to int
  static_assert(std::is_same_v<decltype(b), courier::future<int>>);
  CHECK(b.get() == 3);

  auto c = courier::make_ready_future();
  static_assert(std::is_same_v<decltype(c), courier::future<void>>);
  CHECK(c.ready());
  CHECK_NOTHROW(c.get());

  auto d = courier::make_failed_future<int>(make_error(12));
  CHECK(d.ready());
  CHECK(error_code_of(d) == 12);

  auto e = courier::make_failed_future<void>(make_error(13));
  CHECK(error_code_of(e) == 13);

  CHECK_THROWS_AS(courier::make_failed_future<int>(nullptr), courier::usage_error);
}

// --- races -------------------------------------------------------------------------

TEST_CASE("future: a foreign thread completes the promise while get() blocks", "[future][race]") {
  constexpr int rounds = 2000;
  std::vector<courier::promise<int>> promises(rounds);
  std::vector<courier::future<int>> futures;
  std::vector<courier::promise<void>> void_promises(rounds);
  std::vector<courier::future<void>> void_futures;
  for (int i = 0; i < rounds; ++i) {
    futures.push_back(promises[static_cast<std::size_t>(i)].get_future());
    void_futures.push_back(void_promises[static_cast<std::size_t>(i)].get_future());
  }
  std::latch start(2);
  std::thread setter([&] {
    start.arrive_and_wait();
    for (int i = 0; i < rounds; ++i) {
      const auto u = static_cast<std::size_t>(i);
      if (i % 7 == 0)
        promises[u].set_exception(make_error(i));
      else
        promises[u].set_value(i);
      if (i % 5 == 0)
        void_promises[u].set_exception(make_error(i));
      else
        void_promises[u].set_value();
    }
  });
  start.arrive_and_wait();
  int mismatches = 0;
  for (int i = 0; i < rounds; ++i) {
    const auto u = static_cast<std::size_t>(i);
    if (i % 7 == 0) {
      if (error_code_of(futures[u]) != i) ++mismatches;
    } else if (futures[u].get() != i) {
      ++mismatches;
    }
    if (i % 5 == 0) {
      if (error_code_of(void_futures[u]) != i) ++mismatches;
    } else {
      void_futures[u].get();
    }
  }
  setter.join();
  CHECK(mismatches == 0);
}

TEST_CASE("future: then() attached while another thread completes runs exactly once",
          "[future][race]") {
  constexpr int rounds = 5000;
  std::vector<courier::promise<int>> promises(rounds);
  std::vector<courier::future<int>> futures;
  std::vector<courier::promise<void>> void_promises(rounds);
  std::vector<courier::future<void>> void_futures;
  for (std::size_t i = 0; i < rounds; ++i) {
    futures.push_back(promises[i].get_future());
    void_futures.push_back(void_promises[i].get_future());
  }
  std::vector<std::atomic<int>> runs(rounds);
  std::vector<std::atomic<int>> void_runs(rounds);
  std::atomic<int> total{0};
  std::vector<courier::future<int>> chained(rounds);
  std::vector<courier::future<void>> void_chained(rounds);

  std::latch start(2);
  std::thread completer([&] {
    start.arrive_and_wait();
    for (std::size_t i = 0; i < rounds; ++i) {
      promises[i].set_value(static_cast<int>(i));
      void_promises[i].set_value();
    }
  });
  std::thread attacher([&] {
    start.arrive_and_wait();
    for (std::size_t i = 0; i < rounds; ++i) {
      chained[i] = std::move(futures[i]).then([&, i](int v) {
        runs[i].fetch_add(1, std::memory_order_relaxed);
        total.fetch_add(1, std::memory_order_relaxed);
        return v * 2;
      });
      void_chained[i] = std::move(void_futures[i]).then([&, i] {
        void_runs[i].fetch_add(1, std::memory_order_relaxed);
        total.fetch_add(1, std::memory_order_relaxed);
      });
    }
  });
  completer.join();
  attacher.join();

  int wrong = 0;
  for (std::size_t i = 0; i < rounds; ++i) {
    if (chained[i].get() != static_cast<int>(i) * 2) ++wrong;
    void_chained[i].get();
    if (runs[i].load() != 1 || void_runs[i].load() != 1) ++wrong;
  }
  CHECK(wrong == 0);
  CHECK(total.load() == 2 * rounds);
}

TEST_CASE("future: a failing promise races with then() and still resolves once", "[future][race]") {
  constexpr int rounds = 3000;
  std::vector<courier::promise<int>> promises(rounds);
  std::vector<courier::future<int>> futures;
  for (auto& p : promises) futures.push_back(p.get_future());
  std::vector<courier::future<int>> chained(rounds);
  std::atomic<int> value_runs{0};
  std::atomic<int> result_runs{0};

  std::latch start(2);
  std::thread completer([&] {
    start.arrive_and_wait();
    for (std::size_t i = 0; i < rounds; ++i) {
      if (i % 2 == 0) {
        promises[i].set_exception(make_error(static_cast<int>(i)));
      } else {
        courier::promise<int> dropped(std::move(promises[i]));  // broken_promise
      }
    }
  });
  start.arrive_and_wait();
  for (std::size_t i = 0; i < rounds; ++i) {
    chained[i] = std::move(futures[i])
                     .then([&](int v) {
                       value_runs.fetch_add(1);
                       return v;
                     })
                     .then([&](courier::result<int> r) {
                       result_runs.fetch_add(1);
                       return r.has_value() ? 0 : 1;
                     });
  }
  completer.join();
  int failures = 0;
  for (auto& f : chained) failures += f.get();
  CHECK(failures == rounds);
  CHECK(value_runs.load() == 0);
  CHECK(result_runs.load() == rounds);
}

// --- blocking where it could deadlock -------------------------------------------------

TEST_CASE("future: get() on a thread_pool worker throws would_block", "[future][pool]") {
  auto threads = GENERATE(1, 2, 4);
  courier::thread_pool pool(static_cast<std::size_t>(threads));

  SECTION("future<int>") {
    courier::promise<int> p;
    auto f = p.get_future();
    auto outcome = run_on(pool, [&f] {
      std::exception_ptr get_error;
      std::exception_ptr wait_error;
      try {
        (void)f.get();
      } catch (...) {
        get_error = std::current_exception();
      }
      try {
        f.wait();
      } catch (...) {
        wait_error = std::current_exception();
      }
      // ready() never blocks, so it is allowed.
      return std::make_tuple(get_error, wait_error, f.valid(), f.ready());
    });
    CHECK(holds<courier::would_block>(std::get<0>(outcome)));
    CHECK(holds<courier::would_block>(std::get<1>(outcome)));
    CHECK(std::get<2>(outcome));  // the future stays valid
    CHECK_FALSE(std::get<3>(outcome));
    REQUIRE(f.valid());
    p.set_value(3);
    CHECK(f.get() == 3);  // ... and is still usable outside the pool
  }
  SECTION("a ready future<void> also refuses to block") {
    auto f = courier::make_ready_future();
    auto error = run_on(pool, [&f] {
      try {
        f.get();
      } catch (...) {
        return std::current_exception();
      }
      return std::exception_ptr();
    });
    CHECK(holds<courier::would_block>(error));
    CHECK(f.valid());
    CHECK_NOTHROW(f.get());
  }
  SECTION("then() is the way to chain on a worker") {
    courier::promise<int> p;
    auto f = p.get_future();
    auto chained = run_on(pool, [&f] { return f.then([](int v) { return v + 1; }); });
    CHECK_FALSE(f.valid());
    p.set_value(1);
    CHECK(chained.get() == 2);
  }
}

namespace {

struct Wait {};
struct Attach {};
struct Add {
  std::uint64_t n;
};
struct Get {};
using waiter_msg = std::variant<Wait, Attach, Add, Get>;

// An actor that blocks (illegally) in Wait, and attaches continuations to a
// future completed elsewhere in Attach.
struct waiter {
  std::shared_ptr<courier::future<int>> pending;
  std::uint64_t total = 0;
  int continuations_inside = 0;

  std::string handle(Wait) {
    try {
      (void)pending->get();
      return "no exception";
    } catch (const courier::would_block&) {
      return pending->valid() ? "would_block, still valid" : "would_block, consumed";
    }
  }
  courier::future<std::uint64_t> handle(Attach) {
    return std::move(*pending).then([this](int v) {
      // A message of this actor: State may be touched without a lock.
      if (courier::this_actor_executor().running_in_this_thread()) ++continuations_inside;
      total += static_cast<std::uint64_t>(v);
      return total;
    });
  }
  void handle(Add a) { total += a.n; }
  std::uint64_t handle(Get) const {
    return total + static_cast<std::uint64_t>(continuations_inside);
  }
};

}  // namespace

TEST_CASE("future: get() inside an actor throws would_block", "[future][actor]") {
  courier::thread_pool pool(2);
  courier::promise<int> p;
  auto pending = std::make_shared<courier::future<int>>(p.get_future());
  auto a = courier::spawn<waiter, waiter_msg>(pool, waiter{pending});
  CHECK(a.ask(Wait{}).get() == "would_block, still valid");
  p.set_value(1);
}

TEST_CASE("future: then() attached inside an actor runs as a message of that actor",
          "[future][actor]") {
  auto threads = GENERATE(1, 2, 4);
  courier::thread_pool pool(static_cast<std::size_t>(threads));
  constexpr int rounds = 200;
  constexpr std::uint64_t adds_per_round = 10;

  std::vector<courier::promise<int>> promises(rounds);
  std::vector<courier::future<std::uint64_t>> replies;
  std::vector<courier::actor<waiter, waiter_msg>> actors;
  for (int i = 0; i < rounds; ++i) {
    auto pending =
        std::make_shared<courier::future<int>>(promises[static_cast<std::size_t>(i)].get_future());
    auto a = courier::spawn<waiter, waiter_msg>(pool, waiter{pending});
    replies.push_back(a.ask(Attach{}));
    actors.push_back(a);
  }
  // Complete every promise from a foreign thread while messages race with the
  // continuations on the same State.
  std::thread completer([&] {
    for (std::size_t i = 0; i < rounds; ++i) promises[i].set_value(1000);
  });
  for (auto& a : actors)
    for (std::uint64_t k = 0; k < adds_per_round; ++k) a.tell(Add{1});
  completer.join();

  for (auto& r : replies) {
    // The continuation saw 1000 plus however many Adds came before it.
    const auto seen = r.get();
    CHECK(seen >= 1000);
    CHECK(seen <= 1000 + adds_per_round);
  }
  for (auto& a : actors) CHECK(a.ask(Get{}).get() == 1000 + adds_per_round + 1);
}

TEST_CASE("future: a continuation of a stopped actor does not run", "[future][actor]") {
  courier::thread_pool pool(2);
  courier::promise<int> p;
  auto pending = std::make_shared<courier::future<int>>(p.get_future());
  auto a = courier::spawn<waiter, waiter_msg>(pool, waiter{pending});
  auto reply = a.ask(Attach{});
  // Once a later message is handled, Attach has run and the continuation is
  // attached; then stop the actor before completing the promise.
  CHECK(a.ask(Get{}).get() == 0);
  a.stop();
  p.set_value(5);
  CHECK_THROWS_AS(reply.get(), courier::actor_stopped);
}

TEST_CASE("future: then() attached outside every actor runs outside, even on an actor's thread",
          "[future][actor]") {
  struct completer_state {
    courier::promise<int> p;
    void handle(int v) { p.set_value(v); }
  };
  courier::thread_pool pool(1);
  courier::promise<int> p;
  auto inside = p.get_future().then([](int v) {
    try {
      (void)courier::this_actor_executor();
      return -1;
    } catch (const courier::usage_error&) {
      return v;  // not inside any actor
    }
  });
  auto a = courier::spawn<completer_state, int>(pool, completer_state{std::move(p)});
  a.tell(6);
  CHECK(inside.get() == 6);
}

TEST_CASE("future: completing a chain of 200,000 pending thens keeps the stack flat",
          "[future][then]") {
  // Nested completion would need one set of frames per link and overflow an
  // 8 MB stack long before 200,000 links.
  courier::promise<int> p;
  courier::future<int> f = p.get_future();
  for (int i = 0; i < 200000; ++i) f = f.then([](int v) { return v + 1; });
  p.set_value(0);
  CHECK(f.get() == 200000);
}

TEST_CASE("future: get() inside a continuation throws would_block", "[future][then]") {
  // Outside every actor and pool: the continuation runs on this thread when
  // set_value() completes the promise, and must not block there.
  courier::promise<int> first;
  courier::promise<int> never;
  courier::future<int> waited = never.get_future();
  auto outcome = first.get_future().then([&waited](int) {
    try {
      waited.get();
      return std::string("returned");
    } catch (const courier::would_block&) {
      return std::string("would_block");
    }
  });
  first.set_value(1);
  CHECK(outcome.get() == "would_block");
  CHECK(waited.valid());
  never.set_value(2);
  CHECK(waited.get() == 2);
}

TEST_CASE("future: inside a continuation, a nested completion still runs at once",
          "[future][then]") {
  // Shallow nesting runs inline, so code inside a continuation can complete a
  // promise and use what its continuation produced straight away.
  courier::promise<int> outer;
  auto seen = outer.get_future().then([](int v) {
    int out = -1;
    courier::promise<int> inner;
    auto done = inner.get_future().then([&out](int x) { out = x; });
    inner.set_value(v + 1);
    auto ready = courier::make_ready_future(out);
    return ready.get();  // complete: get() inside a continuation does not throw
  });
  outer.set_value(4);
  CHECK(seen.get() == 5);
}

TEST_CASE("future: then_inline runs on the completing thread even inside an actor",
          "[future][then]") {
  struct Watch {
    courier::future<int> source;
    std::shared_ptr<courier::future<int>> out;
  };
  struct watcher {
    void handle(Watch w) {
      *w.out = std::move(w.source).then_inline([](int v) {
        // Not inside the attaching actor: no actor's executor here.
        bool outside = false;
        try {
          courier::this_actor_executor();
        } catch (const courier::usage_error&) {
          outside = true;
        }
        return outside ? v : -1;
      });
    }
  };
  courier::thread_pool pool{2};
  auto w = courier::spawn<watcher, Watch>(pool);
  courier::promise<int> p;
  auto out = std::make_shared<courier::future<int>>();
  w.ask(Watch{p.get_future(), out}).get();
  w.stop();  // a then() continuation would now be dropped; then_inline is not
  p.set_value(9);
  CHECK(out->get() == 9);
}
