// Which workers are searching for work and which are parked, and how they
// are woken.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <vector>

namespace courier::detail {

// One worker's part in the idle protocol.
struct idle_state {
  // The nap of a parked worker while others run, doubling up to the cap.
  static constexpr std::chrono::microseconds initial_nap{500};
  static constexpr std::chrono::microseconds max_nap{2000};

  // Owner only.
  bool searching = false;
  std::chrono::microseconds nap{initial_nap};

  // Guarded by the idle mutex.
  bool parked = false;
  bool kicked = false;
  std::condition_variable wake;
};

// A sleeper is woken only when work goes where it could take it and nobody is
// searching, so a busy worker pays no system call per message. The counts are
// read without the lock on every push; parking and waking take it.
class idle {
 public:
  // Called once per worker before any runs.
  void add(idle_state* s) { states_.push_back(s); }

  std::mutex& mutex() noexcept { return mutex_; }

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

  // Wakes every parked worker to look again (not as a searcher).
  void wake_all() noexcept {
    std::lock_guard<std::mutex> lock(mutex_);
    wake_all_locked();
  }

  // As wake_all(), with the idle mutex held.
  void wake_all_locked() noexcept {
    for (idle_state* s : states_) {
      if (s->parked) {
        s->parked = false;
        s->kicked = true;
        parked_.fetch_sub(1, std::memory_order_seq_cst);
      }
      s->wake.notify_one();
    }
  }

  // Wakes every worker that waits, with the idle mutex held: they are to exit.
  void notify_all_locked() noexcept {
    for (idle_state* s : states_) s->wake.notify_one();
  }

  bool begin_search(idle_state& me) noexcept {
    if (me.searching) return true;
    // At most half the workers search at once: more would only contend.
    const int n = searching_.load(std::memory_order_seq_cst);
    if (2 * static_cast<std::size_t>(n) >= states_.size()) return false;
    searching_.fetch_add(1, std::memory_order_seq_cst);
    me.searching = true;
    return true;
  }

  // The last searcher to find work wakes another to search in its place:
  // where there was work, more may follow.
  void end_search(idle_state& me, bool found) noexcept {
    if (!me.searching) return;
    me.searching = false;
    if (searching_.fetch_sub(1, std::memory_order_seq_cst) == 1 && found) notify_if_needed();
  }

  // Whether every worker but the caller is parked; under the idle mutex.
  bool all_others_parked() const noexcept {
    return parked_.load(std::memory_order_seq_cst) + 1 == states_.size();
  }

  // Sleeps until woken or, while other workers are active, for a nap; the
  // caller holds the idle mutex through `lock`. `stealable()` is asked after
  // the worker announced itself as parked: work that arrived on the way is
  // taken as a searcher (so that finding it wakes a replacement, as for a
  // woken worker). Returns false when `stopping` was set.
  template <class Stealable>
  bool park(idle_state& me, std::unique_lock<std::mutex>& lock, const std::atomic<bool>& stopping,
            Stealable&& stealable) {
    const std::size_t parked = parked_.fetch_add(1, std::memory_order_seq_cst) + 1;
    if (stealable()) {
      parked_.fetch_sub(1, std::memory_order_seq_cst);
      if (!me.searching) {
        searching_.fetch_add(1, std::memory_order_seq_cst);
        me.searching = true;
      }
      return true;
    }
    me.parked = true;
    auto woken = [&] { return !me.parked || stopping.load(std::memory_order_seq_cst); };
    if (parked == states_.size()) {
      me.wake.wait(lock, woken);
    } else {
      me.wake.wait_for(lock, me.nap, woken);
      if (me.nap < idle_state::max_nap) me.nap *= 2;
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
    return !stopping.load(std::memory_order_seq_cst);
  }

 private:
  void wake_one() noexcept {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto it = states_.rbegin(); it != states_.rend(); ++it) {
      idle_state& s = **it;
      if (!s.parked) continue;
      s.parked = false;
      parked_.fetch_sub(1, std::memory_order_seq_cst);
      // A woken worker starts out searching, so that no second one is woken
      // for the same work.
      searching_.fetch_add(1, std::memory_order_seq_cst);
      s.wake.notify_one();
      return;
    }
  }

  std::vector<idle_state*> states_;
  alignas(64) std::atomic<int> searching_{0};
  std::atomic<std::size_t> parked_{0};
  std::mutex mutex_;
};

}  // namespace courier::detail
