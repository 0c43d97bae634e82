// How an Asio asynchronous operation of an actor (async_ask, async_tell)
// delivers its result to the completion handler.
#pragma once

#include "courier/detail/asio_config.hpp"

#include <asio/associated_executor.hpp>
#include <asio/execution.hpp>
#include <asio/post.hpp>
#include <asio/prefer.hpp>
#include <asio/query.hpp>
#include <asio/system_executor.hpp>
#include <exception>
#include <type_traits>
#include <utility>

#include "courier/detail/actor/actor_base.hpp"
#include "courier/detail/deferred_call.hpp"
#include "courier/detail/future/then_continuation.hpp"
#include "courier/detail/ref_counted.hpp"
#include "courier/future.hpp"
#include "courier/result.hpp"

namespace courier::detail {

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
  async_ask_call(Handler h, result<R>&& r, ref_ptr<actor_base> home)
      : h_(std::move(h)), r_(std::move(r)), home_(std::move(home)) {}
  void run() noexcept override {
    try {
      invoke_with<R>(h_, std::move(r_));
    } catch (...) {
      // A completion handler that throws has no caller to report to.
    }
    home_->work_finished();
  }

 private:
  Handler h_;
  result<R> r_;
  ref_ptr<actor_base> home_;
};

// The completion of an Asio asynchronous operation (async_ask, async_tell): a
// callable that takes the operation's result<R> once and delivers it to the
// handler, on the handler's associated executor if it has one (holding
// outstanding work on it until then), otherwise on the actor's execution
// context. Never runs the handler inline.
template <class R, class Handler>
auto async_completion(Handler&& handler, ref_ptr<actor_base> home) {
  using handler_type = std::decay_t<Handler>;
  if constexpr (std::is_same_v<asio::associated_executor_t<handler_type>, asio::system_executor>) {
    home->work_started();
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

}  // namespace courier::detail
