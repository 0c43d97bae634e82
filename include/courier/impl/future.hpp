// Definitions for courier/future.hpp.
#pragma once

#include <functional>

#include "courier/detail/mailbox.hpp"
#include "courier/detail/recycled.hpp"
#include "courier/detail/thread_context.hpp"

namespace courier {
namespace detail {

template <class T>
struct is_future : std::false_type {};
template <class T>
struct is_future<future<T>> : std::true_type {};

template <class R>
struct unwrap_future {
  using type = R;
};
template <class T>
struct unwrap_future<future<T>> {
  using type = T;
};

struct future_access {
  template <class T>
  static ref_ptr<future_state<T>> take(future<T>& f, const char* what) {
    return f.take_state(what);
  }
  template <class T>
  static future<T> make(ref_ptr<future_state<T>> s) noexcept {
    return future<T>(std::move(s));
  }
  template <class T>
  static promise<T> promise_for(ref_ptr<future_state<T>> s) noexcept {
    return promise<T>(std::move(s));
  }
};

// Which way a continuation F consumes a future<T>: by value (errors skip it)
// or by result<T> (it sees errors).
template <class T, class F>
struct then_traits {
  static constexpr bool by_value = [] {
    if constexpr (std::is_void_v<T>)
      return std::is_invocable_v<F&>;
    else
      return std::is_invocable_v<F&, T&&>;
  }();
  static constexpr bool by_result = std::is_invocable_v<F&, result<T>&&>;
  static_assert(by_value || by_result,
                "courier: a continuation given to future<T>::then() must be callable with T (or "
                "with nothing for future<void>) or with courier::result<T>");

  static auto call_type() {
    if constexpr (by_value) {
      if constexpr (std::is_void_v<T>)
        return std::type_identity<std::invoke_result_t<F&>>{};
      else
        return std::type_identity<std::invoke_result_t<F&, T&&>>{};
    } else {
      return std::type_identity<std::invoke_result_t<F&, result<T>&&>>{};
    }
  }
  using returned = typename decltype(call_type())::type;
  using value_type = typename unwrap_future<returned>::type;
};

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
// an actor it is also a mailbox node of that actor and runs there; otherwise
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
  then_continuation(ref_ptr<future_state<T>> src, A&& f, ref_ptr<mailbox> home)
      : future_state<U>(2), src_(std::move(src)), home_(std::move(home)) {
    ::new (static_cast<void*>(&f_)) F(std::forward<A>(f));
  }
  ~then_continuation() override {}

  void on_ready() noexcept override {
    if (home_) {
      ref_ptr<mailbox> home = std::move(home_);
      home->post(this);
    } else {
      current_actor_scope outside(nullptr);
      invoke();
    }
  }

  void run(mailbox&) noexcept override { invoke(); }

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
  ref_ptr<mailbox> home_;
  union {
    F f_;
  };
};

}  // namespace detail

template <class T>
detail::ref_ptr<detail::future_state<T>> future<T>::take_state(const char* what) {
  if (!state_)
    throw usage_error(std::string(what) +
                      "() called on an invalid future (empty, moved from, or "
                      "already consumed)");
  return std::move(state_);
}

template <class T>
void future<T>::check_may_block() const {
  // On a pool thread or inside an actor, always: whether it would have had to
  // wait depends on timing, and a call that works in a test must not hang in
  // production. Inside a continuation elsewhere, only when the result is not
  // in: it may be waiting for a continuation queued behind this one.
  if (detail::blocking_forbidden()) throw would_block();
  if (detail::continuation::running_on_this_thread() && !state_->ready()) throw would_block();
}

template <class T>
bool future<T>::ready() const {
  if (!state_) throw usage_error("ready() called on an invalid future");
  return state_->ready();
}

template <class T>
void future<T>::wait() const {
  if (!state_) throw usage_error("wait() called on an invalid future");
  check_may_block();
  state_->wait();
}

template <class T>
T future<T>::get() {
  if (!state_) throw usage_error("get() called on an invalid future");
  check_may_block();
  auto s = take_state("get");
  s->wait();
  if constexpr (std::is_void_v<T>) {
    s->get().value();
  } else {
    return std::move(s->get()).value();
  }
}

template <class T>
template <class F>
auto future<T>::attach_then(F&& f, detail::mailbox* home) {
  using fn_type = std::decay_t<F>;
  using value_type_out = typename detail::then_traits<T, fn_type>::value_type;
  auto s = take_state("then");
  detail::future_state<T>* state = s.get();
  auto* c = new detail::then_continuation<T, fn_type, value_type_out>(
      std::move(s), std::forward<F>(f), detail::ref_ptr<detail::mailbox>::share(home));
  future<value_type_out> out =
      detail::future_access::make(detail::ref_ptr<detail::future_state<value_type_out>>::adopt(c));
  state->attach(c);
  return out;
}

template <class T>
template <class F>
auto future<T>::then(F&& f) {
  return attach_then(std::forward<F>(f), detail::this_thread.current);
}

template <class T>
template <class F>
auto future<T>::then_inline(F&& f) {
  return attach_then(std::forward<F>(f), nullptr);
}

template <class T>
promise<T>::promise()
    : state_(detail::ref_ptr<detail::future_state<T>>::adopt(new detail::future_state<T>())) {}

template <class T>
promise<T>& promise<T>::operator=(promise&& other) noexcept {
  if (this != &other) {
    promise dropped(std::move(*this));
    state_ = std::move(other.state_);
    retrieved_ = other.retrieved_;
  }
  return *this;
}

template <class T>
promise<T>::~promise() {
  // Build the exception only when it is needed: most promises are satisfied.
  if (state_ && !state_->ready())
    state_->try_set_exception(std::make_exception_ptr(broken_promise()));
}

template <class T>
future<T> promise<T>::get_future() {
  if (!state_) throw usage_error("get_future() called on a moved-from promise");
  if (retrieved_) throw usage_error("get_future() called twice on one promise");
  retrieved_ = true;
  return detail::future_access::make(state_);
}

template <class T>
template <class... Args>
void promise<T>::set_value(Args&&... args) {
  if (!try_set_value(std::forward<Args>(args)...))
    throw usage_error("set_value() on a promise that already holds a result");
}

template <class T>
void promise<T>::set_exception(std::exception_ptr e) {
  if (!e) throw usage_error("set_exception() needs a non-null exception");
  if (!try_set_exception(std::move(e)))
    throw usage_error("set_exception() on a promise that already holds a result");
}

template <class T>
template <class... Args>
bool promise<T>::try_set_value(Args&&... args) noexcept {
  return state_ && state_->try_set_value(std::forward<Args>(args)...);
}

template <class T>
bool promise<T>::try_set_exception(std::exception_ptr e) noexcept {
  return state_ && e && state_->try_set_exception(std::move(e));
}

template <class T>
bool promise<T>::try_set_result(result<T>&& r) noexcept {
  return state_ && state_->try_set_result(std::move(r));
}

template <class T>
future<std::decay_t<T>> make_ready_future(T&& value) {
  promise<std::decay_t<T>> p;
  p.set_value(std::forward<T>(value));
  return p.get_future();
}

inline future<void> make_ready_future() {
  promise<void> p;
  p.set_value();
  return p.get_future();
}

template <class T>
future<T> make_failed_future(std::exception_ptr e) {
  promise<T> p;
  p.set_exception(std::move(e));
  return p.get_future();
}

}  // namespace courier
