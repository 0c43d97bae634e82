// Which actors held by a suspended atomic coroutine wait for which others,
// so that an ask that would close a cycle of them is refused, not suffered.
#pragma once

#include <algorithm>
#include <cstdint>
#include <mutex>
#include <vector>

#include "courier/detail/actor/actor_base.hpp"
#include "courier/detail/ref_counted.hpp"
#include "courier/detail/this_thread.hpp"

namespace courier::detail {

// The coroutine turn that holds its actor (reentrancy::atomic) on whose
// behalf the calling thread asks, and its actor, or null: the turn holding
// the actor running here (while a turn holds its actor only that turn's
// steps run there, so an ask made inside it is the turn's), or else the turn
// from which the message now being handled was asked (a plain handler that
// forwards an ask extends its asker's wait).
inline actor_base* asking_origin(std::uint32_t& turn) noexcept {
  continuation_home* home = this_thread.actor;
  if (home == nullptr) return nullptr;
  // Every home is an actor (actor_base is the only implementation).
  auto* a = static_cast<actor_base*>(home);
  if (const std::uint32_t held = a->holding_turn(); held != 0) {
    turn = held;
    return a;
  }
  if (this_thread.acting_for == nullptr) return nullptr;
  turn = this_thread.acting_for_turn;
  return static_cast<actor_base*>(this_thread.acting_for);
}

// Whether asking_origin() may find a turn: the calling thread acts for one,
// or runs inside an actor that has had coroutine handlers. Small enough to
// stay in every ask's line.
inline bool may_ask_on_behalf() noexcept {
  if (this_thread.acting_for != nullptr) return true;
  continuation_home* home = this_thread.actor;
  return home != nullptr && static_cast<actor_base*>(home)->has_had_turns();
}

// An ask made on behalf of a held turn: the turn's actor (kept alive) and id.
struct call_origin {
  ref_ptr<actor_base> actor;
  std::uint32_t turn = 0;
};

// While the handler of a message asked on behalf of a held turn runs, the
// asks it makes are on that turn's behalf too.
class acting_for_scope {
 public:
  explicit acting_for_scope(const call_origin& o) noexcept
      : saved_(this_thread.acting_for), saved_turn_(this_thread.acting_for_turn) {
    this_thread.acting_for = o.actor.get();
    this_thread.acting_for_turn = o.turn;
  }
  ~acting_for_scope() {
    this_thread.acting_for = saved_;
    this_thread.acting_for_turn = saved_turn_;
  }
  acting_for_scope(const acting_for_scope&) = delete;
  acting_for_scope& operator=(const acting_for_scope&) = delete;

 private:
  continuation_home* saved_;
  std::uint32_t saved_turn_;
};

// One process-wide graph with an edge per outstanding ask made on behalf of
// a turn that holds its actor (by the turn itself, or by a handler of a
// message it asked, forwarding): "`from` waits, handling nothing else, for a
// reply from `to`". A message to an actor held by a turn waits until that
// turn ends, so a cycle of such edges is a deadlock; try_wait() refuses the
// ask that would close one. Edges go when the reply arrives; an edge whose
// turn has ended meanwhile (it stopped waiting) no longer counts. Only asks
// from held turns come here, under one mutex: the graph is small and
// serializing them is what makes two asks that race to close a cycle see
// each other (the second one is refused). Asks made by no held turn, the
// common case, never come here.
class wait_for_graph {
 public:
  static wait_for_graph& global() {
    static wait_for_graph graph;
    return graph;
  }

  // Records that `from`, held by turn `turn`, waits for `to`; false (and
  // nothing recorded) when `to` is `from` or waits for it through held
  // actors. True, recording nothing, when the turn no longer holds `from`
  // (it ended while a handler acting for it still ran): nothing waits.
  bool try_wait(const actor_base& from, std::uint32_t turn, const actor_base& to) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (from.holding_turn_from_anywhere() != turn) return true;
    if (reaches(&to, &from)) return false;
    edges_.push_back(edge{&from, &to, turn});
    return true;
  }

  // The reply to an ask try_wait() recorded arrived.
  void done(const actor_base& from, std::uint32_t turn, const actor_base& to) noexcept {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = std::find_if(edges_.begin(), edges_.end(), [&](const edge& e) {
      return e.from == &from && e.to == &to && e.turn == turn;
    });
    if (it != edges_.end()) {
      *it = edges_.back();
      edges_.pop_back();
    }
  }

 private:
  struct edge {
    const actor_base* from;
    const actor_base* to;
    std::uint32_t turn;
  };

  // Whether `start` is `goal` or waits for it along live edges. An edge's
  // `from` has turns (it made the ask inside one, before the edge was
  // recorded under this mutex), so reading its holder here is safe.
  bool reaches(const actor_base* start, const actor_base* goal) const {
    std::vector<const actor_base*> todo{start};
    std::vector<const actor_base*> seen;
    while (!todo.empty()) {
      const actor_base* a = todo.back();
      todo.pop_back();
      if (a == goal) return true;
      if (std::find(seen.begin(), seen.end(), a) != seen.end()) continue;
      seen.push_back(a);
      for (const edge& e : edges_)
        if (e.from == a && a->holding_turn_from_anywhere() == e.turn) todo.push_back(e.to);
    }
    return false;
  }

  std::mutex mutex_;
  std::vector<edge> edges_;
};

}  // namespace courier::detail
