// One worker thread of the pool: its queues and what it knows of itself.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <thread>
#include <vector>

#include "courier/detail/scheduler/idle.hpp"
#include "courier/detail/scheduler/local_queue.hpp"
#include "courier/detail/scheduler/task.hpp"

namespace courier::detail {

struct worker {
  explicit worker(std::size_t i) : index(i) {}

  local_queue queue;
  // The task a handler on this worker just woke; runs next (see pool_core).
  alignas(64) std::atomic<task*> lifo{nullptr};
  // Tasks run so far; read by searchers to tell a stuck worker.
  std::atomic<std::uint64_t> ticks{0};
  std::thread thread;
  const std::size_t index;

  // Owner only.
  task* running = nullptr;
  std::uint32_t lifo_streak = 0;
  std::uint32_t polls = 0;
  std::vector<std::uint64_t> seen_ticks;

  idle_state idle;
};

}  // namespace courier::detail
