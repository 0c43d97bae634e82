// The shared heart of courier::thread_pool: its workers, how each finds its
// next task, and the close sequence. It runs tasks and knows nothing of what
// they are (actors live a layer above: see detail/actor/).
//
// Scheduling, in the order a worker looks for its next task:
// - its LIFO slot: the task a handler on this worker just woke, so a chain of
//   messages (a reply, a ping-pong) stays on the thread that holds it hot,
//   with no lock and no wake-up. A streak of LIFO runs is capped so the
//   worker's queue is not starved;
// - its own queue (FIFO), then the injection queue (work from other threads);
// - otherwise it searches: steals from other workers' queues (see
//   local_queue::worth_stealing), spinning briefly with pauses between looks,
//   and takes another worker's LIFO slot only when that worker has been stuck
//   in one task for the whole search (a long handler must not hold up the
//   message it sent);
// - then it parks (idle.hpp). While any worker is active, parked workers wake
//   now and then to look for stuck LIFO slots; when all are parked they sleep
//   until woken.
#pragma once

#include "courier/detail/asio_config.hpp"

#include <asio/execution_context.hpp>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "courier/detail/deferred_call.hpp"
#include "courier/detail/ref_counted.hpp"
#include "courier/detail/scheduler/asio_internals.hpp"
#include "courier/detail/scheduler/cpu_relax.hpp"
#include "courier/detail/scheduler/function_task.hpp"
#include "courier/detail/scheduler/idle.hpp"
#include "courier/detail/scheduler/injection_queue.hpp"
#include "courier/detail/scheduler/lifecycle.hpp"
#include "courier/detail/scheduler/task.hpp"
#include "courier/detail/scheduler/worker.hpp"
#include "courier/detail/this_thread.hpp"
#include "courier/errors.hpp"

namespace courier::detail {

// Told when the pool it subscribed to starts closing (see close_sequence),
// on the closing thread.
class close_listener {
 public:
  virtual void pool_closing() noexcept = 0;

 protected:
  ~close_listener() = default;
};

// An execution context whose services can be shut down (pending operations
// destroyed) while the object itself stays alive for whatever still points
// at it. Timers and sockets on it get Asio's default reactor, which runs on
// an internal thread and hands completions to the pool. Services that run
// work of their own on the pool (the actor registry) subscribe to hear of
// the close before the workers are joined.
class pool_context : public asio::execution_context {
 public:
  using asio::execution_context::shutdown;

  // `l` must live as long as the context (a service of it does).
  void subscribe(close_listener* l) {
    std::lock_guard<std::mutex> lock(mutex_);
    listeners_.push_back(l);
  }

  // One object of the layer above that it reaches whenever an actor is
  // spawned or destroyed (the actor registry), kept here so that each actor
  // need not point at it. Set once, before any spawn.
  void set_attachment(void* p) noexcept { attachment_ = p; }
  void* attachment() const noexcept { return attachment_; }

  void notify_closing() noexcept {
    std::vector<close_listener*> told;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      told.swap(listeners_);
    }
    for (close_listener* l : told) l->pool_closing();
  }

 private:
  std::mutex mutex_;
  std::vector<close_listener*> listeners_;
  void* attachment_ = nullptr;
};

// Owned by the thread_pool object and by everything that runs on it (actors,
// executors), so a handle that outlives its pool still finds a shut gate, not
// freed memory.
class pool_core final : public ref_counted {
 public:
  // Told, on the worker, of each exception that escapes a handler posted to
  // the pool's executor.
  using error_handler = std::function<void(std::exception_ptr)>;

  pool_core(std::size_t threads, error_handler on_error) : on_error_(std::move(on_error)) {
    if (threads == 0) throw usage_error("thread_pool needs at least one thread");
    workers_.reserve(threads);
    for (std::size_t i = 0; i < threads; ++i) {
      workers_.push_back(std::make_unique<worker>(i));
      idle_.add(&workers_.back()->idle);
    }
    try {
      for (auto& w : workers_) w->thread = std::thread([this, p = w.get()] { work(*p); });
    } catch (...) {
      close(false);
      throw;
    }
  }

  std::size_t size() const noexcept { return workers_.size(); }
  pool_context& context() noexcept { return ctx_; }

  bool closed() const noexcept { return gate_.closed(); }

  // Whether the calling thread is one of this pool's workers.
  bool on_worker() const noexcept { return this_thread.pool == this; }
  bool running_in_this_thread() const noexcept { return on_worker(); }

  // Runs `f` unless the pool is closed, serialized with close(), and returns
  // whether it ran. Workers skip the gate: they run only before close() has
  // joined them, and close() discards what they queued.
  template <class F>
  bool run_if_open(F&& f) noexcept {
    if (on_worker()) {
      f();
      return true;
    }
    return gate_.run_if_open(std::forward<F>(f));
  }

  // Runs `f` now, never while the context's services shut down (step 5 of
  // the close): for destroying what belongs to them (a timer) once the pool
  // is closed. Reentrant: what the shutdown itself destroys may call it.
  // On Asio's timer thread it runs at once: the close holds the lock while
  // it joins that thread, and shuts nothing down before the join returns.
  template <class F>
  void run_apart_from_shutdown(F&& f) noexcept {
    if (on_reactor_thread(ctx_)) {
      f();
      return;
    }
    std::lock_guard<std::recursive_mutex> lock(shutdown_mutex_);
    f();
  }

  // Queues an actor's activation. From a worker it goes to the worker's LIFO
  // slot (or, when the task queues itself again while running, to the back of
  // the worker's queue). False when the pool is closed: the caller keeps `t`.
  bool submit_activation(task* t) noexcept {
    if (worker* w = current_worker(); w != nullptr) {
      if (w->running == t) {
        push_local(*w, t, true);
      } else if (w->lifo.load(std::memory_order_relaxed) == nullptr) {
        // Only the owner fills the slot (thieves only empty it): no race.
        w->lifo.store(t, std::memory_order_release);
      } else if (task* displaced = w->lifo.exchange(t, std::memory_order_acq_rel)) {
        push_local(*w, displaced);
      }
      return true;
    }
    return inject(t);
  }

  // Queues `t` at the back of the calling worker's queue, or on the injection
  // queue from other threads. False (leaving `t` with the caller) once closed.
  bool submit(task* t) noexcept {
    if (worker* w = current_worker(); w != nullptr) {
      push_local(*w, t);
      return true;
    }
    return inject(t);
  }

  // Runs `f` on a worker; destroys it unrun once the pool is closed. With
  // `inline_ok`, a call from a worker runs `f` at once.
  template <class F>
  void execute(F&& f, bool inline_ok) {
    if (inline_ok && on_worker()) {
      f();
      return;
    }
    task* t = new function_task<std::decay_t<F>>(std::forward<F>(f));
    if (!submit(t)) t->discard();
  }

  // Queues `c` on a worker; runs it here once the pool is closed.
  void deliver(deferred_call* c) noexcept {
    task* t = nullptr;
    try {
      t = new delivery_task(c);
    } catch (...) {
      // No memory for the task: the call still happens, here.
      c->run();
      delete c;
      return;
    }
    if (!submit(t)) t->discard();
  }

  // A handler posted to the pool's executor threw; on the worker that ran it.
  // Without a handler of the user's, the first such exception is reported on
  // stderr and the rest counted silently: a pool of long-lived workers must
  // neither die of one bad handler nor flood the log with it.
  void handler_failed(std::exception_ptr e) noexcept {
    if (on_error_) {
      try {
        on_error_(std::move(e));
      } catch (...) {
        // The handler's own failure has nowhere better to go.
      }
      return;
    }
    if (!reported_.exchange(true, std::memory_order_relaxed)) {
      const char* what = "an exception not derived from std::exception";
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& x) {
        what = x.what();
      } catch (...) {
      }
      std::fprintf(stderr,
                   "courier: a handler posted to a thread_pool's executor threw (%s); the pool "
                   "keeps running and reports no further such exceptions (give thread_pool an "
                   "error handler to see them all)\n",
                   what);
    }
  }

  // Outstanding work, as an Asio work guard counts it.
  void work_started() noexcept { outstanding_.started(); }
  void work_finished() noexcept {
    if (outstanding_.finished_unless_last()) return;
    // The last unit is released under the idle mutex, where a graceful close
    // checks for quiescence: wait() cannot return (and the pool be freed)
    // while this call still touches it.
    std::lock_guard<std::mutex> lock(idle_.mutex());
    if (outstanding_.finished() && graceful_.load(std::memory_order_seq_cst))
      idle_.wake_all_locked();
  }

  // Shuts the pool down; see close_sequence(). Idempotent; concurrent callers
  // wait for the first; a call from inside the shutdown itself (a
  // continuation it runs) returns at once.
  void close(bool graceful) {
    if (on_worker())
      throw usage_error("thread_pool stopped or destroyed from one of its own worker threads");
    // What the sequence runs may drop every other reference to this core.
    ref_ptr<pool_core> keep = ref_ptr<pool_core>::share(this);
    close_once(graceful);
  }

 private:
  // Runs of the LIFO slot in a row before the worker's queue gets a turn.
  static constexpr std::uint32_t max_lifo_streak = 32;
  // Every this many tasks the injection queue is looked at first.
  static constexpr std::uint32_t injection_interval = 61;
  // CPU pauses between two looks at the other workers' queues (under a
  // microsecond on x86, a few where the pause is slow). Each look pulls the
  // cache lines of a queue its owner is pushing to; looking in a tight loop
  // makes every push the owner does miss the cache.
  static constexpr std::uint32_t search_backoff = 64;
  // How long a searcher spins before it parks.
  static constexpr std::chrono::microseconds spin_time{50};

  ~pool_core() override {
    // Reached only when the last reference is gone, normally long after
    // close(); a core whose thread_pool was never closed closes here, with
    // no reference left to take.
    if (!on_worker()) close_once(false);
  }

  // Runs the close sequence unless another call has run or is running it
  // (then waits for that one to finish, or returns at once from inside it).
  void close_once(bool graceful) {
    if (!latch_.begin()) return;
    close_sequence(graceful);
    latch_.finish();
  }

  // The close sequence:
  //  1. Graceful: the workers run every queued task (and what those queue)
  //     until nothing is queued and no work is outstanding. Otherwise the
  //     gate shuts first (a submission from another thread now fails, and its
  //     caller handles the work itself), the listeners hear of the close (the
  //     actor registry stops every actor, so an actor in the middle of a
  //     batch runs nothing after its current handler), and each worker stops
  //     after the task it is running.
  //  2. Every worker is joined: from here on only this thread touches the
  //     queues.
  //  3. Graceful: now the gate shuts and the listeners hear of the close.
  //  4. Every queued task is discarded (a discarded activation abandons its
  //     actor's mailbox; a discarded delivery runs its call here), including
  //     what discarding queues.
  //  5. The reactor's thread stops (asio_internals.hpp), then the context's
  //     services shut down: pending timer and socket operations are
  //     destroyed, and the actor registry stops whatever it has not stopped.
  //  6. What step 5 queued is discarded as in step 4.
  void close_sequence(bool graceful) {
    if (graceful) {
      graceful_.store(true, std::memory_order_seq_cst);
    } else {
      refuse_work();
      stopping_.store(true, std::memory_order_seq_cst);
    }
    idle_.wake_all();
    for (auto& w : workers_)
      if (w->thread.joinable()) w->thread.join();
    if (graceful) refuse_work();
    discard_queued();
    {
      std::lock_guard<std::recursive_mutex> lock(shutdown_mutex_);
      stop_reactor_thread(ctx_);
      ctx_.shutdown();
    }
    discard_queued();
  }

  // Shuts the gate and tells the listeners (steps 1 and 3).
  void refuse_work() noexcept {
    shut_gate();
    ctx_.notify_closing();
  }

  worker* current_worker() const noexcept {
    worker* w = this_thread.pool_worker;
    return (w != nullptr && on_worker()) ? w : nullptr;
  }

  void push_local(worker& w, task* t, bool resumed = false) noexcept {
    if (!w.queue.push(t, resumed)) {
      injection_.push_always(t);
      idle_.notify_if_needed();
    } else if (w.queue.worth_stealing()) {
      idle_.notify_if_needed();
    }
  }

  bool inject(task* t) noexcept {
    if (!injection_.push(t)) return false;
    idle_.notify_if_needed();
    return true;
  }

  // Work that a parked worker could take: LIFO slots and lone queued tasks
  // are left to their owners, which run them next.
  bool stealable_work() const noexcept {
    if (!injection_.empty()) return true;
    for (auto& w : workers_)
      if (w->queue.worth_stealing()) return true;
    return false;
  }

  bool anything_queued() const noexcept {
    if (!injection_.empty()) return true;
    for (auto& w : workers_)
      if (!w->queue.empty() || w->lifo.load(std::memory_order_seq_cst) != nullptr) return true;
    return false;
  }

  task* next_local(worker& me) noexcept {
    if (++me.polls % injection_interval == 0)
      if (task* t = injection_.pop()) return t;
    if (me.lifo.load(std::memory_order_relaxed) != nullptr) {
      task* t = me.lifo.exchange(nullptr, std::memory_order_acq_rel);
      if (t != nullptr) {
        if (++me.lifo_streak <= max_lifo_streak) return t;
        push_local(me, t);
      }
    }
    me.lifo_streak = 0;
    if (task* t = me.queue.pop()) return t;
    return injection_.pop();
  }

  // Takes a task from `victim`'s queue, moving up to half of the rest to
  // ours, if the queue is worth stealing from; from a stuck victim, any task.
  task* steal_from(worker& me, worker& victim, bool stuck) noexcept {
    if (stuck ? victim.queue.empty() : !victim.queue.worth_stealing()) return nullptr;
    task* first = victim.queue.pop();
    if (first == nullptr) return nullptr;
    // From a stuck victim everything: all of it waits behind the stuck task
    // (and a busy pair stays together).
    std::uint32_t more = stuck ? victim.queue.size() : victim.queue.size() / 2;
    while (more-- > 0) {
      task* t = victim.queue.pop();
      if (t == nullptr) break;
      if (!me.queue.push(t)) {
        injection_.push_always(t);
        break;
      }
    }
    return first;
  }

  task* search(worker& me) noexcept {
    const std::size_t n = workers_.size();
    for (std::size_t i = 0; i < n; ++i)
      me.seen_ticks[i] = workers_[i]->ticks.load(std::memory_order_relaxed);
    const auto give_up = std::chrono::steady_clock::now() + spin_time;
    for (std::uint32_t round = 1;; ++round) {
      if (task* t = injection_.pop()) return t;
      for (std::size_t k = 1; k < n; ++k) {
        worker& victim = *workers_[(me.index + k) % n];
        if (task* t = steal_from(me, victim, false)) return t;
      }
      if (stopping_.load(std::memory_order_relaxed)) return nullptr;
      if (std::chrono::steady_clock::now() >= give_up) break;
      for (std::uint32_t i = 0; i < search_backoff; ++i) cpu_relax();
    }
    // A worker that ran nothing during the whole search is stuck in one
    // task: what waits in its LIFO slot, or alone in its queue, is fair game.
    for (std::size_t k = 1; k < n; ++k) {
      worker& victim = *workers_[(me.index + k) % n];
      if (victim.ticks.load(std::memory_order_relaxed) != me.seen_ticks[victim.index]) continue;
      if (victim.lifo.load(std::memory_order_relaxed) != nullptr)
        if (task* t = victim.lifo.exchange(nullptr, std::memory_order_acq_rel)) return t;
      if (task* t = steal_from(me, victim, true)) return t;
    }
    return nullptr;
  }

  // Parks the worker (idle.hpp). Returns false when the worker must exit:
  // the pool is stopping, or this is the last worker to go idle during a
  // graceful close and nothing is left to do.
  bool park(worker& me) {
    std::unique_lock<std::mutex> lock(idle_.mutex());
    if (stopping_.load(std::memory_order_seq_cst)) return false;
    if (graceful_.load(std::memory_order_seq_cst) && quiescent()) {
      stopping_.store(true, std::memory_order_seq_cst);
      idle_.notify_all_locked();
      return false;
    }
    return idle_.park(me.idle, lock, stopping_, [this] { return stealable_work(); });
  }

  // Under the idle mutex, by a worker about to park during a graceful close:
  // every other worker parked, no outstanding work, nothing queued.
  bool quiescent() const noexcept {
    return idle_.all_others_parked() && outstanding_.none() && !anything_queued();
  }

  void run_task(worker& me, task* t) noexcept {
    me.idle.nap = idle_state::initial_nap;
    me.running = t;
    t->run();
    me.running = nullptr;
    me.ticks.store(me.ticks.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }

  void work(worker& me) noexcept {
    asio_thread_cache recycling;
    this_thread.pool = this;
    this_thread.pool_worker = &me;
    me.seen_ticks.assign(workers_.size(), 0);
    while (!stopping_.load(std::memory_order_relaxed)) {
      task* t = next_local(me);
      if (t == nullptr && idle_.begin_search(me.idle)) t = search(me);
      if (t == nullptr) t = injection_.pop();
      if (t != nullptr) {
        idle_.end_search(me.idle, true);
        run_task(me, t);
        continue;
      }
      idle_.end_search(me.idle, false);
      if (!park(me)) break;
    }
    idle_.end_search(me.idle, false);
  }

  void shut_gate() noexcept {
    gate_.shut([this] { injection_.close(); });
  }

  // Discards every queued task, including those that discarding queues.
  void discard_queued() noexcept {
    for (bool any = true; any;) {
      any = false;
      while (task* t = injection_.pop()) {
        t->discard();
        any = true;
      }
      for (auto& w : workers_) {
        if (task* t = w->lifo.exchange(nullptr, std::memory_order_acq_rel)) {
          t->discard();
          any = true;
        }
        while (task* t = w->queue.pop()) {
          t->discard();
          any = true;
        }
      }
    }
  }

  pool_context ctx_;
  std::vector<std::unique_ptr<worker>> workers_;
  injection_queue injection_;
  idle idle_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> graceful_{false};
  outstanding_work outstanding_;
  gate gate_;
  // Held while the context's services shut down (run_apart_from_shutdown).
  std::recursive_mutex shutdown_mutex_;
  close_latch latch_;
  error_handler on_error_;
  std::atomic<bool> reported_{false};
};

inline void report_handler_failure(pool_core& pool, std::exception_ptr e) noexcept {
  pool.handler_failed(std::move(e));
}

}  // namespace courier::detail
