// The timers of an actor (tell_after, tell_every), which its stop ends.
#pragma once

#include <mutex>

namespace courier::detail {

// A timer as the actor's list sees it.
class timer_link {
 public:
  // The actor stopped: the timer ends. Called with the list's lock held.
  virtual void actor_stopped() noexcept = 0;

 protected:
  timer_link() = default;
  ~timer_link() = default;

 private:
  friend class actor_timers;
  timer_link* prev_ = nullptr;
  timer_link* next_ = nullptr;
  bool linked_ = false;
};

// The timers of one actor that have not ended, made by its first timer.
// A timer is listed while it may still send; once the actor stops, close()
// ends every timer listed and refuses new ones. A listed timer is kept alive
// by its owner (a courier::timer), which withdraws it before letting it go.
//
// Thread safety: every member may be called from any thread.
class actor_timers {
 public:
  actor_timers() = default;
  actor_timers(const actor_timers&) = delete;
  actor_timers& operator=(const actor_timers&) = delete;

  // Lists `t`; false, listing nothing, once the actor has stopped.
  bool add(timer_link& t) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (closed_) return false;
    t.prev_ = nullptr;
    t.next_ = head_;
    if (head_ != nullptr) head_->prev_ = &t;
    head_ = &t;
    t.linked_ = true;
    return true;
  }

  // Withdraws `t` if it is listed.
  void remove(timer_link& t) noexcept {
    std::lock_guard<std::mutex> lock(mutex_);
    unlink(t);
  }

  // The actor stopped: ends every listed timer. Idempotent.
  void close() noexcept {
    std::lock_guard<std::mutex> lock(mutex_);
    closed_ = true;
    while (timer_link* t = head_) {
      unlink(*t);
      t->actor_stopped();
    }
  }

 private:
  void unlink(timer_link& t) noexcept {
    if (!t.linked_) return;
    if (t.prev_ != nullptr) {
      t.prev_->next_ = t.next_;
    } else {
      head_ = t.next_;
    }
    if (t.next_ != nullptr) t.next_->prev_ = t.prev_;
    t.prev_ = t.next_ = nullptr;
    t.linked_ = false;
  }

  std::mutex mutex_;
  timer_link* head_ = nullptr;
  bool closed_ = false;
};

}  // namespace courier::detail
