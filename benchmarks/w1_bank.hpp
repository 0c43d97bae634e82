// w1_bank.hpp: workload W1 (closed-loop random transfers between accounts)
// and its W1-hot variant (two accounts), in every implementation that applies:
//   courier      the accounts of a bank::bank (examples/bank, spawned with
//                bank::account_options() as the bank spawns them), driven by
//                bank::w1_driver, the driver of `bank simulate`
//   courier_coro the same, each transfer a bank::Transfer message: one
//                coroutine handler of the source account (accounts spawned
//                with bank::coroutine_account_options())
//   asio_strand  one asio::strand per account over asio::thread_pool: a withdraw
//                handler, then a deposit handler, then the reply posted back to
//                the pool as a callback that draws the client's next transfer
//   floor        the same handlers posted to one io_context run by one thread
//   mutex        one std::mutex per account; `threads` OS threads, each running
//                its share of the clients round-robin, one transfer at a time
//   sequential   one loop over the clients round-robin: the bank logic alone
// Every implementation draws the same transfers (client i: splitmix64(42 + i)),
// withdraws before it deposits, and never holds two accounts at once.
#pragma once

#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/strand.hpp>
#include <asio/thread_pool.hpp>
#include <courier.hpp>
#include <cstdint>
#include <latch>
#include <mutex>
#include <thread>
#include <vector>

#include "bench_common.hpp"

namespace bench {

// Runs W1's clients over `accounts` with the driver of `bank simulate`
// (without its latency recording and progress polling), and checks the bank.
inline measurement drive_w1(const workload_sizes& s, const std::vector<bank::account_ref>& accounts,
                            bank::w1_driver_options o = {}) {
  std::vector<bank_client> clients = make_clients(s);
  bank::w1_driver<bank::account> driver(accounts, clients, o);
  const clock::time_point t0 = clock::now();
  driver.start();
  driver.wait();
  const clock::time_point t1 = clock::now();
  measurement m;
  m.seconds = seconds_between(t0, t1);
  check_bank(m, s, accounts.size(), clients, bank::read_balances(accounts));
  return m;
}

inline measurement w1_courier(const workload_sizes& s, std::size_t account_count,
                              std::size_t threads) {
  courier::thread_pool pool{threads};
  bank::bank b(pool);
  return drive_w1(s, bank::open_w1_accounts(b, account_count, s.initial_balance));
}

inline measurement w1_courier_coro(const workload_sizes& s, std::size_t account_count,
                                   std::size_t threads) {
  courier::thread_pool pool{threads};
  std::vector<bank::account_ref> accounts;
  accounts.reserve(account_count);
  for (std::size_t i = 0; i < account_count; ++i)
    accounts.push_back(courier::spawn<bank::account, bank::account_msg>(
        pool, bank::account{s.initial_balance}, bank::coroutine_account_options()));
  bank::w1_driver_options o;
  o.coroutine = true;
  return drive_w1(s, accounts, o);
}

/// An account as a plain Asio handler target: an executor to post to (a
/// strand, or a shared io_context) and the balance it guards.
template <class Executor>
struct alignas(64) plain_account {
  Executor ex;
  std::uint64_t balance;
};

/// W1 as raw Asio handlers: withdraw on the source's executor, deposit on the
/// target's, then the reply posted to `reply` where it draws the next transfer.
template <class AccountExecutor, class ReplyExecutor>
class asio_bank {
 public:
  asio_bank(std::vector<plain_account<AccountExecutor>>& accounts, ReplyExecutor reply,
            std::latch& finished)
      : accounts_(accounts), reply_(std::move(reply)), finished_(finished) {}

  void step(bank_client& c) {
    if (c.remaining == 0) {
      finished_.count_down();
      return;
    }
    --c.remaining;
    const bank::w1_transfer t = bank::draw_w1_transfer(c.rng, accounts_.size());
    asio::post(accounts_[t.from].ex, [this, &c, t] { withdraw(c, t); });
  }

  std::vector<std::uint64_t> balances() const {
    std::vector<std::uint64_t> b;
    for (const auto& a : accounts_) b.push_back(a.balance);
    return b;
  }

 private:
  void withdraw(bank_client& c, bank::w1_transfer t) {
    auto& from = accounts_[t.from];
    if (from.balance < t.amount) {
      reply(c, false);
      return;
    }
    from.balance -= t.amount;
    asio::post(accounts_[t.to].ex, [this, &c, t] {
      accounts_[t.to].balance += t.amount;
      reply(c, true);
    });
  }

  void reply(bank_client& c, bool ok) {
    asio::post(reply_, [this, &c, ok] {
      if (ok)
        ++c.ok;
      else
        ++c.rejected;
      step(c);
    });
  }

  std::vector<plain_account<AccountExecutor>>& accounts_;
  ReplyExecutor reply_;
  std::latch& finished_;
};

inline measurement w1_asio_strand(const workload_sizes& s, std::size_t account_count,
                                  std::size_t threads) {
  using strand_type = asio::strand<asio::thread_pool::executor_type>;
  asio::thread_pool pool{threads};
  std::vector<plain_account<strand_type>> accounts;
  accounts.reserve(account_count);
  for (std::size_t i = 0; i < account_count; ++i)
    accounts.push_back({asio::make_strand(pool.get_executor()), s.initial_balance});
  std::vector<bank_client> clients = make_clients(s);
  std::latch finished(static_cast<std::ptrdiff_t>(clients.size()));
  asio_bank<strand_type, asio::thread_pool::executor_type> b(accounts, pool.get_executor(),
                                                             finished);
  const clock::time_point t0 = clock::now();
  for (auto& c : clients) b.step(c);
  finished.wait();
  const clock::time_point t1 = clock::now();
  pool.join();
  measurement m;
  m.seconds = seconds_between(t0, t1);
  check_bank(m, s, account_count, clients, b.balances());
  return m;
}

inline measurement w1_floor(const workload_sizes& s, std::size_t account_count) {
  using executor_type = asio::io_context::executor_type;
  asio::io_context io{1};
  std::vector<plain_account<executor_type>> accounts;
  accounts.reserve(account_count);
  for (std::size_t i = 0; i < account_count; ++i)
    accounts.push_back({io.get_executor(), s.initial_balance});
  std::vector<bank_client> clients = make_clients(s);
  std::latch finished(static_cast<std::ptrdiff_t>(clients.size()));
  asio_bank<executor_type, executor_type> b(accounts, io.get_executor(), finished);
  const clock::time_point t0 = clock::now();
  for (auto& c : clients) b.step(c);
  io.run();
  const clock::time_point t1 = clock::now();
  measurement m;
  m.seconds = seconds_between(t0, t1);
  check_bank(m, s, account_count, clients, b.balances());
  if (!finished.try_wait()) {
    m.ok = false;
    m.check += ",UNFINISHED";
  }
  return m;
}

inline measurement w1_mutex(const workload_sizes& s, std::size_t account_count,
                            std::size_t threads) {
  struct alignas(64) locked_account {
    std::mutex m;
    std::uint64_t balance = 0;
  };
  std::vector<locked_account> accounts(account_count);
  for (auto& a : accounts) a.balance = s.initial_balance;
  std::vector<bank_client> clients = make_clients(s);

  // Thread k runs clients k, k + threads, ... one transfer each in turn, so
  // that every client keeps its own draw sequence.
  auto run = [&](std::size_t k) {
    std::vector<bank_client*> mine;
    for (std::size_t i = k; i < clients.size(); i += threads) mine.push_back(&clients[i]);
    for (bool any = true; any;) {
      any = false;
      for (bank_client* c : mine) {
        if (c->remaining == 0) continue;
        any = true;
        --c->remaining;
        const bank::w1_transfer t = bank::draw_w1_transfer(c->rng, account_count);
        bool ok = false;
        {
          std::lock_guard<std::mutex> lock(accounts[t.from].m);
          if (accounts[t.from].balance >= t.amount) {
            accounts[t.from].balance -= t.amount;
            ok = true;
          }
        }
        if (ok) {
          std::lock_guard<std::mutex> lock(accounts[t.to].m);
          accounts[t.to].balance += t.amount;
          ++c->ok;
        } else {
          ++c->rejected;
        }
      }
    }
  };
  const clock::time_point t0 = clock::now();
  std::vector<std::thread> workers;
  for (std::size_t k = 0; k < threads; ++k) workers.emplace_back(run, k);
  for (auto& w : workers) w.join();
  const clock::time_point t1 = clock::now();
  std::vector<std::uint64_t> balances;
  for (const auto& a : accounts) balances.push_back(a.balance);
  measurement m;
  m.seconds = seconds_between(t0, t1);
  check_bank(m, s, account_count, clients, balances);
  return m;
}

inline measurement w1_sequential(const workload_sizes& s, std::size_t account_count) {
  std::vector<std::uint64_t> balances(account_count, s.initial_balance);
  std::vector<bank_client> clients = make_clients(s);
  const clock::time_point t0 = clock::now();
  for (bool any = true; any;) {
    any = false;
    for (bank_client& c : clients) {
      if (c.remaining == 0) continue;
      any = true;
      --c.remaining;
      const bank::w1_transfer t = bank::draw_w1_transfer(c.rng, account_count);
      if (balances[t.from] >= t.amount) {
        balances[t.from] -= t.amount;
        balances[t.to] += t.amount;
        ++c.ok;
      } else {
        ++c.rejected;
      }
    }
  }
  const clock::time_point t1 = clock::now();
  measurement m;
  m.seconds = seconds_between(t0, t1);
  check_bank(m, s, account_count, clients, balances);
  return m;
}

}  // namespace bench
