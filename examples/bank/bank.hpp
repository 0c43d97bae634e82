// bank.hpp: accounts as courier actors, and transfers as reply chains or as
// a coroutine of the source account.
//
// Each account is an actor owning its balance. A transfer withdraws from the
// source (reserving the amount there), then deposits to the target, then
// settles the reservation; if the deposit fails, the reservation is refunded.
// No step holds two accounts, and no thread waits for a reply. The same
// protocol is written twice: try_transfer() chains the replies from outside
// the accounts; a Transfer message runs it as one coroutine handler of the
// source account, top to bottom. An account
// whose handler crashes restarts from its last good State, so a poisoned
// message is undone and nothing committed before it is lost.
//
// The bank and transfers work on any account State that handles the account
// messages as `account` does (basic_bank<Account>); the tests wrap `account`
// in one whose handlers fail on purpose.
#pragma once

#include <courier.hpp>

#include <asio/awaitable.hpp>
#include <asio/use_awaitable.hpp>
#include <atomic>
#include <cstdint>
#include <exception>
#include <functional>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
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
  id_conflict,         ///< a transfer id already used with other accounts or amount
  interrupted,         ///< the server stopped before the transfer completed; voided at restart
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
    case errc::id_conflict:
      return "transfer id already used with different parameters";
    case errc::interrupted:
      return "transfer interrupted: the server stopped before it completed; nothing moved";
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

/// Where the accounts of a durable bank write what they did (see
/// ledger.hpp, which writes it to a journal). Each call is made inside the
/// actor whose State changed, after the change, before its reply is sent:
/// so what one actor writes is in the order it did it, and whatever another
/// actor does on hearing of it is written after it. A transfer is written
/// as its legs: pending (the source reserved the amount), posted (the
/// target took it) or voided (the source got it back); a transfer's number
/// ties the three together.
///
/// Thread safety: every member is called from many actors at once.
class ledger_sink {
 public:
  virtual ~ledger_sink() = default;
  /// A number for a new transfer, never given before (nor before a restart).
  virtual std::uint64_t next_transfer() noexcept = 0;
  virtual void opened(std::uint64_t account, std::string_view name,
                      std::uint64_t initial) noexcept = 0;
  virtual void deposited(std::uint64_t account, std::uint64_t amount) noexcept = 0;
  virtual void withdrew(std::uint64_t account, std::uint64_t amount) noexcept = 0;
  virtual void closed(std::uint64_t account) noexcept = 0;
  virtual void pending(std::uint64_t transfer, std::uint64_t from,
                       std::uint64_t amount) noexcept = 0;
  virtual void posted(std::uint64_t transfer, std::uint64_t to, std::uint64_t amount) noexcept = 0;
  virtual void voided(std::uint64_t transfer, std::uint64_t from,
                      std::uint64_t amount) noexcept = 0;
};

// Messages of an account actor. `transfer` is the number of the transfer a
// leg belongs to (ledger_sink::next_transfer()); 0 in a bank that is not
// durable.
struct Deposit {
  std::uint64_t amount;
  std::uint64_t transfer = 0;  ///< 0: a plain deposit, else a transfer's deposit leg
};
struct Withdraw {  ///< a plain withdrawal: the money leaves the bank
  std::uint64_t amount;
};
struct Reserve {  ///< the first leg of a transfer: withdraw and hold for a refund
  std::uint64_t amount;
  std::uint64_t transfer = 0;
};
struct Settle {  ///< the deposit leg succeeded: release the hold
  std::uint64_t amount;
};
struct Refund {  ///< the deposit leg failed: give the held amount back
  std::uint64_t amount;
  std::uint64_t transfer = 0;
};
struct GetBalance {};
struct Audit {};  ///< the balance and the amount reserved by transfers in flight
struct Close {};
struct Transfer;
using account_msg =
    std::variant<Deposit, Withdraw, Reserve, Settle, Refund, GetBalance, Audit, Close, Transfer>;

/// What an account holds: its balance, and what transfers from it have
/// withdrawn but not yet settled (money in flight).
struct holdings {
  std::uint64_t balance = 0;
  std::uint64_t reserved = 0;
};

struct account;
/// A whole transfer, told or asked to the source account, whose coroutine
/// handler runs every leg (see account::handle(Transfer)).
struct Transfer {
  courier::actor<account, account_msg> to;
  std::uint64_t amount;
};

/// The State of an account actor.
struct account {
  std::uint64_t balance = 0;
  std::uint64_t reserved = 0;  ///< withdrawn by transfers whose deposit is not settled
  bool closed = false;
  /// In a durable bank, where this account writes what it does, and its
  /// number there; null otherwise.
  ledger_sink* ledger = nullptr;
  std::uint64_t number = 0;

  errc handle(Deposit d) {
    if (closed) return errc::account_closed;
    if (d.amount == 0) return errc::zero_amount;
    if (d.amount > max_balance - balance - reserved) return errc::balance_overflow;
    balance += d.amount;
    if (ledger != nullptr) {
      if (d.transfer != 0)
        ledger->posted(d.transfer, number, d.amount);
      else
        ledger->deposited(number, d.amount);
    }
    return errc::ok;
  }
  errc handle(Withdraw w) {
    const errc e = withdraw(w.amount);
    if (e == errc::ok && ledger != nullptr) ledger->withdrew(number, w.amount);
    return e;
  }
  errc handle(Reserve r) {
    const errc e = withdraw(r.amount);
    if (e != errc::ok) return e;
    reserved += r.amount;
    if (ledger != nullptr) ledger->pending(r.transfer, number, r.amount);
    return e;
  }
  void handle(Settle s) { reserved -= s.amount; }
  // Never fails, even on a closed account: balance + reserved is unchanged.
  void handle(Refund r) {
    reserved -= r.amount;
    balance += r.amount;
    if (ledger != nullptr) ledger->voided(r.transfer, number, r.amount);
  }
  std::uint64_t handle(GetBalance) const { return balance; }
  holdings handle(Audit) const { return {balance, reserved}; }
  errc handle(Close) {
    if (closed) return errc::account_closed;
    closed = true;
    if (ledger != nullptr) ledger->closed(number);
    return errc::ok;
  }
  asio::awaitable<errc> handle(Transfer t);

 private:
  errc withdraw(std::uint64_t amount) {
    if (closed) return errc::account_closed;
    if (amount == 0) return errc::zero_amount;
    if (balance < amount) return errc::insufficient_funds;
    balance -= amount;
    return errc::ok;
  }
};

/// Moves `t.amount` from this account to `t.to`, as try_transfer() does, in
/// one coroutine: reserve here, wait for the target's deposit, then settle or
/// refund here. Spawn accounts that take Transfer with
/// courier::reentrancy::interleave (coroutine_account_options() does): while
/// one transfer waits for its deposit, the account goes on handling others,
/// and deposits into it. With reentrancy::atomic an account would handle
/// nothing until its transfer's deposit came back, so two opposite transfers
/// between the same accounts would wait for each other; courier refuses the
/// second deposit with courier::would_deadlock instead of hanging, and the
/// transfer reports errc::operation_failed, refunded.
/// In a durable bank the transfer takes its number from the account's ledger.
inline asio::awaitable<errc> account::handle(Transfer t) {
  if (t.amount == 0) co_return errc::zero_amount;
  const std::uint64_t transfer = ledger != nullptr ? ledger->next_transfer() : 0;
  const errc reservation = handle(Reserve{t.amount, transfer});
  if (reservation != errc::ok) co_return reservation;
  errc deposited = errc::operation_failed;
  try {
    deposited = co_await t.to.async_ask(Deposit{t.amount, transfer}, asio::use_awaitable);
  } catch (const courier::actor_stopped&) {
    deposited = errc::account_closed;
  } catch (...) {
    // The deposit threw (and changed nothing) or was refused unsent.
  }
  if (deposited == errc::ok) {
    handle(Settle{t.amount});
  } else {
    handle(Refund{t.amount, transfer});
  }
  co_return deposited;
}

/// A handle to an account actor whose State is `Account`: `account`, or a
/// copyable State that handles every account_msg with the same reply types.
template <class Account>
using basic_account_ref = courier::actor<Account, account_msg>;
using account_ref = basic_account_ref<account>;

/// How accounts are spawned (bank::bank does): a handler that throws (a bug,
/// or a fault a test injects) restarts the account from its last good State,
/// the State after the last handler that completed. A half-done operation is
/// undone and its asker gets the exception, while every deposit, withdrawal
/// and reservation committed before it is kept, so a transfer's Settle or
/// Refund always finds its reservation. Costs one copy of the (small) State
/// per message.
template <class Account = account>
courier::spawn_options<Account> account_options() {
  courier::spawn_options<Account> o;
  o.policy = courier::failure_policy::restart;
  o.restart_from = courier::restart_point::last_good;
  return o;
}

/// account_options() for accounts that run Transfer coroutines: they
/// interleave, so that a transfer waiting for its deposit holds nothing up
/// (see account::handle(Transfer)).
inline courier::spawn_options<account> coroutine_account_options() {
  courier::spawn_options<account> o = account_options();
  o.reentrancy = courier::reentrancy::interleave;
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
/// `transfer` numbers the transfer in a durable bank's ledger (0 otherwise).
template <class Account>
courier::future<errc> try_transfer(const basic_account_ref<Account>& from,
                                   const basic_account_ref<Account>& to, std::uint64_t amount,
                                   std::uint64_t transfer = 0) {
  if (amount == 0) return courier::make_ready_future(errc::zero_amount);
  if (from == to) return courier::make_ready_future(errc::same_account);
  // Each handle is copied once, into the chain, and moved from step to step:
  // a copy is an atomic increment on the actor, and the busiest accounts
  // are touched by every core.
  return from.ask(Reserve{amount, transfer})
      .then_inline([from, to, amount, transfer](courier::result<errc> reserved) mutable {
        const errc w = detail::code_of(reserved);
        if (w != errc::ok) return courier::make_ready_future(w);
        return to.ask(Deposit{amount, transfer})
            .then_inline(
                [from = std::move(from), amount, transfer](courier::result<errc> deposited) {
                  const errc d = detail::code_of(deposited);
                  if (d == errc::ok) {
                    from.tell(Settle{amount});
                    return errc::ok;
                  }
                  // The deposit was refused or never handled, so nothing reached the
                  // target: give the reservation back before the client hears.
                  from.tell(Refund{amount, transfer});
                  return d;
                });
      });
}

/// What a bank holds (basic_bank::total()).
struct totals {
  /// Every balance plus every amount in flight: money_high * 2^64 + money
  /// (each account holds up to max_balance, so two can pass 2^64).
  std::uint64_t money = 0;
  std::uint64_t accounts = 0;  ///< accounts ever opened, closed ones included
  std::uint64_t money_high = 0;
};

/// A bank: accounts by name, each an actor whose State is `Account` (see
/// basic_account_ref). Opening and looking up go through a directory actor;
/// balances and transfers go to the account actors themselves.
///
/// Thread safety: every member may be called from any thread; replies come
/// as futures.
template <class Account>
class basic_bank {
 public:
  using account_ref_type = basic_account_ref<Account>;
  /// Makes the State of a new account from its opening balance.
  using make_account_type = std::function<Account(std::uint64_t initial)>;

  /// A bank whose accounts run on `where` (a courier::thread_pool, an Asio
  /// execution context or executor), spawned with account_options() from the
  /// State `make_account` returns (by default `Account{initial}`). The bank
  /// keeps a copy of an executor it is given, never a reference to the
  /// caller's variable; built on a courier::thread_pool, it may outlive the
  /// pool, and once the pool is gone every call fails with
  /// courier::actor_stopped.
  template <class Where>
  explicit basic_bank(
      Where& where,
      make_account_type make_account = [](std::uint64_t initial) { return Account{initial}; })
      : directory_(courier::spawn<directory, directory_msg>(
            where, directory{account_spawner(where), std::move(make_account), nullptr, {}, {}})) {}

  /// A durable bank: as above, but every account writes what it does to
  /// `ledger` (which must outlive the bank's actors), and the bank starts
  /// with the accounts `restored`, in the order they were opened (the n-th
  /// is account number n in the ledger), each with the State it had.
  /// Account must be a State with `ledger` and `number` members, as
  /// `account` is.
  template <class Where>
  basic_bank(
      Where& where, ledger_sink& ledger, std::vector<std::pair<std::string, Account>> restored,
      make_account_type make_account = [](std::uint64_t initial) { return Account{initial}; })
      : ledger_(&ledger) {
    static_assert(
        requires(Account a) {
          a.ledger = &ledger;
          a.number = 1;
        },
        "a durable bank's Account has `ledger` and `number` members");
    directory d{account_spawner(where), std::move(make_account), &ledger, {}, {}};
    d.by_name.reserve(restored.size());
    d.in_order.reserve(restored.size());
    for (auto& [name, state] : restored) d.add(std::move(name), std::move(state));
    directory_ = courier::spawn<directory, directory_msg>(where, std::move(d));
  }

  /// Opens an account named `name` holding `initial`.
  courier::future<errc> try_open(std::string name, std::uint64_t initial) {
    return directory_.ask(Open{std::move(name), initial});
  }
  /// The account named `name`, or errc::unknown_account.
  courier::future<std::variant<account_ref_type, errc>> find(std::string name) {
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
        .then_inline([amount, ledger = ledger_](
                         std::variant<std::pair<account_ref_type, account_ref_type>, errc> found) {
          if (auto* e = std::get_if<errc>(&found)) return courier::make_ready_future(*e);
          auto& [a, b] = std::get<0>(found);
          return ::bank::try_transfer(a, b, amount, ledger ? ledger->next_transfer() : 0);
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
    return find(std::move(name)).then_inline([](std::variant<account_ref_type, errc> found) {
      if (auto* e = std::get_if<errc>(&found))
        return courier::make_failed_future<std::uint64_t>(std::make_exception_ptr(bank_error(*e)));
      return std::get<0>(found).ask(GetBalance{});
    });
  }
  /// Every account, in the order they were opened.
  courier::future<std::vector<std::pair<std::string, account_ref_type>>> accounts() {
    return directory_.ask(List{});
  }
  /// How many messages wait at the directory (see courier::actor::queued()).
  std::size_t directory_queued() const { return directory_.queued(); }
  /// The two named accounts, or errc::unknown_account if either is missing.
  courier::future<std::variant<std::pair<account_ref_type, account_ref_type>, errc>> find_pair(
      std::string from, std::string to) {
    return directory_.ask(FindPair{std::move(from), std::move(to)});
  }

  /// The sum of every account's balance and reserved amount, and the number
  /// of accounts. Each account is read in its own turn, so while transfers
  /// run the sum may count an amount in flight twice (read at its target
  /// after the deposit, at its source before the settle) or not at all (the
  /// other way round); with none in flight it is exact.
  /// Fails with the first error an account replies with.
  courier::future<totals> total() {
    return accounts().then_inline([](std::vector<std::pair<std::string, account_ref_type>> list) {
      struct sum {
        std::atomic<std::uint64_t> money{0};
        std::atomic<std::uint64_t> money_high{0};  // carries out of `money`
        std::atomic<std::size_t> left;
        std::atomic<bool> failed{false};
        courier::promise<totals> done;
        std::uint64_t accounts;
      };
      auto s = std::make_shared<sum>();
      s->left.store(list.size());
      s->accounts = list.size();
      courier::future<totals> f = s->done.get_future();
      if (list.empty()) s->done.set_value(totals{0, 0});
      for (auto& entry : list) {
        entry.second.ask(Audit{}).then_inline([s](courier::result<holdings> h) {
          if (!h.has_value()) {
            if (!s->failed.exchange(true)) s->done.try_set_exception(h.error());
          } else {
            // balance + reserved <= max_balance: this sum cannot wrap.
            const std::uint64_t v = h.value().balance + h.value().reserved;
            if (s->money.fetch_add(v) + v < v) s->money_high.fetch_add(1);
          }
          if (s->left.fetch_sub(1) == 1 && !s->failed.load())
            s->done.try_set_value(totals{s->money.load(), s->accounts, s->money_high.load()});
        });
      }
      return f;
    });
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
    std::function<account_ref_type(Account)> spawn_account;
    make_account_type make_account;
    ledger_sink* ledger;  // null unless durable
    std::unordered_map<std::string, account_ref_type> by_name;
    std::vector<std::pair<std::string, account_ref_type>> in_order;  // by number - 1

    errc handle(Open o) {
      if (o.initial > max_balance) return errc::balance_overflow;
      if (by_name.count(o.name) != 0) return errc::duplicate_account;
      const std::uint64_t number = add(std::move(o.name), make_account(o.initial));
      if (ledger != nullptr) ledger->opened(number, in_order.back().first, o.initial);
      return errc::ok;
    }

    // Spawns the account `state` as number in_order.size() + 1 (writing to
    // the ledger, in a durable bank) and registers it: its number.
    std::uint64_t add(std::string name, Account state) {
      const std::uint64_t number = in_order.size() + 1;
      if constexpr (requires { state.ledger = ledger; }) {
        state.ledger = ledger;
        state.number = number;
      }
      account_ref_type a = spawn_account(std::move(state));
      by_name.emplace(name, a);
      in_order.emplace_back(std::move(name), std::move(a));
      return number;
    }
    std::variant<account_ref_type, errc> handle(const Find& f) const {
      auto it = by_name.find(f.name);
      if (it == by_name.end()) return errc::unknown_account;
      return it->second;
    }
    std::variant<std::pair<account_ref_type, account_ref_type>, errc> handle(
        const FindPair& f) const {
      auto a = by_name.find(f.from);
      auto b = by_name.find(f.to);
      if (a == by_name.end() || b == by_name.end()) return errc::unknown_account;
      return std::pair{a->second, b->second};
    }
    std::vector<std::pair<std::string, account_ref_type>> handle(List) const { return in_order; }
  };

  // What the directory spawns accounts with. It keeps where they run by
  // value, an executor (the one given, or its execution context's), never a
  // reference to the caller's variable. A courier::thread_pool is the
  // exception: it cannot be copied, and accounts spawned through its executor
  // would take courier's path for foreign executors (slower, and not stopped
  // with the pool), so the spawner names the pool. That pointer is used only
  // by the directory's Open handler, which runs on the same pool, and a pool
  // runs no handler once it has stopped (courier/thread_pool.hpp), so it is
  // never used after the pool is gone.
  template <class Where>
  static std::function<account_ref_type(Account)> account_spawner(Where& where) {
    auto spawn_on = [](auto& on, Account state) {
      return courier::spawn<Account, account_msg>(on, std::move(state), account_options<Account>());
    };
    if constexpr (std::is_same_v<std::remove_const_t<Where>, courier::thread_pool>) {
      return [spawn_on, pool = &where](Account state) { return spawn_on(*pool, std::move(state)); };
    } else if constexpr (requires { where.get_executor(); }) {
      return [spawn_on, ex = where.get_executor()](Account state) {
        return spawn_on(ex, std::move(state));
      };
    } else {
      return [spawn_on, ex = where](Account state) { return spawn_on(ex, std::move(state)); };
    }
  }

  // Sends `m` to the named account and returns what its reply stands for.
  template <class M>
  courier::future<errc> ask_account(std::string name, M m) {
    return find(std::move(name)).then_inline([m](std::variant<account_ref_type, errc> found) {
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

  ledger_sink* ledger_ = nullptr;
  courier::actor<directory, directory_msg> directory_;
};

/// The bank of plain accounts.
using bank = basic_bank<account>;

}  // namespace bank
