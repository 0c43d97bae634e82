// courier/timer.hpp: the handle of a timer that sends messages to an actor.
#pragma once

#include <utility>

#include "courier/detail/actor/message_timer.hpp"
#include "courier/detail/ref_counted.hpp"

namespace courier {

namespace detail {
struct timer_access;
}  // namespace detail

/// A timer of an actor, made by actor::tell_after() (one message after a
/// delay) or actor::tell_every() (one message every period). The timer ends
/// when it is cancelled, when this handle is destroyed or assigned over, or
/// when its actor stops; a restart of the actor keeps it. After cancel()
/// returns, the actor handles none of its messages that has not already
/// started, and the timer sends no more. A default-constructed or moved-from
/// handle refers to no timer.
///
/// Timers cost no thread (they wait on the actor's execution context, as
/// Asio timers do, on Asio's timer thread for a courier::thread_pool) and
/// allocate nothing when they fire: each timer is made with room for its
/// message and the wait, once, and its message is queued past the mailbox's
/// bound, never held up or refused. A repeating timer whose previous message
/// is still queued (or whose coroutine handler is still running) when it
/// fires sends nothing that time: a slow actor receives fewer messages, never
/// a growing backlog.
///
/// Destroy timers of an actor on a user's execution context before
/// destroying that context, as for any Asio timer.
///
/// Thread safety: cancel() may be called from any thread, concurrently with
/// itself, and is idempotent; the other members are not safe to call
/// concurrently on one handle.
class [[nodiscard]] timer {
 public:
  /// A handle that refers to no timer.
  timer() noexcept = default;

  timer(timer&& o) noexcept = default;
  /// Cancels the timer this handle referred to, then takes `o`'s.
  timer& operator=(timer&& o) noexcept {
    if (this != &o) {
      cancel();
      control_ = std::move(o.control_);
    }
    return *this;
  }
  timer(const timer&) = delete;
  timer& operator=(const timer&) = delete;

  /// Cancels the timer.
  ~timer() { cancel(); }

  /// Ends the timer (see the class comment). Does nothing on a handle that
  /// refers to no timer, or to one that has ended.
  void cancel() const noexcept {
    if (control_) control_->cancel();
  }

  /// Whether the handle refers to a timer (ended or not).
  explicit operator bool() const noexcept { return static_cast<bool>(control_); }

 private:
  friend struct detail::timer_access;
  explicit timer(detail::ref_ptr<detail::timer_control> c) noexcept : control_(std::move(c)) {}

  detail::ref_ptr<detail::timer_control> control_;
};

namespace detail {
struct timer_access {
  static timer make(ref_ptr<timer_control> c) noexcept { return timer(std::move(c)); }
};
}  // namespace detail

}  // namespace courier
