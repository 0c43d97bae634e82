#include "courier/actor.hpp"

#include <asio/bind_cancellation_slot.hpp>
#include <asio/bind_executor.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/error.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/thread_pool.hpp>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <latch>
#include <memory>
#include <string>
#include <system_error>
#include <thread>
#include <variant>
#include <vector>

namespace {

struct Deposit {
  std::uint64_t amount;
};
struct Withdraw {
  std::uint64_t amount;
};
struct Balance {};
using account_msg = std::variant<Deposit, Withdraw, Balance>;

struct account {
  std::uint64_t balance = 0;
  void handle(Deposit d) { balance += d.amount; }
  bool handle(Withdraw w) {
    if (balance < w.amount) return false;
    balance -= w.amount;
    return true;
  }
  std::uint64_t handle(Balance) const { return balance; }
};

// Records the order of appends and whether two handlers ever overlapped.
struct Append {
  int sender;
  int seq;
};
struct Log {};
using log_msg = std::variant<Append, Log>;
struct ordered_log {
  std::vector<std::vector<int>> per_sender;
  std::shared_ptr<std::atomic<int>> inside = std::make_shared<std::atomic<int>>(0);
  bool overlapped = false;
  void handle(Append a) {
    if (inside->fetch_add(1) != 0) overlapped = true;
    if (per_sender.size() <= static_cast<std::size_t>(a.sender))
      per_sender.resize(static_cast<std::size_t>(a.sender) + 1);
    per_sender[static_cast<std::size_t>(a.sender)].push_back(a.seq);
    inside->fetch_sub(1);
  }
  std::pair<std::vector<std::vector<int>>, bool> handle(Log) const {
    return {per_sender, overlapped};
  }
};

// An actor that answers by asking another actor: the reply is deferred.
struct Relay {
  std::uint64_t extra;
};
using relay_msg = std::variant<Relay>;
struct relay {
  courier::actor<account, account_msg> target;
  courier::future<std::uint64_t> handle(Relay r) {
    std::uint64_t extra = r.extra;
    return target.ask(Balance{}).then([extra](std::uint64_t b) { return b + extra; });
  }
};

// An actor whose handler blocks until released, to hold messages queued.
struct Hold {
  std::shared_ptr<std::latch> entered;
  std::shared_ptr<std::latch> release;
};
struct Echo {
  int value;
};
using gate_msg = std::variant<Hold, Echo>;
struct gate {
  void handle(Hold h) {
    h.entered->count_down();
    h.release->wait();
  }
  int handle(Echo e) const { return e.value; }
};

// A gate that counts the Echo messages it handled.
struct Echoed {};
using counting_gate_msg = std::variant<Hold, Echo, Echoed>;
struct counting_gate {
  int echoed = 0;
  void handle(Hold h) { gate{}.handle(h); }
  int handle(Echo e) {
    ++echoed;
    return e.value;
  }
  int handle(Echoed) const { return echoed; }
};

}  // namespace

TEST_CASE("actor: the quickstart contract", "[actor]") {
  courier::thread_pool pool{2};
  courier::actor<account, account_msg> alice =
      courier::spawn<account, account_msg>(pool, account{1000});
  alice.tell(Deposit{5});
  courier::future<bool> f = alice.ask(Withdraw{10});
  CHECK(f.get());
  CHECK_FALSE(alice.ask(Withdraw{5000}).get());
  CHECK(alice.ask(Balance{}).then([](std::uint64_t b) { return b + 1; }).get() == 996);
  alice.stop();
  CHECK(alice.stopped());
}

TEST_CASE("actor: reply types are deduced from handle()", "[actor]") {
  using a = courier::actor<account, account_msg>;
  STATIC_REQUIRE(std::is_same_v<a::reply_type<Deposit>, void>);
  STATIC_REQUIRE(std::is_same_v<a::reply_type<Withdraw>, bool>);
  STATIC_REQUIRE(std::is_same_v<a::reply_type<Balance>, std::uint64_t>);
  STATIC_REQUIRE(
      std::is_same_v<courier::actor<relay, relay_msg>::reply_type<Relay>, std::uint64_t>);
  courier::thread_pool pool{1};
  auto alice = courier::spawn<account, account_msg>(pool, account{7});
  courier::future<void> done = alice.ask(Deposit{3});
  done.get();
  CHECK(alice.ask(Balance{}).get() == 10);
}

TEST_CASE("actor: a whole variant can be told", "[actor]") {
  courier::thread_pool pool{1};
  auto alice = courier::spawn<account, account_msg>(pool, account{0});
  account_msg m = Deposit{42};
  alice.tell(m);
  alice.tell(account_msg{Withdraw{2}});
  CHECK(alice.ask(Balance{}).get() == 40);
}

TEST_CASE("actor: tells from one sender are handled in send order, never concurrently", "[actor]") {
  const int threads = GENERATE(1, 2, 4);
  courier::thread_pool pool{static_cast<std::size_t>(threads)};
  auto log = courier::spawn<ordered_log, log_msg>(pool);
  constexpr int senders = 4;
  constexpr int per_sender = 5000;
  std::vector<std::thread> ts;
  for (int s = 0; s < senders; ++s)
    ts.emplace_back([&, s] {
      for (int i = 0; i < per_sender; ++i) log.tell(Append{s, i});
    });
  for (auto& t : ts) t.join();
  auto [seen, overlapped] = log.ask(Log{}).get();
  CHECK_FALSE(overlapped);
  REQUIRE(seen.size() == senders);
  for (const auto& v : seen) {
    REQUIRE(v.size() == per_sender);
    for (int i = 0; i < per_sender; ++i) REQUIRE(v[static_cast<std::size_t>(i)] == i);
  }
}

TEST_CASE("actor: 8 foreign threads x 10,000 asks all resolve with the right values", "[actor]") {
  const int threads = GENERATE(1, 2, 4);
  courier::thread_pool pool{static_cast<std::size_t>(threads)};
  struct Add {
    std::uint64_t by;
  };
  struct adder {
    std::uint64_t handle(Add a) const { return a.by * 2; }
  };
  std::vector<courier::actor<adder, Add>> actors;
  for (int i = 0; i < 4; ++i) actors.push_back(courier::spawn<adder, Add>(pool));
  std::atomic<int> wrong{0};
  std::atomic<int> resolved{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < 8; ++t)
    ts.emplace_back([&, t] {
      std::vector<courier::future<std::uint64_t>> fs;
      fs.reserve(10000);
      for (std::uint64_t i = 0; i < 10000; ++i)
        fs.push_back(actors[(i + static_cast<std::uint64_t>(t)) % actors.size()].ask(Add{i}));
      for (std::uint64_t i = 0; i < 10000; ++i) {
        if (fs[i].get() != i * 2) ++wrong;
        ++resolved;
      }
    });
  for (auto& t : ts) t.join();
  CHECK(wrong == 0);
  CHECK(resolved == 80000);
}

TEST_CASE("actor: chained asks on a one-thread pool complete without deadlock", "[actor]") {
  courier::thread_pool pool{1};
  auto bob = courier::spawn<account, account_msg>(pool, account{500});
  auto r = courier::spawn<relay, relay_msg>(pool, relay{bob});
  CHECK(r.ask(Relay{1}).get() == 501);
  // A chain of actors, each deferring its reply to the next one.
  std::vector<courier::actor<relay, relay_msg>> chain;
  for (int i = 0; i < 10; ++i) chain.push_back(courier::spawn<relay, relay_msg>(pool, relay{bob}));
  std::vector<courier::future<std::uint64_t>> fs;
  for (std::uint64_t i = 0; i < 1000; ++i) fs.push_back(chain[i % chain.size()].ask(Relay{i}));
  for (std::uint64_t i = 0; i < 1000; ++i) CHECK(fs[i].get() == 500 + i);
}

TEST_CASE("actor: continuations attached inside a handler run serialized with the actor",
          "[actor]") {
  // `counter` asks `source` for a value from inside its handler and adds the
  // reply to its own unguarded State in a continuation, while other threads
  // keep telling it increments. The total is exact only if every
  // continuation runs as one of counter's messages.
  struct Get {};
  struct source {
    std::uint64_t handle(Get) const { return 1; }
  };
  struct Pull {};
  struct Bump {};
  struct Total {};
  using counter_msg = std::variant<Pull, Bump, Total>;
  struct counter {
    courier::actor<source, Get> src;
    std::uint64_t total = 0;
    bool outside = false;
    void handle(Pull) {
      auto self = courier::this_actor_executor();
      src.ask(Get{}).then([this, self](std::uint64_t v) {
        if (!self.running_in_this_thread()) outside = true;
        total += v;
      });
    }
    void handle(Bump) { ++total; }
    std::pair<std::uint64_t, bool> handle(Total) const { return {total, outside}; }
  };
  const int threads = GENERATE(1, 2, 4);
  courier::thread_pool pool{static_cast<std::size_t>(threads)};
  auto src = courier::spawn<source, Get>(pool);
  auto c = courier::spawn<counter, counter_msg>(pool, counter{src});
  constexpr int rounds = 4000;
  std::thread puller([&] {
    for (int i = 0; i < rounds; ++i) c.tell(Pull{});
  });
  std::thread bumper([&] {
    for (int i = 0; i < rounds; ++i) c.tell(Bump{});
  });
  puller.join();
  bumper.join();
  std::uint64_t total = 0;
  bool outside = false;
  for (int spins = 0; spins < 100000 && total < 2 * rounds; ++spins) {
    std::tie(total, outside) = c.ask(Total{}).get();
    if (total < 2 * rounds) std::this_thread::yield();
  }
  CHECK(total == 2 * rounds);
  CHECK_FALSE(outside);
}

TEST_CASE("actor: a continuation attached inside a stopped actor does not run", "[actor]") {
  struct Start {
    courier::future<int> later;
    std::shared_ptr<courier::future<int>> out;
  };
  struct watcher {
    int seen = 0;
    void handle(Start s) {
      *s.out = std::move(s.later).then([this](int v) { return seen = v; });
    }
  };
  courier::thread_pool pool{2};
  auto w = courier::spawn<watcher, Start>(pool);
  courier::promise<int> p;
  auto out = std::make_shared<courier::future<int>>();
  w.ask(Start{p.get_future(), out}).get();
  w.stop();
  p.set_value(5);
  CHECK_THROWS_AS(out->get(), courier::actor_stopped);
}

TEST_CASE("actor: get() inside a handler throws would_block instead of deadlocking", "[actor]") {
  struct Nested {
    courier::actor<account, account_msg> other;
  };
  struct blocker {
    std::string handle(Nested n) {
      auto f = n.other.ask(Balance{});
      try {
        f.get();
        return "returned";
      } catch (const courier::would_block&) {
        return "would_block";
      }
    }
  };
  courier::thread_pool pool{1};
  auto other = courier::spawn<account, account_msg>(pool, account{1});
  auto b = courier::spawn<blocker, Nested>(pool);
  CHECK(b.ask(Nested{other}).get() == "would_block");
}

// Spawns an account through `where` and another through its executor, moves
// money between them with tells, relays an ask through a third actor, and
// checks every reply. Returns the first account.
template <class Where>
courier::actor<account, account_msg> check_accounts_and_relay(Where& where) {
  auto alice = courier::spawn<account, account_msg>(where, account{1000});
  auto bob = courier::spawn<account, account_msg>(where.get_executor(), account{500});
  for (int i = 0; i < 1000; ++i) {
    alice.tell(Withdraw{1});
    bob.tell(Deposit{1});
  }
  CHECK(alice.ask(Balance{}).get() == 0);
  CHECK(bob.ask(Balance{}).get() == 1500);
  auto r = courier::spawn<relay, relay_msg>(where, relay{bob});
  CHECK(r.ask(Relay{5}).get() == 1505);
  return alice;
}

TEST_CASE("actor: spawn on a user's io_context run by the user's threads", "[actor]") {
  const int threads = GENERATE(1, 2, 4);
  asio::io_context ctx{threads};
  auto guard = asio::make_work_guard(ctx);
  std::vector<std::thread> runners;
  for (int i = 0; i < threads; ++i) runners.emplace_back([&] { ctx.run(); });
  check_accounts_and_relay(ctx);
  guard.reset();
  for (auto& t : runners) t.join();
}

namespace {
// Holds the promise of an ask it answers later, and says when it is destroyed.
struct Later {};
struct promising {
  std::shared_ptr<bool> destroyed;
  std::vector<courier::promise<int>> pending;
  explicit promising(std::shared_ptr<bool> d) : destroyed(std::move(d)) {}
  promising(promising&&) = default;
  ~promising() {
    if (destroyed) *destroyed = true;
  }
  courier::future<int> handle(Later) {
    pending.emplace_back();
    return pending.back().get_future();
  }
};
}  // namespace

TEST_CASE("actor: destroying an io_context stops its idle actors", "[actor]") {
  // The State keeps the promise of an ask with a deadline, whose deadline
  // keeps the actor alive: only the context's shutdown breaks that circle.
  auto destroyed = std::make_shared<bool>(false);
  courier::actor<promising, std::variant<Later>> a;
  courier::future<int> late;
  {
    asio::io_context io;
    a = courier::spawn<promising, std::variant<Later>>(io, promising(destroyed));
    late = a.ask(Later{}, std::chrono::hours(1));
    io.run_one();  // the handler runs; the actor is idle again
    CHECK_FALSE(late.ready());
  }
  CHECK(*destroyed);
  // The handler ran; the promise went with the State.
  REQUIRE(late.ready());
  CHECK_THROWS_AS(late.get(), courier::broken_promise);
}

TEST_CASE("actor: spawn on an asio::thread_pool instead of courier's scheduler", "[actor]") {
  const int threads = GENERATE(1, 2, 4);
  asio::thread_pool substrate{static_cast<std::size_t>(threads)};
  {
    auto alice = check_accounts_and_relay(substrate);
    alice.stop();
    CHECK_THROWS_AS(alice.ask(Balance{}).get(), courier::actor_stopped);
  }
  substrate.join();
}

TEST_CASE("actor: an ask whose deadline passes while it is queued expires unrun (ask_expired)",
          "[actor]") {
  const int threads = GENERATE(1, 2, 4);
  courier::thread_pool pool{static_cast<std::size_t>(threads)};
  auto g = courier::spawn<counting_gate, counting_gate_msg>(pool);
  auto entered = std::make_shared<std::latch>(1);
  auto release = std::make_shared<std::latch>(1);
  g.tell(Hold{entered, release});
  entered->wait();
  auto expired = g.ask(Echo{7}, std::chrono::milliseconds(20));
  CHECK_THROWS_AS(expired.get(), courier::ask_expired);
  STATIC_REQUIRE(std::is_base_of_v<courier::ask_timeout, courier::ask_expired>);
  release->count_down();
  // The expired message left the mailbox skipped: its handler never ran.
  CHECK(g.ask(Echoed{}).get() == 0);
  CHECK(g.ask(Echo{9}, std::chrono::seconds(30)).get() == 9);
  CHECK(g.ask(Echoed{}).get() == 1);
}

TEST_CASE("actor: an async_ask cancelled while queued never runs (operation_aborted)", "[actor]") {
  const int threads = GENERATE(1, 2, 4);
  courier::thread_pool pool{static_cast<std::size_t>(threads)};
  auto g = courier::spawn<counting_gate, counting_gate_msg>(pool);
  auto entered = std::make_shared<std::latch>(1);
  auto release = std::make_shared<std::latch>(1);
  g.tell(Hold{entered, release});
  entered->wait();
  // Queued behind the held handler; its completion runs on the test's own
  // io_context, so it cannot wait for the held worker.
  asio::io_context io;
  asio::cancellation_signal cancel;
  std::exception_ptr error;
  int reply = -1;
  bool completed = false;
  g.async_ask(Echo{7}, asio::bind_cancellation_slot(
                           cancel.slot(), asio::bind_executor(io, [&](std::exception_ptr e, int r) {
                             error = e;
                             reply = r;
                             completed = true;
                           })));
  CHECK(io.poll() == 0);  // not completed yet
  cancel.emit(asio::cancellation_type::terminal);
  io.run();  // completes at once, while the gate still holds the actor
  REQUIRE(completed);
  CHECK(reply == 0);
  try {
    std::rethrow_exception(error);
  } catch (const std::system_error& e) {
    CHECK(e.code() == asio::error::operation_aborted);
  }
  release->count_down();
  // The message was withdrawn: its handler never ran.
  CHECK(g.ask(Echoed{}).get() == 0);
  // A cancellation once the handler has started changes nothing.
  auto entered2 = std::make_shared<std::latch>(1);
  auto release2 = std::make_shared<std::latch>(1);
  asio::cancellation_signal late;
  bool held_done = false;
  io.restart();
  g.async_ask(Hold{entered2, release2},
              asio::bind_cancellation_slot(
                  late.slot(), asio::bind_executor(io, [&](auto...) { held_done = true; })));
  entered2->wait();
  late.emit(asio::cancellation_type::terminal);
  release2->count_down();
  io.run();
  CHECK(held_done);
  CHECK(g.ask(Echo{9}).get() == 9);
  CHECK(g.ask(Echoed{}).get() == 1);
}

TEST_CASE(
    "actor: an ask whose handler is running when the deadline passes fails with "
    "ask_timeout, not ask_expired",
    "[actor]") {
  courier::thread_pool pool{2};
  auto g = courier::spawn<gate, gate_msg>(pool);
  auto entered = std::make_shared<std::latch>(1);
  auto release = std::make_shared<std::latch>(1);
  auto running = g.ask(Hold{entered, release}, std::chrono::milliseconds(20));
  entered->wait();
  try {
    running.get();
    FAIL("the ask should have timed out");
  } catch (const courier::ask_expired&) {
    FAIL("the handler had started: the ask did not expire unrun");
  } catch (const courier::ask_timeout&) {
  }
  release->count_down();
  CHECK(g.ask(Echo{8}).get() == 8);
}

TEST_CASE("actor: an ask with a deadline on a stopped actor fails with actor_stopped", "[actor]") {
  courier::thread_pool pool{1};
  auto g = courier::spawn<gate, gate_msg>(pool);
  g.stop();
  CHECK_THROWS_AS(g.ask(Echo{1}, std::chrono::seconds(30)).get(), courier::actor_stopped);
}

TEST_CASE("actor: stop with 10,000 asks queued resolves every one of them", "[actor]") {
  const int threads = GENERATE(1, 2, 4);
  courier::thread_pool pool{static_cast<std::size_t>(threads)};
  auto g = courier::spawn<gate, gate_msg>(pool);
  auto entered = std::make_shared<std::latch>(1);
  auto release = std::make_shared<std::latch>(1);
  g.tell(Hold{entered, release});
  entered->wait();
  std::vector<courier::future<int>> fs;
  for (int i = 0; i < 10000; ++i) fs.push_back(g.ask(Echo{i}));
  g.stop();
  release->count_down();
  for (auto& f : fs) CHECK_THROWS_AS(f.get(), courier::actor_stopped);
  CHECK_THROWS_AS(g.ask(Echo{1}).get(), courier::actor_stopped);
  CHECK_FALSE(g.try_tell(Echo{1}));
}

TEST_CASE("actor: stop racing with asks from many threads: every ask resolves", "[actor]") {
  const int threads = GENERATE(1, 2, 4);
  courier::thread_pool pool{static_cast<std::size_t>(threads)};
  auto g = courier::spawn<gate, gate_msg>(pool);
  std::atomic<int> values{0};
  std::atomic<int> stopped{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([&] {
      std::vector<courier::future<int>> fs;
      for (int i = 0; i < 2500; ++i) fs.push_back(g.ask(Echo{i}));
      for (int i = 0; i < 2500; ++i) {
        try {
          if (fs[static_cast<std::size_t>(i)].get() == i) ++values;
        } catch (const courier::actor_stopped&) {
          ++stopped;
        }
      }
    });
  g.stop();
  for (auto& t : ts) t.join();
  CHECK(values + stopped == 10000);
}

TEST_CASE("actor: stop from inside its own handler", "[actor]") {
  struct Quit {
    std::function<void()> stop_self;
  };
  struct Ping {};
  using msg = std::variant<Quit, Ping>;
  struct quitter {
    int handled = 0;
    void handle(Quit q) { q.stop_self(); }
    int handle(Ping) { return ++handled; }
  };
  courier::thread_pool pool{2};
  auto q = courier::spawn<quitter, msg>(pool);
  CHECK(q.ask(Ping{}).get() == 1);
  q.tell(Quit{[q] { q.stop(); }});
  // Sent after Quit by the same thread, so handled after it: never runs.
  auto after = q.ask(Ping{});
  CHECK_THROWS_AS(after.get(), courier::actor_stopped);
  CHECK(q.stopped());
  q.stop();  // idempotent
  CHECK_THROWS_AS(q.ask(Ping{}).get(), courier::actor_stopped);
}

TEST_CASE("actor: the State is destroyed once the actor stops", "[actor]") {
  struct Touch {};
  struct tracked {
    std::shared_ptr<int> token;
    void handle(Touch) {}
  };
  courier::thread_pool pool{2};
  auto token = std::make_shared<int>(1);
  auto a = courier::spawn<tracked, Touch>(pool, tracked{token});
  a.ask(Touch{}).get();
  CHECK(token.use_count() == 2);
  a.stop();
  for (int i = 0; i < 100000 && token.use_count() != 1; ++i) std::this_thread::yield();
  CHECK(token.use_count() == 1);
}

TEST_CASE("actor: handles are copied and used from many threads at once", "[actor]") {
  courier::thread_pool pool{2};
  auto alice = courier::spawn<account, account_msg>(pool, account{0});
  std::vector<std::thread> ts;
  for (int t = 0; t < 8; ++t)
    ts.emplace_back([copy = alice] {
      for (int i = 0; i < 1000; ++i) {
        auto again = copy;
        again.tell(Deposit{1});
      }
    });
  for (auto& t : ts) t.join();
  CHECK(alice.ask(Balance{}).get() == 8000);
  courier::actor<account, account_msg> empty;
  CHECK_FALSE(empty);
  CHECK(alice != empty);
  CHECK_THROWS_AS(empty.tell(Deposit{1}), courier::usage_error);
}

TEST_CASE("actor: destroying the pool with live actors and asks in flight", "[actor]") {
  const int threads = GENERATE(1, 2, 4);
  std::vector<courier::future<int>> fs;
  courier::actor<gate, gate_msg> kept;
  auto release = std::make_shared<std::latch>(1);
  {
    courier::thread_pool pool{static_cast<std::size_t>(threads)};
    std::vector<courier::actor<gate, gate_msg>> actors;
    for (int i = 0; i < 16; ++i) actors.push_back(courier::spawn<gate, gate_msg>(pool));
    auto entered = std::make_shared<std::latch>(1);
    actors[0].tell(Hold{entered, release});
    entered->wait();
    for (int i = 0; i < 4000; ++i)
      fs.push_back(actors[static_cast<std::size_t>(i) % 16].ask(Echo{i}));
    kept = actors[0];
    std::thread releaser([release] { release->count_down(); });
    releaser.detach();
  }
  int values = 0;
  int stopped = 0;
  for (std::size_t i = 0; i < fs.size(); ++i) {
    try {
      const int v = fs[i].get();
      CHECK(v == static_cast<int>(i));
      ++values;
    } catch (const courier::actor_stopped&) {
      ++stopped;
    }
  }
  CHECK(values + stopped == 4000);
  // A handle that outlived its pool is safe: the actor is stopped.
  CHECK(kept.stopped());
  CHECK_THROWS_AS(kept.ask(Echo{1}).get(), courier::actor_stopped);
  kept.tell(Echo{2});
}

TEST_CASE("actor: deadlines too long to represent wait as long as the clock can", "[actor]") {
  courier::thread_pool pool{1};
  auto g = courier::spawn<gate, gate_msg>(pool);
  // Each would overflow the steady clock's nanoseconds if converted as is.
  CHECK(g.ask(Echo{1}, std::chrono::hours::max()).get() == 1);
  CHECK(g.ask(Echo{2}, std::chrono::seconds::max()).get() == 2);
  CHECK(g.ask(Echo{3}, std::chrono::milliseconds::max()).get() == 3);
  CHECK(g.ask(Echo{4}, std::chrono::duration<double>(1e300)).get() == 4);
}

TEST_CASE("actor: get() on the thread that runs the actor's io_context throws would_block",
          "[actor]") {
  asio::io_context io;
  auto g = courier::spawn<gate, gate_msg>(io);
  bool refused = false;
  bool refused_with_deadline = false;
  int later = 0;
  asio::post(io, [&] {
    // This thread is the one that must drain `g`: waiting here would hang.
    auto f = g.ask(Echo{5});
    try {
      (void)f.get();
    } catch (const courier::would_block&) {
      refused = true;
    }
    auto timed = g.ask(Echo{6}, std::chrono::seconds(30));
    try {
      timed.wait();
    } catch (const courier::would_block&) {
      refused_with_deadline = true;
    }
    // Chained instead, the reply arrives once this handler returns.
    (void)std::move(f).then([&](int v) { later = v; });
  });
  io.run();
  CHECK(refused);
  CHECK(refused_with_deadline);
  CHECK(later == 5);
  // From a thread that does not run the context, get() waits as usual.
  auto f = g.ask(Echo{7});
  std::thread runner([&] { io.restart(), io.run(); });
  CHECK(f.get() == 7);
  runner.join();
}
