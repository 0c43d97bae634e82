// The shared state between a promise and its future.
#pragma once

#include <atomic>
#include <cstdint>
#include <exception>
#include <new>
#include <utility>

#include "courier/detail/future/continuation.hpp"
#include "courier/detail/ref_counted.hpp"
#include "courier/result.hpp"

namespace courier::detail {

// The lock-free part shared by every future_state<T>. One word of flags
// carries the whole protocol. A state has one setter at a time (a promise is
// not shared between threads; an ask's node, a continuation and a deadline
// each hand theirs on rather than race): the setter stores the result, then
// publishes it in one atomic operation, and wakes a blocked waiter
// and fires the continuation, each only if present. A reply with neither
// costs one locked operation and no system call.
class future_state_base : public ref_counted {
 public:
  explicit future_state_base(std::uint32_t initial_refs) noexcept : ref_counted(initial_refs) {}

  // Whether the result is in. Only the setter publishes it, so for the setter
  // this also tells whether it already stored one.
  bool ready() const noexcept { return flags_.load(std::memory_order_acquire) & ready_bit; }

  // Blocks the calling thread until the result is published.
  void wait() const noexcept {
    unsigned f = flags_.fetch_or(waiter_bit, std::memory_order_acq_rel) | waiter_bit;
    while (!(f & ready_bit)) {
      flags_.wait(f, std::memory_order_acquire);
      f = flags_.load(std::memory_order_acquire);
    }
  }

  // Marks `thread` (a this_thread_id()) as one that must not block on this
  // state (see future::get()). By the future's holder, before any
  // continuation attaches.
  void forbid_waiting_on(const void* thread) noexcept { no_wait_on_ = thread; }

  // Whether `thread` must not block on this state. Asked by the holder of a
  // future that has not been consumed, so no continuation has attached.
  bool waiting_forbidden_on(const void* thread) const noexcept {
    return no_wait_on_ != nullptr && no_wait_on_ == thread;
  }

  // Attaches the single continuation; fires it at once if the result is in.
  // It takes the place of the no-wait mark: the future that attaches it is
  // consumed, so nobody asks waiting_forbidden_on() again.
  void attach(continuation* c) noexcept {
    continuation_ = c;
    if (flags_.fetch_or(continuation_bit, std::memory_order_acq_rel) & ready_bit) c->start();
  }

 protected:
  static constexpr unsigned ready_bit = 1;
  static constexpr unsigned continuation_bit = 2;
  static constexpr unsigned waiter_bit = 4;

  // Publishes the stored result. The setter holds a reference
  // throughout (a promise, or a node that owns one), so a woken waiter
  // dropping its own cannot free the state under us. The continuation may
  // drop the setter's reference (it may own the promise), so nothing touches
  // the state once it has started.
  void publish() noexcept {
    const unsigned prev = flags_.fetch_or(ready_bit, std::memory_order_acq_rel);
    if (prev & waiter_bit) flags_.notify_all();
    if (prev & continuation_bit) continuation_->start();
  }

 private:
  mutable std::atomic<unsigned> flags_{0};
  // One word for two uses that never overlap, so that a future stays one
  // pointer and a state does not grow: the continuation once attached (read
  // by the setter only when continuation_bit says so), and before that the
  // thread that must not wait, read only by the future's holder.
  union {
    const void* no_wait_on_ = nullptr;
    continuation* continuation_;
  };
};

// Not final: an ask's message node and a then() continuation are each fused
// with the state they complete, so that each costs one allocation.
template <class T>
class future_state : public future_state_base {
 public:
  // A bare state starts with the reference of whoever made it; a node that
  // is made together with its future starts with two.
  explicit future_state(std::uint32_t initial_refs = 1) noexcept
      : future_state_base(initial_refs) {}
  ~future_state() override {
    if (ready()) result_.~result<T>();
  }

  // The first call stores; later calls return false and change nothing.
  template <class... Args>
  bool try_set_value(Args&&... args) noexcept {
    if (ready()) return false;
    try {
      ::new (static_cast<void*>(&result_)) result<T>(std::in_place, std::forward<Args>(args)...);
    } catch (...) {
      ::new (static_cast<void*>(&result_)) result<T>(result<T>::failure(std::current_exception()));
    }
    publish();
    return true;
  }

  bool try_set_exception(std::exception_ptr e) noexcept {
    if (ready()) return false;
    ::new (static_cast<void*>(&result_)) result<T>(result<T>::failure(std::move(e)));
    publish();
    return true;
  }

  bool try_set_result(result<T>&& r) noexcept {
    if (ready()) return false;
    ::new (static_cast<void*>(&result_)) result<T>(std::move(r));
    publish();
    return true;
  }

  // Valid once ready() is true, for the single consumer.
  result<T>& get() noexcept { return result_; }

 private:
  union {
    result<T> result_;
  };
};

}  // namespace courier::detail
