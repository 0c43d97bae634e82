// Where the frames of a coroutine turn are recycled: a cache that goes with
// the turn, so that a steady flow of coroutine handlers calls no allocator
// however many of them are suspended at once.
#pragma once

#include "courier/detail/asio_config.hpp"

#include <asio/detail/thread_context.hpp>
#include <asio/detail/thread_info_base.hpp>
#include <atomic>
#include <cstdint>
#include <new>

namespace courier::detail {

class actor_base;

// Asio allocates every asio::awaitable frame from a small cache that belongs
// to the top of its per-thread call stack (two frames of each purpose), and
// goes to the heap past it. A coroutine turn awaiting an ask has three
// frames (the entry point, the handler's, the ask's); with many turns
// suspended at once, a per-thread cache of two overflows on every turn.
//
// So each turn takes a set of two such caches from its thread's pool when it
// starts: `frames` for the frames its handler makes (pushed as the top of
// Asio's call stack whenever courier runs the turn's coroutine: its start,
// and each reply to an ask it awaits), and `entry` for its entry point,
// which courier makes and destroys itself. The frames go back into the set
// as they are freed, and the set goes back to the pool of the thread where
// the turn ends, warm for the next turn. Asio keeps a frame only in a slot
// whose block is large enough, so a set settles on blocks that fit the turns
// that use it.
//
// Thread safety: a set is used by one thread at a time (its turn's, inside
// the actor); the pool is per thread.
class coroutine_frames : private asio::detail::thread_context {
 public:
#if (defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)) && \
    !defined(COURIER_RECYCLE_UNDER_SANITIZERS)
  static constexpr bool enabled = false;  // the heap, so that misuse is caught
#else
  static constexpr bool enabled = true;
#endif

  coroutine_frames(const coroutine_frames&) = delete;
  coroutine_frames& operator=(const coroutine_frames&) = delete;

  // A set from the calling thread's pool; null when recycling is disabled.
  // @throws std::bad_alloc
  static coroutine_frames* take() {
    if constexpr (!enabled) {
      return nullptr;
    } else {
      pool& p = local_pool();
      coroutine_frames* f = p.head;
      if (f != nullptr) {
        p.head = f->next_;
        --p.count;
      } else {
        f = new coroutine_frames();
      }
      f->refs_.store(1, std::memory_order_relaxed);  // the turn's
      return f;
    }
  }

  // `f` (null: nothing to do) now belongs to turn `turn` of `a`.
  static void claim(coroutine_frames* f, const actor_base& a, std::uint32_t turn) noexcept {
    if (f == nullptr) return;
    f->actor_ = &a;
    f->turn_ = turn;
  }

  // The bottom frame of the coroutine thread courier runs the turn on: only
  // that thread's asks may keep the set (another coroutine co_spawned on the
  // turn's executor may outlive the turn, and with it the set).
  static void claim_thread(coroutine_frames* f, const void* bottom) noexcept {
    if (f != nullptr) f->bottom_ = bottom;
  }

  // The turn is over with `f` (null: nothing to do): back to the pool of
  // the thread that lets it go last, once no scope uses it. The turn may let
  // go on another thread while the thread that ran its coroutine is still
  // inside a scope (the coroutine asked, and the reply, abandoned by the
  // stopped actor, destroyed its frames on the replying thread): the count
  // is atomic for that.
  static void give_back(coroutine_frames* f) noexcept {
    if (f == nullptr) return;
    f->actor_ = nullptr;
    f->turn_ = 0;
    f->bottom_ = nullptr;
    f->release();
  }

  // The set of turn `turn` of `a` if its frames are what Asio allocates from
  // on this thread now (courier is running that turn's coroutine); null
  // otherwise.
  // `bottom` is the bottom frame of the asking coroutine thread: a set is
  // only the turn's own thread's.
  static coroutine_frames* current_for(const actor_base& a, std::uint32_t turn,
                                       const void* bottom) noexcept {
    coroutine_frames* f = current_;
    return f != nullptr && f->actor_ == &a && f->turn_ == turn && f->bottom_ == bottom ? f
                                                                                       : nullptr;
  }

  // While it lives, Asio allocates from (and frees into) the set's `frames`
  // cache, or its `entry` cache, on this thread. A null set changes nothing.
  class scope {
   public:
    explicit scope(coroutine_frames* f, bool entry = false) noexcept : f_(f), saved_(current_) {
      if (f_ == nullptr) return;
      ::new (static_cast<void*>(&storage_)) context(f_, entry ? f_->entry_ : f_->frames_);
      f_->refs_.fetch_add(1, std::memory_order_relaxed);
      current_ = f_;
    }
    // Pops the cache off Asio's call stack first; a set whose turn ended
    // under this scope then goes back to the pool.
    ~scope() {
      if (f_ == nullptr) return;
      current_ = saved_;
      std::launder(reinterpret_cast<context*>(&storage_))->~context();
      f_->release();
    }
    scope(const scope&) = delete;
    scope& operator=(const scope&) = delete;

   private:
    using context = thread_call_stack::context;
    coroutine_frames* f_;
    coroutine_frames* saved_;
    alignas(context) unsigned char storage_[sizeof(context)];
  };

 private:
  coroutine_frames() noexcept = default;
  ~coroutine_frames() = default;

  // The calling thread's free sets: at most max_pooled, the rest freed with
  // their frames; all freed when the thread exits. Constant-initialized and
  // trivially destructible, so that a set given back while the thread's
  // other thread-local objects are destroyed still finds it (and, once it is
  // emptied, frees the set at once); the reaper registered on first use
  // empties it.
  static constexpr unsigned max_pooled = 256;
  enum lifetime : unsigned char { unborn, alive, dead };
  struct pool {
    coroutine_frames* head;
    unsigned count;
    lifetime state;
  };
  struct pool_reaper {
    pool_reaper() = default;
    pool_reaper(const pool_reaper&) = delete;
    pool_reaper& operator=(const pool_reaper&) = delete;
    ~pool_reaper() {
      pool& p = pool_;
      p.state = dead;
      while (coroutine_frames* f = p.head) {
        p.head = f->next_;
        delete f;
      }
      p.count = 0;
    }
  };
  static pool& local_pool() noexcept {
    pool& p = pool_;
    if (p.state == unborn) [[unlikely]] {
      thread_local pool_reaper reaper;
      (void)reaper;
      p.state = alive;
    }
    return p;
  }

  // The last of the turn and the scopes using the set recycles it.
  void release() noexcept {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) recycle(this);
  }

  static void recycle(coroutine_frames* f) noexcept {
    pool& p = local_pool();
    if (p.state == dead || p.count == max_pooled) {
      delete f;
      return;
    }
    f->next_ = p.head;
    p.head = f;
    ++p.count;
  }

  static inline constinit thread_local pool pool_{nullptr, 0, unborn};
  static inline constinit thread_local coroutine_frames* current_ = nullptr;

  asio::detail::thread_info_base frames_;
  asio::detail::thread_info_base entry_;
  const actor_base* actor_ = nullptr;
  const void* bottom_ = nullptr;
  coroutine_frames* next_ = nullptr;
  std::uint32_t turn_ = 0;
  // The turn (until give_back) and each scope using the set.
  std::atomic<unsigned> refs_{0};
};

}  // namespace courier::detail
