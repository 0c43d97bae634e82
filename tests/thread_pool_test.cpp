#include "courier/thread_pool.hpp"

#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <courier.hpp>
#include <future>
#include <memory>
#include <set>
#include <stdexcept>
#include <thread>
#include <variant>

namespace {

struct Count {};
struct counting {
  std::shared_ptr<std::atomic<int>> handled;
  void handle(Count) { handled->fetch_add(1); }
};

}  // namespace

TEST_CASE("thread_pool: runs posted handlers on its own worker threads", "[thread_pool]") {
  const int threads = GENERATE(1, 2, 4);
  courier::thread_pool pool{static_cast<std::size_t>(threads)};
  CHECK(pool.size() == static_cast<std::size_t>(threads));
  std::vector<std::future<std::thread::id>> ids;
  for (int i = 0; i < 64; ++i) {
    auto p = std::make_shared<std::promise<std::thread::id>>();
    ids.push_back(p->get_future());
    asio::post(pool.get_executor(), [p] { p->set_value(std::this_thread::get_id()); });
  }
  std::set<std::thread::id> seen;
  for (auto& f : ids) seen.insert(f.get());
  CHECK(seen.count(std::this_thread::get_id()) == 0);
  CHECK(seen.size() <= static_cast<std::size_t>(threads));
}

TEST_CASE("thread_pool: rejects zero threads", "[thread_pool]") {
  CHECK_THROWS_AS(courier::thread_pool{0}, courier::usage_error);
  CHECK(courier::thread_pool::default_size() >= 1);
}

TEST_CASE("thread_pool: a throwing handler does not take a worker down", "[thread_pool]") {
  courier::thread_pool pool{1};
  for (int i = 0; i < 10; ++i)
    asio::post(pool.get_executor(), [] { throw std::runtime_error("posted handler failed"); });
  std::promise<int> after;
  asio::post(pool.get_executor(), [&] { after.set_value(42); });
  CHECK(after.get_future().get() == 42);
}

TEST_CASE("thread_pool: Asio timers work on the pool's executor", "[thread_pool]") {
  courier::thread_pool pool{2};
  asio::steady_timer timer(pool.get_executor(), std::chrono::milliseconds(1));
  std::promise<bool> fired;
  timer.async_wait([&](const std::error_code& ec) { fired.set_value(!ec); });
  CHECK(fired.get_future().get());
}

TEST_CASE("thread_pool: stop() is idempotent and stops every actor on it", "[thread_pool]") {
  courier::thread_pool pool{2};
  auto handled = std::make_shared<std::atomic<int>>(0);
  auto a = courier::spawn<counting, Count>(pool, counting{handled});
  a.ask(Count{}).get();
  CHECK_FALSE(pool.stopped());
  pool.stop();
  pool.stop();
  CHECK(pool.stopped());
  CHECK(a.stopped());
  CHECK_THROWS_AS(a.ask(Count{}).get(), courier::actor_stopped);
  CHECK_FALSE(a.try_tell(Count{}));
  CHECK_THROWS_AS((courier::spawn<counting, Count>(pool, counting{handled})), courier::usage_error);
  CHECK(handled->load() == 1);
}

TEST_CASE("thread_pool: wait() handles everything queued, then stops", "[thread_pool]") {
  const int threads = GENERATE(1, 2, 4);
  courier::thread_pool pool{static_cast<std::size_t>(threads)};
  auto handled = std::make_shared<std::atomic<int>>(0);
  std::vector<courier::actor<counting, Count>> actors;
  for (int i = 0; i < 8; ++i)
    actors.push_back(courier::spawn<counting, Count>(pool, counting{handled}));
  for (int i = 0; i < 8000; ++i) actors[static_cast<std::size_t>(i) % 8].tell(Count{});
  pool.wait();
  CHECK(handled->load() == 8000);
  CHECK(pool.stopped());
  CHECK(actors[0].stopped());
}

TEST_CASE("thread_pool: stop() from one of its own workers is a usage error", "[thread_pool]") {
  courier::thread_pool pool{1};
  std::promise<bool> threw;
  asio::post(pool.get_executor(), [&] {
    try {
      pool.stop();
      threw.set_value(false);
    } catch (const courier::usage_error&) {
      threw.set_value(true);
    }
  });
  CHECK(threw.get_future().get());
}

TEST_CASE("thread_pool: stopping with continuations pending resolves their futures",
          "[thread_pool]") {
  // Continuations attached inside an actor wait for a promise completed only
  // after the pool stopped: each must fail with actor_stopped, none may hang.
  struct Watch {
    std::shared_ptr<courier::promise<int>> source;
    std::shared_ptr<courier::future<int>> out;
  };
  struct watcher {
    void handle(Watch w) {
      *w.out = w.source->get_future().then([](int v) { return v + 1; });
    }
  };
  std::vector<std::shared_ptr<courier::promise<int>>> sources;
  std::vector<std::shared_ptr<courier::future<int>>> outs;
  {
    courier::thread_pool pool{2};
    auto w = courier::spawn<watcher, Watch>(pool);
    for (int i = 0; i < 100; ++i) {
      sources.push_back(std::make_shared<courier::promise<int>>());
      outs.push_back(std::make_shared<courier::future<int>>());
      w.ask(Watch{sources.back(), outs.back()}).get();
    }
  }
  for (auto& s : sources) s->set_value(1);
  for (auto& o : outs) CHECK_THROWS_AS(o->get(), courier::actor_stopped);
}

TEST_CASE("thread_pool: a message sent from a handler runs on another worker meanwhile",
          "[thread_pool]") {
  // While A's handler keeps its worker busy until B has run, B must be
  // handled by the other worker (no message waits behind a running handler
  // while a worker is free).
  struct Flag {
    std::shared_ptr<std::atomic<bool>> set;
  };
  struct setter {
    void handle(Flag f) { f.set->store(true); }
  };
  struct Wait {
    courier::actor<setter, Flag> b;
  };
  struct waiter {
    bool handle(Wait w) {
      auto flag = std::make_shared<std::atomic<bool>>(false);
      w.b.tell(Flag{flag});
      const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);
      while (!flag->load() && std::chrono::steady_clock::now() < give_up) std::this_thread::yield();
      return flag->load();
    }
  };
  courier::thread_pool pool{2};
  auto b = courier::spawn<setter, Flag>(pool);
  auto a = courier::spawn<waiter, Wait>(pool);
  for (int i = 0; i < 20; ++i) CHECK(a.ask(Wait{b}).get());
}
