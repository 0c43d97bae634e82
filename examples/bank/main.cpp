// bank: a bank whose accounts are courier actors. With no arguments it shows
// an atomic transfer between alice and bob, then a short concurrent run that
// checks no money was created or lost. `bank simulate` runs workload W1.
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <limits>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>

#include "bank.hpp"
#include "simulate.hpp"

namespace {

constexpr const char* usage_text =
    "usage: bank                 show a transfer, then a one-second concurrent run\n"
    "       bank simulate [--accounts N] [--clients C] [--transfers T] [--threads P]\n"
    "                     [--seed S] [--json]\n"
    "       bank --help | bank simulate --help\n";

using limits = bank::simulation_limits;

void print_simulate_help() {
  std::printf(
      "bank simulate: workload W1, closed-loop random transfers between account actors.\n"
      "  --accounts N    accounts, 2 to %zu, each opened with 1000000 (default 1000)\n"
      "  --clients C     clients, 1 to %zu, each awaiting one transfer's reply before the\n"
      "                  next (default 64)\n"
      "  --transfers T   transfers in total, 1 to %" PRIu64
      ", shared out over the clients\n"
      "                  (default 1000000)\n"
      "  --threads P     worker threads of the pool, 1 to %zu (default 2)\n"
      "  --seed S        client i draws from splitmix64(S + i), S from 0 to 2^64 - 1\n"
      "                  (default 42)\n"
      "  --json          print one JSON object instead of text\n"
      "Numbers are decimal digits only. Exits 1 if money was created or lost, or a transfer\n"
      "was refused where no order of the transfers can refuse one (no account sends more\n"
      "than it was opened with); 2 on a usage error; 3 if the run cannot start (out of\n"
      "memory or threads).\n",
      limits::max_accounts, limits::max_clients, limits::max_transfers, limits::max_threads);
}

[[noreturn]] void usage_error(const std::string& message) {
  std::fprintf(stderr, "bank: %s (try 'bank --help')\n", message.c_str());
  std::exit(2);
}

// The value of `flag`: a whole number from `min` to `max`, written in
// decimal digits alone. (strtoull would skip a leading space and wrap a
// minus sign around: ' -1' would become 2^64 - 1.)
std::uint64_t parse_number(std::string_view flag, const char* text, std::uint64_t min,
                           std::uint64_t max) {
  const std::string name(flag);
  if (text == nullptr) usage_error(name + " needs a value");
  const std::string_view digits(text);
  if (digits.empty() ||
      !std::all_of(digits.begin(), digits.end(), [](char ch) { return ch >= '0' && ch <= '9'; }))
    usage_error(name + " needs a whole number, got '" + text + "'");
  std::uint64_t v = 0;
  const std::from_chars_result r = std::from_chars(digits.data(), digits.data() + digits.size(), v);
  if (r.ec == std::errc::result_out_of_range || v < min || v > max)
    usage_error(name + " must be " + std::to_string(min) + " to " + std::to_string(max) + ", got " +
                text);
  return v;
}

int classic() {
  {
    courier::thread_pool pool{2};
    bank::bank b(pool);
    b.open("alice", 1000).get();
    b.open("bob", 500).get();
    b.transfer("alice", "bob", 200).get();
    std::printf("alice: %" PRIu64 "\n", b.balance("alice").get());
    std::printf("bob: %" PRIu64 "\n", b.balance("bob").get());
  }
  bank::simulation_options o;
  o.threads = std::max(1u, std::thread::hardware_concurrency());
  o.duration = std::chrono::seconds(1);
  const bank::simulation_report r = bank::simulate(o);
  std::printf("concurrent run: %zu clients, %zu accounts, %zu threads, %.2f s\n", o.clients,
              o.accounts, o.threads, r.seconds);
  std::printf("transfers: %" PRIu64 " (%.0f transfers/s, %" PRIu64 " rejected)\n", r.transfers,
              r.transfers_per_second(), r.rejected);
  if (r.rejected != 0 && !r.refusals_possible)
    std::printf("WRONG: no order of these transfers can refuse one\n");
  std::printf("money conserved: %s\n", r.conserved ? "yes" : "NO");
  return r.passed ? 0 : 1;
}

int simulate(int argc, char** argv) {
  bank::simulation_options o;
  bool json = false;
  for (int i = 2; i < argc; ++i) {
    const std::string_view flag = argv[i];
    const char* value = i + 1 < argc ? argv[i + 1] : nullptr;
    if (flag == "--help" || flag == "-h") {
      print_simulate_help();
      return 0;
    } else if (flag == "--json") {
      json = true;
      continue;
    } else if (flag == "--accounts") {
      o.accounts = parse_number(flag, value, 2, limits::max_accounts);
    } else if (flag == "--clients") {
      o.clients = parse_number(flag, value, 1, limits::max_clients);
    } else if (flag == "--transfers") {
      o.transfers = parse_number(flag, value, 1, limits::max_transfers);
    } else if (flag == "--threads") {
      o.threads = parse_number(flag, value, 1, limits::max_threads);
    } else if (flag == "--seed") {
      o.seed = parse_number(flag, value, 0, std::numeric_limits<std::uint64_t>::max());
    } else {
      usage_error("unknown option '" + std::string(flag) + "'");
    }
    ++i;
  }
  // A progress line on a terminal, once the run has lasted a second.
  const bool show_progress = isatty(STDERR_FILENO) != 0;
  if (show_progress) {
    const std::uint64_t total = o.transfers;
    const auto start = std::chrono::steady_clock::now();
    o.progress = [total, start](std::uint64_t done) {
      if (std::chrono::steady_clock::now() - start < std::chrono::seconds(1)) return;
      std::fprintf(stderr, "\r%" PRIu64 " / %" PRIu64 " transfers", done, total);
    };
  }
  const bank::simulation_report r = bank::simulate(o);
  if (show_progress) std::fprintf(stderr, "\r%*s\r", 40, "");
  if (json) {
    std::printf(
        "{\"accounts\": %zu, \"clients\": %zu, \"threads\": %zu, \"seed\": %" PRIu64
        ", \"transfers\": %" PRIu64 ", \"ok\": %" PRIu64 ", \"rejected\": %" PRIu64
        ", \"seconds\": %.6f, \"transfers_per_second\": %.1f, \"p50_us\": %.3f, \"p99_us\": %.3f, "
        "\"p999_us\": %.3f, \"expected_total\": %" PRIu64 ", \"actual_total\": %" PRIu64
        ", \"conserved\": %s, \"max_sent\": %" PRIu64
        ", \"refusals_possible\": %s, \"passed\": %s}\n",
        o.accounts, o.clients, o.threads, o.seed, r.transfers, r.ok, r.rejected, r.seconds,
        r.transfers_per_second(), r.p50_us, r.p99_us, r.p999_us, r.expected_total, r.actual_total,
        r.conserved ? "true" : "false", r.max_sent, r.refusals_possible ? "true" : "false",
        r.passed ? "true" : "false");
  } else {
    std::printf("W1: %zu accounts, %zu clients, %zu threads, seed %" PRIu64 "\n", o.accounts,
                o.clients, o.threads, o.seed);
    std::printf("transfers:        %" PRIu64 " in %.3f s = %.0f transfers/s\n", r.transfers,
                r.seconds, r.transfers_per_second());
    // Whether a refusal is possible at all: see bank::w1_max_sent.
    std::printf("rejected:         %" PRIu64 " (%s: an account sends at most %" PRIu64
                " of the %" PRIu64 " it was opened with)\n",
                r.rejected,
                r.refusals_possible ? "possible"
                : r.rejected == 0   ? "none possible"
                                    : "WRONG, none possible",
                r.max_sent, o.initial_balance);
    std::printf("latency:          p50 %.1f us, p99 %.1f us, p99.9 %.1f us\n", r.p50_us, r.p99_us,
                r.p999_us);
    std::printf("money conserved:  %s (%" PRIu64 " of %" PRIu64 ")\n", r.conserved ? "yes" : "NO",
                r.actual_total, r.expected_total);
  }
  return r.passed ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string_view command = argc > 1 ? argv[1] : "";
  if (command == "--help" || command == "-h" || command == "help") {
    std::fputs(usage_text, stdout);
    return 0;
  }
  if (argc > 1 && command != "simulate")
    usage_error("unknown command '" + std::string(command) + "'");
  // The arguments are within bounds, but the machine may still refuse the
  // memory or the threads: say so in one line.
  try {
    return argc == 1 ? classic() : simulate(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bank: cannot run: %s\n", e.what());
    return 3;
  }
}
