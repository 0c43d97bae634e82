// The pool's lifecycle: the gate that admits work, the outstanding work that
// keeps a graceful close waiting, and the latch that lets one caller close.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <thread>

namespace courier::detail {

// Open until shut, for good. Work admitted under the gate's lock is queued
// before shut() returns, so the closer finds (and discards) all of it.
class gate {
 public:
  // Read without the lock, by stopped() queries and fast checks.
  bool closed() const noexcept { return closed_.load(std::memory_order_acquire); }

  // Runs `f` unless the gate is shut, serialized with shut(), and returns
  // whether it ran.
  template <class F>
  bool run_if_open(F&& f) noexcept {
    std::lock_guard<std::mutex> lock(mutex_);
    if (closed_.load(std::memory_order_relaxed)) return false;
    f();
    return true;
  }

  // Shuts the gate, running `also` under its lock (to close the queues that
  // admitted work through it).
  template <class F>
  void shut(F&& also) noexcept {
    std::lock_guard<std::mutex> lock(mutex_);
    closed_.store(true, std::memory_order_release);
    also();
  }

 private:
  std::mutex mutex_;
  std::atomic<bool> closed_{false};
};

// Outstanding work, as an Asio work guard counts it: a graceful close waits
// for it to reach zero. The last unit is released where the closer checks
// for quiescence (see pool_core::work_finished).
class outstanding_work {
 public:
  void started() noexcept { count_.fetch_add(1, std::memory_order_seq_cst); }

  // Releases one unit unless it is the last; false, changing nothing, when
  // it is.
  bool finished_unless_last() noexcept {
    std::size_t n = count_.load(std::memory_order_relaxed);
    while (n > 1)
      if (count_.compare_exchange_weak(n, n - 1, std::memory_order_seq_cst,
                                       std::memory_order_relaxed))
        return true;
    return false;
  }

  // Releases a unit; true when it was the last.
  bool finished() noexcept { return count_.fetch_sub(1, std::memory_order_seq_cst) == 1; }

  bool none() const noexcept { return count_.load(std::memory_order_seq_cst) == 0; }

 private:
  alignas(64) std::atomic<std::size_t> count_{0};
};

// Lets exactly one caller run the close sequence. Concurrent callers wait
// for it to finish; a call from inside the sequence itself (a continuation
// it runs on the closing thread) returns at once.
class close_latch {
 public:
  // True: the caller closes now and calls finish() afterwards. False: the
  // pool is closed, or is being closed by this very thread.
  bool begin() {
    std::unique_lock<std::mutex> lock(mutex_);
    if (state_ == closing) {
      if (closer_ != std::this_thread::get_id())
        done_.wait(lock, [this] { return state_ == done; });
      return false;
    }
    if (state_ == done) return false;
    state_ = closing;
    closer_ = std::this_thread::get_id();
    return true;
  }

  void finish() noexcept {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      state_ = done;
    }
    done_.notify_all();
  }

 private:
  enum close_state { open, closing, done };
  std::mutex mutex_;
  std::condition_variable done_;
  close_state state_ = open;
  std::thread::id closer_;
};

}  // namespace courier::detail
