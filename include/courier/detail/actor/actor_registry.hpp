// The actors live on one courier::thread_pool, so that closing the pool can
// stop them all.
#pragma once

#include "courier/detail/asio_config.hpp"

#include <asio/execution_context.hpp>
#include <mutex>
#include <vector>

#include "courier/detail/actor/actor_base.hpp"
#include "courier/detail/ref_counted.hpp"
#include "courier/detail/scheduler/pool_core.hpp"

namespace courier::detail {

// An entry of the registry, held by each actor's placement: the actor and
// its neighbours in an intrusive list.
struct registry_entry {
  actor_base* actor = nullptr;
  registry_entry* prev = nullptr;  // guarded by the registry's lock
  registry_entry* next = nullptr;
};

// An Asio service of the pool's execution context, as Asio keeps a strand's
// bookkeeping in the strand service: it lives exactly as long as the
// context. It listens for the pool's close, and stops every actor then
// (before the workers are joined, unless the close is graceful); the
// context's shutdown of its services does so again for any latecomer.
class actor_registry final : public asio::execution_context::service, public close_listener {
 public:
  using key_type = actor_registry;
  static inline asio::execution_context::id id;

  // Made by thread_pool, on its core's context.
  explicit actor_registry(asio::execution_context& ctx) : asio::execution_context::service(ctx) {}

  // Records an actor. False once the registry shut down, or when `open()`,
  // asked under the registry's lock, says the pool no longer admits work.
  template <class Open>
  bool enroll(registry_entry& e, Open&& open) noexcept {
    std::lock_guard<std::mutex> lock(mutex_);
    if (closed_ || !open()) return false;
    e.next = head_;
    if (head_) head_->prev = &e;
    head_ = &e;
    return true;
  }

  void pool_closing() noexcept override { stop_all(); }

  void withdraw(registry_entry& e) noexcept {
    std::lock_guard<std::mutex> lock(mutex_);
    if (e.prev) e.prev->next = e.next;
    if (e.next) e.next->prev = e.prev;
    if (head_ == &e) head_ = e.next;
    e.prev = e.next = nullptr;
  }

 private:
  void shutdown() override { stop_all(); }

  // Stops every registered actor, on the closing thread, and refuses new
  // ones: with the pool's gate shut, each stop of an idle actor abandons its
  // queued work here; a running one abandons the rest itself.
  void stop_all() noexcept {
    std::vector<ref_ptr<actor_base>> live;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      closed_ = true;
      // An actor whose last reference is being dropped is withdrawing; skip it.
      for (registry_entry* e = head_; e != nullptr; e = e->next)
        if (e->actor->try_add_ref()) live.push_back(ref_ptr<actor_base>::adopt(e->actor));
    }
    for (auto& a : live) a->stop();
  }

  std::mutex mutex_;
  registry_entry* head_ = nullptr;
  bool closed_ = false;
};

}  // namespace courier::detail
