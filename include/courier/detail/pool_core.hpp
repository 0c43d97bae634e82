// The shared heart of courier::thread_pool: an io_context, its workers, the
// actors spawned on it, and the gate that decides whether work may still be
// queued.
#pragma once

#include "courier/detail/asio_config.hpp"

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/require.hpp>
#include <atomic>
#include <condition_variable>
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

  // Runs `f` unless the pool is closed, serialized with close(), and returns
  // whether it ran. Workers skip the gate: they run only before close() has
  // joined them, and close() destroys what they queued.
  template <class F>
  bool run_if_open(F&& f) noexcept {
    if (this_thread.pool == this) {
      f();
      return true;
    }
    std::lock_guard<std::mutex> lock(gate_);
    if (closed_.load(std::memory_order_relaxed)) return false;
    f();
    return true;
  }

  // Queues a drain of `m`. False when the pool is closed: the caller then
  // abandons the mailbox itself.
  bool post_activation(mailbox* m) noexcept {
    // A plain (fork) post even from a worker: Asio's continuation hint would
    // keep the activation on this worker's private queue until the running
    // handler returns, stalling it behind a long batch while another worker
    // sits idle. Keeping chains on one thread needs a scheduler that lets an
    // idle worker steal; io_context cannot.
    return run_if_open([&] { post(activation(m)); });
  }

  // Queues `c` outside every actor; runs it here once the pool is closed.
  void deliver(deferred_call* c) noexcept {
    delivery d(c);
    run_if_open([&] { post(std::move(d)); });
  }

  void context_work(bool started) noexcept {
    if (started)
      ctx_.get_executor().on_work_started();
    else
      ctx_.get_executor().on_work_finished();
  }

  // Records an actor so that close() can stop it. False once closing began.
  bool enroll(mailbox* m) noexcept {
    std::lock_guard<std::mutex> lock(registry_mutex_);
    if (registry_closed_) return false;
    m->registry_next_ = registry_head_;
    if (registry_head_) registry_head_->registry_prev_ = m;
    registry_head_ = m;
    return true;
  }

  void withdraw(mailbox* m) noexcept {
    std::lock_guard<std::mutex> lock(registry_mutex_);
    if (m->registry_prev_) m->registry_prev_->registry_next_ = m->registry_next_;
    if (m->registry_next_) m->registry_next_->registry_prev_ = m->registry_prev_;
    if (registry_head_ == m) registry_head_ = m->registry_next_;
    m->registry_prev_ = m->registry_next_ = nullptr;
  }

  // Shuts the pool down. Graceful lets the workers finish every queued
  // handler (and what those queue) first; otherwise they stop after the
  // handlers they are running. Then the gate closes, every actor on the pool
  // stops (on this thread), and every handler still queued is destroyed
  // unrun, which abandons the mailboxes it would have drained. Idempotent;
  // concurrent callers wait for the first; a call from inside the shutdown
  // itself (a continuation it runs) returns at once.
  void close(bool graceful) {
    if (this_thread.pool == this)
      throw usage_error("thread_pool stopped or destroyed from one of its own worker threads");
    {
      std::unique_lock<std::mutex> lock(close_mutex_);
      if (close_state_ == closing) {
        if (closer_ != std::this_thread::get_id())
          close_done_.wait(lock, [this] { return close_state_ == done; });
        return;
      }
      if (close_state_ == done) return;
      close_state_ = closing;
      closer_ = std::this_thread::get_id();
    }
    if (graceful) {
      work_.reset();
    } else {
      shut_gate();
      ctx_.stop();
    }
    for (auto& t : workers_)
      if (t.joinable()) t.join();
    shut_gate();
    work_.reset();
    stop_all_actors();
    ctx_.shutdown();
    {
      std::lock_guard<std::mutex> lock(close_mutex_);
      close_state_ = done;
    }
    close_done_.notify_all();
  }

 private:
  ~pool_core() override { close(false); }

  // Queues `h` on the io_context, never running it inline.
  template <class Handler>
  void post(Handler&& h) {
    asio::execution::execute(asio::require(ctx_.get_executor(), asio::execution::blocking.never),
                             std::forward<Handler>(h));
  }

  void shut_gate() {
    std::lock_guard<std::mutex> lock(gate_);
    closed_.store(true, std::memory_order_release);
  }

  void stop_all_actors() {
    std::vector<ref_ptr<mailbox>> live;
    {
      std::lock_guard<std::mutex> lock(registry_mutex_);
      registry_closed_ = true;
      for (mailbox* m = registry_head_; m != nullptr; m = m->registry_next_)
        if (m->try_add_ref()) live.push_back(ref_ptr<mailbox>::adopt(m));
    }
    // With the gate shut, stop() abandons each idle mailbox on this thread;
    // one whose activation is still queued is abandoned by ctx_.shutdown().
    for (auto& m : live) m->stop();
  }

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

  std::mutex gate_;
  // Written under gate_, so work admitted under gate_ is queued before
  // close() goes on; read without the lock by stopped() queries.
  std::atomic<bool> closed_{false};

  std::mutex registry_mutex_;
  mailbox* registry_head_ = nullptr;
  bool registry_closed_ = false;

  enum close_state { open, closing, done };
  std::mutex close_mutex_;
  std::condition_variable close_done_;
  close_state close_state_ = open;
  std::thread::id closer_;
};

}  // namespace courier::detail
