// courier/actor.hpp: actor handles, and spawn() which creates actors.
#pragma once

#include "courier/detail/asio_config.hpp"

#include <asio/awaitable.hpp>
#include <asio/cancellation_signal.hpp>
#include <chrono>
#include <cstddef>
#include <type_traits>
#include <utility>

#include "courier/actor_executor.hpp"
#include "courier/detail/actor/actor_core.hpp"
#include "courier/detail/actor/coroutine_thread.hpp"
#include "courier/detail/actor/message_traits.hpp"
#include "courier/detail/ref_counted.hpp"
#include "courier/errors.hpp"
#include "courier/future.hpp"
#include "courier/spawn_options.hpp"
#include "courier/supervision.hpp"
#include "courier/thread_pool.hpp"
#include "courier/timer.hpp"

namespace courier {

/// A handle to an actor that exclusively owns a `State` and handles messages
/// of type `Msg` (usually a `std::variant` of message structs) one at a time.
/// `State` is plain C++: for each message type `M` it has a member
/// `R handle(M)`, where `R` is the reply type an ask receives (`void` for
/// tell-only messages; `future<U>` for a reply that is produced later).
///
/// Ordering: if tell(a) or ask(a) happens-before tell(b) or ask(b) on the same
/// actor, handle(a) happens-before handle(b). Nothing is promised between
/// independent senders. A handler never runs concurrently with another
/// handler or continuation of the same actor.
///
/// The actor lives while any handle, executor, queued message or pending
/// continuation refers to it, or until stop(). Its State is destroyed inside
/// the actor once it has stopped and finished the handler it was running.
///
/// Overload: the mailbox holds at most spawn_options::capacity messages
/// (default_mailbox_capacity unless spawned with another value, or with
/// unbounded_mailbox for no bound). When it is full:
/// - try_tell() returns false and sends nothing;
/// - async_tell() and async_ask() wait, without blocking any thread, until
///   there is room;
/// - tell() and ask() called from a thread of your own block until there is
///   room, as a bounded channel's send does;
/// - tell() and ask() called where blocking could deadlock (on a
///   courier::thread_pool worker, inside any actor's handler or continuation,
///   or on a thread that runs the execution context the actor runs on) never
///   block and are never refused: the message is queued past the bound.
/// Continuations and handlers posted to the actor's executor take room too
/// but are always admitted, so a reply or a timer is never held up or lost.
/// A waiting sender is released when the actor has worked its backlog down
/// to half the capacity, or when the actor stops (the message is then
/// dropped, or its ask fails with actor_stopped). Messages are never dropped
/// for lack of room.
///
/// Thread safety: handles are cheap to copy (one atomic increment) and every
/// member may be called from any thread, including from inside the actor's
/// own handlers, on shared or distinct handles.
template <class State, class Msg>
class actor {
 public:
  using state_type = State;
  using message_type = Msg;
  using executor_type = actor_executor;

  /// The reply type of ask(M): the return type of `State::handle(M)`, or `U`
  /// when that returns `future<U>`.
  template <class M>
  using reply_type = typename detail::reply_type_or_void<State, std::remove_cvref_t<M>>::type;

  /// An empty handle; every operation on it throws usage_error.
  actor() noexcept = default;

  /// Sends `m` without waiting for it to be handled. A message sent to a
  /// stopped actor is dropped. A handler exception goes to the failure hook.
  /// Sending a type that is not one of the actor's messages, or that `State`
  /// cannot handle, is a compile error naming the type.
  ///
  /// When the mailbox is full, tell() from a thread of your own blocks until
  /// there is room (or the actor stops); from a pool worker or inside an
  /// actor it queues `m` past the bound instead (see the class comment).
  /// @throws usage_error on an empty handle.
  template <class M>
  void tell(M&& m) const;

  /// As tell(), but never blocks: returns false, sending nothing and leaving
  /// `m` untouched, when the actor has stopped or its mailbox is full, from
  /// any thread. True means the message was queued; a stop racing with it may
  /// still drop it unhandled.
  /// @throws usage_error on an empty handle.
  template <class M>
  bool try_tell(M&& m) const;

  /// tell() as an Asio asynchronous operation with completion signature
  /// `void(std::exception_ptr)`: it completes once `m` is queued, waiting
  /// without blocking any thread while the mailbox is full, as a bounded
  /// channel's asynchronous send does. The error is null on success, and
  /// actor_stopped if the actor stopped before `m` could be queued. Works
  /// with callbacks, `asio::use_awaitable`, `asio::use_future`,
  /// `asio::experimental::deferred` or any other completion token; the
  /// completion runs as async_ask()'s does, never inside async_tell().
  /// Success means queued, as for try_tell(). Operations still waiting are
  /// not ordered with each other or with later sends: to keep a sender's
  /// order, let each complete before sending the next.
  /// @throws usage_error on an empty handle.
  template <class M, class CompletionToken>
  auto async_tell(M&& m, CompletionToken&& token) const;

  /// Sends `m` and returns the future of the reply. The future fails with the
  /// handler's exception if it throws, and with actor_stopped if the actor
  /// stops before handling `m`. Asked on behalf of a coroutine handler that
  /// holds its actor (reentrancy::atomic), by that coroutine or by the
  /// handler of a message it asked, the ask is refused with would_deadlock
  /// when it would close a cycle of actors waiting on each other (nothing is
  /// sent; see the README's coroutine section). A full mailbox is handled as by tell():
  /// blocking on a thread of your own, queued past the bound on a pool
  /// worker or inside an actor.
  /// @throws usage_error on an empty handle.
  template <class M>
  [[gnu::always_inline]] future<reply_type<M>> ask(M&& m) const;

  /// As ask(), with a deadline: if no reply has arrived `timeout` after the
  /// message is queued, the future fails and the late reply is discarded.
  /// With ask_expired when the message was still in the mailbox: it is then
  /// skipped, and its handler never runs. With ask_timeout (of which
  /// ask_expired is a kind) when the handler had started: it may have run,
  /// or still be running. Waiting for room in a full mailbox comes before the
  /// deadline.
  /// A timeout too long for the steady clock waits as long as it can.
  ///
  /// When the deadline passes, the future fails at once on the thread that
  /// runs timers for the actor's execution context (continuations attached
  /// outside every actor run there): on a courier::thread_pool that is Asio's
  /// timer thread, so the deadline is kept even while every worker is busy; on
  /// an Asio execution context such as an io_context it is a thread running
  /// that context, so a deadline cannot fire while no thread runs it.
  /// @throws usage_error on an empty handle.
  template <class M, class Rep, class Period>
  future<reply_type<M>> ask(M&& m, std::chrono::duration<Rep, Period> timeout) const;

  /// ask() as an Asio asynchronous operation with completion signature
  /// `void(std::exception_ptr, R)` (`void(std::exception_ptr)` for a `void`
  /// reply), for callbacks, `asio::use_awaitable`, `asio::use_future`,
  /// `asio::experimental::deferred` or any other completion token. The completion runs on the
  /// handler's associated executor, by default on the executor the actor runs
  /// on (outside the actor); that executor's context counts the operation as
  /// outstanding work until it completes. On failure `R` is value-initialized.
  /// While the mailbox is full the request waits for room as async_tell()
  /// does, blocking no thread.
  ///
  /// Per-operation cancellation: when the handler has a cancellation slot
  /// (`asio::bind_cancellation_slot`, a coroutine's, or one that
  /// `asio::experimental::parallel_group` or awaitable operators give), a
  /// cancellation of any type that arrives while the message is still
  /// queued withdraws it: its handler never runs, and the operation
  /// completes at once with a std::system_error holding
  /// asio::error::operation_aborted. Once the handler has started, a
  /// cancellation has no effect and the operation completes with the reply.
  /// @throws usage_error on an empty handle.
  template <class M, class CompletionToken>
  auto async_ask(M&& m, CompletionToken&& token) const;

  /// Tells `m` to the actor once, `delay` from now on the actor's clock (the
  /// steady clock; the virtual clock of a testing::deterministic_context the
  /// actor runs on), and returns the timer, which must be kept: destroying it
  /// cancels the message (see courier::timer). The message is queued past
  /// the mailbox's bound and handled as a tell() of it would be; a handler
  /// exception goes to the failure hook. A timer made once the actor has
  /// stopped never fires. A delay too long for the clock waits as long as it
  /// can.
  /// @throws usage_error on an empty handle.
  template <class M, class Rep, class Period>
  [[nodiscard]] timer tell_after(std::chrono::duration<Rep, Period> delay, M&& m) const;

  /// Tells a copy of `m` to the actor every `period` on the actor's clock,
  /// the first `period` from now, until the returned timer ends (see
  /// courier::timer: an expiry that finds the previous message still
  /// queued sends nothing, and missed periods are skipped, not made up).
  /// `m` must be copyable.
  /// @throws usage_error on an empty handle, or if `period` is not positive.
  template <class M, class Rep, class Period>
  [[nodiscard]] timer tell_every(std::chrono::duration<Rep, Period> period, M&& m) const;

  /// Stops the actor: the handler running now finishes, queued tells are
  /// dropped, queued and later asks fail with actor_stopped, continuations
  /// attached inside it are dropped (their futures fail with actor_stopped),
  /// its timers end, and its State is destroyed. Idempotent; callable from
  /// inside the actor.
  /// @throws usage_error on an empty handle.
  void stop() const;

  /// Whether the actor has stopped (by stop(), its failure policy, or its
  /// pool shutting down). @throws usage_error on an empty handle.
  bool stopped() const;

  /// How many messages the mailbox holds now, for monitoring: a snapshot that
  /// senders and the actor change as it is taken, counting the places of
  /// senders about to queue and the continuations and executor handlers
  /// queued too. Counted in bounded mailboxes only: an actor spawned with
  /// unbounded_mailbox reports 0.
  /// @throws usage_error on an empty handle.
  std::size_t queued() const;

  /// The actor's mailbox as an Asio executor with strand semantics.
  /// @throws usage_error on an empty handle.
  executor_type get_executor() const;

  /// Whether this handle refers to an actor.
  explicit operator bool() const noexcept { return static_cast<bool>(core_); }

  /// Handles are equal when they refer to the same actor.
  friend bool operator==(const actor& a, const actor& b) noexcept { return a.core_ == b.core_; }

 private:
  using core_type = detail::actor_core<State, Msg>;
  template <class S, class M, class Where>
  friend actor<S, M> spawn(Where&& where, S initial, spawn_options<S> options);

  explicit actor(detail::ref_ptr<core_type> core) noexcept : core_(std::move(core)) {}
  core_type& core() const;
  template <class M, class Complete>
  void start_async_ask(core_type& c, M&& msg, Complete complete,
                       asio::cancellation_slot* slot) const;
  template <class M, class Executor>
  static asio::awaitable<reply_type<M>, Executor> awaited_ask(actor self, M msg);
  template <class M, class Executor>
  void start_awaited_ask(detail::awaitable_frame_base<Executor>* frame, core_type& c,
                         M&& msg) const;
  template <class M>
  future<reply_type<M>> ask_extended(core_type& c, M&& m,
                                     const std::chrono::steady_clock::duration* timeout,
                                     detail::actor_base* origin, std::uint32_t origin_turn) const;

  detail::ref_ptr<core_type> core_;
};

/// Creates an actor owning `initial`, whose messages are handled on `where`:
/// a courier::thread_pool, an Asio execution context such as an
/// `asio::io_context` (run by the caller's threads), or any Asio executor.
/// One allocation per actor. Add one for restart_point::last_good (the kept
/// copy of the State lives apart), and one for each std::function in the
/// options (factory, on_failure) whose callable std::function cannot hold
/// inline (in libstdc++, one larger than 16 bytes or not trivially
/// copyable); with failure_policy::restart and no factory, the kept copy of
/// the initial State is such a callable.
/// @throws usage_error if `where` is a stopped thread_pool, the policy is
/// restart with no factory and `State` is not copyable, the batch is zero,
/// the capacity is above 2^32 - 1, or `restart_from` is
/// restart_point::last_good with a policy other than restart, with a
/// factory, or with a `State` that is not copyable.
template <class State, class Msg, class Where>
actor<State, Msg> spawn(Where&& where, State initial, spawn_options<State> options = {});

/// As above, with a value-initialized State.
template <class State, class Msg, class Where>
actor<State, Msg> spawn(Where&& where) {
  return spawn<State, Msg>(std::forward<Where>(where), State{});
}

}  // namespace courier

#include "courier/impl/actor.hpp"
