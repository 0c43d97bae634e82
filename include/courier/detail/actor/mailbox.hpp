// An actor's mailbox: the queue of its work, and the activation state that
// lets one thread at a time drain it.
#pragma once

#include <atomic>
#include <cstdint>

#include "courier/detail/actor/mpsc_queue.hpp"
#include "courier/detail/future/continuation_home.hpp"

namespace courier::detail {

// Activation protocol: `scheduled_` is true while an activation is queued or
// draining. A producer that flips it from false to true owns the duty to
// schedule a drain: push() and claim() report that duty through their return
// value, and the caller (the actor) schedules. The drain gives the
// activation up only when it finds the queue empty, then re-checks the queue
// and re-claims it if a producer slipped in, so no node is ever left behind
// without an activation.
//
// The mailbox also records that the actor stopped and that its State was
// released, the two facts the drain acts on.
class mailbox {
 public:
  mailbox() = default;
  mailbox(const mailbox&) = delete;
  mailbox& operator=(const mailbox&) = delete;

  // Whatever is still queued when the actor is destroyed is abandoned.
  ~mailbox() {
    bool busy = false;
    while (mailbox_node* n = queue_.pop(busy)) n->abandon();
  }

  // Queues `n`, from any thread. True when the caller must schedule a drain.
  [[nodiscard]] bool push(mailbox_node* n) noexcept {
    queue_.push(n);
    // A busy actor is usually scheduled already: a plain load spares the
    // contended line a locked write. The push and this load are both seq_cst,
    // as are the drain's clearing store and its re-check of the queue, so
    // either we see the flag cleared or the drain sees our node.
    if (scheduled_.load(std::memory_order_seq_cst)) return false;
    return !scheduled_.exchange(true, std::memory_order_seq_cst);
  }

  // Takes the activation without queuing anything (a stop needs a drain to
  // release the State). True when the caller must schedule a drain.
  [[nodiscard]] bool claim() noexcept {
    return !scheduled_.exchange(true, std::memory_order_seq_cst);
  }

  // The oldest node, or null; for the holder of the activation only. `busy`:
  // a producer is mid-push, the queue is not empty.
  mailbox_node* pop(bool& busy) noexcept { return queue_.pop(busy); }

  // The holder found the queue empty and gives the activation up. True when
  // it must go on draining, holding the activation again: a producer pushed
  // meanwhile, or `more()` (asked after the activation was given up) says so.
  template <class More>
  [[nodiscard]] bool release(More&& more) noexcept {
    scheduled_.store(false, std::memory_order_seq_cst);
    if (!queue_.pushed_since_empty() && !more()) return false;
    return !scheduled_.exchange(true, std::memory_order_seq_cst);
  }

  // Stopped: nothing queued runs any more. stop() is true for the first
  // caller only.
  bool stop() noexcept { return !stopped_.exchange(true, std::memory_order_seq_cst); }
  void set_stopped() noexcept { stopped_.store(true, std::memory_order_seq_cst); }
  bool stopped() const noexcept { return stopped_.load(std::memory_order_acquire); }

  // The State goes once, by whichever consumer gets here first.
  bool take_state_release() noexcept {
    return !state_released_.exchange(true, std::memory_order_acq_rel);
  }
  // A stop() that found the activation taken left the State to its holder.
  bool state_release_pending() const noexcept {
    return stopped_.load(std::memory_order_seq_cst) &&
           !state_released_.load(std::memory_order_acquire);
  }

  // Nodes run per activation before the thread is offered to other actors.
  std::uint32_t batch() const noexcept { return batch_; }
  void set_batch(std::uint32_t batch) noexcept { batch_ = batch; }

 private:
  mpsc_queue queue_;
  std::uint32_t batch_ = 64;
  std::atomic<bool> scheduled_{false};
  std::atomic<bool> stopped_{false};
  std::atomic<bool> state_released_{false};
};

}  // namespace courier::detail
