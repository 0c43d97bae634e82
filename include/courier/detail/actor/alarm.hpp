// An expiry on an actor's clock: what ask deadlines, tell_after(),
// tell_every() and courier::steady_timer wait with.
#pragma once

#include "courier/detail/asio_config.hpp"

#include <asio/basic_waitable_timer.hpp>
#include <asio/wait_traits.hpp>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <new>
#include <optional>
#include <system_error>
#include <type_traits>
#include <utility>

#include "courier/detail/actor/actor_base.hpp"
#include "courier/detail/executor/basic_executor.hpp"
#include "courier/detail/ref_counted.hpp"
#include "courier/detail/scheduler/virtual_clock.hpp"

namespace courier::detail {

using steady_time = std::chrono::steady_clock::time_point;

// A timeout as the steady clock counts it, saturated: a timeout too long to
// represent (hours::max(), say) waits as long as the clock can, instead of
// overflowing.
template <class Rep, class Period>
std::chrono::steady_clock::duration saturated(std::chrono::duration<Rep, Period> d) noexcept {
  using clock_duration = std::chrono::steady_clock::duration;
  using given = std::chrono::duration<Rep, Period>;
  if (d <= given::zero()) return clock_duration::zero();
  // Converting the clock's maximum to the coarser or floating type cannot
  // overflow; converting a larger `d` the other way would.
  if (d >= std::chrono::duration_cast<given>(clock_duration::max())) return clock_duration::max();
  return std::chrono::duration_cast<clock_duration>(d);
}

// `from + d`, or the clock's last time point where that would overflow.
inline steady_time saturated_add(steady_time from, std::chrono::steady_clock::duration d) noexcept {
  if (d <= d.zero()) return from;
  if (from.time_since_epoch().count() > 0 && d > steady_time::max() - from)
    return steady_time::max();
  return from + d;
}

// The executor of an alarm's Asio timer: whatever runs on it runs at once,
// on the thread that completes the wait (Asio's timer thread for a courier
// pool, a thread running the user's io_context), so an expiry arrives on time
// even while every worker is busy in long handlers. Tracked copies count as
// work on the actor's context, so a graceful close still waits for a pending
// expiry.
class alarm_executor : public basic_executor<alarm_executor, actor_base> {
 public:
  explicit alarm_executor(ref_ptr<actor_base> home) noexcept
      : basic_executor(std::move(home), true, false) {}

  template <class F>
  static void submit(actor_base&, bool, std::uint32_t, F&& f) {
    std::decay_t<F> local(std::forward<F>(f));
    local();
  }

 private:
  friend class basic_executor<alarm_executor, actor_base>;
  alarm_executor(ref_ptr<actor_base> home, bool possibly, bool tracked, std::uint32_t) noexcept
      : basic_executor(std::move(home), possibly, tracked) {}
};

// Room for the one wait an alarm usually has pending, so that arming again
// and again allocates nothing. A second wait (one cancelled but not yet
// completed, or one too large) goes to the heap. Out of line: inlined into
// Asio's wait operation, GCC 12 takes the flag's store for an overflow of
// the operation it just destroyed (-Wstringop-overflow).
class wait_slot {
 public:
  [[gnu::noinline]] void* allocate(std::size_t n) {
    if (n <= sizeof(bytes_) && !in_use_.exchange(true, std::memory_order_acquire)) return bytes_;
    return ::operator new(n);
  }
  [[gnu::noinline]] void deallocate(void* p) noexcept {
    if (p == static_cast<void*>(bytes_)) {
      in_use_.store(false, std::memory_order_release);
    } else {
      ::operator delete(p);
    }
  }

 private:
  alignas(std::max_align_t) unsigned char bytes_[192];
  std::atomic<bool> in_use_{false};
};

// The allocator Asio finds on an alarm's wait handler.
template <class T>
class wait_slot_allocator {
 public:
  using value_type = T;
  explicit wait_slot_allocator(wait_slot* s) noexcept : slot_(s) {}
  template <class U>
  wait_slot_allocator(const wait_slot_allocator<U>& o) noexcept : slot_(o.slot_) {}

  T* allocate(std::size_t n) { return static_cast<T*>(slot_->allocate(n * sizeof(T))); }
  void deallocate(T* p, std::size_t) noexcept { slot_->deallocate(p); }

  friend bool operator==(const wait_slot_allocator& a, const wait_slot_allocator& b) noexcept {
    return a.slot_ == b.slot_;
  }
  friend bool operator!=(const wait_slot_allocator& a, const wait_slot_allocator& b) noexcept {
    return a.slot_ != b.slot_;
  }

 private:
  template <class U>
  friend class wait_slot_allocator;
  wait_slot* slot_;
};

// An expiry on the clock of the actor `home`: the steady clock, or, for an
// actor on a testing::deterministic_context, that context's virtual clock.
// arm() sets (or moves) the one expiry; when it comes, expired() is called
// once, on the thread that completes the wait: Asio's timer thread for a
// courier pool, a thread running the user's execution context, the thread
// that moves a deterministic context's time. disarm() cancels it. An expiry
// that has not yet passed its last check when arm() or disarm() is called is
// dropped; one that has may still call expired() just after, so expired()
// must check what it acts on (a steady_timer compares its expiry time with
// the clock; a tell_every timer its cancelled flag).
//
// `Base` is ref_counted or a class derived from it; the alarm holds a
// reference to itself while armed. It keeps the actor (and so its
// execution context) alive. The Asio timer is made and touched only while
// the context is open: making the first timer of a context creates Asio's
// timer service in it, which must not race the context's shutdown; once the
// context is closed, arm() does nothing.
//
// Thread safety: arm() and disarm() may be called from any thread.
template <class Base>
class alarm : public Base, private virtual_clock::entry {
 public:
  // The current time on the alarm's clock.
  steady_time now() const {
    return virtual_ != nullptr ? virtual_->now() : steady_time::clock::now();
  }

  void arm(steady_time due) {
    std::lock_guard<std::mutex> lock(mutex_);
    // An expiry already on its way is stale from here on: completed() checks
    // the generation under this lock. The new one is recorded once the wait
    // is made, so that a wait Asio destroys because making it threw (out of
    // memory) is stale too, and does not come back into this lock.
    const std::uint64_t next = generation_.load(std::memory_order_relaxed) + 1;
    if (virtual_ != nullptr) {
      generation_.store(next, std::memory_order_release);
      const bool was_armed = virtual_->disarm(*this);
      try {
        virtual_->arm(*this, due);
      } catch (...) {
        if (was_armed) this->release();
        throw;
      }
      if (!was_armed) this->add_ref();
      return;
    }
    auto start = [&] {
      if (!timer_) timer_.emplace(alarm_executor(home_));
      timer_->expires_at(due);  // cancels the pending wait, if any
      timer_->async_wait(wait_handler(ref_ptr<alarm>::share(this), next));
    };
    try {
      run_if_open(*home_, start);
    } catch (...) {
      generation_.store(next, std::memory_order_release);
      throw;
    }
    generation_.store(next, std::memory_order_release);
  }

  void disarm() noexcept {
    std::lock_guard<std::mutex> lock(mutex_);
    generation_.store(generation_.load(std::memory_order_relaxed) + 1, std::memory_order_release);
    if (virtual_ != nullptr) {
      if (virtual_->disarm(*this)) this->release();
      return;
    }
    auto cancel = [this] {
      if (timer_) timer_->cancel();
    };
    run_if_open(*home_, cancel);
  }

 protected:
  template <class... BaseArgs>
  explicit alarm(ref_ptr<actor_base> home, BaseArgs&&... base_args)
      : Base(std::forward<BaseArgs>(base_args)...),
        home_(std::move(home)),
        virtual_(home_->virtual_time()) {}
  // The Asio timer belongs to the context's timer service: it is destroyed
  // while the context is open, or else never while the context shuts its
  // services down (the pool's close), which would race the service.
  ~alarm() override {
    if (!timer_) return;
    auto destroy = [this] { timer_.reset(); };
    if (run_if_open(*home_, destroy)) return;
    home_->run_apart_from_shutdown([](void* p) { (*static_cast<decltype(destroy)*>(p))(); },
                                   &destroy);
  }

  // The expiry came. Never called with the alarm's lock held.
  virtual void expired() noexcept = 0;

  // The pending expiry will never come: the context shut down and destroyed
  // the wait, or the virtual clock went away with it. Never called with the
  // alarm's lock held.
  virtual void abandoned() noexcept {}

  actor_base& home() const noexcept { return *home_; }

 private:
  // Destroyed without being called (its context shut down), it tells the
  // alarm, if it was the current wait.
  class wait_handler {
   public:
    wait_handler(ref_ptr<alarm> self, std::uint64_t generation) noexcept
        : self_(std::move(self)), generation_(generation) {}
    wait_handler(wait_handler&&) noexcept = default;
    wait_handler& operator=(wait_handler&&) = delete;
    ~wait_handler() {
      if (self_) self_->dropped_wait(generation_);
    }

    using allocator_type = wait_slot_allocator<void>;
    allocator_type get_allocator() const noexcept { return allocator_type(&self_->slot_); }
    void operator()(const std::error_code& ec) {
      ref_ptr<alarm> self = std::move(self_);
      if (!ec) self->completed(generation_);
    }

   private:
    ref_ptr<alarm> self_;
    std::uint64_t generation_;
  };

  // Without the lock: a wait that making threw is destroyed while arm()
  // holds it (and is stale).
  void dropped_wait(std::uint64_t generation) noexcept {
    if (generation != generation_.load(std::memory_order_acquire)) return;
    abandoned();
  }

  void completed(std::uint64_t generation) noexcept {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (generation != generation_.load(std::memory_order_relaxed)) return;
    }
    expired();
  }

  // As a virtual clock's entry: the reference taken when armed goes.
  void fire() noexcept override {
    expired();
    this->release();
  }
  void dropped() noexcept override {
    abandoned();
    this->release();
  }

  ref_ptr<actor_base> home_;
  virtual_clock* const virtual_;
  // Asio timers are not safe for concurrent use: the mutex serializes
  // arming and cancelling from any thread.
  std::mutex mutex_;
  // Written under mutex_; read without it by dropped_wait().
  std::atomic<std::uint64_t> generation_{0};
  using timer_type =
      asio::basic_waitable_timer<std::chrono::steady_clock,
                                 asio::wait_traits<std::chrono::steady_clock>, alarm_executor>;
  std::optional<timer_type> timer_;
  wait_slot slot_;
};

}  // namespace courier::detail
