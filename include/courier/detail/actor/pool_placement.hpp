// Actors on a courier::thread_pool.
#pragma once

#include "courier/detail/asio_config.hpp"

#include <asio/any_io_executor.hpp>
#include <asio/execution_context.hpp>
#include <utility>

#include "courier/detail/actor/actor_base.hpp"
#include "courier/detail/actor/actor_registry.hpp"
#include "courier/detail/deferred_call.hpp"
#include "courier/detail/executor/pool_executor.hpp"
#include "courier/detail/ref_counted.hpp"
#include "courier/detail/scheduler/pool_core.hpp"
#include "courier/detail/scheduler/task.hpp"
#include "courier/detail/scheduler/virtual_clock.hpp"
#include "courier/errors.hpp"

namespace courier::detail {

// Activations go to the pool's scheduler as the actor's own reusable task:
// the mailbox's activation protocol guarantees at most one is queued or
// running at a time, so no activation is ever allocated. The actor is
// registered with the pool's actor_registry while it lives.
class pool_placement {
 public:
  // Holds a reference to the pool's core: the actor keeps it (and so the
  // registry, a service of its context) alive.
  explicit pool_placement(ref_ptr<pool_core> pool) noexcept : pool_(std::move(pool)) {}
  // Only before attach(): the registry holds the address of the entry.
  pool_placement(pool_placement&& o) noexcept : pool_(std::move(o.pool_)) {}
  pool_placement& operator=(pool_placement&&) = delete;

  void attach(actor_base& a) {
    activation_.entry.actor = &a;
    if (!registry().enroll(activation_.entry, [this] { return !pool().closed(); }))
      throw usage_error("spawn() on a stopped thread_pool");
  }
  void detach(actor_base&) noexcept { registry().withdraw(activation_.entry); }

  bool schedule(actor_base& a) noexcept {
    // The queued activation holds a reference to the actor.
    a.add_ref();
    if (pool().submit_activation(&activation_)) return true;
    a.release();
    return false;
  }
  bool closed() const noexcept { return pool().closed(); }
  bool run_if_open(void (*f)(void*), void* arg) noexcept {
    return pool().run_if_open([&] { f(arg); });
  }
  void run_apart_from_shutdown(void (*f)(void*), void* arg) noexcept {
    pool().run_apart_from_shutdown([&] { f(arg); });
  }
  void deliver(deferred_call* c) noexcept { pool().deliver(c); }
  void work_started() noexcept { pool().work_started(); }
  void work_finished() noexcept { pool().work_finished(); }
  asio::execution_context& context() const noexcept { return pool().context(); }
  asio::any_io_executor executor() const {
    return asio::any_io_executor(pool_executor(ref_ptr<pool_core>::share(&pool())));
  }
  // Pool workers are known from this_thread.
  bool drains_on_this_thread() const noexcept { return false; }
  // A pool's timers follow the steady clock.
  virtual_clock* virtual_time() const noexcept { return nullptr; }

 private:
  struct activation_task final : task {
    registry_entry entry;  // entry.actor: the actor this activation drains
    void run() noexcept override {
      ref_ptr<actor_base> a = ref_ptr<actor_base>::adopt(entry.actor);
      a->drain();
    }
    void discard() noexcept override {
      ref_ptr<actor_base> a = ref_ptr<actor_base>::adopt(entry.actor);
      a->abandon_owned();
    }
  };

  pool_core& pool() const noexcept { return *pool_; }
  // The pool's actor registry, which thread_pool attached to its context.
  actor_registry& registry() const noexcept {
    return *static_cast<actor_registry*>(pool_->context().attachment());
  }

  // Reached on every message: one pointer, no indirection.
  ref_ptr<pool_core> pool_;
  activation_task activation_;
};

}  // namespace courier::detail
