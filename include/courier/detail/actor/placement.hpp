// What an actor needs from the place it runs on, as a concept.
#pragma once

#include "courier/detail/asio_config.hpp"

#include <asio/any_io_executor.hpp>
#include <asio/execution_context.hpp>
#include <concepts>

#include "courier/detail/actor/actor_base.hpp"
#include "courier/detail/deferred_call.hpp"
#include "courier/detail/scheduler/virtual_clock.hpp"

namespace courier::detail {

// A placement is where an actor's activations run: a courier::thread_pool
// (pool_placement.hpp) or any Asio executor (executor_placement.hpp). The
// actor holds one by value and reaches it through these members only:
// - attach(a): at spawn, before `a` is shared; throws usage_error if the place
//   no longer accepts actors. detach(a): when `a` is destroyed.
// - schedule(a): queue one activation that calls a.drain(); false, leaving
//   the activation with the caller, once the place is closed for good.
// - closed(): whether it is (no activation will run again).
// - run_if_open(f, arg): run f(arg) now, serialized with the place's
//   shutdown, unless it is closed; whether it ran.
// - run_apart_from_shutdown(f, arg): run f(arg) now, never while the
//   place's context shuts its services down.
// - deliver(c): run `c` on the place, outside every actor; on the calling
//   thread once the place is closed.
// - work_started(), work_finished(): outstanding work, as a work guard counts.
// - context(), executor(): the Asio execution context and an executor of it.
// - virtual_time(): the virtual clock of the place (a deterministic testing
//   context's), or null.
// - drains_on_this_thread(): whether the calling thread is one that runs
//   the place's activations where a pool worker cannot be told from
//   this_thread (a thread running the user's io_context, say).
template <class P>
concept placement = std::move_constructible<P> &&
    requires(P& p, const P& cp, actor_base& a, deferred_call* c, void (*f)(void*), void* arg) {
  p.attach(a);
  { p.detach(a) }
  noexcept;
  { p.schedule(a) }
  noexcept->std::same_as<bool>;
  { cp.closed() }
  noexcept->std::same_as<bool>;
  { p.run_if_open(f, arg) }
  noexcept->std::same_as<bool>;
  { p.run_apart_from_shutdown(f, arg) }
  noexcept;
  { p.deliver(c) }
  noexcept;
  { p.work_started() }
  noexcept;
  { p.work_finished() }
  noexcept;
  { cp.context() }
  noexcept->std::same_as<asio::execution_context&>;
  { cp.executor() } -> std::same_as<asio::any_io_executor>;
  { cp.drains_on_this_thread() }
  noexcept->std::same_as<bool>;
  { cp.virtual_time() }
  noexcept->std::same_as<virtual_clock*>;
};

}  // namespace courier::detail
