// The shared queue of work submitted from outside the workers.
#pragma once

#include <atomic>
#include <cstddef>
#include <mutex>

#include "courier/detail/scheduler/task.hpp"

namespace courier::detail {

// Work submitted from outside the workers, and overflow from full local
// queues: a locked intrusive FIFO with a lock-free emptiness check.
class injection_queue {
 public:
  // False, leaving `t` with the caller, once the queue is closed.
  bool push(task* t) noexcept {
    std::lock_guard<std::mutex> lock(mutex_);
    if (closed_) return false;
    append(t);
    return true;
  }

  // Pushes even when closed: for the scheduler's own bookkeeping while it
  // shuts down.
  void push_always(task* t) noexcept {
    std::lock_guard<std::mutex> lock(mutex_);
    append(t);
  }

  task* pop() noexcept {
    if (empty()) return nullptr;
    std::lock_guard<std::mutex> lock(mutex_);
    task* t = head_;
    if (t == nullptr) return nullptr;
    head_ = t->next_;
    if (head_ == nullptr) tail_ = nullptr;
    size_.fetch_sub(1, std::memory_order_relaxed);
    return t;
  }

  bool empty() const noexcept { return size_.load(std::memory_order_seq_cst) == 0; }

  // Refuses later push() calls; a push that took the lock first is queued
  // before close() returns.
  void close() noexcept {
    std::lock_guard<std::mutex> lock(mutex_);
    closed_ = true;
  }

 private:
  // Under mutex_.
  void append(task* t) noexcept {
    t->next_ = nullptr;
    if (tail_)
      tail_->next_ = t;
    else
      head_ = t;
    tail_ = t;
    size_.fetch_add(1, std::memory_order_seq_cst);
  }

  std::mutex mutex_;
  task* head_ = nullptr;
  task* tail_ = nullptr;
  bool closed_ = false;
  std::atomic<std::size_t> size_{0};
};

}  // namespace courier::detail
