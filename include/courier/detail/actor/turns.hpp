// What an actor keeps of its coroutine handlers between their start and their
// end: the turns in progress, which of them the actor belongs to (atomic
// re-entrancy), and the messages held back meanwhile.
#pragma once

#include <atomic>
#include <cstdint>

#include "courier/detail/future/continuation_home.hpp"
#include "courier/detail/ref_counted.hpp"

namespace courier::detail {

// One coroutine handler in progress. Two references: the actor's list of
// turns in progress, and the coroutine's completion handler. Its asker is
// answered exactly once, by whichever comes first: the coroutine's end
// (inside the actor), the actor's stop (inside the actor), or the
// destruction of the coroutine unfinished (on any thread: the operation it
// awaited completed into a stopped actor, or its execution context shut
// down). settle() decides which.
class turn : public ref_counted {
 public:
  // Which turn of its actor this is; never 0.
  std::uint32_t id() const noexcept { return id_; }

  // True for the first caller only: it answers the asker.
  bool settle() noexcept { return !settled_.exchange(true, std::memory_order_acq_rel); }

  // Whether the actor has ended the turn (inside the actor).
  bool ended() const noexcept { return ended_; }

  // The actor stopped: the asker learns actor_stopped, unless it was
  // answered already.
  virtual void actor_stopped() noexcept = 0;

 protected:
  turn() noexcept : ref_counted(2) {}
  ~turn() override = default;

 private:
  friend class turns;
  std::uint32_t id_ = 0;
  std::atomic<bool> settled_{false};
  bool ended_ = false;
  turn* prev_ = nullptr;
  turn* next_ = nullptr;
};

// The coroutine bookkeeping of one actor, made when its first coroutine
// handler starts. Used by the actor's consumer only (inside the actor).
class turns {
 public:
  explicit turns(bool atomic) noexcept : atomic_(atomic) {}
  turns(const turns&) = delete;
  turns& operator=(const turns&) = delete;
  ~turns() { (void)end_all(); }

  // Registers `t` as started; in atomic mode the actor now belongs to it
  // until it ends. Returns its id.
  std::uint32_t begin(turn& t) noexcept {
    if (++last_id_ == 0) ++last_id_;
    t.id_ = last_id_;
    t.next_ = active_;
    if (active_ != nullptr) active_->prev_ = &t;
    active_ = &t;
    if (atomic_) holder_.store(t.id_, std::memory_order_relaxed);
    return t.id_;
  }

  // `t` ended: the actor is free again, and drops its reference.
  void end(turn& t) noexcept {
    t.ended_ = true;
    unlink(t);
    if (holder() == t.id_) holder_.store(0, std::memory_order_relaxed);
    t.release();
  }

  // The actor stopped: every turn's asker learns actor_stopped, the held
  // messages are abandoned, and the actor belongs to no turn any more.
  // Returns whether any turn was still in progress.
  bool end_all() noexcept {
    const bool any = active_ != nullptr;
    holder_.store(0, std::memory_order_relaxed);
    while (active_ != nullptr) {
      turn* t = active_;
      t->ended_ = true;
      unlink(*t);
      t->actor_stopped();
      t->release();
    }
    while (mailbox_node* n = take_held()) n->abandon();
    return any;
  }

  // The turn the actor belongs to (atomic mode, while one is in progress),
  // or 0. Everything queued to the actor that does not continue it waits.
  // Written inside the actor only; read there, and (as a hint that may lag)
  // by the wait-for graph.
  std::uint32_t holder() const noexcept { return holder_.load(std::memory_order_relaxed); }

  // Whether `n` must wait: the actor belongs to a turn `n` does not continue.
  bool holds_back(const mailbox_node& n) const noexcept {
    const std::uint32_t h = holder();
    return h != 0 && n.turn_id() != h;
  }

  // Whether work of turn `id` (0: no turn) may run now.
  bool may_run(std::uint32_t id) const noexcept {
    const std::uint32_t h = holder();
    return h == 0 || h == id;
  }

  // Keeps `n` until the actor belongs to no turn; held nodes keep their
  // order and run before anything still in the mailbox.
  void hold(mailbox_node* n) noexcept {
    set_link(n, nullptr);
    if (held_tail_ != nullptr) {
      set_link(held_tail_, n);
    } else {
      held_head_ = n;
    }
    held_tail_ = n;
    ++held_count_;
  }

  // Whether any turn is in progress.
  bool has_active() const noexcept { return active_ != nullptr; }

  // How many nodes are held back.
  std::uint32_t held_count() const noexcept { return held_count_; }

  // The oldest held node, once the actor belongs to no turn; null otherwise.
  mailbox_node* take_runnable() noexcept { return holder() == 0 ? take_held() : nullptr; }

  bool has_runnable() const noexcept { return holder() == 0 && held_head_ != nullptr; }

 private:
  // A held node is out of the mailbox's queue, so its queue link is free.
  static void set_link(mailbox_node* n, mailbox_node* next) noexcept {
    n->next_.store(next, std::memory_order_relaxed);
  }
  static mailbox_node* link(mailbox_node* n) noexcept {
    return n->next_.load(std::memory_order_relaxed);
  }

  mailbox_node* take_held() noexcept {
    mailbox_node* n = held_head_;
    if (n == nullptr) return nullptr;
    held_head_ = link(n);
    if (held_head_ == nullptr) held_tail_ = nullptr;
    --held_count_;
    return n;
  }

  void unlink(turn& t) noexcept {
    if (t.prev_ != nullptr) {
      t.prev_->next_ = t.next_;
    } else {
      active_ = t.next_;
    }
    if (t.next_ != nullptr) t.next_->prev_ = t.prev_;
    t.prev_ = t.next_ = nullptr;
  }

  bool atomic_;
  std::uint32_t last_id_ = 0;
  std::atomic<std::uint32_t> holder_{0};
  turn* active_ = nullptr;
  mailbox_node* held_head_ = nullptr;
  mailbox_node* held_tail_ = nullptr;
  std::uint32_t held_count_ = 0;
};

}  // namespace courier::detail
