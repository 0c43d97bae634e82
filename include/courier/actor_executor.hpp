// courier/actor_executor.hpp: an actor's mailbox seen as an Asio executor.
#pragma once

#include "courier/detail/asio_config.hpp"

#include <asio/execution.hpp>
#include <asio/execution_context.hpp>
#include <type_traits>
#include <utility>

#include "courier/detail/actor_core.hpp"
#include "courier/detail/mailbox.hpp"
#include "courier/detail/ref_counted.hpp"
#include "courier/errors.hpp"

namespace courier {

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
/// `prefer(ex, outstanding_work.tracked)` (what work guards and async
/// operations ask for) gives an executor that counts as outstanding work on
/// the underlying context while it exists, where that context counts work
/// (an `asio::io_context`, a courier::thread_pool).
///
/// Thread safety: distinct objects are safe; a shared object is safe for
/// concurrent const use (every member is const).
class actor_executor {
 public:
  actor_executor(const actor_executor& o) noexcept
      : mailbox_(o.mailbox_), blocking_never_(o.blocking_never_), tracked_(o.tracked_) {
    if (tracked_) mailbox_->context_work(true);
  }
  actor_executor(actor_executor&& o) noexcept
      : mailbox_(std::move(o.mailbox_)),
        blocking_never_(o.blocking_never_),
        tracked_(std::exchange(o.tracked_, false)) {}
  actor_executor& operator=(actor_executor o) noexcept {
    std::swap(mailbox_, o.mailbox_);
    std::swap(blocking_never_, o.blocking_never_);
    std::swap(tracked_, o.tracked_);
    return *this;
  }
  ~actor_executor() {
    if (tracked_) mailbox_->context_work(false);
  }

  /// Runs `f` inside the actor (see the class comment).
  template <class F>
  void execute(F&& f) const {
    if (!blocking_never_ && mailbox_->running_in_this_thread()) {
      std::decay_t<F> local(std::forward<F>(f));
      local();
      return;
    }
    mailbox_->post(new detail::function_node<std::decay_t<F>>(std::forward<F>(f)));
  }

  /// The execution context the actor's pool or executor belongs to.
  asio::execution_context& query(asio::execution::context_t) const noexcept {
    return mailbox_->context();
  }

  asio::execution::blocking_t query(asio::execution::blocking_t) const noexcept {
    return blocking_never_ ? asio::execution::blocking_t(asio::execution::blocking.never)
                           : asio::execution::blocking_t(asio::execution::blocking.possibly);
  }

  asio::execution::outstanding_work_t query(asio::execution::outstanding_work_t) const noexcept {
    return tracked_
               ? asio::execution::outstanding_work_t(asio::execution::outstanding_work.tracked)
               : asio::execution::outstanding_work_t(asio::execution::outstanding_work.untracked);
  }

  actor_executor require(asio::execution::blocking_t::never_t) const {
    return actor_executor(mailbox_, true, tracked_);
  }
  actor_executor require(asio::execution::blocking_t::possibly_t) const {
    return actor_executor(mailbox_, false, tracked_);
  }
  actor_executor require(asio::execution::outstanding_work_t::tracked_t) const {
    return actor_executor(mailbox_, blocking_never_, true);
  }
  actor_executor require(asio::execution::outstanding_work_t::untracked_t) const {
    return actor_executor(mailbox_, blocking_never_, false);
  }

  /// Whether the calling thread is running a handler of this actor.
  bool running_in_this_thread() const noexcept { return mailbox_->running_in_this_thread(); }

  friend bool operator==(const actor_executor& a, const actor_executor& b) noexcept {
    return a.mailbox_ == b.mailbox_ && a.blocking_never_ == b.blocking_never_ &&
           a.tracked_ == b.tracked_;
  }
  friend bool operator!=(const actor_executor& a, const actor_executor& b) noexcept {
    return !(a == b);
  }

 private:
  template <class State, class Msg>
  friend class actor;
  friend actor_executor this_actor_executor();

  actor_executor(detail::ref_ptr<detail::mailbox> m, bool never, bool tracked = false) noexcept
      : mailbox_(std::move(m)), blocking_never_(never), tracked_(tracked) {
    if (tracked_) mailbox_->context_work(true);
  }

  detail::ref_ptr<detail::mailbox> mailbox_;
  bool blocking_never_ = false;
  bool tracked_ = false;
};

/// The executor of the actor whose handler or continuation is running on the
/// calling thread. @throws usage_error when called outside every actor.
inline actor_executor this_actor_executor() {
  detail::mailbox* current = detail::this_thread.current;
  if (current == nullptr)
    throw usage_error("this_actor_executor() called outside every actor's handler");
  return actor_executor(detail::ref_ptr<detail::mailbox>::share(current), false);
}

}  // namespace courier
