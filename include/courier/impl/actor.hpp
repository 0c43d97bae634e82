// Definitions for courier/actor.hpp.
#pragma once

#include "courier/detail/asio_config.hpp"

#include <asio/associated_executor.hpp>
#include <asio/async_result.hpp>
#include <asio/post.hpp>
#include <asio/prefer.hpp>
#include <asio/steady_timer.hpp>
#include <cstdint>
#include <limits>
#include <mutex>

namespace courier {
namespace detail {

// The timer behind an ask with a deadline. Whichever of the reply and the
// timer comes first takes `out` and completes it; the other finds it gone.
// It keeps the actor (and so its execution context) alive, and touches the
// timer only while the context is open.
template <class R>
class ask_deadline final : public ref_counted {
 public:
  ask_deadline(ref_ptr<mailbox> home, ref_ptr<future_state<R>> out)
      : home_(std::move(home)), timer_(home_->context_executor()), out_(std::move(out)) {}

  template <class Duration>
  static void start(const ref_ptr<ask_deadline>& self, Duration timeout) {
    std::lock_guard<std::mutex> lock(self->mutex_);
    auto arm = [&] {
      self->timer_.expires_after(timeout);
      self->timer_.async_wait([self](const std::error_code& ec) {
        if (ec) return;
        if (auto out = self->take()) out->try_set_exception(std::make_exception_ptr(ask_timeout()));
      });
    };
    run_if_open(*self->home_, arm);
  }

  void reply(result<R>&& r) noexcept {
    ref_ptr<future_state<R>> out = take();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto cancel = [this] { timer_.cancel(); };
      run_if_open(*home_, cancel);
    }
    if (out) out->try_set_result(std::move(r));
  }

 private:
  ref_ptr<future_state<R>> take() noexcept {
    std::lock_guard<std::mutex> lock(out_mutex_);
    return std::move(out_);
  }

  ref_ptr<mailbox> home_;
  // Asio timers are not safe for concurrent use; mutex_ serializes the
  // asking thread's async_wait with the replying thread's cancel.
  std::mutex mutex_;
  asio::steady_timer timer_;
  std::mutex out_mutex_;
  ref_ptr<future_state<R>> out_;
};

// The completion signature of async_ask for a reply type.
template <class R>
struct ask_signature {
  using type = void(std::exception_ptr, R);
};
template <>
struct ask_signature<void> {
  using type = void(std::exception_ptr);
};

// Invokes an async_ask completion handler with a result.
template <class R, class Handler>
void invoke_with(Handler& h, result<R>&& r) {
  if constexpr (std::is_void_v<R>) {
    std::move(h)(r.error());
  } else if (r.has_value()) {
    std::move(h)(std::exception_ptr(), std::move(r).value());
  } else {
    std::move(h)(r.error(), R{});
  }
}

// An async_ask completion for a handler with no executor of its own: it runs
// on the actor's execution context, outside the actor, and holds work on that
// context until it has run.
template <class R, class Handler>
class async_ask_call final : public deferred_call {
 public:
  async_ask_call(Handler h, result<R>&& r, ref_ptr<mailbox> home)
      : h_(std::move(h)), r_(std::move(r)), home_(std::move(home)) {}
  void run() noexcept override {
    try {
      invoke_with<R>(h_, std::move(r_));
    } catch (...) {
      // A completion handler that throws has no caller to report to.
    }
    home_->context_work(false);
  }

 private:
  Handler h_;
  result<R> r_;
  ref_ptr<mailbox> home_;
};

// The completion of an Asio asynchronous operation (async_ask, async_tell): a
// callable that takes the operation's result<R> once and delivers it to the
// handler, on the handler's associated executor if it has one (holding
// outstanding work on it until then), otherwise on the actor's execution
// context. Never runs the handler inline.
template <class R, class Handler>
auto async_completion(Handler&& handler, ref_ptr<mailbox> home) {
  using handler_type = std::decay_t<Handler>;
  if constexpr (std::is_same_v<asio::associated_executor_t<handler_type>, asio::system_executor>) {
    home->context_work(true);
    return [h = std::forward<Handler>(handler), home = std::move(home)](result<R>&& r) mutable {
      home->deliver(new async_ask_call<R, handler_type>(std::move(h), std::move(r), home));
    };
  } else {
    auto work = asio::prefer(asio::get_associated_executor(handler),
                             asio::execution::outstanding_work.tracked);
    return [h = std::forward<Handler>(handler), work = std::move(work),
            home = std::move(home)](result<R>&& r) mutable {
      auto post = [&] {
        asio::post(work, [h = std::move(h), r = std::move(r)]() mutable {
          invoke_with<R>(h, std::move(r));
        });
      };
      // On the actor's own context, post only while it is open; once it has
      // shut down the handler is destroyed unrun, as Asio does.
      if constexpr (asio::can_query<decltype(work), asio::execution::context_t>::value) {
        if (&asio::query(work, asio::execution::context) == &home->context()) {
          run_if_open(*home, post);
          return;
        }
      }
      post();
    };
  }
}

// Delivers a finished ask to an Asio completion handler (see async_completion).
template <class R, class Handler>
void complete_async_ask(future<R>&& reply, Handler&& handler, ref_ptr<mailbox> home) {
  on_result(std::move(reply), async_completion<R>(std::forward<Handler>(handler), std::move(home)));
}

// Whether a sender on this thread may block until a mailbox has room. Not on
// a courier worker, inside an actor or a continuation, nor on a thread that
// runs the actor's execution context: the thread could be the one that has
// to drain the mailbox, and would wait on itself.
inline bool may_wait_for_room(const mailbox& m) noexcept {
  return !blocking_forbidden() && !continuation::running_on_this_thread() &&
         !m.drains_on_this_thread();
}

// Queues the node that make() builds in a place reserve() took; the place is
// given back if building throws.
template <class Make>
void post_reserved(mailbox& m, Make& make) {
  mailbox_node* n;
  try {
    n = make();
  } catch (...) {
    m.unreserve();
    throw;
  }
  m.post_reserved(n);
}

// Queues a message as tell() and ask() do: at once if the mailbox has room;
// otherwise past the bound where waiting is not safe (see may_wait_for_room),
// or after blocking until there is room. Nothing is built before there is a
// place for it unless it goes past the bound or must wait.
template <class Make>
void send(mailbox& m, Make make) {
  if (m.reserve()) {
    post_reserved(m, make);
    return;
  }
  mailbox_node* n = make();
  if (!may_wait_for_room(m)) {
    m.post(n);
    return;
  }
  blocking_room_waiter waiter(n);
  m.reserve_async(&waiter);
  (void)waiter.wait();
}

// A sender waiting for room without blocking; calls Done(bool queued) once.
template <class Done>
class async_room_waiter final : public room_waiter {
 public:
  async_room_waiter(mailbox_node* n, Done d) : room_waiter(n), done_(std::move(d)) {}
  void done(bool queued) noexcept override {
    done_(queued);
    delete this;
  }

 private:
  Done done_;
};

// Queues `n` once the mailbox has room, without blocking, then calls
// done(queued); if the actor stops first, `n` is abandoned and done(false).
template <class Done>
void send_async(mailbox& m, mailbox_node* n, Done&& done) {
  room_waiter* w;
  try {
    w = new async_room_waiter<std::decay_t<Done>>(n, std::forward<Done>(done));
  } catch (...) {
    n->abandon();
    throw;
  }
  m.reserve_async(w);
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
    detail::send(c, [&] { return new detail::tell_node<core_type, message>(std::forward<M>(m)); });
  }
}

template <class State, class Msg>
template <class M>
bool actor<State, Msg>::try_tell(M&& m) const {
  using message = std::remove_cvref_t<M>;
  if constexpr (detail::tell_check<message, State, Msg>::ok) {
    core_type& c = core();
    if (c.stopped() || !c.reserve()) return false;
    auto make = [&] { return new detail::tell_node<core_type, message>(std::forward<M>(m)); };
    detail::post_reserved(c, make);
    return true;
  } else {
    return false;
  }
}

template <class State, class Msg>
template <class M, class CompletionToken>
auto actor<State, Msg>::async_tell(M&& m, CompletionToken&& token) const {
  using message = std::remove_cvref_t<M>;
  static_assert(detail::tell_check<message, State, Msg>::ok);
  (void)core();
  return asio::async_initiate<CompletionToken, void(std::exception_ptr)>(
      [](auto&& handler, const actor& self, message msg) {
        core_type& c = self.core();
        auto complete = detail::async_completion<void>(std::forward<decltype(handler)>(handler),
                                                       detail::ref_ptr<detail::mailbox>::share(&c));
        detail::send_async(
            c, new detail::tell_node<core_type, message>(std::move(msg)),
            [complete = std::move(complete)](bool queued) mutable {
              complete(queued ? result<void>()
                              : result<void>::failure(std::make_exception_ptr(actor_stopped())));
            });
      },
      token, *this, message(std::forward<M>(m)));
}

template <class State, class Msg>
template <class M>
auto actor<State, Msg>::ask(M&& m) const -> future<reply_type<M>> {
  using message = std::remove_cvref_t<M>;
  if constexpr (detail::ask_check<message, State, Msg>::ok) {
    using reply = reply_type<M>;
    core_type& c = core();
    future<reply> f;
    detail::send(c, [&] {
      auto* node = new detail::ask_node<core_type, message, reply>(std::forward<M>(m));
      f = detail::future_access::make(detail::ref_ptr<detail::future_state<reply>>::adopt(node));
      return node;
    });
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
    auto deadline =
        detail::ref_ptr<detail::ask_deadline<reply>>::adopt(new detail::ask_deadline<reply>(
            detail::ref_ptr<detail::mailbox>::share(&c), std::move(out)));
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
  using signature = typename detail::ask_signature<reply>::type;
  (void)core();
  return asio::async_initiate<CompletionToken, signature>(
      [](auto&& handler, const actor& self, message msg) {
        core_type& c = self.core();
        auto* node = new detail::ask_node<core_type, message, reply>(std::move(msg));
        try {
          detail::complete_async_ask<reply>(
              detail::future_access::make(
                  detail::ref_ptr<detail::future_state<reply>>::adopt(node)),
              std::forward<decltype(handler)>(handler),
              detail::ref_ptr<detail::mailbox>::share(&c));
        } catch (...) {
          node->abandon();  // never queued: give up its message and reference
          throw;
        }
        // The ask_node answers (or fails with actor_stopped) through its own state.
        detail::send_async(c, node, [](bool) {});
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
  if (options.batch == 0) throw usage_error("spawn_options::batch must be at least 1");
  if (options.capacity > std::numeric_limits<std::uint32_t>::max())
    throw usage_error("spawn_options::capacity must be at most 2^32 - 1");
  if (options.restart_from == restart_point::last_good) {
    if (options.policy != failure_policy::restart)
      throw usage_error("restart_point::last_good needs failure_policy::restart");
    if (options.factory)
      throw usage_error("spawn_options::factory is not used with restart_point::last_good");
    if constexpr (!std::is_copy_constructible_v<State>)
      throw usage_error("restart_point::last_good needs a copy-constructible State");
  } else if (options.policy == failure_policy::restart && !options.factory) {
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
