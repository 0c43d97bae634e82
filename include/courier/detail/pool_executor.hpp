// The Asio executor of a courier::thread_pool.
#pragma once

#include "courier/detail/asio_config.hpp"

#include <asio/execution.hpp>
#include <asio/execution_context.hpp>
#include <utility>

#include "courier/detail/pool_core.hpp"

namespace courier::detail {

// A standard Asio executor over a pool_core. Cheap to copy (a pointer and
// two flags); a tracked executor counts as outstanding work of the pool
// while it exists, as an io_context's does.
class pool_executor {
 public:
  explicit pool_executor(pool_core* core) noexcept : core_(core) {}

  pool_executor(const pool_executor& o) noexcept
      : core_(o.core_), possibly_(o.possibly_), tracked_(o.tracked_) {
    if (tracked_) core_->work_started();
  }
  pool_executor(pool_executor&& o) noexcept
      : core_(o.core_), possibly_(o.possibly_), tracked_(std::exchange(o.tracked_, false)) {}
  pool_executor& operator=(pool_executor o) noexcept {
    std::swap(core_, o.core_);
    std::swap(possibly_, o.possibly_);
    std::swap(tracked_, o.tracked_);
    return *this;
  }
  ~pool_executor() {
    if (tracked_) core_->work_finished();
  }

  // Queues `f` on the pool (or, with blocking.possibly on one of its
  // workers, runs it at once). Once the pool has stopped, `f` is destroyed
  // unrun.
  template <class F>
  void execute(F&& f) const {
    core_->execute(std::forward<F>(f), possibly_);
  }

  asio::execution_context& query(asio::execution::context_t) const noexcept {
    return core_->context();
  }
  asio::execution::blocking_t query(asio::execution::blocking_t) const noexcept {
    return possibly_ ? asio::execution::blocking_t(asio::execution::blocking.possibly)
                     : asio::execution::blocking_t(asio::execution::blocking.never);
  }
  asio::execution::outstanding_work_t query(asio::execution::outstanding_work_t) const noexcept {
    return tracked_
               ? asio::execution::outstanding_work_t(asio::execution::outstanding_work.tracked)
               : asio::execution::outstanding_work_t(asio::execution::outstanding_work.untracked);
  }
  static constexpr asio::execution::relationship_t query(asio::execution::relationship_t) noexcept {
    return asio::execution::relationship.fork;
  }

  pool_executor require(asio::execution::blocking_t::never_t) const noexcept {
    return with(false, tracked_);
  }
  pool_executor require(asio::execution::blocking_t::possibly_t) const noexcept {
    return with(true, tracked_);
  }
  pool_executor require(asio::execution::outstanding_work_t::tracked_t) const noexcept {
    return with(possibly_, true);
  }
  pool_executor require(asio::execution::outstanding_work_t::untracked_t) const noexcept {
    return with(possibly_, false);
  }
  pool_executor require(asio::execution::relationship_t::fork_t) const noexcept { return *this; }

  // The pre-standard work counting some Asio components call.
  void on_work_started() const noexcept { core_->work_started(); }
  void on_work_finished() const noexcept { core_->work_finished(); }

  bool running_in_this_thread() const noexcept { return core_->on_worker(); }

  friend bool operator==(const pool_executor& a, const pool_executor& b) noexcept {
    return a.core_ == b.core_ && a.possibly_ == b.possibly_ && a.tracked_ == b.tracked_;
  }
  friend bool operator!=(const pool_executor& a, const pool_executor& b) noexcept {
    return !(a == b);
  }

 private:
  pool_executor with(bool possibly, bool tracked) const noexcept {
    pool_executor e(core_);
    e.possibly_ = possibly;
    e.tracked_ = tracked;
    if (tracked) core_->work_started();
    return e;
  }

  pool_core* core_;
  bool possibly_ = false;
  bool tracked_ = false;
};

}  // namespace courier::detail
