// Asio per-operation cancellation of async_ask: cancelled while its message
// is still queued, the message is skipped and the operation completes with
// asio::error::operation_aborted.
#pragma once

#include "courier/detail/asio_config.hpp"

#include <asio/cancellation_signal.hpp>
#include <asio/cancellation_type.hpp>
#include <asio/error.hpp>
#include <exception>
#include <mutex>
#include <optional>
#include <system_error>
#include <utility>

#include "courier/detail/actor/ask_deadline.hpp"
#include "courier/detail/recycled.hpp"
#include "courier/detail/ref_counted.hpp"
#include "courier/result.hpp"

namespace courier::detail {

// What an async_ask that can be cancelled shares between its reply and its
// cancellation slot: the claim its message's node holds, and the completion
// `Finish` (called once with a result<R>), which whichever of the reply and
// a cancellation that finds the message unrun takes.
template <class R, class Finish>
class cancellable_ask final : public run_claim, public recycled {
 public:
  explicit cancellable_ask(Finish f) : finish_(std::move(f)) {}

  void reply(result<R>&& r) noexcept {
    if (std::optional<Finish> f = take()) (*f)(std::move(r));
  }

  // From the cancellation slot, for any kind of cancellation: only a message
  // that has not started can be withdrawn without a trace.
  void cancel() noexcept {
    if (!try_cancel()) return;
    if (std::optional<Finish> f = take()) {
      (*f)(result<R>::failure(
          std::make_exception_ptr(std::system_error(asio::error::operation_aborted))));
    }
  }

 private:
  std::optional<Finish> take() noexcept {
    std::lock_guard<std::mutex> lock(mutex_);
    std::optional<Finish> f = std::move(finish_);
    finish_.reset();
    return f;
  }

  std::mutex mutex_;
  std::optional<Finish> finish_;
};

// The handler installed in the cancellation slot. It stays there after the
// operation completes (a later emit finds the message started and does
// nothing) rather than being cleared by the completion: the user may emit
// from another thread than the one the completion runs on, and a slot is not
// safe for concurrent use. The slot's next emplace, or its signal's end,
// destroys it.
template <class Ask>
class ask_canceller {
 public:
  explicit ask_canceller(ref_ptr<Ask> ask) noexcept : ask_(std::move(ask)) {}
  void operator()(asio::cancellation_type) noexcept { ask_->cancel(); }

 private:
  ref_ptr<Ask> ask_;
};

}  // namespace courier::detail
