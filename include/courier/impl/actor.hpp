// Definitions for courier/actor.hpp.
#pragma once

#include <asio/associated_executor.hpp>
#include <asio/async_result.hpp>
#include <asio/post.hpp>
#include <asio/prefer.hpp>
#include <asio/steady_timer.hpp>
#include <mutex>

namespace courier {
namespace detail {

// The timer behind an ask with a deadline. Whichever of the reply and the
// timer comes first takes `out` and completes it; the other finds it gone.
template <class R>
class ask_deadline final : public ref_counted {
 public:
  explicit ask_deadline(asio::any_io_executor ex, ref_ptr<future_state<R>> out)
      : timer_(std::move(ex)), out_(std::move(out)) {}

  template <class Duration>
  static void start(const ref_ptr<ask_deadline>& self, Duration timeout) {
    std::lock_guard<std::mutex> lock(self->mutex_);
    self->timer_.expires_after(timeout);
    self->timer_.async_wait([self](const std::error_code& ec) {
      if (ec) return;
      if (auto out = self->take()) out->try_set_exception(std::make_exception_ptr(ask_timeout()));
    });
  }

  void reply(result<R>&& r) noexcept {
    ref_ptr<future_state<R>> out;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      out = std::move(out_);
      timer_.cancel();
    }
    if (out) out->try_set_result(std::move(r));
  }

 private:
  ref_ptr<future_state<R>> take() noexcept {
    std::lock_guard<std::mutex> lock(mutex_);
    return std::move(out_);
  }

  // Asio timers are not safe for concurrent use; the mutex serializes the
  // asking thread's async_wait with the replying thread's cancel.
  std::mutex mutex_;
  asio::steady_timer timer_;
  ref_ptr<future_state<R>> out_;
};

// Delivers a finished ask to an Asio completion handler on the handler's
// associated executor, holding outstanding work on it until then.
template <class R, class Handler>
void complete_async_ask(future<R>&& reply, Handler&& handler,
                        const asio::any_io_executor& fallback) {
  auto ex = asio::get_associated_executor(handler, fallback);
  auto work = asio::prefer(ex, asio::execution::outstanding_work.tracked);
  on_result(std::move(reply),
            [h = std::forward<Handler>(handler), work = std::move(work)](result<R>&& r) mutable {
              asio::post(work, [h = std::move(h), r = std::move(r)]() mutable {
                if constexpr (std::is_void_v<R>) {
                  std::move(h)(r.error());
                } else if (r.has_value()) {
                  std::move(h)(std::exception_ptr(), std::move(r).value());
                } else {
                  std::move(h)(r.error(), R{});
                }
              });
            });
}

template <class Where>
auto make_scheduler(Where& where) {
  using where_type = std::remove_cvref_t<Where>;
  if constexpr (std::is_same_v<where_type, thread_pool>) {
    auto core = pool_access::core(where);
    if (core->closed()) throw usage_error("spawn() on a stopped thread_pool");
    return pool_scheduler(std::move(core));
  } else if constexpr (asio::execution::is_executor<where_type>::value) {
    return executor_scheduler<where_type>(where);
  } else {
    static_assert(
        requires { where.get_executor(); },
        "courier: spawn() needs a courier::thread_pool, an Asio execution context "
        "(with get_executor()) or an Asio executor");
    using executor_type = std::decay_t<decltype(where.get_executor())>;
    return executor_scheduler<executor_type>(where.get_executor());
  }
}

}  // namespace detail

template <class State, class Msg>
typename actor<State, Msg>::core_type& actor<State, Msg>::core() const {
  if (!core_) throw usage_error("operation on an empty actor handle");
  return *core_;
}

template <class State, class Msg>
template <class M>
void actor<State, Msg>::tell(M&& m) const {
  using message = std::remove_cvref_t<M>;
  if constexpr (detail::tell_check<message, State, Msg>::ok) {
    core_type& c = core();
    c.post(new detail::tell_node<core_type, message>(std::forward<M>(m)));
  }
}

template <class State, class Msg>
template <class M>
bool actor<State, Msg>::try_tell(M&& m) const {
  using message = std::remove_cvref_t<M>;
  if constexpr (detail::tell_check<message, State, Msg>::ok) {
    core_type& c = core();
    if (c.stopped()) return false;
    c.post(new detail::tell_node<core_type, message>(std::forward<M>(m)));
    return true;
  } else {
    return false;
  }
}

template <class State, class Msg>
template <class M>
auto actor<State, Msg>::ask(M&& m) const -> future<reply_type<M>> {
  using message = std::remove_cvref_t<M>;
  if constexpr (detail::ask_check<message, State, Msg>::ok) {
    using reply = reply_type<M>;
    core_type& c = core();
    promise<reply> p;
    future<reply> f = p.get_future();
    c.post(new detail::ask_node<core_type, message, reply>(std::forward<M>(m), std::move(p)));
    return f;
  } else {
    return {};
  }
}

template <class State, class Msg>
template <class M, class Rep, class Period>
auto actor<State, Msg>::ask(M&& m, std::chrono::duration<Rep, Period> timeout) const
    -> future<reply_type<M>> {
  using message = std::remove_cvref_t<M>;
  if constexpr (detail::ask_check<message, State, Msg>::ok) {
    using reply = reply_type<M>;
    core_type& c = core();
    future<reply> inner = ask(std::forward<M>(m));
    if (c.stopped()) return inner;
    auto out =
        detail::ref_ptr<detail::future_state<reply>>::adopt(new detail::future_state<reply>());
    future<reply> f = detail::future_access::make(out);
    auto deadline = detail::ref_ptr<detail::ask_deadline<reply>>::adopt(
        new detail::ask_deadline<reply>(c.context_executor(), std::move(out)));
    detail::ask_deadline<reply>::start(deadline, timeout);
    detail::on_result(std::move(inner),
                      [deadline](result<reply>&& r) mutable { deadline->reply(std::move(r)); });
    return f;
  } else {
    return {};
  }
}

template <class State, class Msg>
template <class M, class CompletionToken>
auto actor<State, Msg>::async_ask(M&& m, CompletionToken&& token) const {
  using message = std::remove_cvref_t<M>;
  static_assert(detail::ask_check<message, State, Msg>::ok);
  using reply = reply_type<M>;
  static_assert(std::is_void_v<reply> || std::is_default_constructible_v<reply>,
                "courier: async_ask() passes a value-initialized reply alongside an error, so the "
                "reply type must be default-constructible; use ask() and then() otherwise");
  using signature = std::conditional_t<std::is_void_v<reply>, void(std::exception_ptr),
                                       void(std::exception_ptr, reply)>;
  (void)core();
  return asio::async_initiate<CompletionToken, signature>(
      [](auto&& handler, const actor& self, message msg) {
        detail::complete_async_ask<reply>(self.ask(std::move(msg)),
                                          std::forward<decltype(handler)>(handler),
                                          self.core().context_executor());
      },
      token, *this, message(std::forward<M>(m)));
}

template <class State, class Msg>
void actor<State, Msg>::stop() const {
  core().stop();
}

template <class State, class Msg>
bool actor<State, Msg>::stopped() const {
  return core().stopped();
}

template <class State, class Msg>
auto actor<State, Msg>::get_executor() const -> executor_type {
  return actor_executor(detail::ref_ptr<detail::mailbox>::share(&core()), false);
}

template <class State, class Msg, class Where>
actor<State, Msg> spawn(Where&& where, State initial, spawn_options<State> options) {
  static_assert(std::is_move_constructible_v<State>,
                "courier: an actor's State must be move-constructible");
  if (options.policy == failure_policy::restart && !options.factory) {
    if constexpr (std::is_copy_constructible_v<State>) {
      options.factory = [fresh = initial]() { return fresh; };
    } else {
      throw usage_error(
          "failure_policy::restart needs spawn_options::factory when State is not copyable");
    }
  }
  auto scheduler = detail::make_scheduler(where);
  using core_type = detail::actor_on<State, Msg, decltype(scheduler)>;
  auto core = detail::ref_ptr<detail::actor_core<State, Msg>>::adopt(
      new core_type(std::move(initial), std::move(options), std::move(scheduler)));
  return actor<State, Msg>(std::move(core));
}

}  // namespace courier
