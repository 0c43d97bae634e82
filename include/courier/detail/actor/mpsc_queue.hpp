// An intrusive multi-producer single-consumer queue of mailbox nodes.
#pragma once

#include <atomic>

#include "courier/detail/future/continuation_home.hpp"

namespace courier::detail {

// Vyukov's intrusive queue: a push is one atomic exchange and one store, with
// no allocation; the node carries the message in place. Producers are any
// threads; pop() belongs to the single consumer (the
// thread that holds the owning actor's activation).
class mpsc_queue {
 public:
  mpsc_queue() noexcept : head_(&stub_), tail_(&stub_) {}
  mpsc_queue(const mpsc_queue&) = delete;
  mpsc_queue& operator=(const mpsc_queue&) = delete;

  void push(mailbox_node* n) noexcept {
    n->next_.store(nullptr, std::memory_order_relaxed);
    mailbox_node* prev = head_.exchange(n, std::memory_order_seq_cst);
    prev->next_.store(n, std::memory_order_release);
  }

  // The oldest node, or null. `busy` is set when a producer has claimed a
  // place but not linked it yet: the queue is not empty, retry shortly.
  mailbox_node* pop(bool& busy) noexcept {
    busy = false;
    mailbox_node* tail = tail_;
    mailbox_node* next = tail->next_.load(std::memory_order_acquire);
    if (tail == &stub_) {
      if (next == nullptr) {
        busy = head_.load(std::memory_order_seq_cst) != &stub_;
        return nullptr;
      }
      tail_ = tail = next;
      next = next->next_.load(std::memory_order_acquire);
    }
    if (next != nullptr) {
      tail_ = next;
      return tail;
    }
    if (tail != head_.load(std::memory_order_seq_cst)) {
      busy = true;
      return nullptr;
    }
    push(&stub_);
    next = tail->next_.load(std::memory_order_acquire);
    if (next != nullptr) {
      tail_ = next;
      return tail;
    }
    busy = true;
    return nullptr;
  }

  // Whether a producer has pushed since pop() last reported the queue empty
  // (not busy). Reads only the producers' end, so the consumer may call it
  // after handing the consumer role to another thread.
  bool pushed_since_empty() const noexcept {
    return head_.load(std::memory_order_seq_cst) != &stub_;
  }

 private:
  struct stub_node final : mailbox_node {
    void run(continuation_home&) noexcept override {}
    void abandon() noexcept override {}
  };

  std::atomic<mailbox_node*> head_;  // producers
  mailbox_node* tail_;               // consumer
  stub_node stub_;
};

}  // namespace courier::detail
