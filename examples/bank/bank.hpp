// bank.hpp: accounts as courier actors, and transfers as reply chains.
//
// Each account is an actor owning its balance. A transfer withdraws from the
// source (reserving the amount there), then deposits to the target, then
// settles the reservation; if the deposit fails, the reservation is refunded.
// No step holds two accounts, and no thread waits for a reply. An account
// whose handler crashes restarts from its last good State, so a poisoned
// message is undone and nothing committed before it is lost.
#pragma once

#include <courier.hpp>
#include <cstdint>
#include <exception>
#include <functional>
#include <limits>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

namespace bank {

/// What an operation on the bank came to.
enum class errc {
  ok = 0,
  insufficient_funds,  ///< the source holds less than the amount
  unknown_account,     ///< no account has that name
  duplicate_account,   ///< an account with that name is already open
  same_account,        ///< a transfer from an account to itself
  zero_amount,         ///< an amount of zero
  balance_overflow,    ///< the deposit would take the balance past max_balance
  account_closed,      ///< the account was closed (or its actor stopped)
  operation_failed,    ///< the account's handler failed; nothing changed
};

/// A short English description of `e`.
inline const char* describe(errc e) noexcept {
  switch (e) {
    case errc::ok:
      return "ok";
    case errc::insufficient_funds:
      return "insufficient funds";
    case errc::unknown_account:
      return "unknown account";
    case errc::duplicate_account:
      return "duplicate account name";
    case errc::same_account:
      return "transfer to the same account";
    case errc::zero_amount:
      return "amount must be greater than zero";
    case errc::balance_overflow:
      return "balance would exceed the maximum";
    case errc::account_closed:
      return "account closed";
    case errc::operation_failed:
      return "the account failed to handle the request; nothing changed";
  }
  return "unknown error";
}

/// The exception the throwing API fails its futures with.
class bank_error : public std::runtime_error {
 public:
  explicit bank_error(errc code) : std::runtime_error(describe(code)), code_(code) {}
  errc code() const noexcept { return code_; }

 private:
  errc code_;
};

/// No account holds more than this (minor units). Balances plus amounts
/// reserved by transfers in flight stay below it, so a refund can never
/// overflow.
inline constexpr std::uint64_t max_balance = std::numeric_limits<std::uint64_t>::max() / 2;

/// Decides when an account's handler fails on purpose: a test's way to
/// inject faults. Called inside the account, only in handlers that can refuse
/// (never in Settle or Refund, which must not be lost).
class fault_plan {
 public:
  virtual ~fault_plan() = default;
  /// At the start of the handler, before anything changes.
  virtual bool fail_now() noexcept = 0;
  /// Halfway through Deposit, Withdraw, Reserve and Close, after the balance
  /// (or the closed flag) changed and before the handler finishes: a
  /// poisoned message, which leaves the State half-updated as it crashes.
  /// Only a restart from the last good State (account_options()) undoes it.
  virtual bool fail_midway() noexcept { return false; }
};

/// The exception an injected fault throws.
class injected_fault : public std::runtime_error {
 public:
  injected_fault() : std::runtime_error("injected fault") {}
};

// Messages of an account actor.
struct Deposit {
  std::uint64_t amount;
};
struct Withdraw {  ///< a plain withdrawal: the money leaves the bank
  std::uint64_t amount;
};
struct Reserve {  ///< the first leg of a transfer: withdraw and hold for a refund
  std::uint64_t amount;
};
struct Settle {  ///< the deposit leg succeeded: release the hold
  std::uint64_t amount;
};
struct Refund {  ///< the deposit leg failed: give the held amount back
  std::uint64_t amount;
};
struct GetBalance {};
struct Close {};
using account_msg = std::variant<Deposit, Withdraw, Reserve, Settle, Refund, GetBalance, Close>;

/// The State of an account actor.
struct account {
  std::uint64_t balance = 0;
  std::uint64_t reserved = 0;  ///< withdrawn by transfers whose deposit is not settled
  bool closed = false;
  fault_plan* faults = nullptr;  ///< for tests: when set, handlers may fail on purpose

  errc handle(Deposit d) {
    maybe_fail();
    if (closed) return errc::account_closed;
    if (d.amount == 0) return errc::zero_amount;
    if (d.amount > max_balance - balance - reserved) return errc::balance_overflow;
    balance += d.amount;
    maybe_fail_midway();
    return errc::ok;
  }
  errc handle(Withdraw w) {
    const errc e = withdraw(w.amount);
    if (e == errc::ok) maybe_fail_midway();
    return e;
  }
  errc handle(Reserve r) {
    const errc e = withdraw(r.amount);
    if (e != errc::ok) return e;
    maybe_fail_midway();  // withdrawn, not yet reserved
    reserved += r.amount;
    return errc::ok;
  }
  void handle(Settle s) { reserved -= s.amount; }
  // Never fails, even on a closed account: balance + reserved is unchanged.
  void handle(Refund r) {
    reserved -= r.amount;
    balance += r.amount;
  }
  std::uint64_t handle(GetBalance) const {
    maybe_fail();
    return balance;
  }
  errc handle(Close) {
    maybe_fail();
    if (closed) return errc::account_closed;
    closed = true;
    maybe_fail_midway();
    return errc::ok;
  }

 private:
  errc withdraw(std::uint64_t amount) {
    maybe_fail();
    if (closed) return errc::account_closed;
    if (amount == 0) return errc::zero_amount;
    if (balance < amount) return errc::insufficient_funds;
    balance -= amount;
    return errc::ok;
  }
  void maybe_fail() const {
    if (faults != nullptr && faults->fail_now()) throw injected_fault();
  }
  void maybe_fail_midway() const {
    if (faults != nullptr && faults->fail_midway()) throw injected_fault();
  }
};

using account_ref = courier::actor<account, account_msg>;

/// How accounts are spawned (bank::bank does): a handler that throws, an
/// injected fault or a bug, restarts the account from its last good State,
/// the State after the last handler that completed. A half-done operation is
/// undone and its asker gets the exception, while every deposit, withdrawal
/// and reservation committed before it is kept, so a transfer's Settle or
/// Refund always finds its reservation. Costs one copy of the (small) State
/// per message.
inline courier::spawn_options<account> account_options() {
  courier::spawn_options<account> o;
  o.policy = courier::failure_policy::restart;
  o.restart_from = courier::restart_point::last_good;
  return o;
}

namespace detail {
// The errc an account's reply stands for. A stopped account actor never
// handled the message: as good as closed. A handler that threw changed
// nothing: it threw before changing anything, or, midway, in an account
// spawned with account_options(), which restores the State before it.
inline errc code_of(const courier::result<errc>& r) noexcept {
  if (r.has_value()) return r.value();
  try {
    std::rethrow_exception(r.error());
  } catch (const courier::actor_stopped&) {
    return errc::account_closed;
  } catch (const bank_error& e) {
    return e.code();
  } catch (...) {
    return errc::operation_failed;
  }
}
}  // namespace detail

/// Moves `amount` from `from` to `to` and returns what happened, without
/// throwing. Each leg continues on the thread that delivered the previous
/// reply (then_inline), never through the caller's mailbox, so a caller that
/// is an actor and stops mid-transfer cannot strand the reserved amount. The reply comes when the
/// deposit has been acknowledged (or refused and refunded). Atomic as the caller sees it: on
/// errc::ok exactly `amount` moved; on any error no balance changed.
inline courier::future<errc> try_transfer(const account_ref& from, const account_ref& to,
                                          std::uint64_t amount) {
  if (amount == 0) return courier::make_ready_future(errc::zero_amount);
  if (from == to) return courier::make_ready_future(errc::same_account);
  // Each handle is copied once, into the chain, and moved from step to step:
  // a copy is an atomic increment on the actor, and the busiest accounts
  // are touched by every core.
  return from.ask(Reserve{amount})
      .then_inline([from, to, amount](courier::result<errc> reserved) mutable {
        const errc w = detail::code_of(reserved);
        if (w != errc::ok) return courier::make_ready_future(w);
        return to.ask(Deposit{amount})
            .then_inline([from = std::move(from), amount](courier::result<errc> deposited) {
              const errc d = detail::code_of(deposited);
              if (d == errc::ok) {
                from.tell(Settle{amount});
                return errc::ok;
              }
              // The deposit was refused or never handled, so nothing reached the
              // target: give the reservation back before the client hears.
              from.tell(Refund{amount});
              return d;
            });
      });
}

/// A bank: accounts by name. Opening and looking up go through a directory
/// actor; balances and transfers go to the account actors themselves.
///
/// Thread safety: every member may be called from any thread; replies come
/// as futures.
class bank {
 public:
  /// A bank whose accounts run on `where` (a courier::thread_pool, an Asio
  /// execution context or executor), spawned with account_options(). Tests
  /// pass `faults` to make the accounts' handlers fail on purpose. The bank
  /// may outlive `where`: once its pool is gone, every call fails with
  /// courier::actor_stopped.
  template <class Where>
  explicit bank(Where& where, fault_plan* faults = nullptr)
      : directory_(courier::spawn<directory, directory_msg>(
            where, directory{account_spawner(where, faults), {}, {}})) {}

  /// Opens an account named `name` holding `initial`.
  courier::future<errc> try_open(std::string name, std::uint64_t initial) {
    return directory_.ask(Open{std::move(name), initial});
  }
  /// The account named `name`, or errc::unknown_account.
  courier::future<std::variant<account_ref, errc>> find(std::string name) {
    return directory_.ask(Find{std::move(name)});
  }
  courier::future<errc> try_deposit(std::string name, std::uint64_t amount) {
    return ask_account(std::move(name), Deposit{amount});
  }
  courier::future<errc> try_withdraw(std::string name, std::uint64_t amount) {
    return ask_account(std::move(name), Withdraw{amount});
  }
  courier::future<errc> try_close(std::string name) {
    return ask_account(std::move(name), Close{});
  }
  /// Moves `amount` between two named accounts. Checks what can be checked
  /// before any money moves: amount > 0, two different accounts, both exist.
  courier::future<errc> try_transfer(std::string from, std::string to, std::uint64_t amount) {
    if (amount == 0) return courier::make_ready_future(errc::zero_amount);
    if (from == to) return courier::make_ready_future(errc::same_account);
    return directory_.ask(FindPair{std::move(from), std::move(to)})
        .then_inline([amount](std::variant<std::pair<account_ref, account_ref>, errc> found) {
          if (auto* e = std::get_if<errc>(&found)) return courier::make_ready_future(*e);
          auto& [a, b] = std::get<0>(found);
          return ::bank::try_transfer(a, b, amount);
        });
  }

  /// Throwing forms: the future fails with bank_error instead of holding an
  /// errc other than ok.
  courier::future<void> open(std::string name, std::uint64_t initial) {
    return checked(try_open(std::move(name), initial));
  }
  courier::future<void> deposit(std::string name, std::uint64_t amount) {
    return checked(try_deposit(std::move(name), amount));
  }
  courier::future<void> withdraw(std::string name, std::uint64_t amount) {
    return checked(try_withdraw(std::move(name), amount));
  }
  courier::future<void> close(std::string name) { return checked(try_close(std::move(name))); }
  courier::future<void> transfer(std::string from, std::string to, std::uint64_t amount) {
    return checked(try_transfer(std::move(from), std::move(to), amount));
  }
  /// The balance of the named account (a closed account keeps reporting the
  /// balance it was closed with). Fails with bank_error(unknown_account).
  courier::future<std::uint64_t> balance(std::string name) {
    return find(std::move(name)).then_inline([](std::variant<account_ref, errc> found) {
      if (auto* e = std::get_if<errc>(&found))
        return courier::make_failed_future<std::uint64_t>(std::make_exception_ptr(bank_error(*e)));
      return std::get<0>(found).ask(GetBalance{});
    });
  }
  /// Every account, in the order they were opened.
  courier::future<std::vector<std::pair<std::string, account_ref>>> accounts() {
    return directory_.ask(List{});
  }

 private:
  struct Open {
    std::string name;
    std::uint64_t initial;
  };
  struct Find {
    std::string name;
  };
  struct FindPair {
    std::string from;
    std::string to;
  };
  struct List {};
  using directory_msg = std::variant<Open, Find, FindPair, List>;

  struct directory {
    std::function<account_ref(std::uint64_t)> spawn_account;
    std::unordered_map<std::string, account_ref> by_name;
    std::vector<std::pair<std::string, account_ref>> in_order;

    errc handle(Open o) {
      if (o.initial > max_balance) return errc::balance_overflow;
      if (by_name.count(o.name) != 0) return errc::duplicate_account;
      account_ref a = spawn_account(o.initial);
      by_name.emplace(o.name, a);
      in_order.emplace_back(std::move(o.name), std::move(a));
      return errc::ok;
    }
    std::variant<account_ref, errc> handle(const Find& f) const {
      auto it = by_name.find(f.name);
      if (it == by_name.end()) return errc::unknown_account;
      return it->second;
    }
    std::variant<std::pair<account_ref, account_ref>, errc> handle(const FindPair& f) const {
      auto a = by_name.find(f.from);
      auto b = by_name.find(f.to);
      if (a == by_name.end() || b == by_name.end()) return errc::unknown_account;
      return std::pair{a->second, b->second};
    }
    std::vector<std::pair<std::string, account_ref>> handle(List) const { return in_order; }
  };

  // What the directory spawns accounts with. It keeps where they run by value:
  // an executor (of an execution context, or the one given), never a
  // reference to the caller's variable. A courier::thread_pool is the
  // exception: it can be neither copied nor spawned on natively through its
  // executor, so the pool itself is named. That pointer is only used by the
  // directory's Open handler, which runs on the same pool, and a pool runs no
  // handler once it has stopped (courier/thread_pool.hpp): it is never used
  // after the pool is gone.
  template <class Where>
  static std::function<account_ref(std::uint64_t)> account_spawner(Where& where,
                                                                   fault_plan* faults) {
    auto spawn_on = [faults](auto& on, std::uint64_t initial) {
      return courier::spawn<account, account_msg>(on, account{initial, 0, false, faults},
                                                  account_options());
    };
    if constexpr (std::is_same_v<std::remove_const_t<Where>, courier::thread_pool>) {
      return [spawn_on, pool = &where](std::uint64_t initial) { return spawn_on(*pool, initial); };
    } else if constexpr (requires { where.get_executor(); }) {
      return [spawn_on, ex = where.get_executor()](std::uint64_t initial) {
        return spawn_on(ex, initial);
      };
    } else {
      return [spawn_on, ex = where](std::uint64_t initial) { return spawn_on(ex, initial); };
    }
  }

  // Sends `m` to the named account and returns what its reply stands for.
  template <class M>
  courier::future<errc> ask_account(std::string name, M m) {
    return find(std::move(name)).then_inline([m](std::variant<account_ref, errc> found) {
      if (auto* e = std::get_if<errc>(&found)) return courier::make_ready_future(*e);
      return std::get<0>(found).ask(m).then_inline(
          [](courier::result<errc> r) { return detail::code_of(r); });
    });
  }

  static courier::future<void> checked(courier::future<errc> f) {
    return std::move(f).then_inline([](errc e) {
      if (e != errc::ok) throw bank_error(e);
    });
  }

  courier::actor<directory, directory_msg> directory_;
};

}  // namespace bank
