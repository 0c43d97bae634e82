// courier/thread_pool.hpp: the pool of worker threads that actors share.
#pragma once

#include "courier/detail/asio_config.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdio>
#include <exception>
#include <functional>
#include <thread>
#include <utility>

#include "courier/detail/actor/actor_registry.hpp"
#include "courier/detail/executor/pool_executor.hpp"
#include "courier/detail/ref_counted.hpp"
#include "courier/detail/scheduler/pool_core.hpp"

namespace courier {
namespace detail {
struct pool_access;
}

/// A fixed set of worker threads on which any number of actors run. Spawn
/// actors on it with courier::spawn(); it is also an ordinary Asio execution
/// context, so `get_executor()` accepts timers, sockets and posted handlers.
///
/// Its scheduler is built for actor messaging: each worker has its own run
/// queue and a LIFO slot, so an actor woken by a handler (a reply, the next
/// hop of a chain) runs next on the same thread; idle workers steal, spin
/// briefly before they sleep, and are woken only when there is work they can
/// take, so a busy pool makes no system call per message. Timers and sockets
/// on the pool are served by Asio's reactor on an internal thread, which
/// hands their completions to the workers.
///
/// Destroying the pool (or calling stop()) ends it: handlers already running
/// finish, nothing queued runs afterwards, and every actor spawned on it stops,
/// so each pending or later ask fails with actor_stopped. Actor handles may
/// outlive the pool safely.
///
/// A handler posted straight to the pool's executor (not to an actor) that
/// throws does not take its worker down: the exception goes to the pool's
/// error handler, given at construction. Without one, the first such exception
/// is reported on stderr and later ones are ignored.
///
/// Thread safety: distinct objects are safe; a shared object is safe for
/// get_executor(), size() and stopped(). stop(), wait() and the destructor must
/// not be called from the pool's own worker threads (a worker cannot wait for
/// itself to finish): stop() and wait() throw usage_error there, and the
/// destructor, which cannot throw, prints why on stderr and calls
/// std::terminate().
class thread_pool {
 public:
  /// A standard Asio executor: `execute`, `blocking.never` (the default) or
  /// `blocking.possibly` (runs inline when called on one of the workers),
  /// `outstanding_work.tracked` (counts as work for wait()) or `untracked`.
  /// Handlers queued after the pool stopped are destroyed unrun.
  using executor_type = detail::pool_executor;

  /// What the pool calls, on the worker, with the exception of a handler
  /// posted to its executor that threw. An exception it throws is ignored.
  using error_handler = std::function<void(std::exception_ptr)>;

  /// Starts `threads` workers (by default one per hardware thread), with
  /// `on_error` as the error handler (see the class comment).
  /// @throws usage_error if `threads` is zero; std::system_error if a thread
  /// cannot be started.
  explicit thread_pool(std::size_t threads = default_size(), error_handler on_error = {})
      : core_(detail::ref_ptr<detail::pool_core>::adopt(
            new detail::pool_core(threads, std::move(on_error)))) {
    // The registry of the actors spawned here: a service of the core's
    // context, attached to it for the actors and told when the pool closes.
    auto& registry = asio::use_service<detail::actor_registry>(core_->context());
    core_->context().set_attachment(&registry);
    core_->context().subscribe(&registry);
  }

  thread_pool(const thread_pool&) = delete;
  thread_pool& operator=(const thread_pool&) = delete;

  /// Stops the pool as stop() does. Called from one of the pool's own workers,
  /// it reports the misuse on stderr and calls std::terminate().
  ~thread_pool() {
    if (core_->on_worker()) {
      std::fputs(
          "courier: a thread_pool was destroyed from one of its own worker threads, which "
          "cannot wait for itself to finish; destroy it from another thread\n",
          stderr);
      std::terminate();
    }
    core_->close(false);
  }

  /// An executor that runs handlers on the pool's workers.
  executor_type get_executor() const noexcept { return executor_type(core_); }

  /// The number of worker threads.
  std::size_t size() const noexcept { return core_->size(); }

  /// Stops the workers after the handlers they are running, then abandons
  /// everything still queued (see the class comment). Idempotent.
  /// @throws usage_error when called from one of this pool's workers.
  void stop() { core_->close(false); }

  /// Waits until the pool runs out of work (every actor idle, no pending
  /// timer or asynchronous operation), then stops it. Messages sent from other
  /// threads while it waits may be abandoned once it returns.
  /// @throws usage_error when called from one of this pool's workers.
  void wait() { core_->close(true); }

  /// Whether the pool has stopped accepting work.
  bool stopped() const { return core_->closed(); }

  /// One worker per hardware thread, at least one.
  static std::size_t default_size() noexcept {
    return std::max<std::size_t>(1, std::thread::hardware_concurrency());
  }

 private:
  friend struct detail::pool_access;
  detail::ref_ptr<detail::pool_core> core_;
};

namespace detail {
struct pool_access {
  static ref_ptr<pool_core> core(const thread_pool& p) noexcept { return p.core_; }
};
}  // namespace detail

}  // namespace courier
