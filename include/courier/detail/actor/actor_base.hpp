// An actor without its State's type or its placement's: the mailbox, the
// capacity, the drain, the stop, and the hooks through which it reaches the
// place it runs on.
#pragma once

#include "courier/detail/asio_config.hpp"

#include <asio/any_io_executor.hpp>
#include <asio/execution_context.hpp>
#include <cstdint>
#include <exception>
#include <thread>

#include "courier/detail/actor/mailbox.hpp"
#include "courier/detail/actor/mailbox_capacity.hpp"
#include "courier/detail/deferred_call.hpp"
#include "courier/detail/future/continuation_home.hpp"
#include "courier/detail/this_thread.hpp"
#include "courier/supervision.hpp"

namespace courier::detail {

// Every node queued to an actor is run with the actor as its home, so a node
// may cast its owner back to the actor type that queued it.
class actor_base : public continuation_home {
 public:
  // --- sending ---------------------------------------------------------------

  // Queues `n` from any thread, counted but admitted even past the bound. A
  // stopped actor abandons the node at once.
  void post(mailbox_node* n) noexcept {
    room_.admit();
    post_reserved(n);
  }

  void post_continuation(mailbox_node* n) noexcept final { post(n); }

  // Takes a place for one message if the mailbox has room (always, when
  // unbounded); the caller then queues it with post_reserved() or gives the
  // place back with unreserve().
  bool reserve() noexcept { return room_.reserve(*this); }
  void unreserve() noexcept { room_.release(1, *this); }

  // Queues w's node once there is room; w->done() reports the outcome, maybe
  // on this thread before this returns. Never blocks.
  void reserve_async(room_waiter* w) noexcept { room_.wait_for_room(w, *this); }

  // Queues a message whose place reserve() took.
  void post_reserved(mailbox_node* n) noexcept {
    if (stopped()) {
      n->abandon();
      room_.release(1, *this);
      return;
    }
    if (mailbox_.push(n)) activate();
  }

  // --- lifecycle ---------------------------------------------------------------

  // Stops the actor: queued and future nodes are abandoned, and the State is
  // released by the next drain. Idempotent, callable from any thread.
  void stop() noexcept {
    if (!mailbox_.stop()) return;
    room_.stopped(*this);
    if (mailbox_.claim()) activate();
  }

  // Stopped by stop(), by the failure policy, or by its context closing.
  bool stopped() const noexcept { return mailbox_.stopped() || context_closed(); }

  bool running_in_this_thread() const noexcept { return this_thread.actor == this; }

  // Runs queued nodes; called by the activation that owns the mailbox.
  void drain() noexcept {
    current_actor_scope scope(this);
    const std::uint32_t batch = mailbox_.batch();
    for (;;) {
      bool busy = false;
      bool more = false;
      std::uint32_t popped = 0;
      for (; popped < batch; ++popped) {
        mailbox_node* n = mailbox_.pop(busy);
        if (n == nullptr) break;
        // A message's place goes back as it is taken out; after the first of
        // a batch, the places go back together when the batch ends: one
        // atomic operation on the line the producers contend for, not one
        // per message.
        if (popped == 0) room_.release(1, *this);
        if (mailbox_.stopped()) {
          n->abandon();
        } else {
          n->run(*this);
        }
        more = (popped + 1 == batch);
      }
      if (popped > 1) room_.release(popped - 1, *this);
      if (more || busy) {
        // Yield the thread to other actors (or to the producer finishing its
        // push) and come back later, keeping the activation.
        if (!schedule_drain()) abandon_owned();
        return;
      }
      if (mailbox_.stopped()) release_state_once();
      if (!mailbox_.release([this] { return mailbox_.state_release_pending(); })) return;
    }
  }

  // Called when the activation is destroyed unrun (its execution context shut
  // down) or can no longer be scheduled: the actor stops for good and every
  // node is abandoned on the calling thread. The caller owns the activation.
  void abandon_owned() noexcept {
    mailbox_.set_stopped();
    room_.stopped(*this);
    for (;;) {
      bool busy = false;
      while (mailbox_node* n = mailbox_.pop(busy)) {
        room_.release(1, *this);
        n->abandon();
      }
      if (busy) {
        std::this_thread::yield();
        continue;
      }
      release_state_once();
      if (!mailbox_.release([] { return false; })) return;
    }
  }

  // --- failures ------------------------------------------------------------------

  // Before a handler whose failure applies the failure policy: keeps a copy
  // of the State when the actor restarts from its last good State. A flag
  // test otherwise, so that actors that did not opt in pay nothing more.
  void before_handler() noexcept {
    if (keeps_last_good_) keep_last_good();
  }

  // A plain handler run on the actor's executor threw; apply the actor's
  // failure policy. Called inside the actor.
  virtual void handler_failed(std::exception_ptr e) noexcept = 0;

  // --- where it runs (see placement.hpp) -------------------------------------------

  // Whether waiting for room in this mailbox could make this thread wait on
  // itself: it runs the execution context the actor drains on (a thread of
  // the user's io_context, say). Pool workers are known from this_thread.
  virtual bool drains_on_this_thread() const noexcept = 0;

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
  virtual void work_started() noexcept = 0;
  virtual void work_finished() noexcept = 0;

 protected:
  actor_base(failure_policy policy, bool keeps_last_good, std::uint32_t batch,
             std::uint32_t capacity) noexcept
      : policy_(static_cast<std::uint8_t>(policy)), keeps_last_good_(keeps_last_good) {
    mailbox_.set_batch(batch);
    room_.set_capacity(capacity);
  }

  failure_policy policy() const noexcept { return static_cast<failure_policy>(policy_); }

  // Whether the execution context refuses new activations for good.
  virtual bool context_closed() const noexcept = 0;

  // Queues one activation that will call drain(). Returns false when the
  // execution context is closed; the caller then still owns the activation.
  virtual bool schedule_drain() noexcept = 0;

  // Destroys the State of a stopped actor; called once, by the consumer.
  virtual void release_state() noexcept = 0;

  // Copies the State for restart_point::last_good (see before_handler).
  virtual void keep_last_good() noexcept = 0;

 private:
  void activate() noexcept {
    if (!schedule_drain()) abandon_owned();
  }

  void release_state_once() noexcept {
    if (mailbox_.take_state_release()) release_state();
  }

  // First, so that they sit in the padding after the reference count.
  std::uint8_t policy_;
  bool keeps_last_good_;
  mailbox mailbox_;
  mailbox_capacity room_;
};

// actor_base::run_if_open for any callable.
template <class F>
bool run_if_open(actor_base& a, F& f) noexcept {
  return a.run_if_open([](void* p) { (*static_cast<F*>(p))(); }, &f);
}

}  // namespace courier::detail
