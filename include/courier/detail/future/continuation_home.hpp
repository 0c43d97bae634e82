// What the future layer sees of an actor: a home where a continuation
// attached inside it runs, and the unit of work queued there.
#pragma once

#include <atomic>
#include <cstdint>

#include "courier/detail/ref_counted.hpp"

namespace courier::detail {

class continuation_home;

// A unit of work queued to a home: a message, a continuation or a plain
// handler. Exactly one of run() and abandon() is called, and either deletes
// the node.
class mailbox_node {
 public:
  // Runs the work inside `owner`, the home it was queued to.
  virtual void run(continuation_home& owner) noexcept = 0;
  // Drops the work unrun because its home stopped; fails any reply it owes.
  virtual void abandon() noexcept = 0;
  // The coroutine turn of its home this work continues (see the actor
  // layer's turns.hpp); 0 for work that continues none.
  virtual std::uint32_t turn_id() const noexcept { return 0; }

 protected:
  mailbox_node() = default;
  ~mailbox_node() = default;

 private:
  friend class mpsc_queue;
  friend class turns;
  std::atomic<mailbox_node*> next_{nullptr};
};

// Where a continuation attached while `this_thread.actor` pointed here must
// run. The actor layer implements it; a future knows no more of an actor.
// Registries reach homes through plain pointers, hence registered_ref_counted.
class continuation_home : public registered_ref_counted {
 public:
  // Queues `n` to run inside this home, past any bound on its queue (refusing
  // a continuation could lose a reply); abandons `n` once the home stopped.
  virtual void post_continuation(mailbox_node* n) noexcept = 0;

 protected:
  continuation_home() = default;
  ~continuation_home() override = default;
};

}  // namespace courier::detail
