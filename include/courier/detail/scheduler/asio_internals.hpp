// The one place where courier's scheduler reaches into Asio's internals.
#pragma once

#include "courier/detail/asio_config.hpp"

#include <asio/detail/scheduler.hpp>
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

}  // namespace courier::detail
