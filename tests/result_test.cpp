#include "courier/result.hpp"

#include <catch2/catch.hpp>
#include <exception>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

namespace {

struct custom_error : std::runtime_error {
  explicit custom_error(int c) : std::runtime_error("custom"), code(c) {}
  int code;
};

std::exception_ptr make_error(int code) { return std::make_exception_ptr(custom_error(code)); }

// The code of the custom_error stored in `e`, or -1 for any other exception.
int code_of(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const custom_error& c) {
    return c.code;
  } catch (...) {
    return -1;
  }
}

}  // namespace

TEST_CASE("result: holds a value", "[result]") {
  courier::result<int> r(std::in_place, 42);
  CHECK(r.has_value());
  CHECK(static_cast<bool>(r));
  CHECK(r.value() == 42);
  CHECK_FALSE(r.error());

  r.value() = 7;  // value() & gives mutable access
  CHECK(r.value() == 7);

  const courier::result<int>& cr = r;
  CHECK(cr.value() == 7);
  CHECK_FALSE(cr.error());
}

TEST_CASE("result: in_place constructs the value from several arguments", "[result]") {
  courier::result<std::string> r(std::in_place, 3u, 'x');
  REQUIRE(r.has_value());
  CHECK(r.value() == "xxx");
}

TEST_CASE("result: value() && moves a move-only value out", "[result]") {
  courier::result<std::unique_ptr<int>> r(std::in_place, std::make_unique<int>(5));
  std::unique_ptr<int> p = std::move(r).value();
  REQUIRE(p);
  CHECK(*p == 5);
}

TEST_CASE("result: failure holds the exception and value() rethrows it", "[result]") {
  auto r = courier::result<int>::failure(make_error(17));
  CHECK_FALSE(r.has_value());
  CHECK_FALSE(static_cast<bool>(r));
  REQUIRE(r.error());
  CHECK(code_of(r.error()) == 17);

  SECTION("value() &") { CHECK_THROWS_AS(r.value(), custom_error); }
  SECTION("value() const&") {
    const auto& cr = r;
    CHECK_THROWS_AS(cr.value(), custom_error);
  }
  SECTION("value() &&") { CHECK_THROWS_AS(std::move(r).value(), custom_error); }
  SECTION("the rethrown exception is the stored one, unchanged") {
    try {
      (void)r.value();
      FAIL("value() did not throw");
    } catch (const custom_error& e) {
      CHECK(e.code == 17);
      CHECK(std::string(e.what()) == "custom");
    }
  }
  SECTION("value() throws again on every call") {
    CHECK_THROWS_AS(r.value(), custom_error);
    CHECK_THROWS_AS(r.value(), custom_error);
    CHECK(code_of(r.error()) == 17);
  }
}

TEST_CASE("result: failure of a non-default-constructible type", "[result]") {
  struct no_default {
    explicit no_default(int v) : value(v) {}
    int value;
  };
  static_assert(!std::is_default_constructible_v<no_default>);
  auto r = courier::result<no_default>::failure(make_error(3));
  CHECK_FALSE(r.has_value());
  CHECK_THROWS_AS(r.value(), custom_error);

  courier::result<no_default> ok(std::in_place, 9);
  CHECK(ok.value().value == 9);
}

TEST_CASE("result: failure(nullptr) throws usage_error", "[result]") {
  CHECK_THROWS_AS(courier::result<int>::failure(nullptr), courier::usage_error);
  CHECK_THROWS_AS(courier::result<int>::failure(std::exception_ptr()), courier::usage_error);
  CHECK_THROWS_AS(courier::result<std::string>::failure(nullptr), courier::usage_error);
  CHECK_THROWS_AS(courier::result<void>::failure(nullptr), courier::usage_error);
  CHECK_THROWS_WITH(courier::result<void>::failure(nullptr), Catch::StartsWith("courier:"));
}

TEST_CASE("result: copies and moves keep the value or the error", "[result]") {
  courier::result<std::string> v(std::in_place, "hello");
  courier::result<std::string> v2 = v;
  CHECK(v.value() == "hello");
  CHECK(v2.value() == "hello");
  courier::result<std::string> v3 = std::move(v2);
  CHECK(v3.value() == "hello");

  auto f = courier::result<std::string>::failure(make_error(4));
  courier::result<std::string> f2 = f;
  CHECK(f.error() == f2.error());  // the same exception object is shared
  courier::result<std::string> f3 = std::move(f2);
  CHECK_FALSE(f3.has_value());
  CHECK(code_of(f3.error()) == 4);

  v3 = f3;
  CHECK_FALSE(v3.has_value());
  CHECK_THROWS_AS(v3.value(), custom_error);
}

TEST_CASE("result<void>: success", "[result]") {
  static_assert(std::is_void_v<courier::result<void>::value_type>);
  courier::result<void> a;
  courier::result<void> b(std::in_place);
  for (const courier::result<void>* r : {&a, &b}) {
    CHECK(r->has_value());
    CHECK(static_cast<bool>(*r));
    CHECK_FALSE(r->error());
    CHECK_NOTHROW(r->value());
  }
}

TEST_CASE("result<void>: failure holds the exception and value() rethrows it", "[result]") {
  auto r = courier::result<void>::failure(make_error(8));
  CHECK_FALSE(r.has_value());
  CHECK_FALSE(static_cast<bool>(r));
  REQUIRE(r.error());
  CHECK(code_of(r.error()) == 8);
  CHECK_THROWS_AS(r.value(), custom_error);
  CHECK_THROWS_AS(r.value(), custom_error);  // called twice: still throws

  courier::result<void> copy = r;
  CHECK(copy.error() == r.error());
}

TEST_CASE("result: holds courier's own errors like any other exception", "[result]") {
  auto r = courier::result<int>::failure(std::make_exception_ptr(courier::actor_stopped()));
  CHECK_THROWS_AS(r.value(), courier::actor_stopped);
  CHECK_THROWS_AS(r.value(), courier::error);
}
