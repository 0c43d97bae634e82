// simulate.hpp: workload W1 (closed-loop random transfers) over a bank of
// account actors: the client driver that `bank simulate` and courier_bench
// share, latency percentiles, and the checks of a run.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <latch>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "bank.hpp"

namespace bank {

/// splitmix64: the generator every W1 implementation draws from.
class splitmix64 {
 public:
  explicit splitmix64(std::uint64_t seed) noexcept : state_(seed) {}
  std::uint64_t next() noexcept {
    std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }

 private:
  std::uint64_t state_;
};

/// One W1 transfer, drawn as the workload defines it: from, then to (drawn
/// again while it equals from), then the amount, 1 to 100.
struct w1_transfer {
  std::uint64_t from;
  std::uint64_t to;
  std::uint64_t amount;
};

inline w1_transfer draw_w1_transfer(splitmix64& rng, std::uint64_t accounts) noexcept {
  const std::uint64_t from = rng.next() % accounts;
  std::uint64_t to = rng.next() % accounts;
  while (to == from) to = rng.next() % accounts;
  const std::uint64_t amount = 1 + rng.next() % 100;
  return {from, to, amount};
}

/// A W1 client: its generator, how many transfers it still has to make, and
/// what came back. Cache-line aligned: clients run on different threads.
struct alignas(64) w1_client {
  splitmix64 rng{0};
  std::uint64_t remaining = 0;  ///< transfers still to draw
  std::uint64_t ok = 0;
  std::uint64_t rejected = 0;                     ///< replies other than ok
  std::atomic<std::uint64_t> done{0};             ///< ok + rejected, for a progress reader
  std::vector<std::uint32_t> latency_ns;          ///< one a reply, when the driver records them
  std::chrono::steady_clock::time_point started;  ///< when the transfer in flight was sent
};

/// Client `i`'s share of `transfers` shared out over `clients`.
inline std::uint64_t w1_share(std::uint64_t transfers, std::size_t clients,
                              std::size_t i) noexcept {
  return transfers / clients + (i < transfers % clients ? 1 : 0);
}

/// `clients` W1 clients: client i draws from splitmix64(seed + i) and makes
/// w1_share(transfers, clients, i) transfers.
inline std::vector<w1_client> make_w1_clients(std::size_t clients, std::uint64_t transfers,
                                              std::uint64_t seed) {
  std::vector<w1_client> out(clients);
  for (std::size_t i = 0; i < clients; ++i) {
    out[i].rng = splitmix64(seed + i);
    out[i].remaining = w1_share(transfers, clients, i);
  }
  return out;
}

/// Opens `n` accounts in `b` (acct0, acct1, ...), each with `initial`, and
/// returns their handles in that order: W1 runs on the accounts the bank
/// spawns, as the bank spawns them.
template <class Account>
std::vector<basic_account_ref<Account>> open_w1_accounts(basic_bank<Account>& b, std::size_t n,
                                                         std::uint64_t initial) {
  std::vector<courier::future<void>> opened;
  opened.reserve(n);
  for (std::size_t i = 0; i < n; ++i) opened.push_back(b.open("acct" + std::to_string(i), initial));
  for (auto& f : opened) f.get();
  std::vector<basic_account_ref<Account>> refs;
  refs.reserve(n);
  for (auto& [name, ref] : b.accounts().get()) refs.push_back(std::move(ref));
  return refs;
}

/// Every account's balance, asked once the transfers are over.
template <class Account>
std::vector<std::uint64_t> read_balances(const std::vector<basic_account_ref<Account>>& accounts) {
  std::vector<courier::future<std::uint64_t>> replies;
  replies.reserve(accounts.size());
  for (auto& a : accounts) replies.push_back(a.ask(GetBalance{}));
  std::vector<std::uint64_t> balances;
  balances.reserve(accounts.size());
  for (auto& r : replies) balances.push_back(r.get());
  return balances;
}

/// How a w1_driver runs its clients.
struct w1_driver_options {
  bool record_latency = false;  ///< each client keeps the latency of each reply
  /// Each transfer is a Transfer message, the source account's coroutine
  /// handler, instead of try_transfer()'s reply chain. For accounts whose
  /// State is `account`, spawned with coroutine_account_options().
  bool coroutine = false;
  /// When set, no client sends a transfer after it.
  std::optional<std::chrono::steady_clock::time_point> deadline;
};

/// Drives W1's closed-loop clients over account actors: each client sends one
/// transfer (bank::try_transfer), and the reply, on whichever thread
/// delivered it, records the outcome and sends the client's next transfer. A
/// client ends when it has made its share, or at the deadline. `bank
/// simulate` and courier_bench both run W1 with it.
///
/// Thread safety: start() once; try_wait() and wait() from any thread. The
/// accounts, the clients and the driver must outlive the run (wait()).
template <class Account>
class w1_driver {
 public:
  using clock_type = std::chrono::steady_clock;

  w1_driver(const std::vector<basic_account_ref<Account>>& accounts,
            std::vector<w1_client>& clients, w1_driver_options options = {})
      : accounts_(accounts),
        clients_(clients),
        options_(options),
        finished_(static_cast<std::ptrdiff_t>(clients.size())) {}

  /// Sends every client's first transfer.
  void start() {
    for (auto& c : clients_) step(c);
  }
  /// Whether every client has ended.
  bool try_wait() const noexcept { return finished_.try_wait(); }
  /// Waits until every client has ended.
  void wait() const { finished_.wait(); }

 private:
  void step(w1_client& c) {
    if (c.remaining == 0 || (options_.deadline && clock_type::now() >= *options_.deadline)) {
      finished_.count_down();
      return;
    }
    --c.remaining;
    const w1_transfer t = draw_w1_transfer(c.rng, accounts_.size());
    if (options_.record_latency) c.started = clock_type::now();
    send_transfer(t).then([this, &c](errc e) {
      if (options_.record_latency) {
        const auto ns =
            std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now() - c.started);
        c.latency_ns.push_back(static_cast<std::uint32_t>(
            std::min<std::int64_t>(ns.count(), std::numeric_limits<std::uint32_t>::max())));
      }
      if (e == errc::ok)
        ++c.ok;
      else
        ++c.rejected;
      c.done.store(c.ok + c.rejected, std::memory_order_relaxed);
      step(c);
    });
  }

  courier::future<errc> send_transfer(const w1_transfer& t) const {
    if constexpr (std::is_same_v<Account, account>) {
      if (options_.coroutine) return accounts_[t.from].ask(Transfer{accounts_[t.to], t.amount});
    }
    return try_transfer(accounts_[t.from], accounts_[t.to], t.amount);
  }

  const std::vector<basic_account_ref<Account>>& accounts_;
  std::vector<w1_client>& clients_;
  const w1_driver_options options_;
  std::latch finished_;
};

// Why a W1 run can refuse no transfer when no account sends more than it
// was opened with (w1_max_sent() <= the opening balance), in any order:
// - A client's draws depend on its seed alone, never on the replies, so the
//   transfers of a run, and the total D(a) that each account a sends over
//   them, are fixed by the seeds and the number each client made.
// - Only a's own transfers take money out of a (their reservation, or
//   withdrawal); deposits, settles and refunds never lower its balance. So
//   when a transfer of `amount` from a is handled, a holds at least
//   initial - (D(a) - amount): the opening balance less a's other
//   transfers. With D(a) <= initial, that is at least `amount`.
// - W1 allows no other refusal: amounts are 1 to 100, never zero; `to` is
//   drawn again while it equals `from`; no account is closed; no handler
//   fails; and no deposit can pass max_balance, since every balance is at
//   most the money in the bank, accounts x initial (W1: 10^9), which
//   simulate() keeps within max_balance.
// For W1's parameters (1000 accounts opened with 1,000,000; 64 clients from
// seed 42; 10^6 transfers of at most 100) the most any account sends is
// 56,540, so a run of W1 that reports a refusal is wrong. W1-hot's two
// accounts send about 25 million each: there refusals are possible, and a
// run may report some.

/// The most any one of `accounts` sends over the transfers drawn by clients
/// seeded from `seed` (client i from splitmix64(seed + i)), of which client i
/// made `made[i]`.
inline std::uint64_t w1_max_sent(std::uint64_t seed, const std::vector<std::uint64_t>& made,
                                 std::size_t accounts) {
  std::vector<std::uint64_t> sent(accounts, 0);
  for (std::size_t i = 0; i < made.size(); ++i) {
    splitmix64 rng(seed + i);
    for (std::uint64_t k = 0; k < made[i]; ++k) {
      const w1_transfer t = draw_w1_transfer(rng, accounts);
      sent[t.from] += t.amount;
    }
  }
  return sent.empty() ? 0 : *std::max_element(sent.begin(), sent.end());
}

/// What a W1 run came to, and whether it passes: money conserved, and no
/// transfer refused where no order of the transfers can refuse one.
struct w1_check {
  std::uint64_t ok = 0;
  std::uint64_t rejected = 0;
  std::uint64_t expected_total = 0;
  std::uint64_t actual_total = 0;
  std::uint64_t max_sent = 0;  ///< the most one account sends (w1_max_sent)
  std::uint64_t initial_balance = 0;

  bool conserved() const noexcept { return actual_total == expected_total; }
  /// Whether some order of the run's transfers can refuse one.
  bool refusals_possible() const noexcept { return max_sent > initial_balance; }
  bool passed() const noexcept { return conserved() && (rejected == 0 || refusals_possible()); }
};

/// Checks a W1 run over `accounts` accounts opened with `initial_balance`,
/// from its clients (seeded from `seed`) and the final balances.
inline w1_check check_w1(const std::vector<w1_client>& clients, std::uint64_t seed,
                         std::size_t accounts, std::uint64_t initial_balance,
                         const std::vector<std::uint64_t>& balances) {
  w1_check c;
  c.initial_balance = initial_balance;
  std::vector<std::uint64_t> made;
  made.reserve(clients.size());
  for (const auto& client : clients) {
    c.ok += client.ok;
    c.rejected += client.rejected;
    made.push_back(client.ok + client.rejected);
  }
  c.expected_total = initial_balance * accounts;
  for (std::uint64_t b : balances) c.actual_total += b;
  c.max_sent = w1_max_sent(seed, made, accounts);
  return c;
}

/// The largest values simulate() accepts, each one that a machine with a
/// few GB of memory can honour; `bank simulate --help` prints them.
struct simulation_limits {
  /// An account is an actor, the copy of its State that its restart keeps,
  /// and a named directory entry: a run of the maximum peaks near 600 MB.
  static constexpr std::size_t max_accounts = 1000000;
  /// A client is about 128 bytes and one transfer in flight.
  static constexpr std::size_t max_clients = 100000;
  /// A transfer keeps a 4-byte latency sample: 400 MB at the most.
  static constexpr std::uint64_t max_transfers = 100000000;
  /// A worker thread each, started before the run (a process may not start
  /// tens of thousands); more threads than cores gain nothing.
  static constexpr std::size_t max_threads = 256;
};

struct simulation_options {
  std::size_t accounts = 1000;  ///< at least 2
  std::size_t clients = 64;
  std::uint64_t transfers = 1000000;  ///< in total, shared out over the clients
  std::size_t threads = 2;
  std::uint64_t seed = 42;  ///< client i draws from splitmix64(seed + i)
  std::uint64_t initial_balance = 1000000;
  /// When set, clients stop at this deadline instead of after `transfers`.
  std::optional<std::chrono::steady_clock::duration> duration;
  /// Called about twice a second with the transfers done so far.
  std::function<void(std::uint64_t done)> progress;
};

struct simulation_report {
  std::uint64_t transfers = 0;  ///< replies received: ok + rejected
  std::uint64_t ok = 0;
  std::uint64_t rejected = 0;  ///< refused by the bank
  double seconds = 0;
  double p50_us = 0;
  double p99_us = 0;
  double p999_us = 0;
  std::uint64_t expected_total = 0;
  std::uint64_t actual_total = 0;
  bool conserved = false;
  std::uint64_t max_sent = 0;  ///< the most one account sent (w1_max_sent)
  /// Whether some order of the transfers could refuse one; when not, any
  /// refusal fails the run.
  bool refusals_possible = false;
  /// Money conserved, every transfer answered, and no refusal where none can be.
  bool passed = false;
  double transfers_per_second() const {
    return seconds > 0 ? static_cast<double>(transfers) / seconds : 0;
  }
};

/// Runs W1: `clients` closed-loop clients, each awaiting the reply of one
/// transfer before drawing the next, over `accounts` accounts of a bank::bank
/// on a pool of `threads` workers. Then reads every balance and checks the
/// run (check_w1).
/// @throws std::invalid_argument if an option is zero (`accounts` below 2)
/// or above its simulation_limits, or the money in the bank would pass
/// max_balance; std::system_error if the threads cannot be started.
inline simulation_report simulate(const simulation_options& o) {
  using clock = std::chrono::steady_clock;
  using limits = simulation_limits;
  if (o.accounts < 2 || o.accounts > limits::max_accounts)
    throw std::invalid_argument("accounts must be 2 to " + std::to_string(limits::max_accounts));
  if (o.clients == 0 || o.clients > limits::max_clients)
    throw std::invalid_argument("clients must be 1 to " + std::to_string(limits::max_clients));
  if (o.transfers == 0 || o.transfers > limits::max_transfers)
    throw std::invalid_argument("transfers must be 1 to " + std::to_string(limits::max_transfers));
  if (o.threads == 0 || o.threads > limits::max_threads)
    throw std::invalid_argument("threads must be 1 to " + std::to_string(limits::max_threads));
  if (o.initial_balance > max_balance / o.accounts)
    throw std::invalid_argument("the accounts would hold more than max_balance in total");

  courier::thread_pool pool{o.threads};
  bank b(pool);
  const std::vector<account_ref> accounts = open_w1_accounts(b, o.accounts, o.initial_balance);
  std::vector<w1_client> clients = make_w1_clients(o.clients, o.transfers, o.seed);
  for (auto& c : clients) {
    if (o.duration) c.remaining = std::numeric_limits<std::uint64_t>::max();
    // A run to a deadline starts with 16 MB of samples in all, and grows.
    c.latency_ns.reserve(o.duration ? (std::size_t{1} << 22) / o.clients
                                    : static_cast<std::size_t>(c.remaining));
  }

  const clock::time_point t0 = clock::now();
  w1_driver_options driving;
  driving.record_latency = true;
  if (o.duration) driving.deadline = t0 + *o.duration;
  w1_driver<account> driver(accounts, clients, driving);
  driver.start();
  auto sum_done = [&] {
    std::uint64_t n = 0;
    for (auto& c : clients) n += c.done.load(std::memory_order_relaxed);
    return n;
  };
  while (!driver.try_wait()) {
    if (o.progress) o.progress(sum_done());
    for (int i = 0; i < 50 && !driver.try_wait(); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  const clock::time_point t1 = clock::now();

  simulation_report r;
  r.seconds = std::chrono::duration<double>(t1 - t0).count();
  std::vector<std::uint32_t> all;
  for (auto& c : clients) all.insert(all.end(), c.latency_ns.begin(), c.latency_ns.end());
  auto percentile = [&all](double p) {
    if (all.empty()) return 0.0;
    auto k = static_cast<std::size_t>(p * static_cast<double>(all.size() - 1));
    std::nth_element(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(k), all.end());
    return static_cast<double>(all[k]) / 1000.0;
  };
  r.p50_us = percentile(0.50);
  r.p99_us = percentile(0.99);
  r.p999_us = percentile(0.999);

  const w1_check c =
      check_w1(clients, o.seed, o.accounts, o.initial_balance, read_balances(accounts));
  r.ok = c.ok;
  r.rejected = c.rejected;
  r.transfers = c.ok + c.rejected;
  r.expected_total = c.expected_total;
  r.actual_total = c.actual_total;
  r.conserved = c.conserved();
  r.max_sent = c.max_sent;
  r.refusals_possible = c.refusals_possible();
  r.passed = c.passed() && (o.duration || r.transfers == o.transfers);
  return r;
}

}  // namespace bank
