// The shared state between a promise and its future.
#pragma once

#include <atomic>
#include <exception>
#include <new>
#include <utility>

#include "courier/detail/ref_counted.hpp"
#include "courier/result.hpp"

namespace courier::detail {

// Runs once the state it is attached to holds a result. fire() owns the object.
class continuation {
 public:
  virtual void fire() noexcept = 0;

 protected:
  ~continuation() = default;
};

// The lock-free part shared by every future_state<T>. One word of flags
// carries the whole protocol: the first setter claims, publishes the result,
// then wakes a blocked waiter and fires the continuation, each only if present,
// so a reply with neither costs two atomic operations and no system call.
class future_state_base : public ref_counted {
 public:
  bool ready() const noexcept { return flags_.load(std::memory_order_acquire) & ready_bit; }

  // Blocks the calling thread until the result is published.
  void wait() const noexcept {
    unsigned f = flags_.fetch_or(waiter_bit, std::memory_order_acq_rel) | waiter_bit;
    while (!(f & ready_bit)) {
      flags_.wait(f, std::memory_order_acquire);
      f = flags_.load(std::memory_order_acquire);
    }
  }

  // Attaches the single continuation; fires it at once if the result is in.
  void attach(continuation* c) noexcept {
    continuation_ = c;
    if (flags_.fetch_or(continuation_bit, std::memory_order_acq_rel) & ready_bit) c->fire();
  }

 protected:
  static constexpr unsigned claimed_bit = 1;
  static constexpr unsigned ready_bit = 2;
  static constexpr unsigned continuation_bit = 4;
  static constexpr unsigned waiter_bit = 8;

  bool claim() noexcept {
    return !(flags_.fetch_or(claimed_bit, std::memory_order_acq_rel) & claimed_bit);
  }

  void publish() noexcept {
    // Keep the state alive while waking: a woken waiter may drop its reference.
    add_ref();
    const unsigned prev = flags_.fetch_or(ready_bit, std::memory_order_acq_rel);
    if (prev & waiter_bit) flags_.notify_all();
    if (prev & continuation_bit) continuation_->fire();
    release();
  }

  bool published() const noexcept { return flags_.load(std::memory_order_acquire) & ready_bit; }

 private:
  mutable std::atomic<unsigned> flags_{0};
  continuation* continuation_ = nullptr;
};

template <class T>
class future_state final : public future_state_base {
 public:
  future_state() noexcept {}
  ~future_state() override {
    if (published()) result_.~result<T>();
  }

  // First setter wins; later calls return false and change nothing.
  template <class... Args>
  bool try_set_value(Args&&... args) noexcept {
    if (!claim()) return false;
    try {
      ::new (static_cast<void*>(&result_)) result<T>(std::in_place, std::forward<Args>(args)...);
    } catch (...) {
      ::new (static_cast<void*>(&result_)) result<T>(result<T>::failure(std::current_exception()));
    }
    publish();
    return true;
  }

  bool try_set_exception(std::exception_ptr e) noexcept {
    if (!claim()) return false;
    ::new (static_cast<void*>(&result_)) result<T>(result<T>::failure(std::move(e)));
    publish();
    return true;
  }

  bool try_set_result(result<T>&& r) noexcept {
    if (!claim()) return false;
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
