// bench_common.hpp: what every workload of courier_bench shares: the sizes of
// the workloads (WORKLOAD.md), the result of one measurement, clocks, memory
// readings from /proc, and the transfer draw of W1.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <string>
#include <vector>

#include "bank/simulate.hpp"  // W1's draw, clients and checks, shared with `bank simulate`

namespace bench {

/// The sizes of every workload. The defaults are WORKLOAD.md's; quick() scales
/// each one down about ten times for a fast check.
struct workload_sizes {
  std::size_t accounts = 1000;  ///< W1 (W1-hot uses 2)
  std::size_t clients = 64;
  std::uint64_t transfers = 1000000;
  std::uint64_t initial_balance = 1000000;
  std::uint64_t seed = 42;                     ///< client i draws from splitmix64(seed + i)
  std::uint64_t ping_pong_messages = 1000000;  ///< W2: total per pair set
  std::size_t fan_in_senders = 2;              ///< W3
  std::uint64_t fan_in_per_sender = 5000000;
  std::uint64_t fan_in_chunk = 256;    ///< increments a sender task sends before yielding
  std::size_t spawn_actors = 1000000;  ///< W4

  static workload_sizes quick() {
    workload_sizes s;
    s.transfers = 100000;
    s.ping_pong_messages = 100000;
    s.fan_in_per_sender = 500000;
    s.spawn_actors = 100000;
    return s;
  }
};

/// The outcome of one measurement (one workload, one implementation, one
/// thread count), printed by the child process as one JSON line.
struct measurement {
  std::uint64_t ops = 0;  ///< transfers, messages or actors spawned
  double seconds = 0;     ///< the timed part only
  bool ok = false;        ///< every correctness check passed
  std::string check;      ///< what the check found, e.g. "CONSERVED"
  // W4 only (negative elsewhere).
  double bytes_per_actor = -1;       ///< (peak RSS - RSS before spawning) / N
  double idle_bytes_per_actor = -1;  ///< (RSS right after spawning - RSS before) / N
  double total_seconds = -1;         ///< spawn, deposits, one read and shutdown
  std::uint64_t rejected = 0;        ///< W1: transfers refused for insufficient funds

  double ops_per_second() const { return seconds > 0 ? static_cast<double>(ops) / seconds : 0; }
};

using clock = std::chrono::steady_clock;

inline double seconds_between(clock::time_point a, clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

/// A field of /proc/self/status in kB ("VmRSS", "VmHWM"), or -1.
inline long proc_status_kb(const char* field) {
  std::FILE* f = std::fopen("/proc/self/status", "r");
  if (f == nullptr) return -1;
  char line[256];
  long kb = -1;
  const std::size_t len = std::strlen(field);
  while (std::fgets(line, sizeof line, f) != nullptr) {
    if (std::strncmp(line, field, len) == 0 && line[len] == ':') {
      kb = std::strtol(line + len + 1, nullptr, 10);
      break;
    }
  }
  std::fclose(f);
  return kb;
}

/// A W1 client (every implementation's): its generator, how many transfers
/// it still has to make, and what came back.
using bank_client = bank::w1_client;

/// Clients seeded and given their share of the transfers as WORKLOAD.md says.
inline std::vector<bank_client> make_clients(const workload_sizes& s) {
  return bank::make_w1_clients(s.clients, s.transfers, s.seed);
}

/// Fills the W1 part of `m` from the clients and the final balances: money
/// conserved, every transfer answered, and no transfer refused where no order
/// can refuse one (bank::check_w1; for W1's parameters none can be, see
/// bank::w1_max_sent).
template <class Balances>
void check_bank(measurement& m, const workload_sizes& s, std::size_t accounts,
                const std::vector<bank_client>& clients, const Balances& balances) {
  const bank::w1_check c =
      bank::check_w1(clients, s.seed, accounts, s.initial_balance,
                     std::vector<std::uint64_t>(std::begin(balances), std::end(balances)));
  m.ops = c.ok + c.rejected;
  m.rejected = c.rejected;
  const bool counted = m.ops == s.transfers;
  m.ok = c.passed() && counted;
  m.check = c.conserved() ? "CONSERVED" : "VIOLATED";
  if (!counted) m.check += ",COUNT_MISMATCH";
  if (c.rejected != 0 && !c.refusals_possible()) m.check += ",IMPOSSIBLE_REFUSALS";
}

/// Records `ops` and whether `counted` came out as `expected` (W2, W3).
inline void check_count(measurement& m, std::uint64_t ops, std::uint64_t counted,
                        std::uint64_t expected) {
  m.ops = ops;
  m.ok = counted == expected;
  m.check = m.ok ? "COUNT_OK" : "COUNT_MISMATCH";
}

namespace ping_pong {

/// The rally length of pair k when `total` messages are shared by `pairs`.
inline std::uint64_t rally_length(std::uint64_t total, std::size_t pairs, std::size_t k) {
  return total / pairs + (k < total % pairs ? 1 : 0);
}

/// The messages handled are the operations; they must be all that were sent.
inline void check(measurement& m, std::uint64_t handled, std::uint64_t expected) {
  check_count(m, handled, handled, expected);
}

}  // namespace ping_pong

namespace fan_in {

/// Every increment sent is an operation; the counter must have seen them all.
inline void check(measurement& m, std::uint64_t counted, std::uint64_t expected) {
  check_count(m, expected, counted, expected);
}

}  // namespace fan_in

namespace spawn {

// Fills the memory figures of `m`; `rss_before_kb` was read before spawning.
inline void record_memory(measurement& m, std::size_t n, long rss_before_kb,
                          long rss_after_spawn_kb) {
  const long peak_kb = proc_status_kb("VmHWM");
  const double actors = static_cast<double>(n);
  m.bytes_per_actor = static_cast<double>(peak_kb - rss_before_kb) * 1024.0 / actors;
  m.idle_bytes_per_actor =
      static_cast<double>(rss_after_spawn_kb - rss_before_kb) * 1024.0 / actors;
}

inline void check(measurement& m, std::size_t n, std::uint64_t balance) {
  m.ops = n;
  m.ok = balance == 1;
  m.check = m.ok ? "BALANCE_OK" : "BALANCE_WRONG";
}

}  // namespace spawn

}  // namespace bench
