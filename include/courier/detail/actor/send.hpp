// How a message enters a bounded mailbox: at once, past the bound, after
// blocking, or after waiting without blocking.
#pragma once

#include <utility>

#include "courier/detail/actor/actor_base.hpp"
#include "courier/detail/actor/mailbox_capacity.hpp"
#include "courier/detail/future/continuation.hpp"
#include "courier/detail/future/continuation_home.hpp"
#include "courier/detail/future/future_state.hpp"
#include "courier/detail/this_thread.hpp"

namespace courier::detail {

// Whether a sender on this thread may block until a mailbox has room. Not on
// a courier worker, inside an actor or a continuation, nor on a thread that
// runs the actor's execution context: the thread could be the one that has
// to drain the mailbox, and would wait on itself.
inline bool may_wait_for_room(const actor_base& m) noexcept {
  return !blocking_forbidden() && !continuation::running_on_this_thread() &&
         !m.drains_on_this_thread();
}

// After an ask from outside every actor and pool (where blocking_forbidden()
// is false), marks the reply so that the calling thread cannot block on it
// when that thread runs the execution context `a` drains on (a thread of the
// user's io_context, say): it would wait on itself. Out of the sender's line.
[[gnu::cold, gnu::noinline]] inline void mark_reply_if_own_context(
    const actor_base& a, future_state_base& reply) noexcept {
  if (a.drains_on_this_thread()) reply.forbid_waiting_on(this_thread_id());
}

// Queues the node that make() builds in a place reserve() took; the place is
// given back if building throws.
template <class Make>
void post_reserved(actor_base& m, Make& make) {
  mailbox_node* n;
  try {
    n = make();
  } catch (...) {
    m.unreserve();
    throw;
  }
  m.post_reserved(n);
}

// Queues a message as tell() and ask() do: at once if the mailbox has room;
// otherwise past the bound where waiting is not safe (see may_wait_for_room),
// or after blocking until there is room. Nothing is built before there is a
// place for it unless it goes past the bound or must wait.
template <class Make>
void send(actor_base& m, Make make) {
  if (m.reserve()) {
    post_reserved(m, make);
    return;
  }
  mailbox_node* n = make();
  if (!may_wait_for_room(m)) {
    m.post(n);
    return;
  }
  blocking_room_waiter waiter(n);
  m.reserve_async(&waiter);
  (void)waiter.wait();
}

// A sender waiting for room without blocking; calls Done(bool queued) once.
template <class Done>
class async_room_waiter final : public room_waiter {
 public:
  async_room_waiter(mailbox_node* n, Done d) : room_waiter(n), done_(std::move(d)) {}
  void done(bool queued) noexcept override {
    done_(queued);
    delete this;
  }

 private:
  Done done_;
};

// Queues `n` once the mailbox has room, without blocking, then calls
// done(queued); if the actor stops first, `n` is abandoned and done(false).
template <class Done>
void send_async(actor_base& m, mailbox_node* n, Done&& done) {
  room_waiter* w;
  try {
    w = new async_room_waiter<std::decay_t<Done>>(n, std::forward<Done>(done));
  } catch (...) {
    n->abandon();
    throw;
  }
  m.reserve_async(w);
}

}  // namespace courier::detail
