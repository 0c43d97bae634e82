// The actors that live on one execution context (a courier::thread_pool's or
// a user's), so that closing or shutting down the context stops them all.
#pragma once

#include "courier/detail/asio_config.hpp"

#include <asio/execution_context.hpp>
#include <mutex>
#include <utility>
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

// The actors enrolled on one execution context, behind the registry service:
// reference-counted so that an actor outliving its context (a handle
// destroyed after the user's io_context) can still withdraw.
class actor_list final : public ref_counted {
 public:
  // Records an actor. False once the list closed, or when `open()`, asked
  // under the list's lock, says the context no longer admits work.
  template <class Open>
  bool enroll(registry_entry& e, Open&& open) noexcept {
    std::lock_guard<std::mutex> lock(mutex_);
    if (closed_ || !open()) return false;
    e.next = head_;
    if (head_) head_->prev = &e;
    head_ = &e;
    return true;
  }

  void withdraw(registry_entry& e) noexcept {
    std::lock_guard<std::mutex> lock(mutex_);
    if (e.prev) e.prev->next = e.next;
    if (e.next) e.next->prev = e.prev;
    if (head_ == &e) head_ = e.next;
    e.prev = e.next = nullptr;
  }

  // Stops every enrolled actor, on the calling thread, and refuses new
  // ones.
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

 private:
  std::mutex mutex_;
  registry_entry* head_ = nullptr;
  bool closed_ = false;
};

// An Asio service of an execution context that actors run on, as Asio keeps
// a strand's bookkeeping in the strand service: it lives exactly as long as
// the context, and stops every actor spawned there when the context shuts
// down, so that no actor (nor what its State holds) outlives its context
// unstopped. On a courier pool it also listens for the pool's close, and
// stops every actor then (before the workers are joined, unless the close is
// graceful); the context's shutdown of its services does so again for any
// latecomer. With the pool's gate shut, each stop of an idle actor abandons
// its queued work on the stopping thread; a running one abandons the rest
// itself. On a user's context, the stop queues the actor's last activation,
// which the context's shutdown then destroys unrun, abandoning its work.
class actor_registry final : public asio::execution_context::service, public close_listener {
 public:
  using key_type = actor_registry;
  static inline asio::execution_context::id id;

  explicit actor_registry(asio::execution_context& ctx)
      : asio::execution_context::service(ctx),
        list_(ref_ptr<actor_list>::adopt(new actor_list())) {}

  // The list, for placements that may outlive the context.
  const ref_ptr<actor_list>& list() const noexcept { return list_; }

  // As actor_list's, for placements that keep the context alive (a pool's).
  template <class Open>
  bool enroll(registry_entry& e, Open&& open) noexcept {
    return list_->enroll(e, std::forward<Open>(open));
  }
  void withdraw(registry_entry& e) noexcept { list_->withdraw(e); }

  void pool_closing() noexcept override { list_->stop_all(); }

 private:
  void shutdown() override { list_->stop_all(); }

  ref_ptr<actor_list> list_;
};

}  // namespace courier::detail
