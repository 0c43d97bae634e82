// An actor of a given State, Msg and placement, and the placement spawn()
// picks for where it is asked to run.
#pragma once

#include "courier/detail/asio_config.hpp"

#include <asio/any_io_executor.hpp>
#include <asio/execution.hpp>
#include <asio/execution_context.hpp>
#include <type_traits>
#include <utility>

#include "courier/detail/actor/actor_core.hpp"
#include "courier/detail/actor/executor_placement.hpp"
#include "courier/detail/actor/placement.hpp"
#include "courier/detail/actor/pool_placement.hpp"
#include "courier/detail/deferred_call.hpp"
#include "courier/spawn_options.hpp"
#include "courier/thread_pool.hpp"

namespace courier::detail {

template <class State, class Msg, class Placement>
class actor_on final : public actor_core<State, Msg> {
  static_assert(placement<Placement>, "courier: not a placement (see detail/actor/placement.hpp)");

 public:
  actor_on(State initial, spawn_options<State> options, Placement where)
      : actor_core<State, Msg>(std::move(initial), std::move(options)), where_(std::move(where)) {
    where_.attach(*this);
  }
  ~actor_on() override { where_.detach(*this); }

  asio::execution_context& context() const noexcept override { return where_.context(); }
  asio::any_io_executor context_executor() const override { return where_.executor(); }
  virtual_clock* virtual_time() const noexcept override { return where_.virtual_time(); }
  bool drains_on_this_thread() const noexcept override { return where_.drains_on_this_thread(); }
  bool run_if_open(void (*f)(void*), void* arg) noexcept override {
    return where_.run_if_open(f, arg);
  }
  void run_apart_from_shutdown(void (*f)(void*), void* arg) noexcept override {
    where_.run_apart_from_shutdown(f, arg);
  }
  void deliver(deferred_call* c) noexcept override { where_.deliver(c); }
  void work_started() noexcept override { where_.work_started(); }
  void work_finished() noexcept override { where_.work_finished(); }

 protected:
  bool schedule_drain() noexcept override { return where_.schedule(*this); }
  bool context_closed() const noexcept override { return where_.closed(); }

 private:
  Placement where_;
};

// The placement for a courier::thread_pool, an Asio executor, or an Asio
// execution context (through its get_executor()).
template <class Where>
auto make_placement(Where& where) {
  using where_type = std::remove_cvref_t<Where>;
  if constexpr (std::is_same_v<where_type, thread_pool>) {
    return pool_placement(pool_access::core(where));
  } else if constexpr (asio::execution::is_executor<where_type>::value) {
    return executor_placement<where_type>(where);
  } else {
    static_assert(
        requires { where.get_executor(); },
        "courier: spawn() needs a courier::thread_pool, an Asio execution context "
        "(with get_executor()) or an Asio executor");
    using executor_type = std::decay_t<decltype(where.get_executor())>;
    return executor_placement<executor_type>(where.get_executor());
  }
}

}  // namespace courier::detail
