// The one place where courier's coroutine handlers reach into Asio's
// internals: the "thread" that runs a stack of asio::awaitable frames, which
// courier launches at a turn's start (instead of asio::co_spawn) and resumes
// from an ask's reply (instead of an Asio completion handler).
#pragma once

#include "courier/detail/asio_config.hpp"

#include <asio/awaitable.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/cancellation_state.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/version.hpp>
#include <exception>
#include <type_traits>
#include <utility>

#include "courier/result.hpp"

// What follows uses members of Asio's awaitable_thread and awaitable_frame
// that are not Asio's public API, as Asio 1.22 (Debian bookworm's) has them.
// A later Asio may change them without a compile error, so it is refused here
// until checked.
#if ASIO_VERSION < 102200 || ASIO_VERSION >= 102300
#error "courier's coroutine handlers are written against Asio 1.22 (see coroutine_thread.hpp)"
#endif

namespace courier::detail {

// The bottom frame of a coroutine thread: a coroutine returning this type is
// the entry point that co_spawn would otherwise make.
template <class Executor>
using coroutine_entry = asio::awaitable<asio::detail::awaitable_thread_entry_point, Executor>;

// The frame a suspended coroutine is waiting in, as the co_await hook of an
// asio::awaitable coroutine passes it (see coroutine_ask.hpp).
template <class Executor>
using awaitable_frame_base = asio::detail::awaitable_frame_base<Executor>;

// Whether a completion token is asio::use_awaitable (of some executor).
template <class Token>
struct is_use_awaitable : std::false_type {};
template <class Executor>
struct is_use_awaitable<asio::use_awaitable_t<Executor>> : std::true_type {
  using executor = Executor;
};

// A stack of asio::awaitable frames and the loop that runs it: Asio's
// awaitable_thread, with that loop made callable. While a coroutine is
// suspended on an ask, the thread lives in the ask's reply; the reply hands
// the result to the waiting frame and runs the stack again, inside the
// actor. Destroyed while it still owns frames (the reply was abandoned),
// it has Asio destroy them through the thread's executor.
//
// Thread safety: none; one owner at a time, as for Asio's.
template <class Executor>
class coroutine_thread : public asio::detail::awaitable_thread<Executor> {
  using base = asio::detail::awaitable_thread<Executor>;

 public:
  // A new thread whose bottom frame is `entry`, running on `ex`, with no
  // cancellation slot.
  coroutine_thread(coroutine_entry<Executor> entry, const Executor& ex)
      : base(std::move(entry), ex, asio::cancellation_slot(), asio::cancellation_state()) {}

  // Takes the stack of the thread `from` (which the suspending frame detached).
  explicit coroutine_thread(base* from) noexcept : base(std::move(*from)) {}

  // Destroys what is left of the stack (its bottom frame, once the
  // coroutine above it has returned), here and now.
  void destroy_stack() noexcept {
    coroutine_entry<Executor> gone(std::move(this->bottom_of_stack_));
  }

  // Runs the new thread until its coroutine suspends or ends.
  void start() { this->launch(); }

  // The frame `top` (the top of this thread's stack, suspended in a hook
  // that detached it) completed with `r`: it takes the result, is popped, and
  // the stack runs from its caller until it suspends again or ends.
  template <class R>
  void complete(asio::detail::awaitable_frame<R, Executor>* top, result<R>&& r) {
    top->attach_thread(this);
    if (!r.has_value()) {
      top->set_except(r.error());
    } else if constexpr (std::is_void_v<R>) {
      top->return_void();
    } else {
      try {
        top->return_value(std::move(r).value());
      } catch (...) {
        top->set_except(std::current_exception());
      }
    }
    top->pop_frame();
    this->pump();
  }
};

}  // namespace courier::detail
