// A message whose handler is a coroutine: its turn, run on the actor's
// executor for that turn by an entry point of courier's own (no co_spawn),
// which ends it.
#pragma once

#include "courier/detail/asio_config.hpp"

#include <asio/awaitable.hpp>
#include <cstdint>
#include <exception>
#include <optional>
#include <type_traits>
#include <utility>

#include "courier/actor_executor.hpp"
#include "courier/detail/actor/actor_base.hpp"
#include "courier/detail/actor/coroutine_frames.hpp"
#include "courier/detail/actor/coroutine_thread.hpp"
#include "courier/detail/actor/message_traits.hpp"
#include "courier/detail/actor/turns.hpp"
#include "courier/detail/future/continuation_home.hpp"
#include "courier/detail/recycled.hpp"
#include "courier/detail/ref_counted.hpp"
#include "courier/result.hpp"

namespace courier::detail {

// The turn of one message's coroutine handler. `Node` is the message's node,
// kept with its message until the turn is over (a coroutine may hold its
// message by reference). It provides
//   void turn_failed(Core&, std::exception_ptr) noexcept;  // the policy
//   void answer(result<R>&&) noexcept;      // the asker's reply, once
//   void answer_stopped() noexcept;         // actor_stopped, once
//   void turn_over() noexcept;              // the node may go
// for the coroutine's result type `R`.
//
// The turn is also the node that tells the actor that the coroutine was
// destroyed unfinished while the actor may still run (the operation it
// awaited was destroyed unrun, say because its execution context shut
// down): queued as a step of the turn, it ends the turn inside the actor,
// so that an actor with atomic re-entrancy does not wait for it forever.
template <class Node>
class message_turn final : public turn, public mailbox_node, public recycled {
 public:
  message_turn(Node& node, ref_ptr<actor_base> actor) noexcept
      : node_(node), actor_(std::move(actor)) {}

  Node& node() noexcept { return node_; }

  void actor_stopped() noexcept override {
    drop_work();
    if (settle()) node_.answer_stopped();
  }

  // The coroutine suspended at its start (inside the actor): until the actor
  // ends the turn, it counts as outstanding work on the actor's execution
  // context, as co_spawn's work guard did, so that io_context::run() and
  // thread_pool::wait() do not return under it. Given up inside the actor
  // (the turn's end, or the actor's stop, which a context shutting down
  // makes before its scheduler goes).
  void hold_work() noexcept {
    holds_work_ = true;
    actor_->work_started();
  }

  // The coroutine ended (inside the actor, on its turn's executor).
  template <class Core, class R>
  void finish(Core& core, std::exception_ptr e, result<R>&& r) noexcept {
    if (!ended()) {
      core.end_turn(*this);
      drop_work();
    }
    if (e) node_.turn_failed(core, e);
    if (settle()) node_.answer(std::move(r));
  }

  // The coroutine was destroyed unfinished (on any thread).
  void coroutine_lost() noexcept {
    if (settle()) node_.answer_stopped();
    add_ref();
    actor_->post_continuation(this);
  }

  // --- as the node coroutine_lost() queues ---------------------------------------
  void run(continuation_home&) noexcept override {
    if (!ended()) {
      actor_->end_turn(*this);
      drop_work();
    }
    release();
  }
  // The actor stopped, and its stop ends every turn.
  void abandon() noexcept override { release(); }
  std::uint32_t turn_id() const noexcept override { return id(); }

 private:
  ~message_turn() override { node_.turn_over(); }

  void drop_work() noexcept {
    if (holds_work_) {
      holds_work_ = false;
      actor_->work_finished();
    }
  }

  Node& node_;
  ref_ptr<actor_base> actor_;
  bool holds_work_ = false;  // inside the actor only
};

// What the entry point of a turn's coroutine holds of the turn: it ends the
// turn inside the actor when the coroutine ends, or, destroyed before that
// (the coroutine was destroyed unfinished), reports the coroutine lost. It
// also holds the turn's frame cache (coroutine_frames.hpp) until the entry
// point itself goes.
template <class Core, class Turn>
class turn_owner {
 public:
  turn_owner(Core& core, ref_ptr<Turn> t, coroutine_frames* frames) noexcept
      : core_(&core), turn_(std::move(t)), frames_(frames) {}
  turn_owner(turn_owner&& o) noexcept
      : core_(o.core_), turn_(std::move(o.turn_)), frames_(std::exchange(o.frames_, nullptr)) {}
  turn_owner& operator=(turn_owner&&) = delete;
  ~turn_owner() {
    if (turn_) turn_->coroutine_lost();
    coroutine_frames::give_back(frames_);
  }

  template <class R>
  void finish(std::exception_ptr e, result<R>&& r) noexcept {
    ref_ptr<Turn> t = std::move(turn_);
    t->finish(*core_, e, std::move(r));
  }

  coroutine_frames* release_frames() noexcept { return std::exchange(frames_, nullptr); }

 private:
  Core* core_;
  ref_ptr<Turn> turn_;
  coroutine_frames* frames_;
};

// The last step of a turn's entry point, from a hook it awaits: the stack
// holds only the entry point's own frame, which goes into the turn's entry
// cache, and the frame cache goes back to this thread's pool. The frame is
// destroyed while suspended in the hook, which touches nothing afterwards.
template <class E>
void end_turn_thread(awaitable_frame_base<E>* frame, coroutine_frames* frames) noexcept {
  coroutine_thread<E> thread(frame->detach_thread());
  {
    coroutine_frames::scope entry(frames, true);
    thread.destroy_stack();
  }
  coroutine_frames::give_back(frames);
}

// The bottom frame of a turn's coroutine thread (what co_spawn's entry point
// was): runs the handler's coroutine `body`, then ends the turn with what it
// returned or threw. Every step of it runs inside the actor, on the turn's
// executor.
// (GCC names a coroutine's frame as if it had external linkage and warns
// when a type from an anonymous namespace, a user's message or State, is in
// it; the frame is local to its translation unit like the function.)
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wsubobject-linkage"
#endif
template <class Core, class Turn, class R, class E>
coroutine_entry<E> turn_entry(asio::awaitable<R, E> body, turn_owner<Core, Turn> owner) {
  std::exception_ptr e;
  if constexpr (std::is_void_v<R>) {
    try {
      co_await std::move(body);
    } catch (...) {
      e = std::current_exception();
    }
    owner.finish(e, e ? result<void>::failure(e) : result<void>());
  } else {
    std::optional<result<R>> r;
    try {
      r.emplace(std::in_place, co_await std::move(body));
    } catch (...) {
      e = std::current_exception();
    }
    owner.finish(e, e ? result<R>::failure(e) : std::move(*r));
  }
  co_await [frames = owner.release_frames()](awaitable_frame_base<E>* frame) {
    end_turn_thread(frame, frames);
    return static_cast<asio::detail::awaitable_thread<E>*>(nullptr);
  };
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

// Starts the coroutine `body` of `node`'s message as a turn of `core`: it
// runs at once, here inside the actor, up to its first suspension. The
// node's members are described at message_turn. `handed_over` becomes true
// once the turn owns the node (its turn_over() will be called), even if
// starting then throws. `frames` (null when recycling is off) is the cache
// the body's frame came from; the turn owns it from here on.
template <class Core, class Node, class R, class E>
void start_turn(Core& core, Node& node, asio::awaitable<R, E> body, bool& handed_over,
                coroutine_frames* frames) {
  struct frames_guard {
    coroutine_frames* f;
    ~frames_guard() { coroutine_frames::give_back(f); }
  } guard{frames};
  auto t = ref_ptr<message_turn<Node>>::adopt(
      new message_turn<Node>(node, ref_ptr<actor_base>::share(&core)));
  handed_over = true;
  // Two references: the actor's list takes one (end_turn releases it), the
  // entry point holds the other.
  const std::uint32_t id = core.begin_turn(*t);
  // Kept across the start, to see whether the coroutine suspended.
  ref_ptr<message_turn<Node>> turn = t;
  coroutine_frames::claim(frames, core, id);
  const E ex(actor_executor_access::for_turn(ref_ptr<actor_base>::share(&core), id));
  auto entry = [&] {
    coroutine_frames::scope in_entry(frames, true);
    return turn_entry(std::move(body), turn_owner<Core, message_turn<Node>>(
                                           core, std::move(t), std::exchange(guard.f, nullptr)));
  }();
  coroutine_thread<E> thread(std::move(entry), ex);
  coroutine_frames::claim_thread(frames, thread.entry_point());
  {
    coroutine_frames::scope in_frames(frames);
    thread.start();
  }
  // Still in progress: suspended (see message_turn::hold_work).
  if (!turn->ended()) turn->hold_work();
}

// As start_turn, for the coroutine that `make()` returns (the handler,
// called here so that its frame comes from the turn's cache).
template <class Core, class Node, class Make>
void start_turn_with(Core& core, Node& node, Make&& make, bool& handed_over) {
  coroutine_frames* frames = coroutine_frames::take();
  auto body = [&] {
    struct give_back_on_throw {
      coroutine_frames* f;
      bool ok = false;
      ~give_back_on_throw() {
        if (!ok) coroutine_frames::give_back(f);
      }
    } on_throw{frames};
    coroutine_frames::scope in_frames(frames);
    auto b = std::forward<Make>(make)();
    on_throw.ok = true;
    return b;
  }();
  start_turn(core, node, std::move(body), handed_over, frames);
}

}  // namespace courier::detail
