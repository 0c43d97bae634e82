// The queues of courier's scheduler: the unit of work it runs, each worker's
// own run queue, and the shared queue for work submitted from other threads.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>

namespace courier::detail {

// One unit of work for the scheduler: an actor's activation (one reusable
// task per actor) or a posted handler. Exactly one of run() and discard() is
// called per submission.
class task {
 public:
  // Runs the work. May submit this same task again before returning, so the
  // caller must not touch the task afterwards.
  virtual void run() noexcept = 0;
  // Drops the work unrun (the pool shut down).
  virtual void discard() noexcept = 0;

 protected:
  task() = default;
  ~task() = default;

 private:
  friend class injection_queue;
  task* next_ = nullptr;
};

// A worker's queue: the owning worker pushes at the back; the owner and
// thieves take from the front with one compare-and-swap, so a pop never
// waits for another thread. Fixed capacity; a full queue refuses the push
// and the owner moves work to the injection queue instead.
class local_queue {
 public:
  static constexpr std::uint32_t capacity = 256;

  // Owner only. False when full. `resumed`: the task is an actor that is
  // still busy and scheduled itself again (after a full batch, or while a
  // sender was mid-push); see worth_stealing.
  bool push(task* t, bool resumed = false) noexcept {
    const std::uint32_t tail = tail_.load(std::memory_order_relaxed);
    const std::uint32_t head = head_.load(std::memory_order_acquire);
    if (tail - head >= capacity) return false;
    slots_[tail % capacity].store(tag(t, resumed), std::memory_order_relaxed);
    // seq_cst: a worker deciding to sleep reads tail after announcing it;
    // this push must be visible to it or its announcement to us.
    tail_.store(tail + 1, std::memory_order_seq_cst);
    return true;
  }

  // Any thread: the oldest task, or null.
  task* pop() noexcept {
    std::uint32_t head = head_.load(std::memory_order_acquire);
    for (;;) {
      const std::uint32_t tail = tail_.load(std::memory_order_seq_cst);
      if (head == tail) return nullptr;
      // The slot may be overwritten once the owner wraps around; then the
      // head has moved on and the exchange below fails, discarding the read.
      task* t = slots_[head % capacity].load(std::memory_order_relaxed);
      if (head_.compare_exchange_weak(head, head + 1, std::memory_order_acq_rel,
                                      std::memory_order_acquire))
        return untag(t);
    }
  }

  // Whether another worker should take work from here (unless this worker is
  // stuck in one task, when anything queued is fair game). A lone task is
  // left to its owner: it runs soon anyway, and moving it would split actors
  // that talk to each other across cores. So are two actors that each
  // resumed: two busy actors on one worker are usually feeding each other (a
  // hot pair of accounts, say), and split across cores every message between
  // them would become a cross-core hand-off that costs more than the handler.
  // Approximate (the queue may change meanwhile), which is fine for a
  // decision to look.
  bool worth_stealing() const noexcept {
    const std::uint32_t head = head_.load(std::memory_order_seq_cst);
    const std::uint32_t tail = tail_.load(std::memory_order_seq_cst);
    const std::uint32_t n = tail - head;
    if (n > capacity || n < 2) return false;
    if (n > 2) return true;
    return !(resumed(slots_[head % capacity].load(std::memory_order_relaxed)) &&
             resumed(slots_[(head + 1) % capacity].load(std::memory_order_relaxed)));
  }

  bool empty() const noexcept {
    return head_.load(std::memory_order_seq_cst) == tail_.load(std::memory_order_seq_cst);
  }

  // Approximate under concurrent pops; never more than what was pushed.
  // seq_cst: a worker deciding to sleep reads it after announcing itself.
  std::uint32_t size() const noexcept {
    const std::uint32_t head = head_.load(std::memory_order_seq_cst);
    const std::uint32_t tail = tail_.load(std::memory_order_seq_cst);
    const std::uint32_t n = tail - head;
    return n <= capacity ? n : 0;
  }

 private:
  // A slot holds the task's address with its lowest bit set for a resumed
  // actor.
  static_assert(alignof(task) >= 2, "the low bit of a task's address must be free");
  static task* tag(task* t, bool resumed) noexcept {
    return reinterpret_cast<task*>(reinterpret_cast<std::uintptr_t>(t) |
                                   static_cast<std::uintptr_t>(resumed));
  }
  static task* untag(task* t) noexcept {
    return reinterpret_cast<task*>(reinterpret_cast<std::uintptr_t>(t) & ~std::uintptr_t{1});
  }
  static bool resumed(task* t) noexcept { return reinterpret_cast<std::uintptr_t>(t) & 1; }

  alignas(64) std::atomic<std::uint32_t> head_{0};
  alignas(64) std::atomic<std::uint32_t> tail_{0};
  std::array<std::atomic<task*>, capacity> slots_{};
};

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
