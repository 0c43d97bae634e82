// courier/future.hpp: one-shot promise/future pairs that chain without blocking.
#pragma once

#include <exception>
#include <type_traits>
#include <utility>

#include "courier/detail/future/continuation_home.hpp"
#include "courier/detail/future/future_access.hpp"
#include "courier/detail/future/future_state.hpp"
#include "courier/errors.hpp"

namespace courier {

/// The eventual result of an ask (or of any promise): a value of type T or an
/// exception. A future has a single consumer: exactly one of get() or then()
/// may be called, once.
///
/// **The central guarantee.** A continuation attached with then() while the
/// calling thread runs inside an actor (in one of its handlers, or in another
/// continuation of that actor) runs later *as a message of that actor*:
/// serialized with its handlers, so it may read and change that actor's State
/// without any lock. If that actor stops first, the continuation does not run
/// and the future then() returned fails with actor_stopped. A continuation
/// attached outside every actor runs on the thread that completes the future
/// (or at once, inside then(), if the future is already complete). Past 64
/// continuations nested on one thread, the next one is queued and runs as
/// soon as the outermost returns, so a chain of any length completes on a
/// bounded stack. Inside a continuation, get() and wait() on a future that is
/// not complete throw would_block.
///
/// Thread safety: distinct objects are safe; a shared object is not. The
/// promise may complete on any thread.
template <class T>
class future {
 public:
  using value_type = T;

  /// An invalid future (valid() is false).
  future() noexcept = default;
  future(future&&) noexcept = default;
  future& operator=(future&&) noexcept = default;
  future(const future&) = delete;
  future& operator=(const future&) = delete;

  /// Whether this future still refers to a result (not default-constructed,
  /// moved from, or consumed by get() or then()).
  bool valid() const noexcept { return static_cast<bool>(state_); }

  /// Whether the result is already in. Never blocks.
  /// @throws usage_error if !valid().
  bool ready() const;

  /// Blocks until the result is in, then returns the value or throws the
  /// stored exception. Consumes the future.
  /// @throws would_block on a courier pool thread or inside an actor, on a
  /// thread that runs the execution context of the actor an ask's future
  /// awaits (a thread running the user's io_context, say: the reply needs that
  /// very thread), and inside a continuation when the result is not in yet
  /// (where waiting could deadlock; the future stays valid);
  /// usage_error if !valid();
  /// otherwise whatever the asker's handler threw, or actor_stopped,
  /// ask_timeout, broken_promise.
  T get();

  /// Blocks until the result is in, without consuming it.
  /// @throws would_block and usage_error as get() does.
  void wait() const;

  /// Chains `f` to run when the result is in, without blocking any thread,
  /// and returns the future of what `f` returns (a returned `future<U>` is
  /// flattened to `future<U>`). `f` takes either the value (`T`, or nothing for
  /// `future<void>`), in which case an error skips `f` and passes straight to
  /// the returned future, or a `result<T>`, in which case `f` sees errors too.
  /// An exception thrown by `f` fails the returned future. Where `f` runs is
  /// the central guarantee above. Consumes this future.
  /// @throws usage_error if !valid().
  template <class F>
  auto then(F&& f);

  /// As then(), except that `f` always runs on the thread that completes the
  /// future (or at once, if it is complete), even when attached inside an
  /// actor: it is never routed through, nor dropped with, the attaching
  /// actor. For steps of a protocol that must happen whatever becomes of the
  /// actor that started it (a transfer's deposit and refund, say); `f` must
  /// not touch any actor's State. Consumes this future.
  /// @throws usage_error if !valid().
  template <class F>
  auto then_inline(F&& f);

 private:
  friend struct detail::future_access;
  explicit future(detail::ref_ptr<detail::future_state<T>> s) noexcept : state_(std::move(s)) {}
  detail::ref_ptr<detail::future_state<T>> take_state(const char* what);
  void check_may_block() const;
  template <class F>
  auto attach_then(F&& f, detail::continuation_home* home);

  detail::ref_ptr<detail::future_state<T>> state_;
};

/// The producing side of a future. Exactly one result is stored: the first
/// set_* wins. A promise destroyed without a result fails its future with
/// broken_promise.
///
/// Thread safety: distinct objects are safe. set_* and try_set_* may race with
/// the consumer's get() or then() on another thread; two threads must not use
/// the same promise object concurrently.
template <class T>
class promise {
 public:
  /// A promise with a fresh shared state.
  promise();
  promise(promise&&) noexcept = default;
  promise& operator=(promise&& other) noexcept;
  promise(const promise&) = delete;
  promise& operator=(const promise&) = delete;
  ~promise();

  /// The future of this promise. @throws usage_error on a second call or on a
  /// moved-from promise.
  future<T> get_future();

  /// Stores the value (for `promise<void>`, call with no argument).
  /// @throws usage_error if a result was already stored.
  template <class... Args>
  void set_value(Args&&... args);
  /// Stores an exception. @throws usage_error if a result was already stored
  /// or `e` is null.
  void set_exception(std::exception_ptr e);

  /// Non-throwing forms: return false and change nothing if a result was
  /// already stored (or the promise was moved from).
  template <class... Args>
  bool try_set_value(Args&&... args) noexcept;
  bool try_set_exception(std::exception_ptr e) noexcept;
  bool try_set_result(result<T>&& r) noexcept;

 private:
  friend struct detail::future_access;
  // A promise for a state that courier allocated with its own node; the
  // future of that state already exists.
  explicit promise(detail::ref_ptr<detail::future_state<T>> s) noexcept
      : state_(std::move(s)), retrieved_(true) {}

  detail::ref_ptr<detail::future_state<T>> state_;
  bool retrieved_ = false;
};

/// A future that already holds `value`.
template <class T>
future<std::decay_t<T>> make_ready_future(T&& value);
/// A `future<void>` that is already complete.
future<void> make_ready_future();
/// A future that already holds the exception `e` (which must not be null).
template <class T>
future<T> make_failed_future(std::exception_ptr e);

}  // namespace courier

#include "courier/impl/future.hpp"
