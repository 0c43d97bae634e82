// The scheduling core of an actor: a queue of nodes and one activation at a time.
#pragma once

#include "courier/detail/asio_config.hpp"

#include <asio/any_io_executor.hpp>
#include <asio/execution_context.hpp>
#include <atomic>
#include <cstdint>
#include <exception>
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

// A mailbox is the actor minus its State: it owns the queue and guarantees
// that at most one thread drains it at a time (strand semantics).
//
// Activation protocol: `scheduled_` is true while an activation is queued on
// the executor or draining. A producer that flips it from false to true owns
// the duty to schedule a drain. The drain flips it back to false only when it
// finds the queue empty, then re-checks the queue and re-claims the flag if a
// producer slipped in, so no node is ever left behind without an activation.
class mailbox : public ref_counted {
 public:
  // Enqueues `n` from any thread. A stopped mailbox abandons the node at once.
  void post(mailbox_node* n) noexcept {
    if (stopped()) {
      n->abandon();
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

  // Stops the mailbox: queued and future nodes are abandoned, and the State is
  // released by the next drain. Idempotent, callable from any thread.
  void stop() noexcept {
    if (stopped_.exchange(true, std::memory_order_seq_cst)) return;
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
      for (std::uint32_t i = 0; i < batch_; ++i) {
        mailbox_node* n = queue_.pop(busy);
        if (n == nullptr) break;
        if (stopped_.load(std::memory_order_acquire)) {
          n->abandon();
        } else {
          n->run(*this);
        }
        more = (i + 1 == batch_);
      }
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
    for (;;) {
      bool busy = false;
      while (mailbox_node* n = queue_.pop(busy)) n->abandon();
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

  friend class pool_core;
  mailbox* registry_prev_ = nullptr;  // guarded by the pool's registry lock
  mailbox* registry_next_ = nullptr;

  mpsc_queue queue_;
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
