// courier/actor_executor.hpp: an actor's mailbox seen as an Asio executor.
#pragma once

#include "courier/detail/asio_config.hpp"

#include <asio/execution.hpp>
#include <asio/execution_context.hpp>
#include <cstdint>
#include <type_traits>
#include <utility>

#include "courier/detail/actor/actor_base.hpp"
#include "courier/detail/actor/function_node.hpp"
#include "courier/detail/executor/basic_executor.hpp"
#include "courier/detail/ref_counted.hpp"
#include "courier/detail/this_thread.hpp"
#include "courier/errors.hpp"

namespace courier {

namespace detail {
struct actor_executor_access;
}  // namespace detail

/// An Asio executor with strand semantics whose queue is an actor's mailbox.
/// Handlers executed on it (timer and socket completions bound with
/// `asio::bind_executor`, `asio::post`, `co_spawn`...) run serialized with the
/// actor's message handlers, in submission order per submitting thread, so
/// they may touch the actor's State. A handler that throws counts as a
/// failure of kind failure_kind::handler. After the actor stops, submitted
/// handlers are destroyed without being run.
///
/// With `blocking.possibly` (the default, as for strands) execute() runs the
/// function at once when called from inside this actor; with `blocking.never`
/// (what `asio::post` asks for) it always queues.
///
/// Inside a coroutine handler, `co_await asio::this_coro::executor` gives
/// (as an `asio::any_io_executor`) an actor_executor of the same actor that
/// also names the coroutine's turn: what it runs continues that coroutine,
/// and may run while the actor waits for the coroutine to end
/// (reentrancy::atomic). It compares unequal to the actor's other executors.
///
/// `prefer(ex, outstanding_work.tracked)` (what work guards and async
/// operations ask for) gives an executor that counts as outstanding work on
/// the underlying context while it exists, where that context counts work
/// (an `asio::io_context`, a courier::thread_pool).
///
/// Thread safety: distinct objects are safe; a shared object is safe for
/// concurrent const use (every member is const).
class actor_executor : public detail::basic_executor<actor_executor, detail::actor_base> {
 public:
  // Inherited: execute(f) (runs `f` inside the actor, see above);
  // query(execution::context) (the execution context the actor's pool or
  // executor belongs to), query(blocking), query(outstanding_work),
  // query(relationship); require() of each; on_work_started() and
  // on_work_finished(); running_in_this_thread() (whether the calling thread
  // is running a handler of this actor); == and !=.

 private:
  friend class detail::basic_executor<actor_executor, detail::actor_base>;
  template <class State, class Msg>
  friend class actor;
  friend actor_executor this_actor_executor();

  friend struct detail::actor_executor_access;

  actor_executor(detail::ref_ptr<detail::actor_base> a, bool possibly, bool tracked = false,
                 std::uint32_t turn = 0) noexcept
      : basic_executor(std::move(a), possibly, tracked, turn) {}

  // Runs `f` inside the actor: at once when `possibly`, the caller already is
  // inside it and the actor may run it now (it belongs to no coroutine turn,
  // or to this one), otherwise queued past the mailbox's bound: as a plain
  // handler, or as a step of coroutine turn `turn` when that is not 0.
  template <class F>
  static void submit(detail::actor_base& a, bool possibly, std::uint32_t turn, F&& f) {
    if (possibly && a.running_in_this_thread() && a.may_run_now(turn)) {
      std::decay_t<F> local(std::forward<F>(f));
      local();
      return;
    }
    if (turn == 0) {
      a.post(new detail::function_node<std::decay_t<F>>(std::forward<F>(f)));
    } else {
      a.post(new detail::turn_step_node<std::decay_t<F>>(std::forward<F>(f), turn));
    }
  }
};

namespace detail {
// Makes the executors of an actor's coroutine turns, and finds the actor of an
// executor.
struct actor_executor_access {
  static actor_executor for_turn(ref_ptr<actor_base> a, std::uint32_t turn) noexcept {
    return actor_executor(std::move(a), true, false, turn);
  }
  static actor_base& actor_of(const actor_executor& ex) noexcept { return ex.target(); }
  // The coroutine turn an executor names, or 0.
  static std::uint32_t turn_of(const actor_executor& ex) noexcept { return ex.label(); }
};
}  // namespace detail

/// The executor of the actor whose handler or continuation is running on the
/// calling thread. @throws usage_error when called outside every actor.
inline actor_executor this_actor_executor() {
  detail::continuation_home* current = detail::this_thread.actor;
  if (current == nullptr)
    throw usage_error("this_actor_executor() called outside every actor's handler");
  // Every home is an actor (actor_base is the only implementation).
  return actor_executor(
      detail::ref_ptr<detail::actor_base>::share(static_cast<detail::actor_base*>(current)), true);
}

}  // namespace courier
