// The unit of work courier's scheduler runs: all it knows of what it runs.
#pragma once

namespace courier::detail {

// One unit of work for the scheduler: an actor's activation (one reusable
// task per actor) or a posted handler. Exactly one of run() and discard() is
// called per submission.
class task {
 public:
  // Runs the work. May submit this same task again before returning, so the
  // caller must not touch the task afterwards.
  virtual void run() noexcept = 0;
  // Drops the work unrun (the pool shut down).
  virtual void discard() noexcept = 0;

 protected:
  task() = default;
  ~task() = default;

 private:
  friend class injection_queue;
  task* next_ = nullptr;
};

}  // namespace courier::detail
