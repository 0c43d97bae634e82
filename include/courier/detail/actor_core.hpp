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
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>
#include <variant>

#include "courier/detail/mailbox.hpp"
#include "courier/detail/message_traits.hpp"
#include "courier/detail/pool_core.hpp"
#include "courier/detail/pool_executor.hpp"
#include "courier/detail/recycled.hpp"
#include "courier/errors.hpp"
#include "courier/future.hpp"
#include "courier/supervision.hpp"

namespace courier::detail {

// An actor without its State's type: what a plain handler's node needs. Every
// mailbox is one (actor_core is the only mailbox there is), so a node may
// cast its owner to it.
class actor_base : public mailbox {
 public:
  // Before a handler whose failure applies the failure policy: keeps a copy
  // of the State when the actor restarts from its last good State. A flag
  // test otherwise, so that actors that did not opt in pay nothing more.
  void before_handler() noexcept {
    if (keeps_last_good_) keep_last_good();
  }

 protected:
  virtual void keep_last_good() noexcept = 0;

  bool keeps_last_good_ = false;
};

template <class State, class Msg>
class actor_core : public actor_base {
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
          if (!last_good_) {
            state_.reset();
            state_.emplace(factory_());
          } else if (!restore_last_good()) {
            stop();
          }
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
      : policy_(options.policy),
        state_(std::in_place, std::move(initial)),
        factory_(std::move(options.factory)),
        on_failure_(std::move(options.on_failure)) {
    set_batch(options.batch);
    if constexpr (std::is_copy_constructible_v<State>) {
      if (policy_ == failure_policy::restart && options.restart_from == restart_point::last_good) {
        last_good_ = std::make_unique<std::optional<State>>();
        keeps_last_good_ = true;
      }
    }
    set_capacity(static_cast<std::uint32_t>(options.capacity));
  }

  void release_state() noexcept override {
    state_.reset();
    if (last_good_) last_good_->reset();
  }

  // Why a copy before each handler, and not one after each handler that
  // succeeded: both copy once per message, but only tells, asks and plain
  // handlers can fail into the policy, and those nodes are built here.
  // Continuations change the State too, and run as mailbox nodes courier
  // builds elsewhere; copying after each success would have to copy after
  // them as well (or lose what they did), while a copy taken as the next
  // handler starts already includes it. Restoring is then a move, not a copy.
  // The copy is assigned into the one kept, so a State holding containers
  // reuses their storage instead of allocating per message.
  void keep_last_good() noexcept final {
    if constexpr (std::is_copy_constructible_v<State>) {
      try {
        if constexpr (std::is_copy_assignable_v<State>) {
          *last_good_ = *state_;
        } else {
          last_good_->emplace(*state_);
        }
      } catch (...) {
        // A half-assigned copy is no last good State; a failure before the
        // next successful copy finds none and stops the actor.
        last_good_->reset();
      }
    }
  }

 private:
  // The kept copy becomes the State; it is consumed, and the next handler
  // takes a new one before it runs. False when there is none to restore.
  bool restore_last_good() {
    std::optional<State>& good = *last_good_;
    if (!good) return false;
    state_.reset();
    state_.emplace(std::move(*good));
    good.reset();
    return true;
  }

  // First, so that it shares a word with actor_base's flag.
  failure_policy policy_;
  std::optional<State> state_;
  // The State before the running handler, for restart_point::last_good; null
  // otherwise. Behind a pointer so that other actors pay 8 bytes, not a State.
  std::unique_ptr<std::optional<State>> last_good_;
  std::function<State()> factory_;
  std::function<void(const failure&)> on_failure_;
};

// A message sent with tell(): handled, and a failure reported to the actor.
template <class Core, class M>
class tell_node final : public mailbox_node, public recycled {
 public:
  template <class A>
  explicit tell_node(A&& m) : msg_(std::forward<A>(m)) {}

  void run(mailbox& owner) noexcept override {
    auto& core = static_cast<Core&>(owner);
    core.before_handler();
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

// A message sent with ask(), fused with the shared state of its reply: one
// allocation per ask. The node starts with two references: its own as the
// replying side, and the one the asker's future adopts. The reply (or the
// handler's exception, or actor_stopped when abandoned) completes the state.
template <class Core, class M, class R>
class ask_node final : public mailbox_node, public future_state<R>, public recycled {
 public:
  template <class A>
  explicit ask_node(A&& m) : future_state<R>(2) {
    ::new (static_cast<void*>(&msg_)) M(std::forward<A>(m));
  }
  ~ask_node() override {}

  void run(mailbox& owner) noexcept override {
    auto& core = static_cast<Core&>(owner);
    core.before_handler();
    try {
      using returned = std::remove_cvref_t<decltype(core.handle(std::move(msg_)))>;
      if constexpr (is_future<returned>::value) {
        // The handler first: a promise made before it would break (and wake
        // the asker with broken_promise) if the handler threw.
        returned later = core.handle(std::move(msg_));
        forward_into(std::move(later),
                     future_access::promise_for(ref_ptr<future_state<R>>::share(this)));
      } else if constexpr (std::is_void_v<returned>) {
        core.handle(std::move(msg_));
        this->try_set_value();
      } else {
        this->try_set_value(core.handle(std::move(msg_)));
      }
    } catch (...) {
      // The hook and the policy come first, so that an asker woken by the
      // failure already sees their effect (a stopped actor, say).
      std::exception_ptr e = std::current_exception();
      core.fail(e, failure_kind::ask);
      this->try_set_exception(std::move(e));
    }
    finish();
  }

  void abandon() noexcept override {
    this->try_set_exception(std::make_exception_ptr(actor_stopped()));
    finish();
  }

 private:
  // The message goes now; the state stays while the future holds it.
  void finish() noexcept {
    msg_.~M();
    this->release();
  }

  union {
    M msg_;
  };
};

// A plain handler posted to an actor's executor.
template <class F>
class function_node final : public mailbox_node, public recycled {
 public:
  template <class A>
  explicit function_node(A&& f) : f_(std::forward<A>(f)) {}

  void run(mailbox& owner) noexcept override {
    static_cast<actor_base&>(owner).before_handler();
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

// Activations go to a courier::thread_pool's scheduler as the actor's own
// reusable task: the scheduled_ protocol of the mailbox guarantees at most
// one is queued or running at a time.
class pool_scheduler {
 public:
  explicit pool_scheduler(ref_ptr<pool_core> pool) noexcept : pool_(std::move(pool)) {}
  pool_scheduler(pool_scheduler&& o) noexcept : pool_(std::move(o.pool_)) {}

  bool post(mailbox* m) noexcept {
    // The queued activation holds a reference to the mailbox.
    m->add_ref();
    activation_.owner = m;
    if (pool_->submit_activation(&activation_)) return true;
    m->release();
    return false;
  }
  bool closed() const noexcept { return pool_->closed(); }
  bool run_if_open(void (*f)(void*), void* arg) noexcept {
    return pool_->run_if_open([&] { f(arg); });
  }
  void deliver(deferred_call* c) noexcept { pool_->deliver(c); }
  void context_work(bool started) noexcept { pool_->context_work(started); }
  bool enroll(mailbox* m) noexcept { return pool_->enroll(m); }
  void withdraw(mailbox* m) noexcept { pool_->withdraw(m); }
  asio::execution_context& context() const noexcept { return pool_->context(); }
  asio::any_io_executor executor() const {
    return asio::any_io_executor(pool_executor(pool_.get()));
  }

 private:
  struct activation_task final : task {
    mailbox* owner = nullptr;
    void run() noexcept override {
      ref_ptr<mailbox> m = ref_ptr<mailbox>::adopt(owner);
      m->drain();
    }
    void discard() noexcept override {
      ref_ptr<mailbox> m = ref_ptr<mailbox>::adopt(owner);
      m->abandon_owned();
    }
  };

  ref_ptr<pool_core> pool_;
  activation_task activation_;
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
