// An actor's State and what happens to it when a handler fails.
#pragma once

#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>
#include <variant>

#include "courier/detail/actor/actor_base.hpp"
#include "courier/detail/actor/message_traits.hpp"
#include "courier/spawn_options.hpp"
#include "courier/supervision.hpp"

namespace courier::detail {

template <class State, class Msg>
class actor_core : public actor_base {
 public:
  // Calls the State's handler for one message; a whole variant is visited.
  template <class M>
  decltype(auto) handle(M&& m) {
    return state_->handle(std::forward<M>(m));
  }

  // Calls the State's handler for a told message (a whole variant is
  // visited): a plain handler runs; for a coroutine handler, on_coroutine
  // gets a function that calls it and returns its awaitable, not yet
  // started.
  template <class M, class OnCoroutine>
  void handle_told(M&& m, OnCoroutine&& on_coroutine) {
    auto one = [&](auto&& x) {
      using returned = std::remove_cvref_t<decltype(state_->handle(std::forward<decltype(x)>(x)))>;
      if constexpr (is_awaitable<returned>::value) {
        on_coroutine([&] { return state_->handle(std::forward<decltype(x)>(x)); });
      } else {
        (void)state_->handle(std::forward<decltype(x)>(x));
      }
    };
    if constexpr (std::is_same_v<std::remove_cvref_t<M>, Msg> && is_variant<Msg>::value &&
                  !handles<State, M>) {
      std::visit(one, std::forward<M>(m));
    } else {
      one(std::forward<M>(m));
    }
  }

  // A handler threw: report it, then apply the policy. Inside the actor.
  void fail(std::exception_ptr e, failure_kind kind) noexcept {
    if (on_failure_) {
      try {
        on_failure_(failure{e, kind});
      } catch (...) {
        // The hook's own failure has nowhere better to go.
      }
    }
    switch (this->policy()) {
      case failure_policy::resume:
        break;
      case failure_policy::stop:
        stop();
        break;
      case failure_policy::restart:
        try {
          if (!last_good_) {
            state_.reset();
            state_.emplace(factory_());
          } else if (!restore_last_good()) {
            stop();
          }
        } catch (...) {
          stop();
        }
        break;
    }
  }

  void handler_failed(std::exception_ptr e) noexcept override {
    fail(std::move(e), failure_kind::handler);
  }

 protected:
  actor_core(State initial, spawn_options<State> options)
      : actor_base(options.policy, keeps_last_good(options), options.reentrancy, options.batch,
                   static_cast<std::uint32_t>(options.capacity)),
        state_(std::in_place, std::move(initial)),
        factory_(std::move(options.factory)),
        on_failure_(std::move(options.on_failure)) {
    if constexpr (std::is_copy_constructible_v<State>) {
      if (keeps_last_good(options)) last_good_ = std::make_unique<std::optional<State>>();
    }
  }

  void release_state() noexcept override {
    state_.reset();
    if (last_good_) last_good_->reset();
  }

  // Why a copy before each handler, and not one after each handler that
  // succeeded: both copy once per message, but only tells, asks and plain
  // handlers can fail into the policy, and those nodes are built here.
  // Continuations change the State too, and run as mailbox nodes courier
  // builds elsewhere; copying after each success would have to copy after
  // them as well (or lose what they did), while a copy taken as the next
  // handler starts already includes it. Restoring is then a move, not a copy.
  // The copy is assigned into the one kept, so a State holding containers
  // reuses their storage instead of allocating per message.
  void keep_last_good() noexcept final {
    if constexpr (std::is_copy_constructible_v<State>) {
      try {
        if constexpr (std::is_copy_assignable_v<State>) {
          *last_good_ = *state_;
        } else {
          last_good_->emplace(*state_);
        }
      } catch (...) {
        // A half-assigned copy is no last good State; a failure before the
        // next successful copy finds none and stops the actor.
        last_good_->reset();
      }
    }
  }

 private:
  // The kept copy becomes the State; it is consumed, and the next handler
  // takes a new one before it runs. While coroutines are suspended, one of
  // them may fail before any next handler (interleave mode): a new copy is
  // taken at once, so that it restarts the actor too rather than stopping
  // it. False when there is none to restore.
  bool restore_last_good() {
    std::optional<State>& good = *last_good_;
    if (!good) return false;
    state_.reset();
    state_.emplace(std::move(*good));
    good.reset();
    if (this->has_suspended_turns()) keep_last_good();
    return true;
  }

  static bool keeps_last_good(const spawn_options<State>& o) noexcept {
    return std::is_copy_constructible_v<State> && o.policy == failure_policy::restart &&
           o.restart_from == restart_point::last_good;
  }

  std::optional<State> state_;
  // The State before the running handler, for restart_point::last_good; null
  // otherwise. Behind a pointer so that other actors pay 8 bytes, not a State.
  std::unique_ptr<std::optional<State>> last_good_;
  std::function<State()> factory_;
  std::function<void(const failure&)> on_failure_;
};

}  // namespace courier::detail
