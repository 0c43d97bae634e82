// An ask that a coroutine turn awaits (`co_await a.async_ask(m,
// asio::use_awaitable)`): the reply resumes the coroutine directly, as a step
// of its turn, without Asio's completion handler, work tracking or post.
#pragma once

#include "courier/detail/asio_config.hpp"

#include <asio/awaitable.hpp>
#include <cstdint>
#include <typeinfo>
#include <utility>

#include "courier/actor_executor.hpp"
#include "courier/detail/actor/actor_base.hpp"
#include "courier/detail/actor/coroutine_frames.hpp"
#include "courier/detail/actor/coroutine_thread.hpp"
#include "courier/detail/actor/wait_for_graph.hpp"
#include "courier/detail/future/continuation.hpp"
#include "courier/detail/future/continuation_home.hpp"
#include "courier/detail/future/future_state.hpp"
#include "courier/detail/recycled.hpp"
#include "courier/detail/ref_counted.hpp"
#include "courier/result.hpp"

namespace courier::detail {

// The actor and turn of a coroutine thread's executor when it is a turn's
// actor_executor; null otherwise.
template <class Executor>
actor_base* turn_of(const Executor& ex, std::uint32_t& turn) noexcept {
  if constexpr (std::is_same_v<Executor, actor_executor>) {
    turn = actor_executor_access::turn_of(ex);
    return turn != 0 ? &actor_executor_access::actor_of(ex) : nullptr;
  } else if constexpr (requires {
                         ex.target_type();
                         ex.template target<actor_executor>();
                       }) {
    // Asio's target<T>() does not check the type: compare first.
    if (ex.target_type() != typeid(actor_executor)) return nullptr;
    return turn_of(*ex.template target<actor_executor>(), turn);
  } else {
    return nullptr;
  }
}

// The reply of an ask awaited by a coroutine turn: the continuation of the
// ask's state, which, on the replying thread, queues itself to the asking
// actor as a step of the turn; run there, it hands the result to the frame
// that awaits it and runs the coroutine on. Holds the coroutine's thread
// meanwhile. Abandoned (the asking actor stopped), it destroys the thread,
// which has Asio destroy the coroutine's frames.
template <class R, class Executor>
class coroutine_reply final : public continuation, public mailbox_node, public recycled {
 public:
  using frame_type = asio::detail::awaitable_frame<R, Executor>;

  coroutine_reply(frame_type* frame, asio::detail::awaitable_thread<Executor>* thread,
                  ref_ptr<future_state<R>> state, actor_base& home, std::uint32_t turn,
                  actor_base* asker, std::uint32_t asker_turn, actor_base& target) noexcept
      : thread_(thread),
        frame_(frame),
        state_(std::move(state)),
        home_(ref_ptr<actor_base>::share(&home)),
        asker_(ref_ptr<actor_base>::share(asker)),
        target_(&target),
        frames_(coroutine_frames::current_for(home, turn, thread_.entry_point())),
        turn_(turn),
        asker_turn_(asker_turn) {}

  // The reply is in (on the replying thread).
  void on_ready() noexcept override {
    if (asker_) wait_for_graph::global().done(*asker_, asker_turn_, *target_);
    ref_ptr<actor_base> home = std::move(home_);
    home->post_continuation(this);
  }

  // Inside the asking actor.
  void run(continuation_home&) noexcept override {
    result<R> r = std::move(state_->get());
    state_.reset();
    {
      // The coroutine's frames come from, and go back to, its turn's cache.
      coroutine_frames::scope in_frames(frames_);
      thread_.complete(frame_, std::move(r));
    }
    delete this;
  }

  void abandon() noexcept override { delete this; }

  std::uint32_t turn_id() const noexcept override { return turn_; }

 private:
  coroutine_thread<Executor> thread_;
  frame_type* frame_;
  ref_ptr<future_state<R>> state_;
  ref_ptr<actor_base> home_;
  ref_ptr<actor_base> asker_;
  actor_base* target_;
  // The turn's frame cache when courier was running the coroutine as it
  // asked (null otherwise); the turn keeps it while the coroutine waits.
  coroutine_frames* frames_;
  std::uint32_t turn_;
  std::uint32_t asker_turn_;
};

}  // namespace courier::detail
