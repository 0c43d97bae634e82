// What runs once a future's result is in, on a bounded stack.
#pragma once

#include "courier/detail/this_thread.hpp"

namespace courier::detail {

// Runs once the state it is attached to holds a result; on_ready() owns the
// object.
//
// Completing a future runs its continuation on the completing thread, at once,
// which may complete the next future, and so on. A long chain would nest one
// call per link, so past max_inline_depth nested continuations start() queues
// the next one instead; the outermost start() on the thread runs the queue
// once its own continuation returns. The stack stays bounded however long the
// chain, and shallow chains keep running at once.
class continuation {
 public:
  static constexpr unsigned max_inline_depth = 64;

  void start() noexcept {
    thread_context& q = this_thread;
    next_ = nullptr;
    if (q.continuation_depth >= max_inline_depth) {
      (q.queued_tail ? q.queued_tail->next_ : q.queued_head) = this;
      q.queued_tail = this;
      return;
    }
    run_nested(q, this);
    if (q.continuation_depth != 0) return;
    while (continuation* c = q.queued_head) {
      q.queued_head = c->next_;
      if (q.queued_head == nullptr) q.queued_tail = nullptr;
      run_nested(q, c);
    }
  }

  // Whether the calling thread is running a continuation.
  static bool running_on_this_thread() noexcept { return this_thread.continuation_depth != 0; }

 protected:
  ~continuation() = default;
  virtual void on_ready() noexcept = 0;

 private:
  static void run_nested(thread_context& q, continuation* c) noexcept {
    ++q.continuation_depth;
    c->on_ready();
    --q.continuation_depth;
  }

  continuation* next_ = nullptr;
};

}  // namespace courier::detail
