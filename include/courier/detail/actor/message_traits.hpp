// Compile-time checks and deductions for actor messages.
#pragma once

#include "courier/detail/asio_config.hpp"

#include <asio/awaitable.hpp>
#include <type_traits>
#include <utility>
#include <variant>

#include "courier/detail/future/future_access.hpp"

namespace courier::detail {

template <class T>
struct is_variant : std::false_type {};
template <class... Ts>
struct is_variant<std::variant<Ts...>> : std::true_type {};

// Whether M is one of the message types of Msg: an alternative of a variant,
// or Msg itself when Msg is a single message type.
template <class M, class Msg>
struct is_message_of : std::is_same<M, Msg> {};
template <class M, class... Ts>
struct is_message_of<M, std::variant<Ts...>> : std::disjunction<std::is_same<M, Ts>...> {};

template <class State, class M>
concept handles = requires(State& s, M&& m) {
  s.handle(std::forward<M>(m));
};

template <class State, class Msg>
struct handles_all : std::bool_constant<handles<State, Msg>> {};
template <class State, class... Ts>
struct handles_all<State, std::variant<Ts...>> : std::bool_constant<(handles<State, Ts> && ...)> {};

// What State::handle returns for M, with cv and references removed.
template <class State, class M>
using handler_result_t =
    std::remove_cvref_t<decltype(std::declval<State&>().handle(std::declval<M>()))>;

// Whether a handler's return type makes it a coroutine handler.
template <class T>
struct is_awaitable : std::false_type {};
template <class R, class E>
struct is_awaitable<asio::awaitable<R, E>> : std::true_type {};

// What a handler's return type replies with: U for future<U> (a deferred
// reply) or asio::awaitable<U> (a coroutine handler), else the type itself.
template <class R>
struct unwrap_reply : unwrap_future<R> {};
template <class R, class E>
struct unwrap_reply<asio::awaitable<R, E>> {
  using type = R;
};

// The reply type of an ask.
template <class State, class M>
using reply_type_t = typename unwrap_reply<handler_result_t<State, M>>::type;

// reply_type_t where State handles M, void otherwise, so that a signature
// naming the reply type stays valid and ask_check can report the misuse.
template <class State, class M, bool = handles<State, M>>
struct reply_type_or_void {
  using type = void;
};
template <class State, class M>
struct reply_type_or_void<State, M, true> {
  using type = reply_type_t<State, M>;
};

// Instantiated by tell(); on misuse its static_asserts fire, and the compiler's
// note "in instantiation of tell_check<M, State, Msg>" names the offending
// message type M.
template <class M, class State, class Msg>
struct tell_check {
  static constexpr bool whole_variant = std::is_same_v<M, Msg> && is_variant<Msg>::value;
  static constexpr bool is_message = whole_variant || is_message_of<M, Msg>::value;
  static_assert(is_message,
                "courier: tell() was given a type that is not one of the actor's message types "
                "(an alternative of its Msg); the type is M in tell_check<M, State, Msg>");
  static constexpr bool has_handler =
      whole_variant ? handles_all<State, Msg>::value : handles<State, M>;
  static_assert(!is_message || has_handler,
                "courier: the actor's State has no handle() member that accepts this message "
                "type; add one, e.g. `void handle(M)`; the type is M in tell_check<M, State, Msg>");
  static constexpr bool ok = is_message && has_handler;
};

// As tell_check, for ask() and async_ask(), which take one concrete message.
template <class M, class State, class Msg>
struct ask_check {
  static constexpr bool is_message = is_message_of<M, Msg>::value;
  static_assert(is_message,
                "courier: ask() was given a type that is not one of the actor's message types "
                "(an alternative of its Msg, not the whole variant); the type is M in "
                "ask_check<M, State, Msg>");
  static constexpr bool has_handler = handles<State, M>;
  static_assert(!is_message || has_handler,
                "courier: the actor's State has no handle() member that accepts this message "
                "type; add one whose return type is the reply type, e.g. `R handle(M)`; the type "
                "is M in ask_check<M, State, Msg>");
  static constexpr bool ok = is_message && has_handler;
};

}  // namespace courier::detail
