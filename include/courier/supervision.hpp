// courier/supervision.hpp: what an actor does when one of its handlers throws.
#pragma once

#include <exception>

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

}  // namespace courier
