// The one place where courier's scheduler reaches into Asio's internals.
#pragma once

#include "courier/detail/asio_config.hpp"

#include <asio/detail/scheduler.hpp>
#include <asio/detail/thread_context.hpp>
#include <asio/detail/thread_info_base.hpp>
#include <asio/execution_context.hpp>

namespace courier::detail {

// Timers and sockets created on a courier pool's execution context run on the
// reactor of Asio's scheduler service, which Asio drives from a thread of its
// own and which hands their completions to the pool. Shutting the context
// down destroys the reactor's pending operations; if that thread were still
// running it could complete an operation while it is being destroyed. Asio
// offers no public way to stop that thread, so this stops and joins it through
// the service's own shutdown(), which Asio will call again, harmlessly, when
// the context shuts its services down.
inline void stop_reactor_thread(asio::execution_context& ctx) {
  if (asio::has_service<asio::detail::scheduler>(ctx))
    asio::use_service<asio::detail::scheduler>(ctx).shutdown();
}

// Whether the calling thread is the one on which Asio runs the reactor (the
// timers) of `ctx`.
inline bool on_reactor_thread(asio::execution_context& ctx) {
  return asio::has_service<asio::detail::scheduler>(ctx) &&
         asio::use_service<asio::detail::scheduler>(ctx).can_dispatch();
}

// Asio recycles the memory of handlers, coroutine frames and cancellation
// handlers through a small per-thread cache, which only threads running one
// of its own schedulers have; elsewhere every such allocation goes to the
// heap. A courier pool worker declares itself such a thread for as long as
// it lives (the key is this object, which no Asio scheduler looks for), so
// that a coroutine handler's frames, made and freed on workers, are
// recycled. The cache is emptied when the worker ends.
class asio_thread_cache : private asio::detail::thread_context {
 public:
  asio_thread_cache() : top_(this, info_) {}
  asio_thread_cache(const asio_thread_cache&) = delete;
  asio_thread_cache& operator=(const asio_thread_cache&) = delete;

 private:
  asio::detail::thread_info_base info_;
  thread_call_stack::context top_;
};

}  // namespace courier::detail
