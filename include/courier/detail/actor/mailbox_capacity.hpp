// The bound on a mailbox, and the senders waiting for room in it.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>

#include "courier/detail/future/continuation_home.hpp"

namespace courier::detail {

// A sender waiting for room in a bounded mailbox to queue `node`. done() is
// called exactly once, on whichever thread found room or saw the stop; the
// mailbox does not touch the waiter after calling it.
class room_waiter {
 public:
  explicit room_waiter(mailbox_node* node) noexcept : node_(node) {}
  // True: `node` was queued. False: the actor stopped first and `node` was
  // abandoned.
  virtual void done(bool queued) noexcept = 0;

 protected:
  ~room_waiter() = default;

 private:
  friend class mailbox_capacity;
  mailbox_node* node_;
  room_waiter* next_ = nullptr;
};

// A sender thread that sleeps until its message is queued or refused. It
// sleeps on its own condition variable, so nothing but its turn wakes it.
class blocking_room_waiter final : public room_waiter {
 public:
  using room_waiter::room_waiter;

  void done(bool queued) noexcept override {
    // Notify under the lock: the sleeper destroys *this once it can lock.
    std::lock_guard<std::mutex> lock(mutex_);
    queued_ = queued;
    finished_ = true;
    wake_.notify_one();
  }

  // Returns what done() reported.
  bool wait() {
    std::unique_lock<std::mutex> lock(mutex_);
    wake_.wait(lock, [this] { return finished_; });
    return queued_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable wake_;
  bool finished_ = false;
  bool queued_ = false;
};

// Capacity protocol (bounded mailboxes only; capacity 0 skips all of it):
// `count_` counts every node queued, plus places reserved for messages about
// to be queued; a push adds one, a pop (or an abandon) takes one away, so the
// fast path is one atomic add per push and one subtract per pop. Only
// reserve() refuses, so only messages ever wait for room: continuations and
// executor handlers are admitted past the bound, because refusing them could
// lose a reply or deadlock. A sender that finds no room pushes a room_waiter
// on `waiters_`, sets `waiting_bit` in the count's word and looks again; the
// release that brings the count down to half the capacity (or a stop) sees
// the bit, clears it and queues the waiters' messages, oldest first, while
// there is room. Waking at half, not at the first free place, lets woken
// producers queue a burst before they wait again, instead of sleeping and
// waking per message; and a thread blocked for room sleeps on its own
// waiter, so the releases in between never wake it.
//
// Serving a waiter queues its message, which is the actor's business: the
// members that may serve take the actor as `Sink`, with
//   bool stopped() const noexcept;
//   void post_reserved(mailbox_node*) noexcept;  // queues into a reserved place
class mailbox_capacity {
 public:
  // The bound; 0 for none. Set once, before any use.
  void set_capacity(std::uint32_t capacity) noexcept { capacity_ = capacity; }

  // How many places are taken now (0 when unbounded): a snapshot.
  std::uint64_t taken() const noexcept {
    return capacity_ == 0 ? 0 : count_.load(std::memory_order_relaxed) & count_mask;
  }

  // Counts a node admitted whatever the bound.
  void admit() noexcept {
    if (capacity_ != 0) count_.fetch_add(1, std::memory_order_acq_rel);
  }

  // Takes a place for one message if there is room (always, when unbounded).
  template <class Sink>
  bool reserve(Sink& sink) noexcept {
    if (capacity_ == 0) return true;
    // An add, not a compare-exchange loop: one atomic operation when there is
    // room. A refused add is undone at once, as a pop would be.
    if ((count_.fetch_add(1, std::memory_order_acq_rel) & count_mask) < capacity_) return true;
    release(1, sink);
    return false;
  }

  // Gives back `n` places (nodes taken out, or reservations not used); the
  // release that brings the count down to half the capacity serves waiters.
  template <class Sink>
  void release(std::uint64_t n, Sink& sink) noexcept {
    if (capacity_ == 0 || n == 0) return;
    const std::uint64_t before = count_.fetch_sub(n, std::memory_order_acq_rel);
    if ((before & waiting_bit) && (before & count_mask) - n <= capacity_ / 2) wake_waiters(sink);
  }

  // Queues w's node once there is room; w->done() reports the outcome, maybe
  // on this thread before this returns. Never blocks.
  template <class Sink>
  void wait_for_room(room_waiter* w, Sink& sink) noexcept {
    if (!sink.stopped() && reserve(sink)) {
      sink.post_reserved(w->node_);
      w->done(true);
      return;
    }
    if (enlist(w, w, sink)) serve_waiters(sink);
  }

  // After the actor stopped: every waiter is told that its message was
  // abandoned. A waiter that announces itself later sees the stop when it
  // looks again.
  template <class Sink>
  void stopped(Sink& sink) noexcept {
    if (capacity_ == 0) return;
    count_.fetch_and(~waiting_bit, std::memory_order_seq_cst);
    serve_waiters(sink);
  }

 private:
  static constexpr std::uint64_t waiting_bit = std::uint64_t{1} << 63;
  static constexpr std::uint64_t count_mask = waiting_bit - 1;

  // Pushes the chain first..last of waiters, then sets `waiting_bit`. True
  // when there is room or the actor has stopped by then: a release or a stop
  // that came before the bit did not see it and will wake nobody, so the
  // caller must serve the waiters itself.
  template <class Sink>
  bool enlist(room_waiter* first, room_waiter* last, Sink& sink) noexcept {
    room_waiter* head = waiters_.load(std::memory_order_relaxed);
    do {
      last->next_ = head;
    } while (!waiters_.compare_exchange_weak(head, first, std::memory_order_acq_rel,
                                             std::memory_order_relaxed));
    // The chain may be served (and gone) from here on, by another thread.
    const std::uint64_t seen = count_.fetch_or(waiting_bit, std::memory_order_seq_cst);
    return (seen & count_mask) < capacity_ || sink.stopped();
  }

  template <class Sink>
  void wake_waiters(Sink& sink) noexcept {
    // Whoever clears the bit serves; a waiter that sets it again looks again.
    if (count_.fetch_and(~waiting_bit, std::memory_order_seq_cst) & waiting_bit)
      serve_waiters(sink);
  }

  // The chain starting at `w`, in the opposite order; returns its new head.
  static room_waiter* reversed(room_waiter* w) noexcept {
    room_waiter* head = nullptr;
    while (w != nullptr) {
      room_waiter* next = w->next_;
      w->next_ = head;
      head = w;
      w = next;
    }
    return head;
  }

  // Queues the messages of waiters, oldest first, while there is room; fails
  // them all once stopped. Those left over wait again, keeping their turn.
  template <class Sink>
  void serve_waiters(Sink& sink) noexcept {
    for (;;) {
      room_waiter* oldest = reversed(waiters_.exchange(nullptr, std::memory_order_acq_rel));
      while (oldest != nullptr) {
        room_waiter* w = oldest;
        const bool stopping = sink.stopped();
        if (!stopping && !reserve(sink)) break;
        oldest = w->next_;
        if (stopping) {
          w->node_->abandon();
          w->done(false);
        } else {
          sink.post_reserved(w->node_);
          w->done(true);
        }
      }
      if (oldest == nullptr) return;
      // The leftovers go back newest first, as the stack keeps waiters, and
      // under the waiters that arrived since the stack was taken (they are
      // newer): the next wake, which reverses the stack, then serves the
      // leftovers first, oldest first. Only waiters that arrive between
      // taking those arrivals and enlisting can still get ahead.
      room_waiter* last = oldest;
      room_waiter* first = reversed(oldest);
      if (room_waiter* arrived = waiters_.exchange(nullptr, std::memory_order_acq_rel)) {
        room_waiter* bottom = arrived;
        while (bottom->next_ != nullptr) bottom = bottom->next_;
        bottom->next_ = first;
        first = arrived;
      }
      if (!enlist(first, last, sink)) return;
    }
  }

  std::uint32_t capacity_ = 0;
  // Nodes queued or reserved, and `waiting_bit` (see the class comment).
  std::atomic<std::uint64_t> count_{0};
  // Senders waiting for room, newest first: a Treiber stack that is pushed
  // onto and taken whole, never popped one by one, so it has no ABA problem.
  std::atomic<room_waiter*> waiters_{nullptr};
};

}  // namespace courier::detail
