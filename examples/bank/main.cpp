// bank: a bank whose accounts are courier actors. With no arguments it shows
// an atomic transfer between alice and bob, then a short concurrent run that
// checks no money was created or lost. `bank simulate` runs workload W1.
#include <unistd.h>

#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <thread>

#include "bank.hpp"
#include "simulate.hpp"

namespace {

constexpr const char* usage_text =
    "usage: bank                 show a transfer, then a one-second concurrent run\n"
    "       bank simulate [--accounts N] [--clients C] [--transfers T] [--threads P]\n"
    "                     [--seed S] [--json]\n"
    "       bank --help | bank simulate --help\n";

constexpr const char* simulate_help =
    "bank simulate: workload W1, closed-loop random transfers between account actors.\n"
    "  --accounts N    accounts, each opened with 1000000 (default 1000)\n"
    "  --clients C     clients, each awaiting one transfer's reply before the next (default 64)\n"
    "  --transfers T   transfers in total, shared out over the clients (default 1000000)\n"
    "  --threads P     worker threads of the pool (default 2)\n"
    "  --seed S        client i draws from splitmix64(S + i) (default 42)\n"
    "  --json          print one JSON object instead of text\n"
    "Exits 1 if money was created or lost, or a transfer was refused where no order of the\n"
    "transfers can refuse one (no account sends more than it was opened with); 2 on a usage\n"
    "error.\n";

[[noreturn]] void usage_error(const std::string& message) {
  std::fprintf(stderr, "bank: %s (try 'bank --help')\n", message.c_str());
  std::exit(2);
}

std::uint64_t parse_positive(std::string_view flag, const char* text) {
  if (text == nullptr) usage_error(std::string(flag) + " needs a value");
  char* end = nullptr;
  errno = 0;
  const unsigned long long v = std::strtoull(text, &end, 10);
  if (*text == '\0' || *text == '-' || end == nullptr || *end != '\0' || errno == ERANGE)
    usage_error(std::string(flag) + " needs a whole number, got '" + text + "'");
  if (v == 0) usage_error(std::string(flag) + " must be greater than zero");
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
      std::fputs(simulate_help, stdout);
      return 0;
    } else if (flag == "--json") {
      json = true;
      continue;
    } else if (flag == "--accounts") {
      o.accounts = parse_positive(flag, value);
      if (o.accounts < 2) usage_error("--accounts must be at least 2");
    } else if (flag == "--clients") {
      o.clients = parse_positive(flag, value);
    } else if (flag == "--transfers") {
      o.transfers = parse_positive(flag, value);
    } else if (flag == "--threads") {
      o.threads = parse_positive(flag, value);
    } else if (flag == "--seed") {
      if (value == nullptr) usage_error("--seed needs a value");
      o.seed = std::string_view(value) == "0" ? 0 : parse_positive(flag, value);
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
  if (argc == 1) return classic();
  const std::string_view command = argv[1];
  if (command == "--help" || command == "-h" || command == "help") {
    std::fputs(usage_text, stdout);
    return 0;
  }
  if (command == "simulate") return simulate(argc, argv);
  usage_error("unknown command '" + std::string(command) + "'");
}
