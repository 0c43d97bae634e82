// Definitions for courier/future.hpp.
#pragma once

#include <string>

#include "courier/detail/future/future_access.hpp"
#include "courier/detail/future/then_continuation.hpp"
#include "courier/detail/this_thread.hpp"

namespace courier {

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
  if (state_->waiting_forbidden_on(detail::this_thread_id())) throw would_block();
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
auto future<T>::attach_then(F&& f, detail::continuation_home* home) {
  using fn_type = std::decay_t<F>;
  using value_type_out = typename detail::then_traits<T, fn_type>::value_type;
  auto s = take_state("then");
  detail::future_state<T>* state = s.get();
  auto* c = new detail::then_continuation<T, fn_type, value_type_out>(
      std::move(s), std::forward<F>(f), detail::ref_ptr<detail::continuation_home>::share(home));
  future<value_type_out> out =
      detail::future_access::make(detail::ref_ptr<detail::future_state<value_type_out>>::adopt(c));
  state->attach(c);
  return out;
}

template <class T>
template <class F>
auto future<T>::then(F&& f) {
  return attach_then(std::forward<F>(f), detail::this_thread.actor);
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
