// Intrusive reference counting shared by actor cores and future states.
#pragma once

#include <atomic>
#include <cstdint>
#include <utility>

namespace courier::detail {

// A base with an atomic count; the object deletes itself through a virtual
// destructor when the count reaches zero. Intrusive so that a handle, an
// executor or a queued activation costs one pointer and no control block.
//
// Two kinds that share no base, so that one can never be released as the
// other (see release()):
// - ref_counted: reached only through counted references. A count of one
//   then means the caller holds the only reference and nobody can take
//   another, so the last release needs no locked write: a load that sees
//   every earlier release (acquire) is enough. Most short-lived objects (a
//   reply state, a continuation) pass between exactly two holders, so this
//   halves their locked operations.
// - registered_ref_counted: also reached by a registry through plain
//   pointers, which takes references with try_add_ref(). A count of one may
//   then grow under the releasing thread, so every release is a locked
//   decrement.
template <bool Registered>
class basic_ref_counted {
 public:
  // `initial` references: a node that is created together with the handle
  // that shares it (an ask and its future) starts with both, instead of
  // paying an atomic increment for the second.
  explicit basic_ref_counted(std::uint32_t initial = 1) noexcept : refs_(initial) {}
  basic_ref_counted(const basic_ref_counted&) = delete;
  basic_ref_counted& operator=(const basic_ref_counted&) = delete;

  void add_ref() const noexcept { refs_.fetch_add(1, std::memory_order_relaxed); }

  void release() const noexcept {
    if constexpr (!Registered) {
      if (refs_.load(std::memory_order_acquire) == 1) {
        delete this;
        return;
      }
    }
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  // Takes a reference unless the count already reached zero (the object is
  // being destroyed).
  bool try_add_ref() const noexcept requires Registered {
    std::uint32_t n = refs_.load(std::memory_order_relaxed);
    while (n != 0)
      if (refs_.compare_exchange_weak(n, n + 1, std::memory_order_acq_rel,
                                      std::memory_order_relaxed))
        return true;
    return false;
  }

 protected:
  virtual ~basic_ref_counted() = default;

 private:
  mutable std::atomic<std::uint32_t> refs_;
};

using ref_counted = basic_ref_counted<false>;
using registered_ref_counted = basic_ref_counted<true>;

// Owning pointer to a ref_counted object. adopt() takes over a reference the
// caller already holds (a fresh object starts with one).
template <class T>
class ref_ptr {
 public:
  ref_ptr() noexcept = default;
  ref_ptr(std::nullptr_t) noexcept {}

  static ref_ptr adopt(T* p) noexcept {
    ref_ptr r;
    r.p_ = p;
    return r;
  }
  static ref_ptr share(T* p) noexcept {
    if (p) p->add_ref();
    return adopt(p);
  }

  ref_ptr(const ref_ptr& o) noexcept : p_(o.p_) {
    if (p_) p_->add_ref();
  }
  ref_ptr(ref_ptr&& o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
  template <class U>
  ref_ptr(ref_ptr<U>&& o) noexcept : p_(o.detach()) {}

  ref_ptr& operator=(ref_ptr o) noexcept {
    std::swap(p_, o.p_);
    return *this;
  }
  ~ref_ptr() {
    if (p_) p_->release();
  }

  T* get() const noexcept { return p_; }
  T* operator->() const noexcept { return p_; }
  T& operator*() const noexcept { return *p_; }
  explicit operator bool() const noexcept { return p_ != nullptr; }
  T* detach() noexcept { return std::exchange(p_, nullptr); }
  void reset() noexcept { ref_ptr().swap(*this); }
  void swap(ref_ptr& o) noexcept { std::swap(p_, o.p_); }

  friend bool operator==(const ref_ptr& a, const ref_ptr& b) noexcept { return a.p_ == b.p_; }

 private:
  T* p_ = nullptr;
};

}  // namespace courier::detail
