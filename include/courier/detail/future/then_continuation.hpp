// The continuations that future::then() and courier's own plumbing attach.
#pragma once

#include <exception>
#include <functional>
#include <type_traits>
#include <utility>

#include "courier/detail/future/continuation.hpp"
#include "courier/detail/future/continuation_home.hpp"
#include "courier/detail/future/future_access.hpp"
#include "courier/detail/future/future_state.hpp"
#include "courier/detail/recycled.hpp"
#include "courier/detail/this_thread.hpp"
#include "courier/errors.hpp"

namespace courier::detail {

// Completes `to` from the result of calling `f(args...)`: a returned future is
// forwarded, a value stored, void completes; an exception fails `to`.
template <class U, class F, class... Args>
void complete_with(promise<U>& to, F& f, Args&&... args) noexcept;

// Calls f(result<T>&&) on the completing thread once `from` completes. For
// courier's own plumbing, which must not be rerouted through an actor.
template <class T, class F>
class callback_continuation final : public continuation, public recycled {
 public:
  callback_continuation(ref_ptr<future_state<T>> src, F f)
      : src_(std::move(src)), f_(std::move(f)) {}
  void on_ready() noexcept override {
    f_(std::move(src_->get()));
    delete this;
  }

 private:
  ref_ptr<future_state<T>> src_;
  F f_;
};

template <class T, class F>
void on_result(future<T>&& from, F&& f) {
  auto s = future_access::take(from, "on_result");
  future_state<T>* state = s.get();
  // The continuation holds the reference from here on; it may run (and let
  // the state go) inside attach(), which touches nothing afterwards.
  auto* c = new callback_continuation<T, std::decay_t<F>>(std::move(s), std::forward<F>(f));
  state->attach(c);
}

template <class U>
void forward_into(future<U>&& from, promise<U>&& to) noexcept {
  if (!from.valid()) {
    to.try_set_exception(std::make_exception_ptr(broken_promise()));
    return;
  }
  try {
    on_result(std::move(from),
              [p = std::move(to)](result<U>&& r) mutable { p.try_set_result(std::move(r)); });
  } catch (...) {
    // Allocation failed: `to` was moved into the dropped lambda and breaks.
  }
}

template <class U, class F, class... Args>
void complete_with(promise<U>& to, F& f, Args&&... args) noexcept {
  try {
    using returned = std::invoke_result_t<F&, Args&&...>;
    if constexpr (is_future<returned>::value) {
      forward_into(std::invoke(f, std::forward<Args>(args)...), std::move(to));
    } else if constexpr (std::is_void_v<returned>) {
      std::invoke(f, std::forward<Args>(args)...);
      to.try_set_value();
    } else {
      to.try_set_value(std::invoke(f, std::forward<Args>(args)...));
    }
  } catch (...) {
    to.try_set_exception(std::current_exception());
  }
}

// The continuation built by future::then(), fused with the state of the
// future that then() returns: one allocation per then(). When attached inside
// an actor it is also a node queued to that actor (its home) and runs there; otherwise
// it runs on the completing thread, outside every actor. It starts with two
// references: the producing side's, which becomes a promise when it runs,
// and the one the returned future adopts.
template <class T, class F, class U>
class then_continuation final : public continuation,
                                public mailbox_node,
                                public future_state<U>,
                                public recycled {
 public:
  template <class A>
  then_continuation(ref_ptr<future_state<T>> src, A&& f, ref_ptr<continuation_home> home)
      : future_state<U>(2), src_(std::move(src)), home_(std::move(home)) {
    ::new (static_cast<void*>(&f_)) F(std::forward<A>(f));
  }
  ~then_continuation() override {}

  void on_ready() noexcept override {
    if (home_) {
      ref_ptr<continuation_home> home = std::move(home_);
      home->post_continuation(this);
    } else {
      current_actor_scope outside(nullptr);
      invoke();
    }
  }

  void run(continuation_home&) noexcept override { invoke(); }

  void abandon() noexcept override {
    promise<U> next = future_access::promise_for(ref_ptr<future_state<U>>::adopt(this));
    next.try_set_exception(std::make_exception_ptr(
        actor_stopped("courier: the actor that attached this continuation stopped before it ran")));
    // The function and the source go now; the state stays while the
    // returned future holds it (`next` keeps this alive until we return).
    f_.~F();
    src_.reset();
  }

 private:
  void invoke() noexcept {
    // Everything the call needs moves to locals first: the promise may go to
    // a continuation that completes at once and drops the last reference to
    // this, so no member is touched after the call. Locals are destroyed in
    // reverse order, `next` last.
    promise<U> next = future_access::promise_for(ref_ptr<future_state<U>>::adopt(this));
    ref_ptr<future_state<T>> src = std::move(src_);
    F f = std::move(f_);
    f_.~F();
    result<T>& r = src->get();
    using traits = then_traits<T, F>;
    if constexpr (traits::by_value) {
      if (!r.has_value()) {
        next.try_set_exception(r.error());
      } else if constexpr (std::is_void_v<T>) {
        complete_with(next, f);
      } else {
        complete_with(next, f, std::move(r).value());
      }
    } else {
      complete_with(next, f, std::move(r));
    }
  }

  ref_ptr<future_state<T>> src_;
  ref_ptr<continuation_home> home_;
  union {
    F f_;
  };
};

}  // namespace courier::detail
