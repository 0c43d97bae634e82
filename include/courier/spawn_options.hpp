// courier/spawn_options.hpp: how an actor is spawned, and its mailbox's bound.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <type_traits>

#include "courier/errors.hpp"
#include "courier/supervision.hpp"

namespace courier {

/// spawn_options::capacity of a mailbox with no bound.
inline constexpr std::size_t unbounded_mailbox = 0;

/// The default spawn_options::capacity: large enough that a producer waits
/// only for an actor that is really behind (256 batches of backlog), small
/// enough that a full mailbox of small messages takes about 0.5 MB.
inline constexpr std::size_t default_mailbox_capacity = 16384;

/// What an actor does while one of its coroutine handlers (a `handle(M)`
/// that returns `asio::awaitable<R>`) is suspended at a `co_await`.
enum class reentrancy : std::uint8_t {
  /// It handles nothing else until the coroutine ends: later messages,
  /// continuations and plain handlers posted to its executor wait (keeping
  /// their order and their place in the mailbox's bound); only what the
  /// coroutine itself awaited resumes it. The whole coroutine is one turn,
  /// atomic with respect to everything else the actor does.
  atomic,
  /// At each `co_await` the actor goes on handling other messages and
  /// continuations, one at a time as always; the coroutine resumes between
  /// them and sees the State as they left it.
  interleave,
};

/// How to spawn an actor: its failure policy, its failure hook, and how many
/// messages it handles in a row.
///
/// Thread safety: a plain value; the actor copies what it needs at spawn time.
/// The hook and the factory run inside the actor, serialized with its handlers.
template <class State>
struct spawn_options {
  /// Applied after every handler failure, whatever its kind.
  failure_policy policy = failure_policy::resume;
  /// Makes the fresh State for failure_policy::restart with
  /// restart_point::initial. When empty and the policy is restart, the State
  /// given to spawn() is copied and kept for it.
  std::function<State()> factory;
  /// Called with every handler failure before the policy is applied. An
  /// exception it throws is ignored.
  std::function<void(const failure&)> on_failure;
  /// Where failure_policy::restart takes the new State from: a fresh one from
  /// the factory (the default), or the State before the failing handler.
  restart_point restart_from = restart_point::initial;
  /// Messages (and continuations) handled per turn on a thread before the
  /// actor lets other actors run; at least 1. Larger batches amortize
  /// scheduling; 1 gives a testing::deterministic_context the most
  /// interleavings to choose from.
  std::uint32_t batch = 64;
  /// How many messages may be queued before senders wait or are refused
  /// (see actor::tell); at most 2^32 - 1. unbounded_mailbox (0) for no bound.
  /// Continuations and handlers posted to the actor's executor count too,
  /// but they are always admitted. A message's place is free again once it
  /// is taken out for handling; within one turn (see `batch`) the places
  /// after the first come back together at the end of the turn.
  std::size_t capacity = default_mailbox_capacity;
  /// What the actor does while a coroutine handler is suspended.
  courier::reentrancy reentrancy = courier::reentrancy::atomic;

  /// Checks that an actor can be spawned with these options; spawn() calls it.
  /// @throws usage_error if the batch is zero, the capacity is above
  /// 2^32 - 1, the policy is restart with no factory and `State` is not
  /// copyable, or `restart_from` is restart_point::last_good with a policy
  /// other than restart, with a factory, or with a `State` that is not
  /// copyable.
  void validate() const {
    if (batch == 0) throw usage_error("spawn_options::batch must be at least 1");
    if (capacity > std::numeric_limits<std::uint32_t>::max())
      throw usage_error("spawn_options::capacity must be at most 2^32 - 1");
    if (restart_from == restart_point::last_good) {
      if (policy != failure_policy::restart)
        throw usage_error("restart_point::last_good needs failure_policy::restart");
      if (factory)
        throw usage_error("spawn_options::factory is not used with restart_point::last_good");
      if (!std::is_copy_constructible_v<State>)
        throw usage_error("restart_point::last_good needs a copy-constructible State");
    } else if (policy == failure_policy::restart && !factory &&
               !std::is_copy_constructible_v<State>) {
      throw usage_error(
          "failure_policy::restart needs spawn_options::factory when State is not copyable");
    }
  }
};

}  // namespace courier
