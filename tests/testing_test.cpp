#include "courier/testing.hpp"

#include <catch2/catch.hpp>
#include <courier.hpp>
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

TEST_CASE("testing: destroying the context while an ask's deadline expires", "[testing]") {
  // The deadline's expiry arrives from Asio's timer thread; the context must
  // neither lose it to a freed timer service nor let it outlive the services.
  for (std::uint64_t seed = 0; seed < 2000; ++seed) {
    courier::testing::deterministic_context ctx(seed);
    courier::spawn_options<shared_log> one_at_a_time;
    one_at_a_time.batch = 1;
    std::string out;
    auto log = courier::spawn<shared_log, log_msg>(ctx, shared_log{&out}, one_at_a_time);
    auto reply = log.ask(Read{}, std::chrono::microseconds(seed % 7));
    if (seed % 2 == 0) ctx.run();
  }
  SUCCEED("no use of a freed timer service (ASan) and no hang");
}
