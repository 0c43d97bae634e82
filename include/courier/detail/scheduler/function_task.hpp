// The tasks the pool makes for work that is not an actor: a handler posted
// to its executor, and a deferred call delivered outside every actor.
#pragma once

#include <exception>
#include <utility>

#include "courier/detail/deferred_call.hpp"
#include "courier/detail/recycled.hpp"
#include "courier/detail/scheduler/task.hpp"
#include "courier/detail/this_thread.hpp"

namespace courier::detail {

class pool_core;
// Reports the exception of a posted handler to the pool's error handler
// (defined in pool_core.hpp).
void report_handler_failure(pool_core& pool, std::exception_ptr e) noexcept;

// A posted handler, owned by the scheduler until it runs or is discarded.
template <class F>
class function_task final : public task, public recycled {
 public:
  template <class A>
  explicit function_task(A&& f) : f_(std::forward<A>(f)) {}

  void run() noexcept override {
    try {
      f_();
    } catch (...) {
      // A handler posted straight to the pool's executor threw (actor
      // handlers never get here). The worker survives and goes back to work;
      // the pool's error handler hears of it. Tasks run only on workers.
      report_handler_failure(*this_thread.pool, std::current_exception());
    }
    delete this;
  }
  void discard() noexcept override { delete this; }

 private:
  F f_;
};

// Carries a deferred_call: it runs whether the task runs or is discarded.
class delivery_task final : public task, public recycled {
 public:
  explicit delivery_task(deferred_call* c) noexcept : c_(c) {}
  void run() noexcept override { fire(); }
  void discard() noexcept override { fire(); }

 private:
  void fire() noexcept {
    c_->run();
    delete c_;
    delete this;
  }
  deferred_call* c_;
};

}  // namespace courier::detail
