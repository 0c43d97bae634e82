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
  /// Replace the State, then keep going. Where the new State comes from is
  /// spawn_options::restart_from: a fresh one from spawn_options::factory (by
  /// default a copy of the State the actor was spawned with), or the last good
  /// State. If the factory, or restoring the last good State, throws, the
  /// actor stops.
  restart,
};

/// Where failure_policy::restart takes the new State from. Chosen at spawn
/// time with spawn_options::restart_from.
enum class restart_point {
  /// A fresh State from spawn_options::factory, as at spawn (the default).
  initial,
  /// The last good State: the State exactly as it was just before the failing
  /// handler started, which is the State after the last handler that completed
  /// without throwing. Only the failing handler's changes are undone;
  /// everything earlier handlers and continuations did is kept. As for every
  /// policy, on_failure runs first and the State is restored after it; an
  /// asker of the failing message is woken only once the State has been
  /// restored, and the messages after it are handled against that State.
  ///
  /// Cost: before each message handler and each plain handler run on the
  /// actor's executor, the actor copies its State (by copy assignment into
  /// the kept copy when the State is copy-assignable), so choose it for
  /// States that are cheap to copy. An actor that does not choose it copies
  /// nothing.
  ///
  /// What counts as the failing handler: a tell's or an ask's handler (the
  /// asker receives the exception), or a plain handler. A continuation
  /// attached with future::then() inside the actor is not a handler failure:
  /// its exception goes to the future then() returned, no hook runs and
  /// nothing is restored, so what it changed before throwing stays, and is
  /// part of the State the next handler starts from.
  ///
  /// Needs failure_policy::restart, a copy-constructible State, and no
  /// factory. If the copy before a handler throws, the handler still runs,
  /// but should it fail there is nothing to restore and the actor stops; so
  /// it does when moving the kept copy back into place throws.
  last_good,
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
};

}  // namespace courier
