// A clock that moves only when told to, and the entries due on it: the time
// of a testing::deterministic_context.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <set>

namespace courier::detail {

// Asks an executor for the virtual clock of its context: an executor whose
// context keeps one has `virtual_clock* query(virtual_time_t) const noexcept`.
struct virtual_time_t {};

// Time starts at the clock's epoch and moves forward only through
// fire_next() and advance_to(). Entries are kept in order of due time, and
// entries due at the same time in the order they were armed, so that the
// same sequence of calls always fires them in the same order.
//
// Thread safety: every member may be called from any thread; fire() and
// dropped() are called outside the clock's lock, so they may arm entries.
class virtual_clock {
 public:
  using time_point = std::chrono::steady_clock::time_point;

  // Something due at a time on the clock. Armed at most once at a time.
  class entry {
   public:
    // The due time came (from fire_next()).
    virtual void fire() noexcept = 0;
    // The clock is going away while the entry is armed (from drop_all()).
    virtual void dropped() noexcept = 0;

   protected:
    entry() = default;
    ~entry() = default;

   private:
    friend class virtual_clock;
    time_point due_{};
    std::uint64_t order_ = 0;
  };

  virtual_clock() = default;
  virtual_clock(const virtual_clock&) = delete;
  virtual_clock& operator=(const virtual_clock&) = delete;

  time_point now() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return now_;
  }

  // Arms `e` (not armed) for `due`; a time already past is due at once.
  void arm(entry& e, time_point due) {
    std::lock_guard<std::mutex> lock(mutex_);
    e.due_ = due;
    e.order_ = next_order_++;
    queue_.insert(&e);
  }

  // Disarms `e`; whether it was armed (and now will not fire).
  bool disarm(entry& e) noexcept {
    std::lock_guard<std::mutex> lock(mutex_);
    return queue_.erase(&e) != 0;
  }

  // Fires the first entry due at or before `limit`, moving the time forward
  // to its due time; false when there is none.
  bool fire_next(time_point limit) {
    entry* e = nullptr;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (queue_.empty() || (*queue_.begin())->due_ > limit) return false;
      e = *queue_.begin();
      queue_.erase(queue_.begin());
      if (e->due_ > now_) now_ = e->due_;
    }
    e->fire();
    return true;
  }

  // Moves the time forward to `t` (never back).
  void advance_to(time_point t) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (t > now_) now_ = t;
  }

  // Disarms every entry, telling each it was dropped; whether there was any.
  bool drop_all() noexcept {
    bool any = false;
    for (;;) {
      entry* e = nullptr;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        if (queue_.empty()) return any;
        e = *queue_.begin();
        queue_.erase(queue_.begin());
      }
      any = true;
      e->dropped();
    }
  }

 private:
  struct earlier {
    bool operator()(const entry* a, const entry* b) const noexcept {
      return a->due_ < b->due_ || (a->due_ == b->due_ && a->order_ < b->order_);
    }
  };

  mutable std::mutex mutex_;
  time_point now_{};
  std::uint64_t next_order_ = 0;
  std::set<entry*, earlier> queue_;
};

}  // namespace courier::detail
