// The nodes an actor's messages travel in: a told message, and an asked
// message fused with the state of its reply. Either may start a coroutine
// turn (coroutine_turn.hpp) that keeps it until the coroutine ends.
#pragma once

#include <exception>
#include <new>
#include <type_traits>
#include <utility>

#include "courier/detail/actor/actor_base.hpp"
#include "courier/detail/actor/ask_deadline.hpp"
#include "courier/detail/actor/coroutine_turn.hpp"
#include "courier/detail/actor/message_traits.hpp"
#include "courier/detail/actor/wait_for_graph.hpp"
#include "courier/detail/future/continuation_home.hpp"
#include "courier/detail/future/future_access.hpp"
#include "courier/detail/future/future_state.hpp"
#include "courier/detail/future/then_continuation.hpp"
#include "courier/detail/recycled.hpp"
#include "courier/errors.hpp"
#include "courier/future.hpp"
#include "courier/supervision.hpp"

namespace courier::detail {

// A message sent with tell(): handled, and a failure reported to the actor.
template <class Core, class M>
class tell_node final : public mailbox_node, public recycled {
 public:
  template <class A>
  explicit tell_node(A&& m) : msg_(std::forward<A>(m)) {}

  void run(continuation_home& owner) noexcept override {
    auto& core = static_cast<Core&>(owner);
    core.before_handler();
    bool handed_over = false;
    try {
      core.handle_told(std::move(msg_),
                       [&](auto&& make) { start_turn_with(core, *this, make, handed_over); });
    } catch (...) {
      core.fail(std::current_exception(), failure_kind::tell);
    }
    if (!handed_over) delete this;
  }

  void abandon() noexcept override { delete this; }

  // --- as the message of a coroutine turn (see message_turn) ---------------------
  void turn_failed(Core& core, std::exception_ptr e) noexcept {
    core.fail(std::move(e), failure_kind::tell);
  }
  template <class R>
  void answer(result<R>&&) noexcept {}
  void answer_stopped() noexcept {}
  void turn_over() noexcept { delete this; }

 private:
  M msg_;
};

// What an ask may carry besides its message (an ask_node that is
// `Extended`): a claim its handler must win to run (a deadline's, a
// cancellation slot's), and the held turn it was asked on behalf of, whose
// wait the handler's own asks extend (wait_for_graph.hpp). Either may be
// empty.
struct ask_extra {
  ref_ptr<run_claim> claim;
  call_origin origin;
};
struct no_ask_extra {};

// A message sent with ask(), fused with the shared state of its reply: one
// allocation per ask. The node starts with two references: its own as the
// replying side, and the one the asker's future adopts. The reply (or the
// handler's exception, or actor_stopped when abandoned) completes the state.
// An `Extended` node holds an ask_extra: with a claim, if the deadline passed
// (or the asker cancelled) before the node runs, the handler is skipped and
// the state fails with ask_expired (which nobody then reads: the deadline or
// the cancellation has answered the asker already); with an origin, the
// handler runs acting for that turn.
template <class Core, class M, class R, bool Extended = false>
class ask_node final : public mailbox_node, public future_state<R>, public recycled {
 public:
  template <class A>
  explicit ask_node(A&& m) requires(!Extended) : future_state<R>(2) {
    ::new (static_cast<void*>(&msg_)) M(std::forward<A>(m));
  }
  template <class A>
  ask_node(A&& m, ask_extra extra) requires(Extended)
      : future_state<R>(2), extra_(std::move(extra)) {
    ::new (static_cast<void*>(&msg_)) M(std::forward<A>(m));
  }
  ~ask_node() override {}

  void run(continuation_home& owner) noexcept override {
    auto& core = static_cast<Core&>(owner);
    if constexpr (Extended) {
      if (extra_.claim && !extra_.claim->try_start()) {
        this->try_set_exception(std::make_exception_ptr(ask_expired()));
        finish();
        return;
      }
      if (extra_.origin.actor) {
        // The handler may finish the node: the scope keeps its own copy.
        const call_origin origin = extra_.origin;
        acting_for_scope acting(origin);
        handle(core);
        return;
      }
    }
    handle(core);
  }

  void abandon() noexcept override {
    answer_stopped();
    finish();
  }

  // --- as the message of a coroutine turn (see message_turn) ---------------------
  void turn_failed(Core& core, std::exception_ptr e) noexcept {
    core.fail(std::move(e), failure_kind::ask);
  }
  void answer(result<R>&& r) noexcept { this->try_set_result(std::move(r)); }
  void answer_stopped() noexcept {
    this->try_set_exception(std::make_exception_ptr(actor_stopped()));
  }
  void turn_over() noexcept { finish(); }

 private:
  void handle(Core& core) noexcept {
    core.before_handler();
    bool handed_over = false;
    try {
      using returned = std::remove_cvref_t<decltype(core.handle(std::move(msg_)))>;
      if constexpr (is_awaitable<returned>::value) {
        start_turn_with(
            core, *this, [&] { return core.handle(std::move(msg_)); }, handed_over);
        return;
      } else if constexpr (is_future<returned>::value) {
        // The handler first: a promise made before it would break (and wake
        // the asker with broken_promise) if the handler threw.
        returned later = core.handle(std::move(msg_));
        forward_into(std::move(later),
                     future_access::promise_for(ref_ptr<future_state<R>>::share(this)));
      } else if constexpr (std::is_void_v<returned>) {
        core.handle(std::move(msg_));
        this->try_set_value();
      } else {
        this->try_set_value(core.handle(std::move(msg_)));
      }
    } catch (...) {
      // The hook and the policy come first, so that an asker woken by the
      // failure already sees their effect (a stopped actor, say).
      std::exception_ptr e = std::current_exception();
      core.fail(e, failure_kind::ask);
      // Once a turn owns the node, the turn answers (it has: the coroutine
      // it could not start is lost).
      if (handed_over) return;
      this->try_set_exception(std::move(e));
    }
    finish();
  }

  // The message goes now; the state stays while the future holds it.
  void finish() noexcept {
    msg_.~M();
    this->release();
  }

  union {
    M msg_;
  };
  [[no_unique_address]] std::conditional_t<Extended, ask_extra, no_ask_extra> extra_;
};

}  // namespace courier::detail
