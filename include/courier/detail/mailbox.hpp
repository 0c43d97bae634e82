// The scheduling core of an actor: a queue of nodes and one activation at a time.
#pragma once

#include "courier/detail/asio_config.hpp"

#include <asio/any_io_executor.hpp>
#include <asio/execution_context.hpp>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <utility>

#include "courier/detail/mpsc_queue.hpp"
#include "courier/detail/ref_counted.hpp"
#include "courier/detail/thread_context.hpp"

namespace courier::detail {

// A call courier owes to a completion handler, delivered exactly once.
class deferred_call {
 public:
  virtual ~deferred_call() = default;
  virtual void run() noexcept = 0;
};

// The handler that carries a deferred_call through an executor; runs the call
// even when the executor destroys it unrun.
class delivery {
 public:
  explicit delivery(deferred_call* c) noexcept : c_(c) {}
  delivery(delivery&& o) noexcept : c_(std::exchange(o.c_, nullptr)) {}
  delivery& operator=(delivery&&) = delete;
  ~delivery() {
    if (c_) fire();
  }
  void operator()() noexcept { fire(); }

 private:
  void fire() noexcept {
    deferred_call* c = std::exchange(c_, nullptr);
    c->run();
    delete c;
  }
  deferred_call* c_;
};

// A sender waiting for room in a bounded mailbox to queue `node`. done() is
// called exactly once, on whichever thread found room or stopped the mailbox;
// the mailbox does not touch the waiter after calling it.
class room_waiter {
 public:
  explicit room_waiter(mailbox_node* node) noexcept : node_(node) {}
  // True: `node` was queued. False: the mailbox stopped first and `node` was
  // abandoned.
  virtual void done(bool queued) noexcept = 0;

 protected:
  ~room_waiter() = default;

 private:
  friend class mailbox;
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

// A mailbox is the actor minus its State: it owns the queue and guarantees
// that at most one thread drains it at a time (strand semantics).
//
// Activation protocol: `scheduled_` is true while an activation is queued on
// the executor or draining. A producer that flips it from false to true owns
// the duty to schedule a drain. The drain flips it back to false only when it
// finds the queue empty, then re-checks the queue and re-claims the flag if a
// producer slipped in, so no node is ever left behind without an activation.
//
// Capacity protocol (bounded mailboxes only; capacity 0 skips all of it):
// `count_` counts every node queued, plus places reserved for messages about
// to be queued; a push adds one, a pop (or an abandon) takes one away, so the
// fast path is one atomic add per push and one subtract per pop. Only
// reserve() refuses, so only messages ever wait for room: continuations and
// executor handlers are admitted past the bound, because refusing them could
// lose a reply or deadlock. A sender that finds no room pushes a room_waiter
// on `waiters_`, sets `waiting_bit` in the count's word and looks again; the
// pop that brings the count down to half the capacity (or a stop) sees the
// bit, clears it and queues the waiters' messages, oldest first, while there
// is room. Waking at half, not at the first free place, lets woken producers
// queue a burst before they wait again, instead of sleeping and waking per
// message; and a thread blocked for room sleeps on its own waiter, so the
// pops in between never wake it.
//
// The pool's registry reaches every mailbox through a plain pointer, hence
// registered_ref_counted.
class mailbox : public registered_ref_counted {
 public:
  // Enqueues `n` from any thread, counted but admitted even past the bound.
  // A stopped mailbox abandons the node at once.
  void post(mailbox_node* n) noexcept {
    if (capacity_ != 0) count_.fetch_add(1, std::memory_order_acq_rel);
    post_reserved(n);
  }

  // Takes a place for one message if the mailbox has room (always, when
  // unbounded); the caller then queues it with post_reserved() or gives the
  // place back with unreserve().
  bool reserve() noexcept {
    if (capacity_ == 0) return true;
    // An add, not a compare-exchange loop: one atomic operation when there is
    // room. A refused add is undone at once, as a pop would be.
    if ((count_.fetch_add(1, std::memory_order_acq_rel) & count_mask) < capacity_) return true;
    unreserve();
    return false;
  }

  // Queues w's node once there is room; w->done() reports the outcome, maybe
  // on this thread before this returns. Never blocks: a sender that must wait
  // blocks on its own waiter (see blocking_room_waiter).
  void reserve_async(room_waiter* w) noexcept {
    if (!stopped() && reserve()) {
      post_reserved(w->node_);
      w->done(true);
      return;
    }
    if (enlist(w, w)) serve_waiters();
  }

  // Gives back a place taken by reserve() and not used.
  void unreserve() noexcept { release_place(); }

  // Queues a message whose place reserve() took.
  void post_reserved(mailbox_node* n) noexcept {
    if (stopped()) {
      n->abandon();
      release_place();
      return;
    }
    queue_.push(n);
    // A busy actor is usually scheduled already: a plain load spares the
    // contended line a locked write. The push and this load are both seq_cst,
    // as are the drain's clearing store and its re-check of the queue, so
    // either we see the flag cleared or the drain sees our node.
    if (scheduled_.load(std::memory_order_seq_cst)) return;
    if (!scheduled_.exchange(true, std::memory_order_seq_cst)) activate();
  }

  // Whether waiting for room in this mailbox could make this thread wait on
  // itself: it runs the execution context the actor drains on (a thread of
  // the user's io_context, say). Pool workers are known from thread_context.
  virtual bool drains_on_this_thread() const noexcept = 0;

  // Stops the mailbox: queued and future nodes are abandoned, and the State is
  // released by the next drain. Idempotent, callable from any thread.
  void stop() noexcept {
    if (stopped_.exchange(true, std::memory_order_seq_cst)) return;
    wake_after_stop();
    if (!scheduled_.exchange(true, std::memory_order_seq_cst)) activate();
  }

  // Stopped by stop(), by the failure policy, or by its context closing.
  bool stopped() const noexcept {
    return stopped_.load(std::memory_order_acquire) || context_closed();
  }

  bool running_in_this_thread() const noexcept { return this_thread.current == this; }

  // The execution context the actor's activations run on.
  virtual asio::execution_context& context() const noexcept = 0;
  // An executor of that context, outside the actor: where completions that
  // have no executor of their own are delivered.
  virtual asio::any_io_executor context_executor() const = 0;

  // Runs `f` now if the execution context still accepts work, serialized
  // with its shutdown, and returns whether it ran. For touching objects that
  // belong to the context (timers) without racing its destruction.
  virtual bool run_if_open(void (*f)(void*), void* arg) noexcept = 0;

  // Queues `c` on the execution context, outside the actor; once the context
  // has closed, or if it destroys `c` unrun, `c` runs on the calling thread.
  virtual void deliver(deferred_call* c) noexcept = 0;

  // Counts outstanding work on the execution context (as an Asio work guard
  // does) where the context supports it.
  virtual void context_work(bool started) noexcept = 0;

  // A plain handler run on the actor's executor threw; apply the actor's
  // failure policy. Called inside the actor.
  virtual void handler_failed(std::exception_ptr e) noexcept = 0;

  // Runs queued nodes; called by the activation that owns `scheduled_`.
  void drain() noexcept {
    current_actor_scope scope(this);
    for (;;) {
      bool busy = false;
      bool more = false;
      std::uint32_t popped = 0;
      for (; popped < batch_; ++popped) {
        mailbox_node* n = queue_.pop(busy);
        if (n == nullptr) break;
        // A message's place goes back as it is taken out; after the first of
        // a batch, the places go back together when the batch ends: one
        // atomic operation on the line the producers contend for, not one
        // per message.
        if (popped == 0) release_place();
        if (stopped_.load(std::memory_order_acquire)) {
          n->abandon();
        } else {
          n->run(*this);
        }
        more = (popped + 1 == batch_);
      }
      if (popped > 1) release_places(popped - 1);
      if (more || busy) {
        // Yield the thread to other actors (or to the producer finishing its
        // push) and come back later, keeping the activation.
        if (!schedule_drain()) abandon_owned();
        return;
      }
      if (stopped_.load(std::memory_order_acquire)) release_state_once();
      scheduled_.store(false, std::memory_order_seq_cst);
      // A stop() that found `scheduled_` still true left the State to us.
      if (!queue_.pushed_since_empty() && !release_pending()) return;
      if (scheduled_.exchange(true, std::memory_order_seq_cst)) return;
    }
  }

  // Called when the activation is destroyed unrun (its execution context shut
  // down) or can no longer be scheduled: the mailbox stops for good and every
  // node is abandoned on the calling thread. The caller owns `scheduled_`.
  void abandon_owned() noexcept {
    stopped_.store(true, std::memory_order_seq_cst);
    wake_after_stop();
    for (;;) {
      bool busy = false;
      while (mailbox_node* n = queue_.pop(busy)) {
        release_place();
        n->abandon();
      }
      if (busy) {
        std::this_thread::yield();
        continue;
      }
      release_state_once();
      scheduled_.store(false, std::memory_order_seq_cst);
      if (!queue_.pushed_since_empty()) return;
      if (scheduled_.exchange(true, std::memory_order_seq_cst)) return;
    }
  }

 protected:
  mailbox() = default;

  ~mailbox() override {
    bool busy = false;
    while (mailbox_node* n = queue_.pop(busy)) n->abandon();
  }

  // Whether the execution context refuses new activations for good.
  virtual bool context_closed() const noexcept = 0;

  void set_batch(std::uint32_t batch) noexcept { batch_ = batch; }
  void set_capacity(std::uint32_t capacity) noexcept { capacity_ = capacity; }

  // Queues one activation that will call drain(). Returns false when the
  // execution context is closed; the caller then still owns `scheduled_`.
  virtual bool schedule_drain() noexcept = 0;

  // Destroys the State of a stopped actor; called once, by the consumer.
  virtual void release_state() noexcept = 0;

 private:
  void activate() noexcept {
    if (!schedule_drain()) abandon_owned();
  }

  void release_state_once() noexcept {
    if (!state_released_.exchange(true, std::memory_order_acq_rel)) release_state();
  }

  bool release_pending() const noexcept {
    return stopped_.load(std::memory_order_seq_cst) &&
           !state_released_.load(std::memory_order_acquire);
  }

  static constexpr std::uint64_t waiting_bit = std::uint64_t{1} << 63;
  static constexpr std::uint64_t count_mask = waiting_bit - 1;

  // Pushes the chain first..last of waiters, then sets `waiting_bit`. True
  // when there is room or the mailbox has stopped by then: a pop or a stop
  // that came before the bit did not see it and will wake nobody, so the
  // caller must serve the waiters itself.
  bool enlist(room_waiter* first, room_waiter* last) noexcept {
    room_waiter* head = waiters_.load(std::memory_order_relaxed);
    do {
      last->next_ = head;
    } while (!waiters_.compare_exchange_weak(head, first, std::memory_order_acq_rel,
                                             std::memory_order_relaxed));
    // The chain may be served (and gone) from here on, by another thread.
    const std::uint64_t seen = count_.fetch_or(waiting_bit, std::memory_order_seq_cst);
    return (seen & count_mask) < capacity_ || stopped();
  }

  void release_place() noexcept { release_places(1); }

  void release_places(std::uint64_t n) noexcept {
    if (capacity_ == 0 || n == 0) return;
    const std::uint64_t before = count_.fetch_sub(n, std::memory_order_acq_rel);
    if ((before & waiting_bit) && (before & count_mask) - n <= capacity_ / 2) wake_waiters();
  }

  void wake_waiters() noexcept {
    // Whoever clears the bit serves; a waiter that sets it again looks again.
    if (count_.fetch_and(~waiting_bit, std::memory_order_seq_cst) & waiting_bit) serve_waiters();
  }

  // After `stopped_` is set: every waiter is told that its message was
  // abandoned. A waiter that announces itself later sees the stop when it
  // looks again.
  void wake_after_stop() noexcept {
    if (capacity_ == 0) return;
    count_.fetch_and(~waiting_bit, std::memory_order_seq_cst);
    serve_waiters();
  }

  // Queues the messages of asynchronous waiters, oldest first, while there is
  // room; fails them all once stopped. Those left over wait again.
  void serve_waiters() noexcept {
    for (;;) {
      room_waiter* newest = waiters_.exchange(nullptr, std::memory_order_acq_rel);
      room_waiter* oldest = nullptr;
      while (newest != nullptr) {
        room_waiter* next = newest->next_;
        newest->next_ = oldest;
        oldest = newest;
        newest = next;
      }
      while (oldest != nullptr) {
        room_waiter* w = oldest;
        const bool stopping = stopped();
        if (!stopping && !reserve()) break;
        oldest = w->next_;
        if (stopping) {
          w->node_->abandon();
          w->done(false);
        } else {
          post_reserved(w->node_);
          w->done(true);
        }
      }
      if (oldest == nullptr) return;
      room_waiter* last = oldest;
      while (last->next_ != nullptr) last = last->next_;
      if (!enlist(oldest, last)) return;
    }
  }

  // The bound on queued messages; 0 for none. Set once, before any use.
  // Declared first so that it can sit in the padding after ref_counted.
  std::uint32_t capacity_ = 0;

  friend class pool_core;
  mailbox* registry_prev_ = nullptr;  // guarded by the pool's registry lock
  mailbox* registry_next_ = nullptr;

  mpsc_queue queue_;
  // Nodes queued or reserved, and `waiting_bit` (see the class comment).
  std::atomic<std::uint64_t> count_{0};
  // Senders waiting for room, newest first: a Treiber stack that is pushed
  // onto and taken whole, never popped one by one, so it has no ABA problem.
  std::atomic<room_waiter*> waiters_{nullptr};
  std::atomic<bool> scheduled_{false};
  std::atomic<bool> stopped_{false};
  std::atomic<bool> state_released_{false};
  // Nodes run per activation before the thread is offered to other actors.
  std::uint32_t batch_ = 64;
};

// mailbox::run_if_open for any callable.
template <class F>
bool run_if_open(mailbox& m, F& f) noexcept {
  return m.run_if_open([](void* p) { (*static_cast<F*>(p))(); }, &f);
}

// The handler an executor runs to drain a mailbox. If the executor destroys it
// without running it (its context shut down), the mailbox's nodes are
// abandoned so that no ask waits forever.
class activation {
 public:
  explicit activation(mailbox* m) noexcept : m_(ref_ptr<mailbox>::share(m)) {}
  activation(activation&&) noexcept = default;
  activation& operator=(activation&&) noexcept = default;
  ~activation() {
    if (m_) m_->abandon_owned();
  }

  void operator()() noexcept {
    ref_ptr<mailbox> m = std::move(m_);
    m->drain();
  }

 private:
  ref_ptr<mailbox> m_;
};

}  // namespace courier::detail
