// courier/testing.hpp: a deterministic execution context for testing actors
// under reproducible interleavings.
#pragma once

#include "courier/detail/asio_config.hpp"

#include <asio/execution.hpp>
#include <asio/execution_context.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <type_traits>
#include <utility>
#include <vector>

#include "courier/detail/scheduler/asio_internals.hpp"
#include "courier/detail/scheduler/virtual_clock.hpp"
#include "courier/detail/splitmix64.hpp"
#include "courier/detail/this_thread.hpp"

namespace courier::testing {

/// An Asio execution context that runs its ready handlers one at a time, on
/// the thread that calls run(), choosing the next one with a pseudo-random
/// generator seeded at construction. Spawn actors on it (with
/// `spawn_options::batch = 1`, so that each step handles one message) and
/// every interleaving of their messages that the actors allow can be explored;
/// the same seed replays the same interleaving exactly, as long as the test
/// itself is deterministic.
///
/// Handlers may be submitted from any thread; run(), run_one() and poll-style
/// queries are meant for one thread at a time. Handlers still queued when the
/// context is destroyed are destroyed without running, as in Asio, and, as
/// for any Asio context, actors spawned on it must not be used afterwards.
///
/// Time is virtual here. The context has a clock of its own (now(), a
/// `std::chrono::steady_clock::time_point` that starts at the clock's epoch)
/// that moves only when nothing is ready to run: run() and run_one() then
/// jump it to the next due timer, and advance() moves it on. Every timer of
/// an actor spawned on the context (on its executor) follows that clock:
/// tell_after(), tell_every(), the deadlines of ask(m, timeout), and
/// courier::steady_timer waits inside its handlers and coroutines. A test of
/// a 30-second or a 3-hour timeout therefore runs at once, and replays
/// exactly by seed: timers due at the same moment fire in the order they
/// were set. Asio's own timers (`asio::steady_timer`, `asio::system_timer`,
/// `asio::deadline_timer`) keep wall-clock time even here: Asio waits for
/// them on an internal thread of its own, so their expiries arrive at
/// wall-clock moments and cannot be replayed.
///
/// Thread safety: distinct objects are safe; a shared object is safe for
/// get_executor(), now() and for submitting work; run(), run_one(),
/// run_for(), run_until() and advance() must not be called concurrently.
class deterministic_context : public asio::execution_context {
 public:
  class executor_type;

  /// A context whose choices follow `seed`.
  explicit deterministic_context(std::uint64_t seed) noexcept : seed_(seed), random_(seed) {}

  deterministic_context(const deterministic_context&) = delete;
  deterministic_context& operator=(const deterministic_context&) = delete;

  ~deterministic_context() {
    // First stop the thread on which Asio runs this context's timers, so that
    // no completion (an ask's deadline, say) arrives once the queue has been
    // emptied; then destroy what is queued while the services that its
    // handlers may refer to (a timer's) still exist; then shut them down,
    // which may queue more, and destroy that too.
    // Timers still set on the virtual clock are dropped with the rest, in
    // rounds: dropping one may destroy an actor, which may queue more.
    detail::stop_reactor_thread(*this);
    while (clock_.drop_all() | destroy_ready()) {
    }
    shutdown();
    while (clock_.drop_all() | destroy_ready()) {
    }
    destroy();
  }

  executor_type get_executor() noexcept;

  /// A point in the context's virtual time.
  using time_point = std::chrono::steady_clock::time_point;
  using duration = std::chrono::steady_clock::duration;

  /// Runs one ready handler, chosen by the generator. When none is ready,
  /// first moves the clock to the next due timer and fires it (and the next,
  /// until one makes a handler ready). Returns false if no handler was
  /// ready and no timer is set.
  bool run_one() { return run_one_until(time_point::max()); }

  /// Runs handlers, moving the clock as run_one() does, until none is ready
  /// and no timer is set, or `limit` handlers have run. Returns how many ran.
  /// A tell_every() timer is always set: stop it, or use run_for().
  std::size_t run(std::size_t limit = static_cast<std::size_t>(-1)) {
    std::size_t n = 0;
    while (n < limit && run_one()) ++n;
    return n;
  }

  /// As run(), but moving the clock no further than `t`; when no handler is
  /// ready and no timer is due by then, the clock is set to `t` (if it is not
  /// past it already). Returns how many handlers ran.
  std::size_t run_until(time_point t) {
    std::size_t n = 0;
    while (run_one_until(t)) ++n;
    clock_.advance_to(t);
    return n;
  }

  /// run_until(now() + d).
  std::size_t run_for(duration d) { return run_until(now() + d); }

  /// Moves the clock forward by `d`, firing every timer due by then, in
  /// order of due time, at its due time; runs no handler (what the timers
  /// send waits for run()).
  void advance(duration d) {
    const time_point to = now() + d;
    while (clock_.fire_next(to)) {
    }
    clock_.advance_to(to);
  }

  /// The context's virtual time.
  time_point now() const { return clock_.now(); }

  /// How many handlers are ready to run.
  std::size_t ready() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return ready_.size();
  }

  /// The seed this context was made with.
  std::uint64_t seed() const noexcept { return seed_; }

 private:
  struct handler {
    virtual ~handler() = default;
    virtual void invoke() = 0;
  };
  template <class F>
  struct handler_of final : handler {
    explicit handler_of(F f) : f_(std::move(f)) {}
    void invoke() override { f_(); }
    F f_;
  };

  class running_scope {
   public:
    explicit running_scope(const deterministic_context* c) noexcept
        : saved_(detail::this_thread.deterministic) {
      detail::this_thread.deterministic = c;
    }
    ~running_scope() { detail::this_thread.deterministic = saved_; }
    running_scope(const running_scope&) = delete;
    running_scope& operator=(const running_scope&) = delete;

   private:
    const void* saved_;
  };

  bool run_one_until(time_point limit) {
    std::unique_ptr<handler> h;
    for (;;) {
      {
        std::lock_guard<std::mutex> lock(mutex_);
        if (!ready_.empty()) {
          const std::size_t i = static_cast<std::size_t>(next_random() % ready_.size());
          std::swap(ready_[i], ready_.back());
          h = std::move(ready_.back());
          ready_.pop_back();
          break;
        }
      }
      if (!clock_.fire_next(limit)) return false;
    }
    running_scope scope(this);
    h->invoke();
    return true;
  }

  // Destroying a handler may submit more (an abandoned actor fails its
  // asks, whose continuations may send); keep going until none is left.
  // Whether there was any.
  bool destroy_ready() noexcept {
    bool any = false;
    for (;;) {
      std::unique_ptr<handler> h;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        if (ready_.empty()) return any;
        h = std::move(ready_.back());
        ready_.pop_back();
      }
      any = true;
    }
  }

  template <class F>
  void submit(F&& f) {
    auto h = std::make_unique<handler_of<std::decay_t<F>>>(std::forward<F>(f));
    std::lock_guard<std::mutex> lock(mutex_);
    ready_.push_back(std::move(h));
  }

  std::uint64_t next_random() noexcept { return random_(); }

  const std::uint64_t seed_;
  detail::virtual_clock clock_;
  detail::splitmix64 random_;
  mutable std::mutex mutex_;
  std::vector<std::unique_ptr<handler>> ready_;
};

/// The executor of a deterministic_context: execute() always queues.
///
/// Thread safety: as for the context's submitting members.
class deterministic_context::executor_type {
 public:
  template <class F>
  void execute(F&& f) const {
    ctx_->submit(std::forward<F>(f));
  }

  asio::execution_context& query(asio::execution::context_t) const noexcept { return *ctx_; }
  static constexpr asio::execution::blocking_t query(asio::execution::blocking_t) noexcept {
    return asio::execution::blocking.never;
  }
  executor_type require(asio::execution::blocking_t::never_t) const noexcept { return *this; }

  /// The context's virtual clock, for the timers of actors spawned on it.
  detail::virtual_clock* query(detail::virtual_time_t) const noexcept { return &ctx_->clock_; }

  /// Whether the calling thread is running a handler of this context.
  bool running_in_this_thread() const noexcept { return detail::this_thread.deterministic == ctx_; }

  friend bool operator==(const executor_type& a, const executor_type& b) noexcept {
    return a.ctx_ == b.ctx_;
  }
  friend bool operator!=(const executor_type& a, const executor_type& b) noexcept {
    return a.ctx_ != b.ctx_;
  }

 private:
  friend class deterministic_context;
  explicit executor_type(deterministic_context* c) noexcept : ctx_(c) {}
  deterministic_context* ctx_;
};

inline deterministic_context::executor_type deterministic_context::get_executor() noexcept {
  return executor_type(this);
}

}  // namespace courier::testing
