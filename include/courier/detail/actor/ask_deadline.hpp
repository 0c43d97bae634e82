// The deadline of an ask: a timer racing the reply.
#pragma once

#include "courier/detail/asio_config.hpp"

#include <asio/basic_waitable_timer.hpp>
#include <asio/wait_traits.hpp>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <mutex>
#include <optional>
#include <system_error>
#include <type_traits>
#include <utility>

#include "courier/detail/actor/actor_base.hpp"
#include "courier/detail/executor/basic_executor.hpp"
#include "courier/detail/future/future_state.hpp"
#include "courier/detail/ref_counted.hpp"
#include "courier/errors.hpp"
#include "courier/result.hpp"

namespace courier::detail {

// A timeout as the steady clock counts it, saturated: a timeout too long to
// represent (hours::max(), say) waits as long as the clock can, instead of
// overflowing.
template <class Rep, class Period>
std::chrono::steady_clock::duration saturated(std::chrono::duration<Rep, Period> d) noexcept {
  using clock_duration = std::chrono::steady_clock::duration;
  using given = std::chrono::duration<Rep, Period>;
  if (d <= given::zero()) return clock_duration::zero();
  // Converting the clock's maximum to the coarser or floating type cannot
  // overflow; converting a larger `d` the other way would.
  if (d >= std::chrono::duration_cast<given>(clock_duration::max())) return clock_duration::max();
  return std::chrono::duration_cast<clock_duration>(d);
}

// The executor of an ask's deadline timer: whatever runs on it runs at once,
// on the thread that completes the wait (Asio's timer thread for a courier
// pool, a thread running the user's io_context), so a deadline fails its
// future on time even while every worker is busy in long handlers. Only that
// timer uses it. Tracked copies count as work on the actor's context, so a
// graceful close still waits for a pending deadline.
class deadline_executor : public basic_executor<deadline_executor, actor_base> {
 public:
  explicit deadline_executor(ref_ptr<actor_base> home) noexcept
      : basic_executor(std::move(home), true, false) {}

  template <class F>
  static void submit(actor_base&, bool, std::uint32_t, F&& f) {
    std::decay_t<F> local(std::forward<F>(f));
    local();
  }

 private:
  friend class basic_executor<deadline_executor, actor_base>;
  deadline_executor(ref_ptr<actor_base> home, bool possibly, bool tracked, std::uint32_t) noexcept
      : basic_executor(std::move(home), possibly, tracked) {}
};

// Which comes first for an ask with a deadline: its handler starting, or the
// deadline passing while the message is still queued (the message is then
// skipped). The asked message's node holds it.
class run_claim : public ref_counted {
 public:
  // By the node about to run the handler: false when the ask expired.
  bool try_start() noexcept { return claim(started); }
  // By the deadline: true when the handler has not started and never will.
  bool try_expire() noexcept { return claim(expired); }

 protected:
  run_claim() noexcept = default;
  ~run_claim() override = default;

 private:
  static constexpr std::uint8_t queued = 0;
  static constexpr std::uint8_t started = 1;
  static constexpr std::uint8_t expired = 2;
  bool claim(std::uint8_t to) noexcept {
    std::uint8_t from = queued;
    return phase_.compare_exchange_strong(from, to, std::memory_order_acq_rel);
  }
  std::atomic<std::uint8_t> phase_{queued};
};

// The timer behind an ask with a deadline. Whichever of the reply and the
// timer comes first takes `out` and completes it; the other finds it gone.
// The timer fails it with ask_expired when the handler had not started (and
// now never will), with ask_timeout otherwise.
// It keeps the actor (and so its execution context) alive. The timer is made
// and touched only while the context is open: making the first timer of a
// context creates Asio's timer service and reactor in it, which must not
// race the context's shutdown.
template <class R>
class ask_deadline final : public run_claim {
 public:
  ask_deadline(ref_ptr<actor_base> home, ref_ptr<future_state<R>> out)
      : home_(std::move(home)), out_(std::move(out)) {}

  static void start(const ref_ptr<ask_deadline>& self,
                    std::chrono::steady_clock::duration timeout) {
    std::lock_guard<std::mutex> lock(self->mutex_);
    auto arm = [&] {
      self->timer_.emplace(deadline_executor(self->home_));
      // Asio adds `timeout` to the clock's now() with saturation.
      self->timer_->expires_after(timeout);
      self->timer_->async_wait([self](const std::error_code& ec) {
        if (ec) return;
        if (auto out = self->take()) {
          out->try_set_exception(self->try_expire() ? std::make_exception_ptr(ask_expired())
                                                    : std::make_exception_ptr(ask_timeout()));
        }
      });
    };
    run_if_open(*self->home_, arm);
  }

  void reply(result<R>&& r) noexcept {
    ref_ptr<future_state<R>> out = take();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto cancel = [this] {
        if (timer_) timer_->cancel();
      };
      run_if_open(*home_, cancel);
    }
    if (out) out->try_set_result(std::move(r));
  }

 private:
  ref_ptr<future_state<R>> take() noexcept {
    std::lock_guard<std::mutex> lock(out_mutex_);
    return std::move(out_);
  }

  ref_ptr<actor_base> home_;
  // Asio timers are not safe for concurrent use; mutex_ serializes the
  // asking thread's async_wait with the replying thread's cancel.
  std::mutex mutex_;
  using timer_type =
      asio::basic_waitable_timer<std::chrono::steady_clock,
                                 asio::wait_traits<std::chrono::steady_clock>, deadline_executor>;
  std::optional<timer_type> timer_;
  std::mutex out_mutex_;
  ref_ptr<future_state<R>> out_;
};

}  // namespace courier::detail
