// Where the frames of a coroutine turn are recycled: a cache that goes with
// the turn, so that a steady flow of coroutine handlers calls no allocator
// however many of them are suspended at once.
#pragma once

#include "courier/detail/asio_config.hpp"

#include <asio/detail/thread_context.hpp>
#include <asio/detail/thread_info_base.hpp>
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
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
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
      f->done_ = false;
      return f;
    }
  }

  // `f` (null: nothing to do) now belongs to turn `turn` of `a`.
  static void claim(coroutine_frames* f, const actor_base& a, std::uint32_t turn) noexcept {
    if (f == nullptr) return;
    f->actor_ = &a;
    f->turn_ = turn;
  }

  // The turn is over with `f` (null: nothing to do): back to the calling
  // thread's pool, once no scope below uses it.
  static void give_back(coroutine_frames* f) noexcept {
    if (f == nullptr) return;
    f->actor_ = nullptr;
    f->turn_ = 0;
    if (f->users_ != 0) {
      f->done_ = true;
      return;
    }
    recycle(f);
  }

  // The set of turn `turn` of `a` if its frames are what Asio allocates from
  // on this thread now (courier is running that turn's coroutine); null
  // otherwise.
  static coroutine_frames* current_for(const actor_base& a, std::uint32_t turn) noexcept {
    coroutine_frames* f = current_;
    return f != nullptr && f->actor_ == &a && f->turn_ == turn ? f : nullptr;
  }

  // While it lives, Asio allocates from (and frees into) the set's `frames`
  // cache, or its `entry` cache, on this thread. A null set changes nothing.
  class scope {
   public:
    explicit scope(coroutine_frames* f, bool entry = false) noexcept : f_(f), saved_(current_) {
      if (f_ == nullptr) return;
      ::new (static_cast<void*>(&storage_)) context(f_, entry ? f_->entry_ : f_->frames_);
      ++f_->users_;
      current_ = f_;
    }
    // Pops the cache off Asio's call stack first; a set whose turn ended
    // under this scope then goes back to the pool.
    ~scope() {
      if (f_ == nullptr) return;
      current_ = saved_;
      std::launder(reinterpret_cast<context*>(&storage_))->~context();
      if (--f_->users_ == 0 && f_->done_) recycle(f_);
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
  coroutine_frames* next_ = nullptr;
  std::uint32_t turn_ = 0;
  unsigned users_ = 0;
  bool done_ = false;
};

}  // namespace courier::detail
