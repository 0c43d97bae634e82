// The nodes that carry functions submitted to an actor's executor: a plain
// handler, and a step of a coroutine handler.
#pragma once

#include <cstdint>
#include <exception>
#include <utility>

#include "courier/detail/actor/actor_base.hpp"
#include "courier/detail/future/continuation_home.hpp"
#include "courier/detail/recycled.hpp"

namespace courier::detail {

// A function submitted to an actor's executor: a plain handler (`Step`
// false), or a step of a coroutine turn (see turns.hpp), a completion of what
// the coroutine awaited. A step may run while the actor belongs to its turn,
// and keeps no last good State: the copy taken when the coroutine started
// stays the one a failure restores.
template <class F, bool Step>
class basic_function_node final : public mailbox_node, public recycled {
 public:
  template <class A>
  explicit basic_function_node(A&& f, std::uint32_t turn = 0)
      : f_(std::forward<A>(f)), turn_(turn) {}

  void run(continuation_home& owner) noexcept override {
    auto& actor = static_cast<actor_base&>(owner);
    if constexpr (!Step) actor.before_handler();
    try {
      f_();
    } catch (...) {
      actor.handler_failed(std::current_exception());
    }
    delete this;
  }

  void abandon() noexcept override { delete this; }

  std::uint32_t turn_id() const noexcept override { return turn_; }

 private:
  F f_;
  std::uint32_t turn_;
};

template <class F>
using function_node = basic_function_node<F, false>;
template <class F>
using turn_step_node = basic_function_node<F, true>;

}  // namespace courier::detail
