// An actor without its State's type or its placement's: the mailbox, the
// capacity, the drain, the stop, and the hooks through which it reaches the
// place it runs on.
#pragma once

#include "courier/detail/asio_config.hpp"

#include <asio/any_io_executor.hpp>
#include <asio/execution_context.hpp>
#include <atomic>
#include <cstdint>
#include <exception>
#include <memory>
#include <thread>

#include "courier/detail/actor/actor_timers.hpp"
#include "courier/detail/actor/mailbox.hpp"
#include "courier/detail/actor/mailbox_capacity.hpp"
#include "courier/detail/actor/turns.hpp"
#include "courier/detail/deferred_call.hpp"
#include "courier/detail/future/continuation_home.hpp"
#include "courier/detail/scheduler/virtual_clock.hpp"
#include "courier/detail/this_thread.hpp"
#include "courier/spawn_options.hpp"
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

  // The mailbox's taken places now (see mailbox_capacity::taken()).
  std::uint64_t queued() const noexcept { return room_.taken(); }

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
  // While the actor belongs to a coroutine turn (atomic re-entrancy), the
  // nodes that do not continue that turn are held back, keeping their place
  // in the mailbox's bound, and run first once the turn ends. An actor that
  // never ran a coroutine handler drains without looking for any of that.
  void drain() noexcept {
    current_actor_scope scope(this);
    if (!turns_ && run_batches<false>()) return;
    drain_with_turns();
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

  // --- coroutine turns (inside the actor) ------------------------------------------

  // A coroutine handler starts: registers `t` and returns its id.
  std::uint32_t begin_turn(turn& t) {
    if (!turns_) turns_ = std::make_unique<turns>(reentrancy_ == reentrancy::atomic);
    return turns_->begin(t);
  }

  // The coroutine of `t` ended (inside the actor).
  void end_turn(turn& t) noexcept { turns_->end(t); }

  // Whether a function of turn `id` (0: of none) submitted from inside the
  // actor may run at once rather than be queued.
  bool may_run_now(std::uint32_t id) const noexcept { return !turns_ || turns_->may_run(id); }

  // Whether a coroutine handler has ever started here.
  bool has_had_turns() const noexcept { return turns_ != nullptr; }

  // Whether a coroutine handler has started and not ended.
  bool has_suspended_turns() const noexcept { return turns_ && turns_->has_active(); }

  // The turn the actor belongs to (atomic re-entrancy), or 0.
  std::uint32_t holding_turn() const noexcept { return turns_ ? turns_->holder() : 0; }
  // As holding_turn(), from any thread, for an actor known to have had a
  // coroutine turn (see wait_for_graph); the answer may lag.
  std::uint32_t holding_turn_from_anywhere() const noexcept { return turns_->holder(); }

  // --- timers -------------------------------------------------------------------

  // The list of the actor's timers, made by the first; from any thread.
  actor_timers& timers() {
    actor_timers* t = timers_.load(std::memory_order_acquire);
    if (t != nullptr) return *t;
    auto* fresh = new actor_timers();
    if (timers_.compare_exchange_strong(t, fresh, std::memory_order_acq_rel,
                                        std::memory_order_acquire))
      return *fresh;
    delete fresh;
    return *t;
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

  // The virtual clock the actor's timers follow (a deterministic testing
  // context's), or null for the steady clock.
  virtual virtual_clock* virtual_time() const noexcept = 0;

  // Runs `f` now if the execution context still accepts work, serialized
  // with its shutdown, and returns whether it ran. For touching objects that
  // belong to the context (timers) without racing its destruction.
  virtual bool run_if_open(void (*f)(void*), void* arg) noexcept = 0;

  // Runs `f` now, never while the execution context shuts its services down:
  // for destroying an object of the context (a timer) once run_if_open()
  // has found it closed.
  virtual void run_apart_from_shutdown(void (*f)(void*), void* arg) noexcept = 0;

  // Queues `c` on the execution context, outside the actor; once the context
  // has closed, or if it destroys `c` unrun, `c` runs on the calling thread.
  virtual void deliver(deferred_call* c) noexcept = 0;

  // Counts outstanding work on the execution context (as an Asio work guard
  // does) where the context supports it.
  virtual void work_started() noexcept = 0;
  virtual void work_finished() noexcept = 0;

 protected:
  actor_base(failure_policy policy, bool keeps_last_good, reentrancy mode, std::uint32_t batch,
             std::uint32_t capacity) noexcept
      : policy_(static_cast<std::uint8_t>(policy)),
        keeps_last_good_(keeps_last_good),
        reentrancy_(mode) {
    mailbox_.set_batch(batch);
    room_.set_capacity(capacity);
  }

  ~actor_base() override { delete timers_.load(std::memory_order_acquire); }

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

  // Runs batches of nodes until the activation is given up or rescheduled
  // (true), or, in the loop without turns, until a node started the actor's
  // first coroutine turn (false: go on with turns).
  template <bool WithTurns>
  bool run_batches() noexcept {
    const std::uint32_t batch = mailbox_.batch();
    for (;;) {
      bool busy = false;
      bool more = false;
      bool turns_began = false;
      std::uint32_t popped = 0;
      std::uint32_t held = 0;  // of those popped
      for (; popped < batch; ++popped) {
        mailbox_node* n = nullptr;
        if constexpr (WithTurns) n = turns_->take_runnable();
        if (n == nullptr) {
          n = mailbox_.pop(busy);
          if (n == nullptr) break;
          if constexpr (WithTurns) {
            if (!mailbox_.stopped() && turns_->holds_back(*n)) {
              turns_->hold(n);
              ++held;
              more = (popped + 1 == batch);
              continue;
            }
          }
        }
        // A message's place goes back as it is taken out; after the first of
        // a batch, the places go back together when the batch ends: one
        // atomic operation on the line the producers contend for, not one
        // per message.
        if (popped == held) room_.release(1, *this);
        if (mailbox_.stopped()) {
          n->abandon();
        } else {
          n->run(*this);
        }
        more = (popped + 1 == batch);
        if constexpr (!WithTurns) {
          if (turns_) [[unlikely]] {
            turns_began = true;
            ++popped;
            break;
          }
        }
      }
      const std::uint32_t ran = popped - held;
      if (ran > 1) room_.release(ran - 1, *this);
      if constexpr (WithTurns) {
        if (turns_->has_runnable() && !mailbox_.stopped()) more = true;
      } else if (turns_began) {
        return false;
      }
      if (more || busy) {
        // Yield the thread to other actors (or to the producer finishing its
        // push) and come back later, keeping the activation.
        if (!schedule_drain()) abandon_owned();
        return true;
      }
      if (mailbox_.stopped()) release_state_once();
      if (!mailbox_.release([this] { return mailbox_.state_release_pending(); })) return true;
    }
  }

  [[gnu::noinline]] void drain_with_turns() noexcept { (void)run_batches<true>(); }

  // The stopped actor's timers end, its turns answer their askers and its
  // held nodes are abandoned; then the State goes, unless a coroutine is still suspended:
  // its frame, destroyed when what it awaits completes, may still touch the
  // State (a local's destructor), so the State then goes with the actor,
  // which lives as long as any frame (each holds its turn's executor).
  void release_state_once() noexcept {
    if (!mailbox_.take_state_release()) return;
    if (actor_timers* t = timers_.load(std::memory_order_acquire)) t->close();
    bool suspended = false;
    if (turns_) {
      std::uint32_t held = turns_->held_count();
      suspended = turns_->end_all();
      if (held != 0) room_.release(held, *this);
    }
    if (!suspended) release_state();
  }

  // First, so that they sit in the padding after the reference count.
  std::uint8_t policy_;
  bool keeps_last_good_;
  reentrancy reentrancy_;
  mailbox mailbox_;
  mailbox_capacity room_;
  // Made by the first coroutine handler.
  std::unique_ptr<turns> turns_;
  // Made by the first timer.
  std::atomic<actor_timers*> timers_{nullptr};
};

// actor_base::run_if_open for any callable.
template <class F>
bool run_if_open(actor_base& a, F& f) noexcept {
  return a.run_if_open([](void* p) { (*static_cast<F*>(p))(); }, &f);
}

}  // namespace courier::detail
