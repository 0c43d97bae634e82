// Definitions for courier/actor.hpp.
#pragma once

#include "courier/detail/asio_config.hpp"

#include <asio/associated_cancellation_slot.hpp>
#include <asio/async_result.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/use_awaitable.hpp>
#include <exception>
#include <type_traits>
#include <utility>

#include "courier/detail/actor/actor_on.hpp"
#include "courier/detail/actor/ask_cancellation.hpp"
#include "courier/detail/actor/ask_deadline.hpp"
#include "courier/detail/actor/async_completion.hpp"
#include "courier/detail/actor/coroutine_ask.hpp"
#include "courier/detail/actor/message_nodes.hpp"
#include "courier/detail/actor/message_timer.hpp"
#include "courier/detail/actor/send.hpp"
#include "courier/detail/actor/wait_for_graph.hpp"
#include "courier/detail/future/future_access.hpp"

namespace courier {

template <class State, class Msg>
typename actor<State, Msg>::core_type& actor<State, Msg>::core() const {
  if (!core_) throw usage_error("operation on an empty actor handle");
  return *core_;
}

template <class State, class Msg>
template <class M>
void actor<State, Msg>::tell(M&& m) const {
  using message = std::remove_cvref_t<M>;
  if constexpr (detail::tell_check<message, State, Msg>::ok) {
    core_type& c = core();
    detail::send(c, [&] { return new detail::tell_node<core_type, message>(std::forward<M>(m)); });
  }
}

template <class State, class Msg>
template <class M>
bool actor<State, Msg>::try_tell(M&& m) const {
  using message = std::remove_cvref_t<M>;
  if constexpr (detail::tell_check<message, State, Msg>::ok) {
    core_type& c = core();
    if (c.stopped() || !c.reserve()) return false;
    auto make = [&] { return new detail::tell_node<core_type, message>(std::forward<M>(m)); };
    detail::post_reserved(c, make);
    return true;
  } else {
    return false;
  }
}

template <class State, class Msg>
template <class M, class CompletionToken>
auto actor<State, Msg>::async_tell(M&& m, CompletionToken&& token) const {
  using message = std::remove_cvref_t<M>;
  static_assert(detail::tell_check<message, State, Msg>::ok);
  (void)core();
  return asio::async_initiate<CompletionToken, void(std::exception_ptr)>(
      [](auto&& handler, const actor& self, message msg) {
        core_type& c = self.core();
        auto complete =
            detail::async_completion<void>(std::forward<decltype(handler)>(handler),
                                           detail::ref_ptr<detail::actor_base>::share(&c));
        detail::send_async(
            c, new detail::tell_node<core_type, message>(std::move(msg)),
            [complete = std::move(complete)](bool queued) mutable {
              complete(queued ? result<void>()
                              : result<void>::failure(std::make_exception_ptr(actor_stopped())));
            });
      },
      token, *this, message(std::forward<M>(m)));
}

template <class State, class Msg>
template <class M>
[[gnu::always_inline]] inline auto actor<State, Msg>::ask(M&& m) const -> future<reply_type<M>> {
  using message = std::remove_cvref_t<M>;
  if constexpr (detail::ask_check<message, State, Msg>::ok) {
    using reply = reply_type<M>;
    core_type& c = core();
    if (detail::may_ask_on_behalf()) [[unlikely]]
      return ask_extended(c, std::forward<M>(m), nullptr, nullptr, 0);
    future<reply> f;
    detail::send(c, [&] {
      auto* node = new detail::ask_node<core_type, message, reply>(std::forward<M>(m));
      f = detail::future_access::make(detail::ref_ptr<detail::future_state<reply>>::adopt(node));
      return node;
    });
    if (!detail::blocking_forbidden()) [[unlikely]]
      detail::mark_reply_if_own_context(c, detail::future_access::state_of(f));
    return f;
  } else {
    return {};
  }
}

template <class State, class Msg>
template <class M, class Rep, class Period>
auto actor<State, Msg>::ask(M&& m, std::chrono::duration<Rep, Period> timeout) const
    -> future<reply_type<M>> {
  using message = std::remove_cvref_t<M>;
  if constexpr (detail::ask_check<message, State, Msg>::ok) {
    core_type& c = core();
    const std::chrono::steady_clock::duration limit = detail::saturated(timeout);
    std::uint32_t origin_turn = 0;
    detail::actor_base* origin = detail::asking_origin(origin_turn);
    return ask_extended(c, std::forward<M>(m), &limit, origin, origin_turn);
  } else {
    return {};
  }
}

// Out of the plain ask's line: an ask with a deadline, or on behalf of a
// held coroutine turn.
template <class State, class Msg>
template <class M>
[[gnu::noinline]] auto actor<State, Msg>::ask_extended(
    core_type& c, M&& m, const std::chrono::steady_clock::duration* timeout,
    detail::actor_base* origin, std::uint32_t origin_turn) const -> future<reply_type<M>> {
  using message = std::remove_cvref_t<M>;
  using reply = reply_type<M>;
  // From ask(m): find the turn here, out of that ask's line.
  if (timeout == nullptr && origin == nullptr) {
    origin = detail::asking_origin(origin_turn);
    if (origin == nullptr) {
      future<reply> f;
      detail::send(c, [&] {
        auto* node = new detail::ask_node<core_type, message, reply>(std::forward<M>(m));
        f = detail::future_access::make(detail::ref_ptr<detail::future_state<reply>>::adopt(node));
        return node;
      });
      return f;
    }
  }
  // Asked on behalf of a held turn: the wait goes into the wait-for graph
  // until the reply comes, or the ask is refused if it would close a cycle.
  if (origin != nullptr && !detail::wait_for_graph::global().try_wait(*origin, origin_turn, c))
    return make_failed_future<reply>(std::make_exception_ptr(would_deadlock()));
  auto out = detail::ref_ptr<detail::future_state<reply>>::adopt(new detail::future_state<reply>());
  if (!detail::blocking_forbidden()) [[unlikely]]
    detail::mark_reply_if_own_context(c, *out);
  future<reply> f = detail::future_access::make(out);
  // With a deadline, whichever of the reply and the deadline comes first
  // answers `out`; the node holds the deadline's claim, so that a message
  // still queued when the deadline passes is skipped (ask_expired).
  detail::ref_ptr<detail::ask_deadline<reply>> deadline;
  if (timeout != nullptr) {
    deadline = detail::ref_ptr<detail::ask_deadline<reply>>::adopt(
        new detail::ask_deadline<reply>(detail::ref_ptr<detail::actor_base>::share(&c), out));
  }
  detail::ask_extra extra{detail::ref_ptr<detail::run_claim>::share(deadline.get()),
                          {detail::ref_ptr<detail::actor_base>::share(origin), origin_turn}};
  future<reply> inner;
  try {
    detail::send(c, [&] {
      auto* node = new detail::ask_node<core_type, message, reply, true>(std::forward<M>(m),
                                                                         std::move(extra));
      inner =
          detail::future_access::make(detail::ref_ptr<detail::future_state<reply>>::adopt(node));
      return node;
    });
  } catch (...) {
    if (origin != nullptr) detail::wait_for_graph::global().done(*origin, origin_turn, c);
    throw;
  }
  detail::on_result(
      std::move(inner),
      [deadline, out, origin = detail::ref_ptr<detail::actor_base>::share(origin), origin_turn,
       target = detail::ref_ptr<detail::actor_base>::share(&c)](result<reply>&& r) mutable {
        if (origin) detail::wait_for_graph::global().done(*origin, origin_turn, *target);
        if (deadline) {
          deadline->reply(std::move(r));
        } else {
          out->try_set_result(std::move(r));
        }
      });
  // Once the reply has somewhere to go. A deadline that cannot be set (out
  // of memory) fails the ask with that error; the message is already sent.
  if (deadline && !c.stopped()) {
    try {
      deadline->start(*timeout);
    } catch (...) {
      deadline->reply(result<reply>::failure(std::current_exception()));
    }
  }
  return f;
}

template <class State, class Msg>
template <class M, class CompletionToken>
auto actor<State, Msg>::async_ask(M&& m, CompletionToken&& token) const {
  using message = std::remove_cvref_t<M>;
  static_assert(detail::ask_check<message, State, Msg>::ok);
  using reply = reply_type<M>;
  static_assert(std::is_void_v<reply> || std::is_default_constructible_v<reply>,
                "courier: async_ask() passes a value-initialized reply alongside an error, so the "
                "reply type must be default-constructible; use ask() and then() otherwise");
  using signature = typename detail::ask_signature<reply>::type;
  (void)core();
  if constexpr (detail::is_use_awaitable<std::decay_t<CompletionToken>>::value) {
    // Awaited by a coroutine: see awaited_ask().
    using executor = typename detail::is_use_awaitable<std::decay_t<CompletionToken>>::executor;
    return awaited_ask<message, executor>(*this, message(std::forward<M>(m)));
  } else {
    return asio::async_initiate<CompletionToken, signature>(
        [](auto&& handler, const actor& self, message msg) {
          core_type& c = self.core();
          asio::cancellation_slot slot = asio::get_associated_cancellation_slot(handler);
          self.start_async_ask(
              c, std::move(msg),
              detail::async_completion<reply>(std::forward<decltype(handler)>(handler),
                                              detail::ref_ptr<detail::actor_base>::share(&c)),
              slot.is_connected() ? &slot : nullptr);
        },
        token, *this, message(std::forward<M>(m)));
  }
}

// async_ask(m, asio::use_awaitable): a coroutine whose one suspension starts
// the ask, as Asio's own use_awaitable initiation does; nothing is sent
// until it is awaited. Awaited by a coroutine turn of a courier actor (the
// thread's executor is a turn's actor_executor, with no cancellation slot),
// the reply resumes the caller directly as a step of that turn; awaited
// anywhere else, the ask goes through the general initiation with Asio's
// completion handler. This frame itself never resumes: the reply completes
// it and runs its caller.
// (On GCC's warning about anonymous namespaces: see turn_entry.)
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wsubobject-linkage"
#endif
template <class State, class Msg>
template <class M, class Executor>
asio::awaitable<typename actor<State, Msg>::template reply_type<M>, Executor>
actor<State, Msg>::awaited_ask(actor self, M msg) {
  co_await [&](detail::awaitable_frame_base<Executor>* frame) {
    self.template start_awaited_ask<M, Executor>(frame, self.core(), std::move(msg));
    return static_cast<asio::detail::awaitable_thread<Executor>*>(nullptr);
  };
  // Never reached: the frame is popped when its result is set.
  std::terminate();
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

template <class State, class Msg>
template <class M, class Executor>
void actor<State, Msg>::start_awaited_ask(detail::awaitable_frame_base<Executor>* base,
                                          core_type& c, M&& msg) const {
  using message = std::remove_cvref_t<M>;
  using reply = reply_type<message>;
  using frame_type = asio::detail::awaitable_frame<reply, Executor>;
  auto* frame = static_cast<frame_type*>(base);
  asio::detail::awaitable_thread<Executor>* thread = frame->detach_thread();
  std::uint32_t turn = 0;
  detail::actor_base* home = detail::turn_of(thread->get_executor(), turn);
  if (home == nullptr || !home->running_in_this_thread() ||
      thread->get_cancellation_slot().is_connected()) {
    // Not a courier turn: Asio's completion handler takes the thread.
    using handler_type =
        typename asio::async_result<asio::use_awaitable_t<Executor>,
                                    typename detail::ask_signature<reply>::type>::handler_type;
    handler_type handler(thread);
    asio::cancellation_slot slot = asio::get_associated_cancellation_slot(handler);
    start_async_ask(c, std::move(msg),
                    detail::async_completion<reply>(std::move(handler),
                                                    detail::ref_ptr<detail::actor_base>::share(&c)),
                    slot.is_connected() ? &slot : nullptr);
    return;
  }
  // The ask completes at once with `e`: the frame takes it and is popped, and
  // the thread, still running here, resumes the caller.
  auto fail_now = [&](std::exception_ptr e) {
    frame->attach_thread(thread);
    frame->set_except(std::move(e));
    frame->pop_frame();
  };
  // Asked on behalf of a coroutine turn that holds its actor: into the
  // wait-for graph, or refused if it would close a cycle.
  std::uint32_t asker_turn = 0;
  detail::actor_base* asker = detail::asking_origin(asker_turn);
  if (asker != nullptr && !detail::wait_for_graph::global().try_wait(*asker, asker_turn, c)) {
    fail_now(std::make_exception_ptr(would_deadlock()));
    return;
  }
  detail::mailbox_node* node = nullptr;
  detail::future_state<reply>* state = nullptr;
  detail::coroutine_reply<reply, Executor>* answer = nullptr;
  try {
    if (asker == nullptr) {
      auto* n = new detail::ask_node<core_type, message, reply>(std::move(msg));
      node = n;
      state = n;
    } else {
      // On behalf of a held turn: the handler acts for that turn too.
      auto* n = new detail::ask_node<core_type, message, reply, true>(
          std::move(msg),
          detail::ask_extra{{}, {detail::ref_ptr<detail::actor_base>::share(asker), asker_turn}});
      node = n;
      state = n;
    }
    answer = new detail::coroutine_reply<reply, Executor>(
        frame, thread, detail::ref_ptr<detail::future_state<reply>>::adopt(state), *home, turn,
        asker, asker_turn, c);
  } catch (...) {
    if (asker != nullptr) detail::wait_for_graph::global().done(*asker, asker_turn, c);
    if (node != nullptr) {
      // Never queued: give up its message and both references.
      state->add_ref();
      node->abandon();
      state->release();
    }
    fail_now(std::current_exception());
    return;
  }
  state->attach(answer);
  // Queued at once when the mailbox has room (what waiting for room does
  // first), otherwise once it has; the node answers (or fails with
  // actor_stopped) through its own state.
  if (!c.stopped() && c.reserve()) {
    c.post_reserved(node);
    return;
  }
  try {
    detail::send_async(c, node, [](bool) {});
  } catch (...) {
    // Out of memory for the wait: send_async abandoned the node, which
    // answered actor_stopped.
  }
}

template <class State, class Msg>
template <class M, class Complete>
void actor<State, Msg>::start_async_ask(core_type& c, M&& msg, Complete complete,
                                        asio::cancellation_slot* slot) const {
  using message = std::remove_cvref_t<M>;
  using reply = reply_type<message>;
  // Asked on behalf of a coroutine turn that holds its actor (the turn
  // itself, or a handler of a message it asked): the wait goes into the
  // wait-for graph until the reply comes, or the ask is refused if it would
  // close a cycle.
  std::uint32_t turn = 0;
  detail::actor_base* asker = detail::asking_origin(turn);
  if (asker != nullptr && !detail::wait_for_graph::global().try_wait(*asker, turn, c)) {
    complete(result<reply>::failure(std::make_exception_ptr(would_deadlock())));
    return;
  }
  auto finish = [complete = std::move(complete), turn, target = &c,
                 asker =
                     detail::ref_ptr<detail::actor_base>::share(asker)](result<reply>&& r) mutable {
    if (asker) detail::wait_for_graph::global().done(*asker, turn, *target);
    complete(std::move(r));
  };
  detail::mailbox_node* node = nullptr;
  try {
    if (slot == nullptr && asker == nullptr) {
      auto* n = new detail::ask_node<core_type, message, reply>(std::move(msg));
      node = n;
      detail::on_result(
          detail::future_access::make(detail::ref_ptr<detail::future_state<reply>>::adopt(n)),
          std::move(finish));
    } else if (slot == nullptr) {
      // On behalf of a held turn: the handler acts for that turn too.
      auto* n = new detail::ask_node<core_type, message, reply, true>(
          std::move(msg),
          detail::ask_extra{{}, {detail::ref_ptr<detail::actor_base>::share(asker), turn}});
      node = n;
      detail::on_result(
          detail::future_access::make(detail::ref_ptr<detail::future_state<reply>>::adopt(n)),
          std::move(finish));
    } else {
      // The node and the cancellation slot race on one claim: cancelled while
      // the message is queued, it is skipped and the operation completes at
      // once with operation_aborted.
      using shared = detail::cancellable_ask<reply, decltype(finish)>;
      auto ask = detail::ref_ptr<shared>::adopt(new shared(std::move(finish)));
      auto* n = new detail::ask_node<core_type, message, reply, true>(
          std::move(msg),
          detail::ask_extra{detail::ref_ptr<detail::run_claim>::share(ask.get()),
                            {detail::ref_ptr<detail::actor_base>::share(asker), turn}});
      node = n;
      // First, so that nothing is answered if it throws.
      slot->template emplace<detail::ask_canceller<shared>>(ask);
      detail::on_result(
          detail::future_access::make(detail::ref_ptr<detail::future_state<reply>>::adopt(n)),
          [ask = std::move(ask)](result<reply>&& r) { ask->reply(std::move(r)); });
    }
  } catch (...) {
    if (asker != nullptr) detail::wait_for_graph::global().done(*asker, turn, c);
    if (node != nullptr) node->abandon();  // never queued: give up its message and reference
    throw;
  }
  // The ask_node answers (or fails with actor_stopped) through its own state.
  detail::send_async(c, node, [](bool) {});
}

template <class State, class Msg>
template <class M, class Rep, class Period>
timer actor<State, Msg>::tell_after(std::chrono::duration<Rep, Period> delay, M&& m) const {
  using message = std::remove_cvref_t<M>;
  if constexpr (detail::tell_check<message, State, Msg>::ok) {
    core_type& c = core();
    auto t = detail::ref_ptr<detail::message_timer<core_type, message>>::adopt(
        new detail::message_timer<core_type, message>(
            detail::ref_ptr<detail::actor_base>::share(&c), std::forward<M>(m),
            std::chrono::steady_clock::duration::zero()));
    t->start(detail::saturated(delay));
    return detail::timer_access::make(std::move(t));
  } else {
    return {};
  }
}

template <class State, class Msg>
template <class M, class Rep, class Period>
timer actor<State, Msg>::tell_every(std::chrono::duration<Rep, Period> period, M&& m) const {
  using message = std::remove_cvref_t<M>;
  static_assert(std::is_copy_constructible_v<message>,
                "courier: tell_every() sends a copy of its message each time, so the message "
                "must be copyable");
  if constexpr (detail::tell_check<message, State, Msg>::ok) {
    core_type& c = core();
    const std::chrono::steady_clock::duration every = detail::saturated(period);
    if (every <= every.zero()) throw usage_error("tell_every() with a period that is not positive");
    auto t = detail::ref_ptr<detail::message_timer<core_type, message>>::adopt(
        new detail::message_timer<core_type, message>(
            detail::ref_ptr<detail::actor_base>::share(&c), std::forward<M>(m), every));
    t->start(every);
    return detail::timer_access::make(std::move(t));
  } else {
    return {};
  }
}

template <class State, class Msg>
void actor<State, Msg>::stop() const {
  core().stop();
}

template <class State, class Msg>
bool actor<State, Msg>::stopped() const {
  return core().stopped();
}

template <class State, class Msg>
std::size_t actor<State, Msg>::queued() const {
  return static_cast<std::size_t>(core().queued());
}

template <class State, class Msg>
auto actor<State, Msg>::get_executor() const -> executor_type {
  return actor_executor(detail::ref_ptr<detail::actor_base>::share(&core()), true);
}

template <class State, class Msg, class Where>
actor<State, Msg> spawn(Where&& where, State initial, spawn_options<State> options) {
  static_assert(std::is_move_constructible_v<State>,
                "courier: an actor's State must be move-constructible");
  options.validate();
  if constexpr (std::is_copy_constructible_v<State>) {
    if (options.policy == failure_policy::restart &&
        options.restart_from == restart_point::initial && !options.factory)
      options.factory = [fresh = initial]() { return fresh; };
  }
  auto where_to_run = detail::make_placement(where);
  using core_type = detail::actor_on<State, Msg, decltype(where_to_run)>;
  auto core = detail::ref_ptr<detail::actor_core<State, Msg>>::adopt(
      new core_type(std::move(initial), std::move(options), std::move(where_to_run)));
  return actor<State, Msg>(std::move(core));
}

}  // namespace courier
