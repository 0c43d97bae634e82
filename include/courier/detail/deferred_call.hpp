// A call owed to a completion handler, and the handler that carries it
// through an executor.
#pragma once

#include <utility>

namespace courier::detail {

// A call courier owes to a completion handler, delivered exactly once.
class deferred_call {
 public:
  virtual ~deferred_call() = default;
  virtual void run() noexcept = 0;
};

// The handler that carries a deferred_call through an executor; runs the call
// even when the executor destroys it unrun.
class delivery {
 public:
  explicit delivery(deferred_call* c) noexcept : c_(c) {}
  delivery(delivery&& o) noexcept : c_(std::exchange(o.c_, nullptr)) {}
  delivery& operator=(delivery&&) = delete;
  ~delivery() {
    if (c_) fire();
  }
  void operator()() noexcept { fire(); }

 private:
  void fire() noexcept {
    deferred_call* c = std::exchange(c_, nullptr);
    c->run();
    delete c;
  }
  deferred_call* c_;
};

}  // namespace courier::detail
