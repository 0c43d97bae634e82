// courier/supervision.hpp: what an actor does when one of its handlers throws.
#pragma once

#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>

namespace courier {

/// What an actor does after a handler throws. Chosen at spawn time.
enum class failure_policy {
  /// Keep going with the State as the throwing handler left it (the default).
  /// Handlers that must not leave a half-changed State should change it only
  /// after the last statement that can throw.
  resume,
  /// Stop the actor, exactly as actor::stop() does.
  stop,
  /// Replace the State with a fresh one from spawn_options::factory (by
  /// default a copy of the State the actor was spawned with), then keep going.
  /// If the factory throws, the actor stops.
  restart,
};

/// Which kind of work failed.
enum class failure_kind {
  tell,     ///< a handler of a message sent with tell(); nobody else hears of it
  ask,      ///< a handler of an ask; the asker also receives the exception
  handler,  ///< a plain Asio handler run on the actor's executor (a timer, say)
};

/// One handler failure, as reported to spawn_options::on_failure.
struct failure {
  std::exception_ptr error;
  failure_kind kind;
};

/// spawn_options::capacity of a mailbox with no bound.
inline constexpr std::size_t unbounded_mailbox = 0;

/// The default spawn_options::capacity: large enough that a producer waits
/// only for an actor that is really behind (256 batches of backlog), small
/// enough that a full mailbox of small messages takes about 0.5 MB.
inline constexpr std::size_t default_mailbox_capacity = 16384;

/// How to spawn an actor: its failure policy, its failure hook, and how many
/// messages it handles in a row.
///
/// Thread safety: a plain value; the actor copies what it needs at spawn time.
/// The hook and the factory run inside the actor, serialized with its handlers.
template <class State>
struct spawn_options {
  /// Applied after every handler failure, whatever its kind.
  failure_policy policy = failure_policy::resume;
  /// Makes the fresh State for failure_policy::restart. When empty and the
  /// policy is restart, the State given to spawn() is copied and kept for it.
  std::function<State()> factory;
  /// Called with every handler failure before the policy is applied. An
  /// exception it throws is ignored.
  std::function<void(const failure&)> on_failure;
  /// Messages (and continuations) handled per turn on a thread before the
  /// actor lets other actors run; at least 1. Larger batches amortize
  /// scheduling; 1 gives a testing::deterministic_context the most
  /// interleavings to choose from.
  std::uint32_t batch = 64;
  /// How many messages may be queued before senders wait or are refused
  /// (see actor::tell); at most 2^32 - 1. unbounded_mailbox (0) for no bound.
  /// Continuations and handlers posted to the actor's executor count too,
  /// but they are always admitted.
  std::size_t capacity = default_mailbox_capacity;
};

}  // namespace courier
