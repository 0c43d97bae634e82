// The shared heart of courier::thread_pool: an io_context, its workers, and
// the gate that decides whether an activation may still be queued.
#pragma once

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/require.hpp>
#include <atomic>
#include <cstddef>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "courier/detail/mailbox.hpp"
#include "courier/detail/ref_counted.hpp"
#include "courier/detail/thread_context.hpp"
#include "courier/errors.hpp"

namespace courier::detail {

// An io_context whose services can be shut down (pending handlers destroyed)
// while the object itself stays alive for the actors that still point at it.
class pool_context : public asio::io_context {
 public:
  explicit pool_context(int concurrency_hint) : asio::io_context(concurrency_hint) {}
  using asio::execution_context::shutdown;
};

// Owned by the thread_pool object and by every actor spawned on it, so an
// actor handle that outlives its pool still finds a closed gate, not freed
// memory.
class pool_core final : public ref_counted {
 public:
  explicit pool_core(std::size_t threads)
      : ctx_(static_cast<int>(threads)), work_(asio::make_work_guard(ctx_)) {
    if (threads == 0) throw usage_error("thread_pool needs at least one thread");
    workers_.reserve(threads);
    try {
      for (std::size_t i = 0; i < threads; ++i) workers_.emplace_back([this] { work(); });
    } catch (...) {
      close(false);
      throw;
    }
  }

  std::size_t size() const noexcept { return workers_.size(); }
  pool_context& context() noexcept { return ctx_; }

  bool closed() const noexcept { return closed_.load(std::memory_order_acquire); }

  // Queues a drain of `m`. False when the pool is closed: the caller then
  // abandons the mailbox itself. Workers skip the gate: they can only post
  // before close() has joined them, and close() destroys what they queued.
  bool post_activation(mailbox* m) noexcept {
    auto ex = asio::require(ctx_.get_executor(), asio::execution::blocking.never);
    if (this_thread.pool == this) {
      asio::execution::execute(ex, activation(m));
      return true;
    }
    std::lock_guard<std::mutex> lock(gate_);
    if (closed_.load(std::memory_order_relaxed)) return false;
    asio::execution::execute(ex, activation(m));
    return true;
  }

  // Shuts the pool down: graceful lets the workers finish every queued
  // handler (and what those queue) first; otherwise they stop after the
  // handlers they are running. Then the gate closes and every handler still
  // queued is destroyed unrun, which abandons the mailboxes it would have
  // drained. Idempotent; must not be called from a worker of this pool.
  void close(bool graceful) {
    std::lock_guard<std::mutex> serial(close_mutex_);
    if (joined_) return;
    if (this_thread.pool == this)
      throw usage_error("thread_pool stopped or destroyed from one of its own worker threads");
    if (graceful) {
      work_.reset();
    } else {
      {
        std::lock_guard<std::mutex> lock(gate_);
        closed_.store(true, std::memory_order_release);
      }
      ctx_.stop();
    }
    for (auto& t : workers_)
      if (t.joinable()) t.join();
    joined_ = true;
    {
      std::lock_guard<std::mutex> lock(gate_);
      closed_.store(true, std::memory_order_release);
    }
    work_.reset();
    ctx_.shutdown();
  }

 private:
  ~pool_core() override { close(false); }

  void work() noexcept {
    this_thread.pool = this;
    for (;;) {
      try {
        ctx_.run();
        return;
      } catch (...) {
        // A handler posted straight to the pool's executor threw. The worker
        // survives and goes back to work; actor handlers never get here.
      }
    }
  }

  pool_context ctx_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  std::vector<std::thread> workers_;
  mutable std::mutex gate_;
  // Written under gate_, so a post that saw it false under gate_ is queued
  // before close() goes on; read without the lock by stopped() queries.
  std::atomic<bool> closed_{false};
  std::mutex close_mutex_;
  bool joined_ = false;
};

}  // namespace courier::detail
