// courier/errors.hpp: the one exception hierarchy of courier's lifecycle and usage errors.
#pragma once

#include <stdexcept>
#include <string>

namespace courier {

/// Base of every exception courier itself throws. Catch this one type to handle
/// any courier lifecycle or usage failure. Exceptions thrown by actor handlers
/// reach the asker unchanged and are not wrapped in this type.
///
/// Thread safety: immutable after construction; safe to share.
class error : public std::runtime_error {
 public:
  explicit error(const std::string& what) : std::runtime_error(what) {}
};

/// The actor was stopped (explicitly, by its failure policy, or because its
/// thread pool shut down) before it could handle the message. Every ask queued
/// at the time of the stop and every ask made afterwards fails with this error.
class actor_stopped : public error {
 public:
  actor_stopped() : error("courier: actor stopped before handling the message") {}
  explicit actor_stopped(const std::string& what) : error(what) {}
};

/// An ask given a deadline did not get its reply in time. The late reply, if it
/// ever comes, is discarded.
/// The handler may or may not have run (it may still be running).
class ask_timeout : public error {
 public:
  ask_timeout() : error("courier: ask timed out before the reply arrived") {}

 protected:
  explicit ask_timeout(const std::string& what) : error(what) {}
};

/// An ask given a deadline that passed while its message was still queued:
/// the message was skipped, and its handler did not run and never will. A
/// kind of ask_timeout, so code that handles timeouts handles this too.
class ask_expired : public ask_timeout {
 public:
  ask_expired() : ask_timeout("courier: ask expired in the mailbox; its handler did not run") {}
};

/// An ask was refused because waiting for its reply would close a cycle of
/// actors that each wait for the next: it was made on behalf of a coroutine
/// handler of an actor with reentrancy::atomic (which handles nothing else
/// while the coroutine waits), by the coroutine or by the handler of a
/// message it asked, and its target is that same actor, or is itself held
/// by a suspended atomic coroutine that waits, directly or through others
/// like it, for that actor. The message was not sent; nothing changed.
class would_deadlock : public error {
 public:
  would_deadlock()
      : error("courier: ask refused: its reply would wait for the asker, which waits for it") {}
};

/// The promise behind a future was destroyed without a value or an error, for
/// example a deferred reply whose producer dropped it.
class broken_promise : public error {
 public:
  broken_promise() : error("courier: promise destroyed without a result") {}
};

/// The library was used in a way its contract forbids: an empty actor handle,
/// an already consumed future, a missing restart factory, and the like.
class usage_error : public error {
 public:
  explicit usage_error(const std::string& what) : error("courier: " + what) {}
};

/// future::get() or wait() was called where blocking could deadlock: on a
/// courier::thread_pool worker, inside an actor's handler, on a thread that
/// runs the execution context of the actor an ask awaits, or inside a
/// continuation while the result is not in. Use then() or async_ask() with
/// co_await there instead.
class would_block : public usage_error {
 public:
  would_block()
      : usage_error(
            "future::get() called on a courier pool thread, inside an actor, on a thread that "
            "runs the asked actor's execution context, or inside a continuation; blocking "
            "there could deadlock. Use then() or co_await async_ask() instead") {}
};

}  // namespace courier
