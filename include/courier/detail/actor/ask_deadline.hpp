// The deadline of an ask: an alarm racing the reply.
#pragma once

#include "courier/detail/asio_config.hpp"

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
#include "courier/detail/actor/alarm.hpp"
#include "courier/detail/future/future_state.hpp"
#include "courier/detail/ref_counted.hpp"
#include "courier/errors.hpp"
#include "courier/result.hpp"

namespace courier::detail {

// Which comes first for an ask that may be skipped: its handler starting,
// or, while the message is still queued, its deadline passing or its asker
// cancelling it (the message is then skipped). The asked message's node
// holds it.
class run_claim : public ref_counted {
 public:
  // By the node about to run the handler: false when the ask expired or was
  // cancelled.
  bool try_start() noexcept { return claim(phase_started); }
  // By the deadline: true when the handler has not started and never will.
  bool try_expire() noexcept { return claim(phase_expired); }
  // By the asker: as try_expire().
  bool try_cancel() noexcept { return claim(phase_cancelled); }
  // Whether try_cancel() won (read by the node after try_start() lost).
  bool cancelled() const noexcept {
    return phase_.load(std::memory_order_acquire) == phase_cancelled;
  }

 protected:
  run_claim() noexcept = default;
  ~run_claim() override = default;

 private:
  static constexpr std::uint8_t phase_queued = 0;
  static constexpr std::uint8_t phase_started = 1;
  static constexpr std::uint8_t phase_expired = 2;
  static constexpr std::uint8_t phase_cancelled = 3;
  bool claim(std::uint8_t to) noexcept {
    std::uint8_t from = phase_queued;
    return phase_.compare_exchange_strong(from, to, std::memory_order_acq_rel);
  }
  std::atomic<std::uint8_t> phase_{phase_queued};
};

// The deadline of an ask. Whichever of the reply and the expiry comes first
// takes `out` and completes it; the other finds it gone. The expiry fails it
// with ask_expired when the handler had not started (and now never will),
// with ask_timeout otherwise.
template <class R>
class ask_deadline final : public alarm<run_claim> {
 public:
  ask_deadline(ref_ptr<actor_base> home, ref_ptr<future_state<R>> out)
      : alarm(std::move(home)), out_(std::move(out)) {}

  void start(std::chrono::steady_clock::duration timeout) { arm(saturated_add(now(), timeout)); }

  void reply(result<R>&& r) noexcept {
    ref_ptr<future_state<R>> out = take();
    disarm();
    if (out) out->try_set_result(std::move(r));
  }

 private:
  void expired() noexcept override {
    if (ref_ptr<future_state<R>> out = take()) {
      out->try_set_exception(try_expire() ? std::make_exception_ptr(ask_expired())
                                          : std::make_exception_ptr(ask_timeout()));
    }
  }

  ref_ptr<future_state<R>> take() noexcept {
    std::lock_guard<std::mutex> lock(out_mutex_);
    return std::move(out_);
  }

  std::mutex out_mutex_;
  ref_ptr<future_state<R>> out_;
};

}  // namespace courier::detail
