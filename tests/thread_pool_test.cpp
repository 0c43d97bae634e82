#include "courier/thread_pool.hpp"
#include "courier/detail/scheduler/local_queue.hpp"

#include <algorithm>
#include <asio/dispatch.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <courier.hpp>
#include <future>
#include <memory>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

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

TEST_CASE("thread_pool: a handler stuck on a worker does not hold up the messages it sent",
          "[thread_pool]") {
  // The long handler sends to several idle actors: one lands in its
  // worker's LIFO slot, the rest in its queue. The other worker must run
  // them all while the handler waits for them.
  struct Flag {
    std::shared_ptr<std::atomic<int>> count;
  };
  struct setter {
    void handle(Flag f) { f.count->fetch_add(1); }
  };
  struct Wait {
    std::vector<courier::actor<setter, Flag>> targets;
  };
  struct waiter {
    int handle(Wait w) {
      auto count = std::make_shared<std::atomic<int>>(0);
      for (auto& t : w.targets) t.tell(Flag{count});
      const int want = static_cast<int>(w.targets.size());
      const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);
      while (count->load() < want && std::chrono::steady_clock::now() < give_up)
        std::this_thread::yield();
      return count->load();
    }
  };
  courier::thread_pool pool{2};
  std::vector<courier::actor<setter, Flag>> targets;
  for (int i = 0; i < 10; ++i) targets.push_back(courier::spawn<setter, Flag>(pool));
  auto a = courier::spawn<waiter, Wait>(pool);
  for (int i = 0; i < 5; ++i) CHECK(a.ask(Wait{targets}).get() == 10);
}

TEST_CASE("thread_pool: handlers posted from many foreign threads all run", "[thread_pool]") {
  const int threads = GENERATE(1, 2, 4);
  courier::thread_pool pool{static_cast<std::size_t>(threads)};
  std::atomic<int> ran{0};
  std::vector<std::thread> posters;
  for (int p = 0; p < 4; ++p)
    posters.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) asio::post(pool.get_executor(), [&] { ran.fetch_add(1); });
    });
  for (auto& t : posters) t.join();
  pool.wait();
  CHECK(ran.load() == 40000);
}

TEST_CASE("thread_pool: wait() waits for a pending timer", "[thread_pool]") {
  // The timer's wait is all the pool has to do: no handler is queued and no
  // actor is busy. A wait() that returned before the timer fired would stop
  // the pool, and the handler would be destroyed unrun.
  const int threads = GENERATE(1, 2);
  courier::thread_pool pool{static_cast<std::size_t>(threads)};
  std::atomic<bool> ran{false};
  asio::steady_timer timer(pool.get_executor(), std::chrono::milliseconds(200));
  timer.async_wait([&](const std::error_code& ec) { ran.store(!ec); });
  pool.wait();
  CHECK(ran.load());
  CHECK(pool.stopped());
}

TEST_CASE("thread_pool: wait() waits for tracked work", "[thread_pool]") {
  // A tracked executor held by another thread is all the pool has to do
  // until that thread posts through it and lets it go.
  courier::thread_pool pool{2};
  std::atomic<bool> late_post_ran{false};
  std::thread holder(
      [&, work = asio::require(pool.get_executor(),
                               asio::execution::outstanding_work.tracked)]() mutable {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        asio::execution::execute(work, [&] { late_post_ran.store(true); });
        auto done = std::move(work);
      });
  pool.wait();
  holder.join();
  CHECK(late_post_ran.load());
}

TEST_CASE("thread_pool: dispatch from a worker runs inline, post never does", "[thread_pool]") {
  // One worker: a handler it posts cannot run before the current one returns.
  courier::thread_pool pool{1};
  auto posted = std::make_shared<std::atomic<bool>>(false);
  std::promise<std::pair<bool, bool>> seen;
  asio::post(pool.get_executor(), [&, posted] {
    bool dispatched = false;
    asio::dispatch(pool.get_executor(), [&] { dispatched = true; });
    asio::post(pool.get_executor(), [posted] { posted->store(true); });
    seen.set_value({dispatched, posted->load()});
  });
  const auto [dispatched, posted_inline] = seen.get_future().get();
  CHECK(dispatched);
  CHECK_FALSE(posted_inline);
  CHECK_FALSE(pool.get_executor().running_in_this_thread());
  pool.wait();
  CHECK(posted->load());
}

TEST_CASE("thread_pool: a handler posted after stop() is destroyed unrun", "[thread_pool]") {
  courier::thread_pool pool{2};
  pool.stop();
  auto token = std::make_shared<int>(0);
  bool ran = false;
  asio::post(pool.get_executor(), [token, &ran] { ran = true; });
  CHECK_FALSE(ran);
  CHECK(token.use_count() == 1);
}

TEST_CASE("thread_pool: stop() while timers are expiring", "[thread_pool]") {
  // Timers fire on Asio's reactor thread while stop() shuts the pool down:
  // every handler runs at most once, and nothing is completed twice or after
  // being destroyed (the sanitizer builds check the latter).
  std::atomic<int> fired{0};
  for (int round = 0; round < 20; ++round) {
    std::vector<std::unique_ptr<asio::steady_timer>> timers;
    courier::thread_pool pool{2};
    for (int i = 0; i < 100; ++i) {
      timers.push_back(std::make_unique<asio::steady_timer>(pool.get_executor()));
      timers.back()->expires_after(std::chrono::microseconds(500 + 20 * i));
      timers.back()->async_wait([&fired](const std::error_code& ec) {
        if (!ec) fired.fetch_add(1);
      });
    }
    std::this_thread::sleep_for(std::chrono::microseconds(500 + 100 * round));
    pool.stop();
    timers.clear();
  }
  CHECK(fired.load() <= 20 * 100);
}

namespace {
struct inert_task final : courier::detail::task {
  void run() noexcept override {}
  void discard() noexcept override {}
};
}  // namespace

TEST_CASE("thread_pool: a worker's queue is offered to thieves except a lone task or a busy pair",
          "[thread_pool][stealing]") {
  courier::detail::local_queue q;
  inert_task a, b, c;
  CHECK_FALSE(q.worth_stealing());
  q.push(&a, true);
  CHECK_FALSE(q.worth_stealing());  // a lone task runs soon anyway
  CHECK_FALSE(q.empty());           // but a stuck owner's lone task can be taken

  SECTION("two actors that both resumed after a full batch stay together") {
    q.push(&b, true);
    CHECK_FALSE(q.worth_stealing());
    SECTION("a third task makes the queue worth stealing from") {
      q.push(&c, true);
      CHECK(q.worth_stealing());
    }
  }
  SECTION("a resumed actor and fresh work are worth stealing from") {
    q.push(&b, false);
    CHECK(q.worth_stealing());
  }
  SECTION("the tag never reaches the task: pop returns the addresses pushed, oldest first") {
    q.push(&b, false);
    CHECK(q.pop() == &a);
    CHECK(q.pop() == &b);
    CHECK(q.pop() == nullptr);
    CHECK(q.empty());
  }
}

namespace {

struct Sleep {
  std::chrono::milliseconds d;
};
struct Started {};
using sleeper_msg = std::variant<Sleep, Started>;
struct sleeper {
  std::shared_ptr<std::atomic<int>> started;
  int handle(Sleep s) {
    started->fetch_add(1);
    std::this_thread::sleep_for(s.d);
    return 1;
  }
  int handle(Started) const { return started->load(); }
};

}  // namespace

TEST_CASE("thread_pool: an ask with a deadline racing the pool's destruction", "[thread_pool]") {
  // The ask's timer is the first on the pool: making it creates Asio's timer
  // service while the pool may be shutting its services down (TSan checks).
  for (int i = 0; i < 300; ++i) {
    auto pool = std::make_unique<courier::thread_pool>(1);
    auto a = courier::spawn<counting, Count>(*pool, counting{std::make_shared<std::atomic<int>>()});
    auto s =
        courier::spawn<sleeper, sleeper_msg>(*pool, sleeper{std::make_shared<std::atomic<int>>()});
    int outcome = -1;  // 1: answered; 0: stopped or timed out
    std::thread asker([s, &outcome] {
      auto f = s.ask(Sleep{std::chrono::milliseconds(0)}, std::chrono::milliseconds(5));
      try {
        outcome = f.get();
      } catch (const courier::actor_stopped&) {
        outcome = 0;
      } catch (const courier::ask_timeout&) {
        outcome = 0;
      }
    });
    pool.reset();
    asker.join();
    CHECK((outcome == 0 || outcome == 1));
  }
}

TEST_CASE("thread_pool: stop() runs nothing queued after the handler that is running",
          "[thread_pool]") {
  courier::thread_pool pool{1};
  auto started = std::make_shared<std::atomic<int>>(0);
  auto s = courier::spawn<sleeper, sleeper_msg>(pool, sleeper{started});
  std::vector<courier::future<int>> replies;
  replies.push_back(s.ask(Sleep{std::chrono::milliseconds(100)}));
  for (int i = 0; i < 100; ++i) replies.push_back(s.ask(Sleep{std::chrono::milliseconds(0)}));
  while (started->load() == 0) std::this_thread::yield();
  pool.stop();
  int answered = 0;
  int stopped = 0;
  for (auto& r : replies) {
    try {
      answered += r.get();
    } catch (const courier::actor_stopped&) {
      ++stopped;
    }
  }
  CHECK(answered == 1);
  CHECK(stopped == 100);
  CHECK(started->load() == 1);
}

TEST_CASE("thread_pool: destroyed by a continuation that its own stop() runs", "[thread_pool]") {
  auto pool = std::make_unique<courier::thread_pool>(1);
  auto started = std::make_shared<std::atomic<int>>(0);
  // The only worker is busy, so the second actor's ask stays queued until
  // stop() abandons it; its continuation then drops the last handle and the
  // pool itself, inside stop().
  auto busy = courier::spawn<sleeper, sleeper_msg>(*pool, sleeper{started});
  auto pending = std::make_unique<courier::actor<sleeper, sleeper_msg>>(
      courier::spawn<sleeper, sleeper_msg>(*pool, sleeper{std::make_shared<std::atomic<int>>()}));
  auto first = busy.ask(Sleep{std::chrono::milliseconds(50)});
  while (started->load() == 0) std::this_thread::yield();
  bool ran = false;
  bool saw_stop = false;
  auto done = pending->ask(Sleep{std::chrono::milliseconds(0)}).then([&](courier::result<int> r) {
    saw_stop = !r.has_value();
    ran = true;
    pending.reset();
    pool.reset();
  });
  courier::thread_pool* raw = pool.get();
  raw->stop();
  CHECK(ran);
  CHECK(saw_stop);
  CHECK(pool == nullptr);
  CHECK(first.get() == 1);
}

TEST_CASE("thread_pool: an executor used after its pool is gone destroys the handler unrun",
          "[thread_pool]") {
  auto pool = std::make_unique<courier::thread_pool>(1);
  auto ex = pool->get_executor();
  pool.reset();
  auto token = std::make_shared<int>(0);
  bool ran = false;
  asio::post(ex, [token, &ran] { ran = true; });
  CHECK_FALSE(ran);
  CHECK(token.use_count() == 1);
}

TEST_CASE("thread_pool: an ask's deadline fails its future while every worker is busy",
          "[thread_pool]") {
  courier::thread_pool pool{1};
  auto entered = std::make_shared<std::atomic<bool>>(false);
  auto release = std::make_shared<std::atomic<bool>>(false);
  // The only worker stays in this handler until the deadline below has
  // failed its future: failing it must not need a worker.
  asio::post(pool.get_executor(), [entered, release] {
    entered->store(true);
    while (!release->load()) std::this_thread::yield();
  });
  while (!entered->load()) std::this_thread::yield();
  auto s =
      courier::spawn<sleeper, sleeper_msg>(pool, sleeper{std::make_shared<std::atomic<int>>()});
  auto reply = s.ask(Started{}, std::chrono::milliseconds(20));
  CHECK_THROWS_AS(reply.get(), courier::ask_timeout);
  release->store(true);
  CHECK(s.ask(Started{}).get() == 0);
}

TEST_CASE("thread_pool: a throwing posted handler goes to the pool's error handler",
          "[thread_pool]") {
  std::mutex m;
  std::vector<std::string> seen;
  std::atomic<int> calls{0};
  courier::thread_pool pool{2, [&](std::exception_ptr e) {
                              try {
                                std::rethrow_exception(e);
                              } catch (const std::exception& x) {
                                std::lock_guard<std::mutex> lock(m);
                                seen.emplace_back(x.what());
                              }
                              calls.fetch_add(1);
                              throw std::runtime_error("ignored");
                            }};
  for (int i = 0; i < 3; ++i)
    asio::post(pool.get_executor(), [i] { throw std::runtime_error("bad " + std::to_string(i)); });
  std::atomic<bool> after{false};
  asio::post(pool.get_executor(), [&] { after = true; });
  pool.wait();
  CHECK(calls.load() == 3);
  CHECK(after.load());
  std::sort(seen.begin(), seen.end());
  CHECK(seen == std::vector<std::string>{"bad 0", "bad 1", "bad 2"});
}
