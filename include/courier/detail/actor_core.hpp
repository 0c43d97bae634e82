// An actor's State, its failure handling, the nodes its messages travel in,
// and the two ways its activations reach an executor.
#pragma once

#include "courier/detail/asio_config.hpp"

#include <asio/any_io_executor.hpp>
#include <asio/execution.hpp>
#include <asio/query.hpp>
#include <asio/require.hpp>
#include <cstdint>
#include <exception>
#include <functional>
#include <optional>
#include <type_traits>
#include <utility>
#include <variant>

#include "courier/detail/mailbox.hpp"
#include "courier/detail/message_traits.hpp"
#include "courier/detail/pool_core.hpp"
#include "courier/errors.hpp"
#include "courier/future.hpp"
#include "courier/supervision.hpp"

namespace courier::detail {

template <class State, class Msg>
class actor_core : public mailbox {
 public:
  // Calls the State's handler for one message; a whole variant is visited.
  template <class M>
  decltype(auto) handle(M&& m) {
    if constexpr (std::is_same_v<std::remove_cvref_t<M>, Msg> && is_variant<Msg>::value &&
                  !handles<State, M>) {
      std::visit([this](auto&& alt) { (void)state_->handle(std::forward<decltype(alt)>(alt)); },
                 std::forward<M>(m));
    } else {
      return state_->handle(std::forward<M>(m));
    }
  }

  // A handler threw: report it, then apply the policy. Inside the actor.
  void fail(std::exception_ptr e, failure_kind kind) noexcept {
    if (on_failure_) {
      try {
        on_failure_(failure{e, kind});
      } catch (...) {
        // The hook's own failure has nowhere better to go.
      }
    }
    switch (policy_) {
      case failure_policy::resume:
        break;
      case failure_policy::stop:
        stop();
        break;
      case failure_policy::restart:
        try {
          state_.reset();
          state_.emplace(factory_());
        } catch (...) {
          stop();
        }
        break;
    }
  }

  void handler_failed(std::exception_ptr e) noexcept override {
    fail(std::move(e), failure_kind::handler);
  }

 protected:
  actor_core(State initial, spawn_options<State> options)
      : state_(std::in_place, std::move(initial)),
        factory_(std::move(options.factory)),
        on_failure_(std::move(options.on_failure)),
        policy_(options.policy) {
    set_batch(options.batch);
    set_capacity(static_cast<std::uint32_t>(options.capacity));
  }

  void release_state() noexcept override { state_.reset(); }

 private:
  std::optional<State> state_;
  std::function<State()> factory_;
  std::function<void(const failure&)> on_failure_;
  failure_policy policy_;
};

// A message sent with tell(): handled, and a failure reported to the actor.
template <class Core, class M>
class tell_node final : public mailbox_node {
 public:
  template <class A>
  explicit tell_node(A&& m) : msg_(std::forward<A>(m)) {}

  void run(mailbox& owner) noexcept override {
    auto& core = static_cast<Core&>(owner);
    try {
      (void)core.handle(std::move(msg_));
    } catch (...) {
      core.fail(std::current_exception(), failure_kind::tell);
    }
    delete this;
  }

  void abandon() noexcept override { delete this; }

 private:
  M msg_;
};

// A message sent with ask(): its reply (or the handler's exception, or
// actor_stopped when abandoned) completes the asker's future.
template <class Core, class M, class R>
class ask_node final : public mailbox_node {
 public:
  template <class A>
  ask_node(A&& m, promise<R> reply) : msg_(std::forward<A>(m)), reply_(std::move(reply)) {}

  void run(mailbox& owner) noexcept override {
    auto& core = static_cast<Core&>(owner);
    try {
      using returned = std::remove_cvref_t<decltype(core.handle(std::move(msg_)))>;
      if constexpr (is_future<returned>::value) {
        forward_into(core.handle(std::move(msg_)), std::move(reply_));
      } else if constexpr (std::is_void_v<returned>) {
        core.handle(std::move(msg_));
        reply_.try_set_value();
      } else {
        reply_.try_set_value(core.handle(std::move(msg_)));
      }
    } catch (...) {
      // The hook and the policy come first, so that an asker woken by the
      // failure already sees their effect (a stopped actor, say).
      std::exception_ptr e = std::current_exception();
      core.fail(e, failure_kind::ask);
      reply_.try_set_exception(std::move(e));
    }
    delete this;
  }

  void abandon() noexcept override {
    reply_.try_set_exception(std::make_exception_ptr(actor_stopped()));
    delete this;
  }

 private:
  M msg_;
  promise<R> reply_;
};

// A plain handler posted to an actor's executor.
template <class F>
class function_node final : public mailbox_node {
 public:
  template <class A>
  explicit function_node(A&& f) : f_(std::forward<A>(f)) {}

  void run(mailbox& owner) noexcept override {
    try {
      f_();
    } catch (...) {
      owner.handler_failed(std::current_exception());
    }
    delete this;
  }

  void abandon() noexcept override { delete this; }

 private:
  F f_;
};

// Activations go to a courier::thread_pool through its gate.
class pool_scheduler {
 public:
  explicit pool_scheduler(ref_ptr<pool_core> pool) noexcept : pool_(std::move(pool)) {}
  bool post(mailbox* m) noexcept { return pool_->post_activation(m); }
  bool closed() const noexcept { return pool_->closed(); }
  bool run_if_open(void (*f)(void*), void* arg) noexcept {
    return pool_->run_if_open([&] { f(arg); });
  }
  void deliver(deferred_call* c) noexcept { pool_->deliver(c); }
  void context_work(bool started) noexcept { pool_->context_work(started); }
  bool enroll(mailbox* m) noexcept { return pool_->enroll(m); }
  void withdraw(mailbox* m) noexcept { pool_->withdraw(m); }
  asio::execution_context& context() const noexcept { return pool_->context(); }
  asio::any_io_executor executor() const { return pool_->context().get_executor(); }

 private:
  ref_ptr<pool_core> pool_;
};

// Activations go to any Asio executor the user runs, never inline.
template <class Executor>
class executor_scheduler {
 public:
  explicit executor_scheduler(const Executor& ex)
      : ex_(asio::require(ex, asio::execution::blocking.never)) {}
  bool post(mailbox* m) noexcept {
    asio::execution::execute(ex_, activation(m));
    return true;
  }
  // A user's executor has no closed state courier can see; destroying its
  // context destroys the queued activations, which abandon their mailboxes.
  bool closed() const noexcept { return false; }
  bool run_if_open(void (*f)(void*), void* arg) noexcept {
    f(arg);
    return true;
  }
  void deliver(deferred_call* c) noexcept { asio::execution::execute(ex_, delivery(c)); }
  void context_work(bool started) noexcept {
    if constexpr (requires { ex_.on_work_started(); }) {
      if (started)
        ex_.on_work_started();
      else
        ex_.on_work_finished();
    }
  }
  bool enroll(mailbox*) noexcept { return true; }
  void withdraw(mailbox*) noexcept {}
  // Whether the calling thread runs the executor (an io_context's run(), say),
  // where the executor can tell.
  bool running_in_this_thread() const noexcept {
    if constexpr (requires { ex_.running_in_this_thread(); })
      return ex_.running_in_this_thread();
    else
      return false;
  }
  asio::execution_context& context() const noexcept {
    return asio::query(ex_, asio::execution::context);
  }
  asio::any_io_executor executor() const { return asio::any_io_executor(ex_); }

 private:
  std::decay_t<decltype(asio::require(std::declval<const Executor&>(),
                                      asio::execution::blocking.never))>
      ex_;
};

template <class State, class Msg, class Scheduler>
class actor_on final : public actor_core<State, Msg> {
 public:
  actor_on(State initial, spawn_options<State> options, Scheduler scheduler)
      : actor_core<State, Msg>(std::move(initial), std::move(options)),
        scheduler_(std::move(scheduler)) {
    if (!scheduler_.enroll(this)) throw usage_error("spawn() on a stopped thread_pool");
  }
  ~actor_on() override { scheduler_.withdraw(this); }

  asio::execution_context& context() const noexcept override { return scheduler_.context(); }
  asio::any_io_executor context_executor() const override { return scheduler_.executor(); }
  bool drains_on_this_thread() const noexcept override {
    if constexpr (requires { scheduler_.running_in_this_thread(); })
      return scheduler_.running_in_this_thread();
    else
      return false;  // pool workers are known from thread_context
  }

 protected:
  bool schedule_drain() noexcept override { return scheduler_.post(this); }
  bool context_closed() const noexcept override { return scheduler_.closed(); }
  bool run_if_open(void (*f)(void*), void* arg) noexcept override {
    return scheduler_.run_if_open(f, arg);
  }
  void deliver(deferred_call* c) noexcept override { scheduler_.deliver(c); }
  void context_work(bool started) noexcept override { scheduler_.context_work(started); }

 private:
  Scheduler scheduler_;
};

}  // namespace courier::detail
