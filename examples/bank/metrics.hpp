// metrics.hpp: the counters and latency histograms `bank serve` reports in
// INFO, kept without a lock or a shared cache line on the request path.
//
// Each thread that records gets its own block (per_thread.hpp), and only
// that thread writes it, so
// recording is a relaxed load and store per counter; INFO sums the blocks of
// every thread with relaxed loads. A reading taken while requests run is a
// snapshot in which each counter is exact for some recent moment.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>

#include "per_thread.hpp"

namespace bank::serve {

/// The command kinds INFO reports on.
enum class command_kind : std::size_t {
  ping,
  open,
  deposit,
  withdraw,
  balance,
  transfer,
  close,
  total,
  info,
  quit,
  other,  ///< CONFIG, COMMAND, unknown names, wrong arity
  count_
};

inline constexpr std::size_t command_kinds = static_cast<std::size_t>(command_kind::count_);

inline const char* name_of(command_kind k) {
  static constexpr const char* names[] = {"ping",    "open",     "deposit", "withdraw",
                                          "balance", "transfer", "close",   "total",
                                          "info",    "quit",     "other"};
  return names[static_cast<std::size_t>(k)];
}

/// A histogram of durations in nanoseconds with buckets about 12% wide
/// (eight per power of two), from 1 ns to about 18 s.
class latency_histogram {
 public:
  static constexpr std::size_t sub_bits = 3;
  static constexpr std::size_t buckets = (35 - sub_bits) << sub_bits;

  static std::size_t bucket_of(std::uint64_t ns) {
    if (ns < (1u << sub_bits)) return static_cast<std::size_t>(ns);
    const std::size_t top = static_cast<std::size_t>(std::bit_width(ns)) - 1;  // >= sub_bits
    const std::size_t sub =
        static_cast<std::size_t>(ns >> (top - sub_bits)) & ((1u << sub_bits) - 1);
    return std::min(buckets - 1, ((top - sub_bits + 1) << sub_bits) + sub);
  }
  // The upper end of bucket `b` (what a percentile falling in it reports).
  static std::uint64_t upper_of(std::size_t b) {
    if (b < (1u << sub_bits)) return b;
    const std::size_t top = (b >> sub_bits) + sub_bits - 1;
    const std::uint64_t sub = b & ((1u << sub_bits) - 1);
    return ((std::uint64_t{1} << sub_bits) + sub + 1) << (top - sub_bits);
  }
};

/// One thread's counters. Written by its own thread only.
struct thread_metrics {
  std::atomic<std::uint64_t> commands[command_kinds] = {};
  std::atomic<std::uint64_t> latency[command_kinds][latency_histogram::buckets] = {};
  std::atomic<std::uint64_t> transfers_ok{0};
  std::atomic<std::uint64_t> transfers_rejected{0};

  static void bump(std::atomic<std::uint64_t>& c, std::uint64_t by = 1) {
    c.store(c.load(std::memory_order_relaxed) + by, std::memory_order_relaxed);
  }
};

/// A summed reading of every thread's counters.
struct metrics_reading {
  std::uint64_t commands[command_kinds] = {};
  std::uint64_t latency[command_kinds][latency_histogram::buckets] = {};
  std::uint64_t transfers_ok = 0;
  std::uint64_t transfers_rejected = 0;

  /// The `q`-quantile (0 to 1) of kind `k`'s latencies in microseconds, or 0
  /// when none was recorded.
  double percentile_us(command_kind k, double q) const {
    const auto& h = latency[static_cast<std::size_t>(k)];
    std::uint64_t n = 0;
    for (std::uint64_t c : h) n += c;
    if (n == 0) return 0;
    const auto rank = static_cast<std::uint64_t>(q * static_cast<double>(n - 1)) + 1;
    std::uint64_t seen = 0;
    for (std::size_t b = 0; b < latency_histogram::buckets; ++b) {
      seen += h[b];
      if (seen >= rank) return static_cast<double>(latency_histogram::upper_of(b)) / 1000.0;
    }
    return static_cast<double>(latency_histogram::upper_of(latency_histogram::buckets - 1)) /
           1000.0;
  }
};

/// The server's metrics: a block per recording thread.
///
/// Thread safety: every member may be called from any thread at once.
class metrics {
 public:
  /// The calling thread's block.
  thread_metrics& local() { return blocks_.local(); }

  void record(command_kind k, std::uint64_t ns) {
    thread_metrics& t = local();
    const auto i = static_cast<std::size_t>(k);
    thread_metrics::bump(t.commands[i]);
    thread_metrics::bump(t.latency[i][latency_histogram::bucket_of(ns)]);
  }

  metrics_reading read() const {
    metrics_reading r;
    blocks_.for_each([&r](const thread_metrics& b) {
      for (std::size_t k = 0; k < command_kinds; ++k) {
        r.commands[k] += b.commands[k].load(std::memory_order_relaxed);
        for (std::size_t i = 0; i < latency_histogram::buckets; ++i)
          r.latency[k][i] += b.latency[k][i].load(std::memory_order_relaxed);
      }
      r.transfers_ok += b.transfers_ok.load(std::memory_order_relaxed);
      r.transfers_rejected += b.transfers_rejected.load(std::memory_order_relaxed);
    });
    return r;
  }

 private:
  per_thread<thread_metrics> blocks_;
};

}  // namespace bank::serve
