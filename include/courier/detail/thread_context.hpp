// What courier knows about the calling thread.
#pragma once

namespace courier::detail {

class mailbox;

struct thread_context {
  // The actor whose handler or continuation is running on this thread, if any.
  mailbox* current = nullptr;
  // The courier pool this thread works for, if it is a worker thread.
  const void* pool = nullptr;
};

inline thread_local thread_context this_thread;

// Marks the calling thread as running inside `m` (or outside every actor when
// `m` is null) for the lifetime of the scope, restoring the previous value.
class current_actor_scope {
 public:
  explicit current_actor_scope(mailbox* m) noexcept : saved_(this_thread.current) {
    this_thread.current = m;
  }
  ~current_actor_scope() { this_thread.current = saved_; }
  current_actor_scope(const current_actor_scope&) = delete;
  current_actor_scope& operator=(const current_actor_scope&) = delete;

 private:
  mailbox* saved_;
};

// True where a blocking wait could deadlock: on a courier worker thread or
// inside any actor's handler or continuation.
inline bool blocking_forbidden() noexcept {
  return this_thread.current != nullptr || this_thread.pool != nullptr;
}

}  // namespace courier::detail
