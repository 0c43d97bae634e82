// courier/steady_timer.hpp: a waitable timer on an actor's clock.
#pragma once

#include "courier/detail/asio_config.hpp"

#include <asio/any_io_executor.hpp>
#include <asio/associated_executor.hpp>
#include <asio/async_result.hpp>
#include <asio/error.hpp>
#include <asio/execution.hpp>
#include <asio/post.hpp>
#include <asio/prefer.hpp>
#include <chrono>
#include <cstddef>
#include <mutex>
#include <system_error>
#include <type_traits>
#include <typeinfo>
#include <utility>

#include "courier/actor_executor.hpp"
#include "courier/detail/actor/actor_base.hpp"
#include "courier/detail/actor/alarm.hpp"
#include "courier/detail/ref_counted.hpp"
#include "courier/errors.hpp"

namespace courier {

namespace detail {

// The waits of a courier::steady_timer and the alarm they wait on: armed
// while any wait is pending; when it expires every pending wait completes
// with success, when cancelled with operation_aborted.
class timer_waits final : public alarm<ref_counted> {
 public:
  // One async_wait: completes once, or is destroyed unrun, and then deletes
  // itself.
  class wait {
   public:
    virtual void complete(std::error_code ec) noexcept = 0;
    virtual void destroy() noexcept = 0;

   protected:
    wait() = default;
    ~wait() = default;

   private:
    friend class timer_waits;
    wait* next_ = nullptr;
  };

  explicit timer_waits(ref_ptr<actor_base> home) : alarm(std::move(home)) {}

  steady_time expiry() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return expiry_;
  }

  // Sets the expiry, cancelling the pending waits; how many there were.
  std::size_t expires_at(steady_time t) {
    std::size_t n = cancel();
    std::lock_guard<std::mutex> lock(mutex_);
    expiry_ = t;
    return n;
  }

  // Adds a wait for the current expiry (at once, if that has passed).
  void add(wait* w) {
    steady_time at;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      w->next_ = nullptr;
      if (last_ != nullptr) {
        last_->next_ = w;
      } else {
        waits_ = w;
      }
      last_ = w;
      at = expiry_;
    }
    arm(at);
  }

  // Completes every pending wait with operation_aborted; how many there were.
  std::size_t cancel() noexcept {
    disarm();
    return complete_all(asio::error::operation_aborted);
  }

 private:
  // An expiry that raced a newer expires_at() (see alarm) finds the new time
  // still ahead, and leaves the waits to the newer arming.
  void expired() noexcept override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (now() < expiry_) return;
    }
    complete_all(std::error_code());
  }

  // The context shut down under the waits: they are destroyed unrun, as
  // Asio destroys the operations of a context that shuts down (a coroutine
  // suspended on one is destroyed with it).
  void abandoned() noexcept override {
    for (wait* w = take_all(); w != nullptr;) {
      wait* next = w->next_;
      w->destroy();
      w = next;
    }
  }

  // In the order they were added, as Asio's timers complete theirs.
  std::size_t complete_all(std::error_code ec) noexcept {
    std::size_t n = 0;
    for (wait* w = take_all(); w != nullptr; ++n) {
      wait* next = w->next_;
      w->complete(ec);
      w = next;
    }
    return n;
  }

  wait* take_all() noexcept {
    std::lock_guard<std::mutex> lock(mutex_);
    last_ = nullptr;
    return std::exchange(waits_, nullptr);
  }

  mutable std::mutex mutex_;
  steady_time expiry_{};
  wait* waits_ = nullptr;  // the first added
  wait* last_ = nullptr;
};

// One async_wait's handler, completed on its associated executor (by default
// the timer's), which counts it as outstanding work until then.
template <class Handler>
class timer_wait final : public timer_waits::wait {
 public:
  timer_wait(Handler h, const asio::any_io_executor& timer_executor)
      : work_(asio::prefer(asio::get_associated_executor(h, timer_executor),
                           asio::execution::outstanding_work.tracked)),
        h_(std::move(h)) {}

  void complete(std::error_code ec) noexcept override {
    try {
      asio::post(work_, [h = std::move(h_), ec]() mutable { std::move(h)(ec); });
    } catch (...) {
      // No memory to queue the completion: the handler is destroyed unrun,
      // as Asio does with the operations of a context that shuts down.
    }
    delete this;
  }

  void destroy() noexcept override { delete this; }

 private:
  ~timer_wait() = default;

  std::decay_t<decltype(asio::prefer(
      std::declval<asio::associated_executor_t<Handler, asio::any_io_executor>>(),
      asio::execution::outstanding_work.tracked))>
      work_;
  Handler h_;
};

}  // namespace detail

/// A waitable timer of an actor, with the interface of `asio::steady_timer`
/// (expires_after(), expires_at(), expiry(), async_wait(), cancel()), on the
/// actor's clock: the steady clock, or the virtual clock of a
/// testing::deterministic_context the actor runs on, so that a coroutine
/// handler's `co_await t.async_wait(asio::use_awaitable)` follows virtual
/// time in tests. Make it from the actor's executor: inside a coroutine
/// handler, `co_await asio::this_coro::executor`; in a plain handler,
/// courier::this_actor_executor().
///
/// async_wait(token) has the completion signature `void(std::error_code)`:
/// success when the expiry time comes, asio::error::operation_aborted when
/// the wait is cancelled (by cancel(), expires_at(), expires_after() or the
/// timer's destruction). The completion runs on the handler's associated
/// executor (inside the actor for a coroutine handler), by default on the
/// timer's executor; that executor counts the wait as outstanding work until
/// it completes. A wait for an expiry that has passed completes at once
/// (through the executor, never inside async_wait()).
///
/// Thread safety: distinct objects are safe; a shared object is not, as for
/// Asio's timers (use it from inside its actor).
class steady_timer {
 public:
  using clock_type = std::chrono::steady_clock;
  using duration = clock_type::duration;
  using time_point = clock_type::time_point;
  using executor_type = asio::any_io_executor;

  /// A timer of the actor whose executor `ex` is (an actor_executor, or an
  /// any_io_executor holding one), with an expiry of now.
  /// @throws usage_error when `ex` is not an actor's executor.
  explicit steady_timer(const asio::any_io_executor& ex) : ex_(ex), waits_(make(ex)) {
    waits_->expires_at(waits_->now());
  }
  explicit steady_timer(const actor_executor& ex) : steady_timer(asio::any_io_executor(ex)) {}

  /// As above, with an expiry `d` from now.
  steady_timer(const asio::any_io_executor& ex, duration d) : steady_timer(ex) { expires_after(d); }

  steady_timer(const steady_timer&) = delete;
  steady_timer& operator=(const steady_timer&) = delete;

  /// Cancels every pending wait.
  ~steady_timer() {
    if (waits_) waits_->cancel();
  }

  executor_type get_executor() const noexcept { return ex_; }

  /// The expiry time, on the actor's clock.
  time_point expiry() const { return waits_->expiry(); }

  /// Sets the expiry time, cancelling the pending waits; returns how many
  /// were cancelled.
  std::size_t expires_at(time_point t) { return waits_->expires_at(t); }

  /// Sets the expiry time to `d` from now on the actor's clock, cancelling
  /// the pending waits; returns how many were cancelled. A duration too long
  /// for the clock waits as long as it can.
  std::size_t expires_after(duration d) {
    return waits_->expires_at(detail::saturated_add(waits_->now(), d));
  }

  /// Cancels the pending waits (they complete with operation_aborted);
  /// returns how many there were.
  std::size_t cancel() { return waits_->cancel(); }

  /// Waits for the expiry time; see the class comment.
  template <class WaitToken>
  auto async_wait(WaitToken&& token) {
    return asio::async_initiate<WaitToken, void(std::error_code)>(
        [](auto&& handler, steady_timer* self) {
          using handler_type = std::decay_t<decltype(handler)>;
          self->waits_->add(new detail::timer_wait<handler_type>(
              std::forward<decltype(handler)>(handler), self->ex_));
        },
        token, this);
  }

 private:
  static detail::ref_ptr<detail::timer_waits> make(const asio::any_io_executor& ex) {
    // Asio 1.22's target<T>() does not check the type itself.
    const actor_executor* a =
        ex.target_type() == typeid(actor_executor) ? ex.target<actor_executor>() : nullptr;
    if (a == nullptr) throw usage_error("courier::steady_timer needs an actor's executor");
    return detail::ref_ptr<detail::timer_waits>::adopt(new detail::timer_waits(
        detail::ref_ptr<detail::actor_base>::share(&detail::actor_executor_access::actor_of(*a))));
  }

  asio::any_io_executor ex_;
  detail::ref_ptr<detail::timer_waits> waits_;
};

}  // namespace courier
