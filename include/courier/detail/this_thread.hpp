// Everything courier keeps per thread, in one place.
#pragma once

#include <cstdint>

#include "courier/detail/block_cache.hpp"

namespace courier::detail {

class continuation;
class continuation_home;
class pool_core;
struct worker;

// Constant-initialized and trivially destructible, so reaching any member is
// a plain thread-local access with no initialization guard.
struct thread_context {
  // The actor whose handler or continuation is running on this thread, if any.
  continuation_home* actor = nullptr;
  // The courier pool this thread works for, and its record there, if it is a
  // worker thread.
  pool_core* pool = nullptr;
  worker* pool_worker = nullptr;
  // The testing::deterministic_context running a handler on this thread.
  const void* deterministic = nullptr;
  // While a handler runs for a message asked on behalf of a coroutine turn
  // that holds its actor (see the actor layer's wait_for_graph.hpp): that
  // actor and turn.
  continuation_home* acting_for = nullptr;
  std::uint32_t acting_for_turn = 0;

  // Continuations queued to run once the outermost running one returns, and
  // how many are running nested (see continuation::start).
  continuation* queued_head = nullptr;
  continuation* queued_tail = nullptr;
  unsigned continuation_depth = 0;

  // Freed small blocks, reused by the next node of their size (recycled.hpp).
  block_cache blocks;
};

inline constinit thread_local thread_context this_thread;

// The calling thread's identity, as far as courier needs one.
inline const void* this_thread_id() noexcept { return &this_thread; }

// Marks the calling thread as running inside `a` (or outside every actor when
// `a` is null) for the lifetime of the scope, restoring the previous value.
class current_actor_scope {
 public:
  explicit current_actor_scope(continuation_home* a) noexcept : saved_(this_thread.actor) {
    this_thread.actor = a;
  }
  ~current_actor_scope() { this_thread.actor = saved_; }
  current_actor_scope(const current_actor_scope&) = delete;
  current_actor_scope& operator=(const current_actor_scope&) = delete;

 private:
  continuation_home* saved_;
};

// True where a blocking wait could deadlock: on a courier worker thread or
// inside any actor's handler or continuation.
inline bool blocking_forbidden() noexcept {
  return this_thread.actor != nullptr || this_thread.pool != nullptr;
}

}  // namespace courier::detail
