// The shared heart of courier::thread_pool: a work-stealing scheduler, its
// workers, the actors spawned on it, and the gate that decides whether work
// may still be queued.
//
// Scheduling, in the order a worker looks for its next task:
// - its LIFO slot: the actor a handler on this worker just woke, so a chain of
//   messages (a reply, a ping-pong) stays on the thread that holds it hot,
//   with no lock and no wake-up. A streak of LIFO runs is capped so the
//   worker's queue is not starved;
// - its own queue (FIFO), then the injection queue (work from other threads);
// - otherwise it searches: steals from other workers' queues (not a lone
//   task, nor a pair of busy actors that are likely feeding each other),
//   spinning briefly with pauses between looks, and takes another worker's
//   LIFO slot only when that worker has been stuck in one task for the whole
//   search (a long handler must not hold up the message it sent);
// - then it parks. A sleeper is woken only when work goes where it could
//   steal it and nobody is searching, so a busy worker pays no system call
//   per message. While any worker is active, parked workers wake now and then
//   to look for stuck LIFO slots; when all are parked they sleep until woken.
#pragma once

#include "courier/detail/asio_config.hpp"

#include <asio/detail/scheduler.hpp>
#include <asio/execution_context.hpp>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "courier/detail/mailbox.hpp"
#include "courier/detail/recycled.hpp"
#include "courier/detail/ref_counted.hpp"
#include "courier/detail/run_queue.hpp"
#include "courier/detail/thread_context.hpp"
#include "courier/errors.hpp"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace courier::detail {

// An execution context whose services can be shut down (pending operations
// destroyed) while the object itself stays alive for the actors that still
// point at it. Timers and sockets on it get Asio's default reactor, which
// runs on an internal thread and hands completions to the pool.
class pool_context : public asio::execution_context {
 public:
  using asio::execution_context::shutdown;
};

// A posted handler, owned by the scheduler until it runs or is discarded.
template <class F>
class function_task final : public task, public recycled {
 public:
  template <class A>
  explicit function_task(A&& f) : f_(std::forward<A>(f)) {}

  void run() noexcept override {
    try {
      f_();
    } catch (...) {
      // A handler posted straight to the pool's executor threw. The worker
      // survives and goes back to work; actor handlers never get here.
    }
    delete this;
  }
  void discard() noexcept override { delete this; }

 private:
  F f_;
};

// Carries a deferred_call: it runs whether the task runs or is discarded.
class delivery_task final : public task, public recycled {
 public:
  explicit delivery_task(deferred_call* c) noexcept : c_(c) {}
  void run() noexcept override { fire(); }
  void discard() noexcept override { fire(); }

 private:
  void fire() noexcept {
    c_->run();
    delete c_;
    delete this;
  }
  deferred_call* c_;
};

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#elif defined(__aarch64__) || defined(__arm__)
  asm volatile("yield" ::: "memory");
#else
  std::atomic_signal_fence(std::memory_order_seq_cst);
#endif
}

// Owned by the thread_pool object and by every actor spawned on it, so an
// actor handle that outlives its pool still finds a closed gate, not freed
// memory.
class pool_core final : public ref_counted {
 public:
  explicit pool_core(std::size_t threads) {
    if (threads == 0) throw usage_error("thread_pool needs at least one thread");
    workers_.reserve(threads);
    for (std::size_t i = 0; i < threads; ++i) workers_.push_back(std::make_unique<worker>(i));
    try {
      for (auto& w : workers_) w->thread = std::thread([this, p = w.get()] { work(*p); });
    } catch (...) {
      close(false);
      throw;
    }
  }

  std::size_t size() const noexcept { return workers_.size(); }
  pool_context& context() noexcept { return ctx_; }

  bool closed() const noexcept { return closed_.load(std::memory_order_acquire); }

  // Whether the calling thread is one of this pool's workers.
  bool on_worker() const noexcept { return this_thread.pool == this; }

  // Runs `f` unless the pool is closed, serialized with close(), and returns
  // whether it ran. Workers skip the gate: they run only before close() has
  // joined them, and close() discards what they queued.
  template <class F>
  bool run_if_open(F&& f) noexcept {
    if (on_worker()) {
      f();
      return true;
    }
    std::lock_guard<std::mutex> lock(gate_);
    if (closed_.load(std::memory_order_relaxed)) return false;
    f();
    return true;
  }

  // Queues an actor's activation. From a worker it goes to the worker's LIFO
  // slot (or, when the actor yields after a full batch, to the back of the
  // worker's queue). False when the pool is closed: the caller then abandons
  // the mailbox itself.
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

  // Queues `c` outside every actor; runs it here once the pool is closed.
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

  // Outstanding work, as an Asio work guard counts it: a graceful close
  // waits for it to reach zero.
  void work_started() noexcept { outstanding_.fetch_add(1, std::memory_order_seq_cst); }
  void work_finished() noexcept {
    std::size_t n = outstanding_.load(std::memory_order_relaxed);
    while (n > 1)
      if (outstanding_.compare_exchange_weak(n, n - 1, std::memory_order_seq_cst,
                                             std::memory_order_relaxed))
        return;
    // The last unit is released under idle_mutex_, where a graceful close
    // checks for quiescence: wait() cannot return (and the pool be freed)
    // while this call still touches it.
    std::lock_guard<std::mutex> lock(idle_mutex_);
    if (outstanding_.fetch_sub(1, std::memory_order_seq_cst) == 1 &&
        graceful_.load(std::memory_order_seq_cst))
      wake_all_locked();
  }
  void context_work(bool started) noexcept {
    if (started)
      work_started();
    else
      work_finished();
  }

  // Records an actor so that close() can stop it. False once closing began.
  bool enroll(mailbox* m) noexcept {
    std::lock_guard<std::mutex> lock(registry_mutex_);
    if (registry_closed_) return false;
    m->registry_next_ = registry_head_;
    if (registry_head_) registry_head_->registry_prev_ = m;
    registry_head_ = m;
    return true;
  }

  void withdraw(mailbox* m) noexcept {
    std::lock_guard<std::mutex> lock(registry_mutex_);
    if (m->registry_prev_) m->registry_prev_->registry_next_ = m->registry_next_;
    if (m->registry_next_) m->registry_next_->registry_prev_ = m->registry_prev_;
    if (registry_head_ == m) registry_head_ = m->registry_next_;
    m->registry_prev_ = m->registry_next_ = nullptr;
  }

  // Shuts the pool down. Graceful lets the workers finish every queued task
  // (and what those queue) and waits for outstanding work first; otherwise
  // they stop after the task they are running. Then the gate closes, every
  // actor on the pool stops (on this thread), and every task still queued is
  // discarded, which abandons the mailboxes it would have drained.
  // Idempotent; concurrent callers wait for the first; a call from inside the
  // shutdown itself (a continuation it runs) returns at once.
  void close(bool graceful) {
    if (on_worker())
      throw usage_error("thread_pool stopped or destroyed from one of its own worker threads");
    {
      std::unique_lock<std::mutex> lock(close_mutex_);
      if (close_state_ == closing) {
        if (closer_ != std::this_thread::get_id())
          close_done_.wait(lock, [this] { return close_state_ == done; });
        return;
      }
      if (close_state_ == done) return;
      close_state_ = closing;
      closer_ = std::this_thread::get_id();
    }
    if (graceful) {
      graceful_.store(true, std::memory_order_seq_cst);
    } else {
      shut_gate();
      stopping_.store(true, std::memory_order_seq_cst);
    }
    wake_all();
    for (auto& w : workers_)
      if (w->thread.joinable()) w->thread.join();
    shut_gate();
    stop_all_actors();
    discard_queued();
    // Timers and sockets run on the reactor of Asio's scheduler service,
    // driven by that service's own thread. Stop and join the thread before
    // the reactor shuts down, or it may complete operations the shutdown is
    // destroying.
    if (asio::has_service<asio::detail::scheduler>(ctx_))
      asio::use_service<asio::detail::scheduler>(ctx_).shutdown();
    ctx_.shutdown();
    discard_queued();
    {
      std::lock_guard<std::mutex> lock(close_mutex_);
      close_state_ = done;
    }
    close_done_.notify_all();
  }

 private:
  struct worker {
    explicit worker(std::size_t i) : index(i) {}

    local_queue queue;
    alignas(64) std::atomic<task*> lifo{nullptr};
    // Tasks run so far; read by searchers to tell a stuck worker.
    std::atomic<std::uint64_t> ticks{0};
    std::thread thread;
    const std::size_t index;

    // Owner only.
    task* running = nullptr;
    std::uint32_t lifo_streak = 0;
    std::uint32_t polls = 0;
    bool searching = false;
    std::chrono::microseconds nap{initial_nap};
    std::vector<std::uint64_t> seen_ticks;

    // Guarded by the pool's idle_mutex_.
    bool parked = false;
    bool kicked = false;
    std::condition_variable wake;
  };

  // Runs of the LIFO slot in a row before the worker's queue gets a turn.
  static constexpr std::uint32_t max_lifo_streak = 32;
  // Every this many tasks the injection queue is looked at first.
  static constexpr std::uint32_t injection_interval = 61;
  // CPU pauses between two looks at the other workers' queues (under a
  // microsecond on this project's machine, a few on CPUs with a slow pause). Each look pulls the
  // cache lines of a queue its owner is pushing to; looking in a tight loop makes every push the
  // owner does miss the cache.
  static constexpr std::uint32_t search_backoff = 64;
  // How long a searcher spins before it parks.
  static constexpr std::chrono::microseconds spin_time{50};
  // The nap of a parked worker while others run, doubling up to the cap.
  static constexpr std::chrono::microseconds initial_nap{500};
  static constexpr std::chrono::microseconds max_nap{2000};

  ~pool_core() override { close(false); }

  static inline thread_local worker* this_worker_ = nullptr;

  worker* current_worker() const noexcept {
    worker* w = this_worker_;
    return (w != nullptr && on_worker()) ? w : nullptr;
  }

  void push_local(worker& w, task* t, bool resumed = false) noexcept {
    if (!w.queue.push(t, resumed)) {
      injection_.push_always(t);
      notify_if_needed();
    } else if (w.queue.worth_stealing()) {
      notify_if_needed();
    }
  }

  bool inject(task* t) noexcept {
    if (!injection_.push(t)) return false;
    notify_if_needed();
    return true;
  }

  // Wakes a parked worker to take new stealable work, unless one is already
  // searching (it will find the work) or none is parked. Both reads follow
  // the push in the single total order of seq_cst operations; a worker going
  // to sleep announces itself before it checks the queues, so either it sees
  // the work or we see it parked.
  void notify_if_needed() noexcept {
    if (searching_.load(std::memory_order_seq_cst) != 0) return;
    if (parked_.load(std::memory_order_seq_cst) == 0) return;
    wake_one();
  }

  void wake_one() noexcept {
    std::lock_guard<std::mutex> lock(idle_mutex_);
    for (auto it = workers_.rbegin(); it != workers_.rend(); ++it) {
      worker& w = **it;
      if (!w.parked) continue;
      w.parked = false;
      parked_.fetch_sub(1, std::memory_order_seq_cst);
      // A woken worker starts out searching, so that no second one is woken
      // for the same work.
      searching_.fetch_add(1, std::memory_order_seq_cst);
      w.wake.notify_one();
      return;
    }
  }

  // Wakes every parked worker to look again (not as a searcher).
  void wake_all() noexcept {
    std::lock_guard<std::mutex> lock(idle_mutex_);
    wake_all_locked();
  }

  void wake_all_locked() noexcept {
    for (auto& w : workers_) {
      if (w->parked) {
        w->parked = false;
        w->kicked = true;
        parked_.fetch_sub(1, std::memory_order_seq_cst);
      }
      w->wake.notify_one();
    }
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

  bool begin_search(worker& me) noexcept {
    if (me.searching) return true;
    // At most half the workers search at once: more would only contend.
    const int n = searching_.load(std::memory_order_seq_cst);
    if (2 * static_cast<std::size_t>(n) >= workers_.size()) return false;
    searching_.fetch_add(1, std::memory_order_seq_cst);
    me.searching = true;
    return true;
  }

  // The last searcher to find work wakes another to search in its place:
  // where there was work, more may follow.
  void end_search(worker& me, bool found) noexcept {
    if (!me.searching) return;
    me.searching = false;
    if (searching_.fetch_sub(1, std::memory_order_seq_cst) == 1 && found) notify_if_needed();
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

  // Sleeps until woken or, while other workers are active, for a nap.
  // Returns false when the worker must exit.
  bool park(worker& me) {
    std::unique_lock<std::mutex> lock(idle_mutex_);
    if (stopping_.load(std::memory_order_seq_cst)) return false;
    if (graceful_.load(std::memory_order_seq_cst) && quiescent()) {
      stopping_.store(true, std::memory_order_seq_cst);
      for (auto& w : workers_) w->wake.notify_one();
      return false;
    }
    const std::size_t parked = parked_.fetch_add(1, std::memory_order_seq_cst) + 1;
    if (stealable_work()) {
      // Work arrived while we were on our way here: take it as a searcher,
      // so that finding it wakes a replacement (as a woken worker would).
      parked_.fetch_sub(1, std::memory_order_seq_cst);
      if (!me.searching) {
        searching_.fetch_add(1, std::memory_order_seq_cst);
        me.searching = true;
      }
      return true;
    }
    me.parked = true;
    auto woken = [&] { return !me.parked || stopping_.load(std::memory_order_seq_cst); };
    if (parked == workers_.size()) {
      me.wake.wait(lock, woken);
    } else {
      me.wake.wait_for(lock, me.nap, woken);
      if (me.nap < max_nap) me.nap *= 2;
    }
    if (me.parked) {
      // Napped out, or stopping.
      me.parked = false;
      parked_.fetch_sub(1, std::memory_order_seq_cst);
    } else if (me.kicked) {
      me.kicked = false;
    } else {
      // wake_one() counted us as searching.
      me.searching = true;
    }
    return !stopping_.load(std::memory_order_seq_cst);
  }

  // Called under idle_mutex_ by a worker about to park during a graceful
  // close: every other worker parked, no outstanding work, nothing queued.
  bool quiescent() const noexcept {
    if (parked_.load(std::memory_order_seq_cst) + 1 != workers_.size()) return false;
    if (outstanding_.load(std::memory_order_seq_cst) != 0) return false;
    return !anything_queued();
  }

  void run_task(worker& me, task* t) noexcept {
    me.nap = initial_nap;
    me.running = t;
    t->run();
    me.running = nullptr;
    me.ticks.store(me.ticks.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }

  void work(worker& me) noexcept {
    this_thread.pool = this;
    this_worker_ = &me;
    me.seen_ticks.assign(workers_.size(), 0);
    while (!stopping_.load(std::memory_order_relaxed)) {
      task* t = next_local(me);
      if (t == nullptr && begin_search(me)) t = search(me);
      if (t == nullptr) t = injection_.pop();
      if (t != nullptr) {
        end_search(me, true);
        run_task(me, t);
        continue;
      }
      end_search(me, false);
      if (!park(me)) break;
    }
    end_search(me, false);
  }

  void shut_gate() {
    std::lock_guard<std::mutex> lock(gate_);
    closed_.store(true, std::memory_order_release);
    injection_.close();
  }

  void stop_all_actors() {
    std::vector<ref_ptr<mailbox>> live;
    {
      std::lock_guard<std::mutex> lock(registry_mutex_);
      registry_closed_ = true;
      for (mailbox* m = registry_head_; m != nullptr; m = m->registry_next_)
        if (m->try_add_ref()) live.push_back(ref_ptr<mailbox>::adopt(m));
    }
    // With the gate shut, stop() abandons each idle mailbox on this thread;
    // one whose activation is still queued is abandoned by discard_queued().
    for (auto& m : live) m->stop();
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

  alignas(64) std::atomic<int> searching_{0};
  std::atomic<std::size_t> parked_{0};
  std::mutex idle_mutex_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> graceful_{false};
  alignas(64) std::atomic<std::size_t> outstanding_{0};

  std::mutex gate_;
  // Written under gate_, so work admitted under gate_ is queued before
  // close() goes on; read without the lock by stopped() queries.
  std::atomic<bool> closed_{false};

  std::mutex registry_mutex_;
  mailbox* registry_head_ = nullptr;
  bool registry_closed_ = false;

  enum close_state { open, closing, done };
  std::mutex close_mutex_;
  std::condition_variable close_done_;
  close_state close_state_ = open;
  std::thread::id closer_;
};

}  // namespace courier::detail
