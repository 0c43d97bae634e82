// The timer behind actor::tell_after() and actor::tell_every(): an alarm
// that sends one message to its actor, once or at every period, as a node it
// reuses.
#pragma once

#include <atomic>
#include <chrono>
#include <exception>
#include <optional>
#include <type_traits>
#include <utility>

#include "courier/detail/actor/actor_base.hpp"
#include "courier/detail/actor/actor_timers.hpp"
#include "courier/detail/actor/alarm.hpp"
#include "courier/detail/actor/coroutine_turn.hpp"
#include "courier/detail/future/continuation_home.hpp"
#include "courier/detail/ref_counted.hpp"
#include "courier/result.hpp"
#include "courier/supervision.hpp"

namespace courier::detail {

// What a courier::timer holds.
class timer_control : public ref_counted {
 public:
  // Ends the timer: it sends nothing more, and a message it queued that has
  // not started is dropped. Idempotent, from any thread.
  virtual void cancel() noexcept = 0;

 protected:
  timer_control() noexcept = default;
  ~timer_control() override = default;
};

// A timer that tells `M` to the actor of type `Core`: once `delay` after
// start() when `period` is zero, otherwise every `period` after that. The
// timer is its own message node: it is queued at most once at a time (an
// expiry that finds it still queued, or its coroutine handler still
// running, sends nothing), so it allocates nothing per expiry. Repeating, it
// keeps its rate (each expiry is a whole number of periods after the first),
// skipping the expiries it missed.
//
// References: the courier::timer handle's, the alarm's while armed, and the
// node's while queued or running. Listed in the actor's timers while it may
// still send, so that the actor's stop ends it.
template <class Core, class M>
class message_timer final : public alarm<timer_control>, public timer_link, public mailbox_node {
 public:
  template <class A>
  message_timer(ref_ptr<actor_base> home, A&& m, std::chrono::steady_clock::duration period)
      : alarm(std::move(home)), msg_(std::forward<A>(m)), period_(period) {}

  void start(std::chrono::steady_clock::duration delay) {
    due_ = saturated_add(now(), delay);
    if (!home().timers().add(*this)) {
      cancelled_.store(true, std::memory_order_release);
      return;
    }
    try {
      arm(due_);
    } catch (...) {
      home().timers().remove(*this);
      throw;
    }
  }

  // Always withdraws from the list, even when already cancelled: if the
  // actor's stop is ending this timer right now, remove() waits for it to
  // finish before the caller may drop the last reference.
  void cancel() noexcept override {
    const bool first = !cancelled_.exchange(true, std::memory_order_acq_rel);
    home().timers().remove(*this);
    if (first) disarm();
  }

  void actor_stopped() noexcept override {
    cancelled_.store(true, std::memory_order_release);
    disarm();
  }

  // --- as the message's node -------------------------------------------------
  void run(continuation_home& owner) noexcept override {
    auto& core = static_cast<Core&>(owner);
    if (cancelled_.load(std::memory_order_acquire)) {
      turn_over();
      return;
    }
    bool handed_over = false;
    try {
      if constexpr (std::is_copy_constructible_v<M>) {
        if (period_ != period_.zero()) {
          current_.emplace(msg_);
        } else {
          current_.emplace(std::move(msg_));
        }
      } else {
        current_.emplace(std::move(msg_));  // once: tell_every() needs a copyable message
      }
      core.before_handler();
      core.handle_told(std::move(*current_),
                       [&](auto&& make) { start_turn_with(core, *this, make, handed_over); });
    } catch (...) {
      core.fail(std::current_exception(), failure_kind::tell);
    }
    if (!handed_over) turn_over();
  }

  void abandon() noexcept override { turn_over(); }

  // --- as the message of a coroutine turn (see message_turn) -------------------
  void turn_failed(Core& core, std::exception_ptr e) noexcept {
    core.fail(std::move(e), failure_kind::tell);
  }
  template <class R>
  void answer(result<R>&&) noexcept {}
  void answer_stopped() noexcept {}
  void turn_over() noexcept {
    current_.reset();
    queued_.store(false, std::memory_order_release);
    release();
  }

 private:
  void expired() noexcept override {
    if (cancelled_.load(std::memory_order_acquire)) return;
    if (!queued_.exchange(true, std::memory_order_acq_rel)) {
      add_ref();
      home().post(this);
    }
    if (period_ == period_.zero()) {
      home().timers().remove(*this);
      return;
    }
    // The next expiry: a whole number of periods on, past now.
    const steady_time at = now();
    due_ = saturated_add(due_, period_);
    if (due_ <= at && due_ != steady_time::max()) {
      const auto missed = (at - due_) / period_ + 1;
      due_ = saturated_add(due_, missed * period_);
    }
    try {
      arm(due_);
    } catch (...) {
      // Out of memory for the wait: the timer stops sending.
    }
    // A cancel() or stop that found nothing armed while this expiry was on
    // its way: both set the flag before they disarm, under the alarm's lock
    // as arm() is, so one of the two sees the other.
    if (cancelled_.load(std::memory_order_acquire)) disarm();
  }

  M msg_;
  std::optional<M> current_;  // the message its handler is running with
  const std::chrono::steady_clock::duration period_;
  steady_time due_{};                   // by start() and then expired() only
  std::atomic<bool> cancelled_{false};  // by cancel() or the actor's stop
  std::atomic<bool> queued_{false};     // queued, or its handler running
};

}  // namespace courier::detail
