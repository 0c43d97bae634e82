// Actors on any Asio executor the user runs.
#pragma once

#include "courier/detail/asio_config.hpp"

#include <asio/any_io_executor.hpp>
#include <asio/execution.hpp>
#include <asio/execution_context.hpp>
#include <asio/query.hpp>
#include <asio/require.hpp>
#include <concepts>
#include <type_traits>
#include <utility>

#include "courier/detail/actor/actor_base.hpp"
#include "courier/detail/actor/actor_registry.hpp"
#include "courier/detail/deferred_call.hpp"
#include "courier/detail/ref_counted.hpp"
#include "courier/detail/scheduler/virtual_clock.hpp"
#include "courier/errors.hpp"

namespace courier::detail {

// The handler an executor runs to drain an actor. If the executor destroys it
// without running it (its context shut down), the actor's work is abandoned
// so that no ask waits forever.
class activation {
 public:
  explicit activation(actor_base* a) noexcept : a_(ref_ptr<actor_base>::share(a)) {}
  activation(activation&&) noexcept = default;
  activation& operator=(activation&&) noexcept = default;
  ~activation() {
    if (a_) a_->abandon_owned();
  }

  void operator()() noexcept {
    ref_ptr<actor_base> a = std::move(a_);
    a->drain();
  }

 private:
  ref_ptr<actor_base> a_;
};

// Activations go to the executor, never inline.
template <class Executor>
class executor_placement {
 public:
  explicit executor_placement(const Executor& ex)
      : ex_(asio::require(ex, asio::execution::blocking.never)) {}

  // Only before attach(): the registry holds the address of the entry.
  executor_placement(executor_placement&& o) noexcept : ex_(std::move(o.ex_)) {}
  executor_placement& operator=(executor_placement&&) = delete;

  // The actor is enrolled with its context's registry, which stops it when
  // the context shuts down.
  void attach(actor_base& a) {
    actors_ = asio::use_service<actor_registry>(context()).list();
    entry_.actor = &a;
    if (!actors_->enroll(entry_, [] { return true; }))
      throw usage_error("spawn() on an execution context that has shut down");
  }
  void detach(actor_base&) noexcept {
    if (actors_) actors_->withdraw(entry_);
  }

  bool schedule(actor_base& a) noexcept {
    asio::execution::execute(ex_, activation(&a));
    return true;
  }
  // A user's executor has no closed state courier can see; destroying its
  // context destroys the queued activations, which abandon their actors.
  bool closed() const noexcept { return false; }
  bool run_if_open(void (*f)(void*), void* arg) noexcept {
    f(arg);
    return true;
  }
  // The user's context shuts down when it is destroyed, after which nothing
  // of it may be touched.
  void run_apart_from_shutdown(void (*f)(void*), void* arg) noexcept { f(arg); }
  void deliver(deferred_call* c) noexcept { asio::execution::execute(ex_, delivery(c)); }
  void work_started() noexcept {
    if constexpr (requires { ex_.on_work_started(); }) ex_.on_work_started();
  }
  void work_finished() noexcept {
    if constexpr (requires { ex_.on_work_finished(); }) ex_.on_work_finished();
  }
  asio::execution_context& context() const noexcept {
    return asio::query(ex_, asio::execution::context);
  }
  asio::any_io_executor executor() const { return asio::any_io_executor(ex_); }
  // Whether the calling thread runs the executor (an io_context's run(), say),
  // where the executor can tell.
  bool drains_on_this_thread() const noexcept {
    if constexpr (requires { ex_.running_in_this_thread(); })
      return ex_.running_in_this_thread();
    else
      return false;
  }
  // The executor's virtual clock, where it has one (a deterministic testing
  // context's executor).
  virtual_clock* virtual_time() const noexcept {
    if constexpr (requires {
                    { ex_.query(virtual_time_t{}) } -> std::same_as<virtual_clock*>;
                  })
      return ex_.query(virtual_time_t{});
    else
      return nullptr;
  }

 private:
  std::decay_t<decltype(asio::require(std::declval<const Executor&>(),
                                      asio::execution::blocking.never))>
      ex_;
  ref_ptr<actor_list> actors_;
  registry_entry entry_;
};

}  // namespace courier::detail
