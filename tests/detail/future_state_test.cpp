// future_state on its own: the first result wins, ready(), a continuation
// attached before or after the result fires exactly once, wait() across
// threads, the inline depth limit on long chains, reference counting from
// the initial count, and a setter racing observers.
#include "courier/detail/future/future_state.hpp"

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

#include "stress.hpp"

namespace {

using courier::result;
using courier::detail::continuation;
using courier::detail::future_state;
using courier::detail::this_thread;

struct custom_error : std::runtime_error {
  explicit custom_error(int c) : std::runtime_error("custom"), code(c) {}
  int code;
};

std::exception_ptr make_error(int code) { return std::make_exception_ptr(custom_error(code)); }

// The code of the custom_error a result holds, or -1.
int error_code(const result<int>& r) {
  try {
    if (std::exception_ptr e = r.error()) std::rethrow_exception(e);
  } catch (const custom_error& e) {
    return e.code;
  } catch (...) {
  }
  return -1;
}

// A state that counts its deletion.
struct counted_state final : future_state<int> {
  explicit counted_state(std::atomic<int>& deleted, std::uint32_t refs = 1)
      : future_state<int>(refs), deleted_(&deleted) {}
  ~counted_state() override { deleted_->fetch_add(1, std::memory_order_relaxed); }

 private:
  std::atomic<int>* deleted_;
};

// A continuation that records each firing: how often, where, how deeply
// nested, and the value (or -1) it found in its state. With `owns_ref` it
// drops a reference to the state afterwards, as a then() continuation does.
struct probe final : continuation {
  explicit probe(future_state<int>* s = nullptr, bool owns = false) : state(s), owns_ref(owns) {}
  void on_ready() noexcept override {
    thread = std::this_thread::get_id();
    depth = this_thread.continuation_depth;
    const result<int>& r = state->get();
    value = r.has_value() ? r.value() : -1;
    fired.fetch_add(1, std::memory_order_relaxed);
    if (owns_ref) state->release();
  }
  future_state<int>* state;
  bool owns_ref;
  std::atomic<int> fired{0};
  std::thread::id thread;
  unsigned depth = 0;
  int value = 0;
};

}  // namespace

TEST_CASE("future_state: the first result wins, later sets return false and change nothing",
          "[future_state]") {
  const auto later_sets_fail = [](future_state<int>& s) {
    CHECK_FALSE(s.try_set_value(20));
    CHECK_FALSE(s.try_set_exception(make_error(21)));
    CHECK_FALSE(s.try_set_result(result<int>(std::in_place, 22)));
    CHECK_FALSE(s.try_set_result(result<int>::failure(make_error(23))));
  };
  SECTION("a value") {
    future_state<int> s;
    CHECK_FALSE(s.ready());
    CHECK(s.try_set_value(10));
    CHECK(s.ready());
    later_sets_fail(s);
    REQUIRE(s.get().has_value());
    CHECK(s.get().value() == 10);
  }
  SECTION("an exception") {
    future_state<int> s;
    CHECK(s.try_set_exception(make_error(11)));
    CHECK(s.ready());
    later_sets_fail(s);
    CHECK(error_code(s.get()) == 11);
  }
  SECTION("a result holding a value") {
    future_state<int> s;
    CHECK(s.try_set_result(result<int>(std::in_place, 12)));
    later_sets_fail(s);
    CHECK(s.get().value() == 12);
  }
  SECTION("a result holding an exception") {
    future_state<int> s;
    CHECK(s.try_set_result(result<int>::failure(make_error(13))));
    later_sets_fail(s);
    CHECK(error_code(s.get()) == 13);
  }
}

TEST_CASE("future_state: a value whose construction throws is stored as that exception",
          "[future_state]") {
  struct fragile {
    explicit fragile(int code) { throw custom_error(code); }
  };
  future_state<fragile> s;
  CHECK(s.try_set_value(7));
  CHECK(s.ready());
  REQUIRE_FALSE(s.get().has_value());
  CHECK_THROWS_AS(std::rethrow_exception(s.get().error()), custom_error);
  CHECK_FALSE(s.try_set_value(8));
}

TEST_CASE("future_state: the result is destroyed with the state, and only if it was stored",
          "[future_state]") {
  static int live = 0;
  struct tracked {
    tracked() { ++live; }
    tracked(const tracked&) { ++live; }
    ~tracked() { --live; }
  };
  (new future_state<tracked>)->release();  // never set
  CHECK(live == 0);
  {
    future_state<tracked> s;
    CHECK(s.try_set_value());
    CHECK(live == 1);
    CHECK_FALSE(s.try_set_value());
    CHECK(live == 1);
  }
  CHECK(live == 0);
}

TEST_CASE("future_state: a continuation attached first fires once, inside the setter's call",
          "[future_state]") {
  future_state<int> s;
  probe p(&s);
  s.attach(&p);
  CHECK(p.fired.load() == 0);
  CHECK(s.try_set_value(5));
  CHECK(p.fired.load() == 1);
  CHECK(p.value == 5);
  CHECK(p.depth == 1);  // run at once, not queued
  CHECK(p.thread == std::this_thread::get_id());
  CHECK_FALSE(s.try_set_value(6));
  CHECK(p.fired.load() == 1);
  CHECK(this_thread.continuation_depth == 0);
}

TEST_CASE("future_state: a continuation attached first fires on the setter's thread",
          "[future_state]") {
  future_state<int> s;
  probe p(&s);
  s.attach(&p);
  std::thread::id setter;
  std::thread t([&] {
    setter = std::this_thread::get_id();
    s.try_set_value(9);
  });
  t.join();
  CHECK(p.fired.load() == 1);
  CHECK(p.value == 9);
  CHECK(p.thread == setter);
  CHECK(p.thread != std::this_thread::get_id());
}

TEST_CASE("future_state: a continuation attached after the result fires once, inline in attach",
          "[future_state]") {
  future_state<int> s;
  std::thread t([&] { s.try_set_exception(make_error(4)); });
  t.join();
  probe p(&s);
  s.attach(&p);
  CHECK(p.fired.load() == 1);
  CHECK(p.value == -1);
  CHECK(p.thread == std::this_thread::get_id());
  CHECK_FALSE(s.try_set_value(1));
  CHECK(p.fired.load() == 1);
}

TEST_CASE("future_state: wait() returns once another thread stores the result", "[future_state]") {
  future_state<int> s;
  constexpr int waiters = 3;
  std::vector<int> seen(waiters, 0);
  std::vector<std::thread> ts;
  for (int i = 0; i < waiters; ++i)
    ts.emplace_back([&s, &seen, i] {
      s.wait();
      seen[static_cast<std::size_t>(i)] = s.get().value();
    });
  // Likely (not certain) to find the waiters blocked; either way they must
  // all see the value.
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  CHECK(s.try_set_value(42));
  for (auto& t : ts) t.join();
  CHECK(seen == std::vector<int>(waiters, 42));
  s.wait();  // already ready: returns at once
  CHECK(s.get().value() == 42);
}

TEST_CASE("future_state: a state deletes itself once its initial and added references are gone",
          "[future_state]") {
  std::atomic<int> deleted{0};
  auto* one = new counted_state(deleted);
  one->release();
  CHECK(deleted.load() == 1);

  auto* two = new counted_state(deleted, 2);
  two->try_set_value(1);
  two->release();
  CHECK(deleted.load() == 1);
  two->release();
  CHECK(deleted.load() == 2);

  // A continuation holding the last reference may free the state while the
  // setter's publish is still on the stack.
  auto* s = new counted_state(deleted, 2);
  probe p(s, true);
  s->attach(&p);
  s->release();
  CHECK(deleted.load() == 2);
  CHECK(s->try_set_value(3));
  CHECK(deleted.load() == 3);
  CHECK(p.value == 3);
}

namespace {

// One link of a chain: fires when `from` is ready and sets `to` to the next
// number, noting how deeply nested it ran and where its frame was.
struct chain_link final : continuation {
  void on_ready() noexcept override {
    char marker = 0;
    frame = reinterpret_cast<std::uintptr_t>(&marker);
    depth = this_thread.continuation_depth;
    order = (*next_order)++;
    to->try_set_value(from->get().value() + 1);
  }
  future_state<int>* from = nullptr;
  future_state<int>* to = nullptr;
  int* next_order = nullptr;
  std::uintptr_t frame = 0;
  unsigned depth = 0;
  int order = -1;
};

// A chain of `n` links, each attached to one state and setting the next.
struct chain {
  explicit chain(std::size_t n) : states(n + 1), links(n) {
    for (std::size_t i = 0; i < n; ++i) {
      links[i].from = &states[i];
      links[i].to = &states[i + 1];
      links[i].next_order = &next_order;
      states[i].attach(&links[i]);
    }
  }
  // How far the stack reached below (or above) the first link's frame.
  std::uintptr_t stack_span() const {
    std::uintptr_t lo = links[0].frame, hi = links[0].frame;
    for (const chain_link& l : links) {
      lo = std::min(lo, l.frame);
      hi = std::max(hi, l.frame);
    }
    return hi - lo;
  }
  std::vector<future_state<int>> states;
  std::vector<chain_link> links;
  int next_order = 0;
};

}  // namespace

TEST_CASE("future_state: a long chain runs in order with its nesting bounded", "[future_state]") {
  constexpr unsigned limit = continuation::max_inline_depth;
  chain shallow(limit);
  CHECK(shallow.states[0].try_set_value(0));
  CHECK(shallow.states[limit].get().value() == static_cast<int>(limit));

  constexpr std::size_t n = 64 * limit;
  chain deep(n);
  CHECK(deep.states[0].try_set_value(0));
  // Every link ran before the outermost set returned, and nothing is left
  // queued on this thread.
  CHECK(deep.states[n].ready());
  CHECK(deep.states[n].get().value() == static_cast<int>(n));
  CHECK(this_thread.continuation_depth == 0);
  CHECK(this_thread.queued_head == nullptr);

  int out_of_order = 0;
  unsigned deepest = 0;
  for (std::size_t i = 0; i < n; ++i) {
    out_of_order += deep.links[i].order != static_cast<int>(i);
    deepest = std::max(deepest, deep.links[i].depth);
  }
  CHECK(out_of_order == 0);
  CHECK(deepest == limit);
  // The first `limit` links ran nested, each inside the one before.
  for (unsigned i = 0; i < limit; ++i) CHECK(deep.links[i].depth == i + 1);
  // The stack grew no further than for a chain that never hits the limit
  // (give or take the frames of the draining loop), not with the length.
  INFO("stack span: " << deep.stack_span() << " bytes for " << n << " links, "
                      << shallow.stack_span() << " for " << limit);
  CHECK(deep.stack_span() <= 2 * shallow.stack_span() + 4096);
}

// One setter and several observers go through the same states in the same
// order: the setter stores each result and drops its reference; the first
// observer attaches a continuation to every other state (it drops that
// observer's reference when it fires), half of them as soon as it can and
// half once the setter says it has stored the result; otherwise every
// observer waits, checks the value and drops its own. Each continuation must
// fire once with the value, every waiter see it, and every state be deleted
// exactly once.
TEST_CASE("future_state: a setter racing waiters and a continuation", "[future_state][stress]") {
  const int threads = GENERATE(2, 4, 8);
  const int n = detail_test::iterations(8000);
  const auto value_of = [](int i) { return 3 * i + 1; };
  std::atomic<int> deleted{0};
  std::vector<counted_state*> states;
  std::vector<probe> probes(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) {
    states.push_back(new counted_state(deleted, static_cast<std::uint32_t>(threads)));
    probes[static_cast<std::size_t>(i)].state = states.back();
    probes[static_cast<std::size_t>(i)].owns_ref = true;
  }
  std::vector<int> wrong(static_cast<std::size_t>(threads), 0);
  std::vector<std::thread::id> ids(static_cast<std::size_t>(threads));
  // The two sides pace each other through relaxed counters, which order
  // nothing: whatever the observers see of a result, the state's own
  // operations must have ordered. The setter takes a state only once the
  // first observer has reached it, and that observer cannot run ahead either
  // (it waits for every other state), so the two keep racing on one state.
  std::atomic<int> observer_at{0};
  std::atomic<int> set_before{0};  // states below this one have their result

  detail_test::run_threads(threads, [&](int id) {
    ids[static_cast<std::size_t>(id)] = std::this_thread::get_id();
    int& w = wrong[static_cast<std::size_t>(id)];
    for (int i = 0; i < n; ++i) {
      counted_state* s = states[static_cast<std::size_t>(i)];
      if (id == 0) {
        while (i > observer_at.load(std::memory_order_relaxed)) std::this_thread::yield();
        if (!s->try_set_value(value_of(i))) ++w;
        set_before.store(i + 1, std::memory_order_relaxed);
        if (s->try_set_value(-1)) ++w;
        s->release();
        continue;
      }
      if (id == 1) {
        observer_at.store(i, std::memory_order_relaxed);
        if (i % 2 == 0) {
          if (i % 4 == 2)
            while (set_before.load(std::memory_order_relaxed) <= i) std::this_thread::yield();
          s->attach(&probes[static_cast<std::size_t>(i)]);
          continue;
        }
      }
      s->wait();
      if (!s->ready() || s->get().value() != value_of(i)) ++w;
      s->release();
    }
  });

  CHECK(wrong == std::vector<int>(static_cast<std::size_t>(threads), 0));
  // Each continuation ran once, either on the setter's thread (attached
  // first) or inline on the attaching thread (attached after the result).
  int misfired = 0;
  int on_setter = 0;
  for (int i = 0; i < n; i += 2) {
    const probe& p = probes[static_cast<std::size_t>(i)];
    misfired +=
        p.fired.load() != 1 || p.value != value_of(i) || (p.thread != ids[0] && p.thread != ids[1]);
    on_setter += p.thread == ids[0];
  }
  INFO(on_setter << " of " << (n + 1) / 2 << " continuations ran on the setter's thread");
  CHECK(misfired == 0);
  CHECK(deleted.load() == n);
}
