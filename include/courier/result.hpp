// courier/result.hpp: the outcome of an ask or a future: a value or an exception.
#pragma once

#include <exception>
#include <type_traits>
#include <utility>
#include <variant>

#include "courier/errors.hpp"

namespace courier {

/// Holds either a value of type T or the exception that prevented it. A
/// continuation given to future::then() that takes a `result<T>` sees failures
/// as well as values; `result<void>` holds no value.
///
/// Thread safety: distinct objects are safe; a shared object is safe for
/// concurrent const access only.
template <class T>
class result {
 public:
  using value_type = T;

  /// A result holding a value.
  template <class... Args>
  explicit result(std::in_place_t, Args&&... args)
      : v_(std::in_place_index<0>, std::forward<Args>(args)...) {}

  /// A result holding an error. @throws usage_error if `e` is null.
  static result failure(std::exception_ptr e) {
    if (!e) throw usage_error("result::failure() needs a non-null exception");
    return result(std::move(e), failure_tag{});
  }

  bool has_value() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return has_value(); }

  /// The value. @throws the stored exception when this result holds an error.
  T& value() & {
    rethrow_if_error();
    return std::get<0>(v_);
  }
  const T& value() const& {
    rethrow_if_error();
    return std::get<0>(v_);
  }
  T&& value() && {
    rethrow_if_error();
    return std::get<0>(std::move(v_));
  }

  /// The stored exception, or null when this result holds a value.
  std::exception_ptr error() const noexcept {
    return has_value() ? std::exception_ptr() : std::get<1>(v_);
  }

 private:
  struct failure_tag {};
  result(std::exception_ptr e, failure_tag) : v_(std::in_place_index<1>, std::move(e)) {}
  void rethrow_if_error() const {
    if (!has_value()) std::rethrow_exception(std::get<1>(v_));
  }

  std::variant<T, std::exception_ptr> v_;
};

/// The outcome of an operation with no value: success or an exception.
template <>
class result<void> {
 public:
  using value_type = void;

  explicit result(std::in_place_t) noexcept {}
  result() noexcept = default;

  /// A result holding an error. @throws usage_error if `e` is null.
  static result failure(std::exception_ptr e) {
    if (!e) throw usage_error("result::failure() needs a non-null exception");
    result r;
    r.e_ = std::move(e);
    return r;
  }

  bool has_value() const noexcept { return !e_; }
  explicit operator bool() const noexcept { return has_value(); }
  /// @throws the stored exception when this result holds an error.
  void value() const {
    if (e_) std::rethrow_exception(e_);
  }
  std::exception_ptr error() const noexcept { return e_; }

 private:
  std::exception_ptr e_;
};

}  // namespace courier
