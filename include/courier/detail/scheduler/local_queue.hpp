// Each worker's own run queue, from which other workers may steal.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>

#include "courier/detail/scheduler/task.hpp"

namespace courier::detail {

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

}  // namespace courier::detail
