// How courier's internals reach into futures and promises, and what a
// continuation given to then() returns.
#pragma once

#include <type_traits>
#include <utility>

#include "courier/detail/future/future_state.hpp"
#include "courier/detail/ref_counted.hpp"
#include "courier/detail/this_thread.hpp"
#include "courier/result.hpp"

namespace courier {
template <class T>
class future;
template <class T>
class promise;
}  // namespace courier

namespace courier::detail {

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
  static future_state<T>& state_of(future<T>& f) noexcept {
    return *f.state_;
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

}  // namespace courier::detail
