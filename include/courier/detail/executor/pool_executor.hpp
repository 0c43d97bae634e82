// The Asio executor of a courier::thread_pool.
#pragma once

#include <cstdint>

#include <utility>

#include "courier/detail/executor/basic_executor.hpp"
#include "courier/detail/ref_counted.hpp"
#include "courier/detail/scheduler/pool_core.hpp"

namespace courier::detail {

// A standard Asio executor over a pool_core, which it keeps alive (not its
// threads): used after the pool stopped, it destroys what it is given unrun.
class pool_executor : public basic_executor<pool_executor, pool_core> {
 public:
  explicit pool_executor(ref_ptr<pool_core> pool, bool possibly = false, bool tracked = false,
                         std::uint32_t /*label: none*/ = 0) noexcept
      : basic_executor(std::move(pool), possibly, tracked) {}

  // Queues `f` on the pool (or, with blocking.possibly on one of its
  // workers, runs it at once). Once the pool has stopped, `f` is destroyed
  // unrun.
  template <class F>
  static void submit(pool_core& pool, bool possibly, std::uint32_t /*label*/, F&& f) {
    pool.execute(std::forward<F>(f), possibly);
  }
};

}  // namespace courier::detail
