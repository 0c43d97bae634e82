// simulate.hpp: workload W1 (closed-loop random transfers) over a bank of
// account actors, with latency percentiles and a conservation check.
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
#include <thread>
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

struct simulation_options {
  std::size_t accounts = 1000;
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
  std::uint64_t rejected = 0;  ///< refused by the bank (insufficient funds)
  double seconds = 0;
  double p50_us = 0;
  double p99_us = 0;
  double p999_us = 0;
  std::uint64_t expected_total = 0;
  std::uint64_t actual_total = 0;
  bool conserved = false;
  double transfers_per_second() const {
    return seconds > 0 ? static_cast<double>(transfers) / seconds : 0;
  }
};

/// Runs W1: `clients` closed-loop clients, each awaiting the reply of one
/// transfer before drawing the next, over `accounts` actors on a pool of
/// `threads` workers. Then reads every balance and checks the total.
inline simulation_report simulate(const simulation_options& o) {
  using clock = std::chrono::steady_clock;
  courier::thread_pool pool{o.threads};
  std::vector<account_ref> accounts;
  accounts.reserve(o.accounts);
  for (std::size_t i = 0; i < o.accounts; ++i)
    accounts.push_back(courier::spawn<account, account_msg>(pool, account{o.initial_balance}));

  struct alignas(64) client {
    splitmix64 rng{0};
    std::uint64_t remaining = 0;
    std::uint64_t ok = 0;
    std::uint64_t rejected = 0;
    std::atomic<std::uint64_t> done{0};
    std::vector<std::uint32_t> latency_ns;
    clock::time_point started;
  };
  std::vector<client> clients(o.clients);
  std::latch finished(static_cast<std::ptrdiff_t>(o.clients));
  const clock::time_point t0 = clock::now();
  const std::optional<clock::time_point> deadline =
      o.duration ? std::optional<clock::time_point>(t0 + *o.duration) : std::nullopt;

  // One step of client c: draw a transfer, send it, and on the reply record
  // it and take the next step. Runs on whichever thread delivered the reply.
  std::function<void(client&)> step = [&](client& c) {
    if (c.remaining == 0 || (deadline && clock::now() >= *deadline)) {
      finished.count_down();
      return;
    }
    --c.remaining;
    const w1_transfer t = draw_w1_transfer(c.rng, o.accounts);
    c.started = clock::now();
    try_transfer(accounts[t.from], accounts[t.to], t.amount).then([&c, &step](errc e) {
      const auto ns =
          std::chrono::duration_cast<std::chrono::nanoseconds>(clock::now() - c.started);
      c.latency_ns.push_back(static_cast<std::uint32_t>(
          std::min<std::int64_t>(ns.count(), std::numeric_limits<std::uint32_t>::max())));
      if (e == errc::ok)
        ++c.ok;
      else
        ++c.rejected;
      c.done.store(c.ok + c.rejected, std::memory_order_relaxed);
      step(c);
    });
  };

  const std::uint64_t per_client = o.transfers / o.clients;
  const std::uint64_t extra = o.transfers % o.clients;
  for (std::size_t i = 0; i < o.clients; ++i) {
    client& c = clients[i];
    c.rng = splitmix64(o.seed + i);
    c.remaining = deadline ? std::numeric_limits<std::uint64_t>::max() : per_client + (i < extra);
    c.latency_ns.reserve(deadline ? 1 << 16 : static_cast<std::size_t>(c.remaining));
  }
  for (auto& c : clients) step(c);

  auto sum_done = [&] {
    std::uint64_t n = 0;
    for (auto& c : clients) n += c.done.load(std::memory_order_relaxed);
    return n;
  };
  while (!finished.try_wait()) {
    if (o.progress) o.progress(sum_done());
    for (int i = 0; i < 50 && !finished.try_wait(); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  const clock::time_point t1 = clock::now();

  simulation_report r;
  r.seconds = std::chrono::duration<double>(t1 - t0).count();
  std::vector<std::uint32_t> all;
  for (auto& c : clients) {
    r.ok += c.ok;
    r.rejected += c.rejected;
    all.insert(all.end(), c.latency_ns.begin(), c.latency_ns.end());
  }
  r.transfers = r.ok + r.rejected;
  auto percentile = [&all](double p) {
    if (all.empty()) return 0.0;
    auto k = static_cast<std::size_t>(p * static_cast<double>(all.size() - 1));
    std::nth_element(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(k), all.end());
    return static_cast<double>(all[k]) / 1000.0;
  };
  r.p50_us = percentile(0.50);
  r.p99_us = percentile(0.99);
  r.p999_us = percentile(0.999);

  r.expected_total = o.initial_balance * o.accounts;
  std::vector<courier::future<std::uint64_t>> balances;
  balances.reserve(accounts.size());
  for (auto& a : accounts) balances.push_back(a.ask(GetBalance{}));
  for (auto& b : balances) r.actual_total += b.get();
  r.conserved = r.actual_total == r.expected_total;
  return r;
}

}  // namespace bank
