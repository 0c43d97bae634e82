// The deadline of an ask: a timer racing the reply.
#pragma once

#include "courier/detail/asio_config.hpp"

#include <asio/steady_timer.hpp>
#include <exception>
#include <mutex>
#include <system_error>
#include <utility>

#include "courier/detail/actor/actor_base.hpp"
#include "courier/detail/future/future_state.hpp"
#include "courier/detail/ref_counted.hpp"
#include "courier/errors.hpp"
#include "courier/result.hpp"

namespace courier::detail {

// The timer behind an ask with a deadline. Whichever of the reply and the
// timer comes first takes `out` and completes it; the other finds it gone.
// It keeps the actor (and so its execution context) alive, and touches the
// timer only while the context is open.
template <class R>
class ask_deadline final : public ref_counted {
 public:
  ask_deadline(ref_ptr<actor_base> home, ref_ptr<future_state<R>> out)
      : home_(std::move(home)), timer_(home_->context_executor()), out_(std::move(out)) {}

  template <class Duration>
  static void start(const ref_ptr<ask_deadline>& self, Duration timeout) {
    std::lock_guard<std::mutex> lock(self->mutex_);
    auto arm = [&] {
      self->timer_.expires_after(timeout);
      self->timer_.async_wait([self](const std::error_code& ec) {
        if (ec) return;
        if (auto out = self->take()) out->try_set_exception(std::make_exception_ptr(ask_timeout()));
      });
    };
    run_if_open(*self->home_, arm);
  }

  void reply(result<R>&& r) noexcept {
    ref_ptr<future_state<R>> out = take();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto cancel = [this] { timer_.cancel(); };
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
  asio::steady_timer timer_;
  std::mutex out_mutex_;
  ref_ptr<future_state<R>> out_;
};

}  // namespace courier::detail
