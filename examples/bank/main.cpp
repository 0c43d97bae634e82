// bank: a bank whose accounts are courier actors. With no arguments it shows
// an atomic transfer between alice and bob, then a short concurrent run that
// checks no money was created or lost. `bank simulate` runs workload W1;
// `bank serve` runs the bank as a server that Redis clients talk to.
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>

#include "bank.hpp"
#include "server.hpp"
#include "simulate.hpp"

namespace {

using limits = bank::simulation_limits;

// Numbers on the command line are decimal digits only: CLI11 would accept a
// sign, spaces or another base, and ' -1' must not become 2^64 - 1.
const CLI::Validator digits_only(
    [](const std::string& text) -> std::string {
      if (text.empty() ||
          !std::all_of(text.begin(), text.end(), [](char ch) { return ch >= '0' && ch <= '9'; }))
        return "needs a whole number, got '" + text + "'";
      return {};
    },
    "", "digits");

// An option taking a whole number from `min` to `max`.
template <class T>
CLI::Option* number(CLI::App& app, const std::string& name, T& value, std::uint64_t min,
                    std::uint64_t max, const std::string& help) {
  return app.add_option(name, value, help)
      ->type_name("N")
      ->check(digits_only)
      ->check(CLI::Range(min, max));
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

int simulate(bank::simulation_options o, bool json) {
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
    nlohmann::ordered_json j;
    j["accounts"] = o.accounts;
    j["clients"] = o.clients;
    j["threads"] = o.threads;
    j["seed"] = o.seed;
    j["transfers"] = r.transfers;
    j["ok"] = r.ok;
    j["rejected"] = r.rejected;
    j["seconds"] = r.seconds;
    j["transfers_per_second"] = r.transfers_per_second();
    j["p50_us"] = r.p50_us;
    j["p99_us"] = r.p99_us;
    j["p999_us"] = r.p999_us;
    j["expected_total"] = r.expected_total;
    j["actual_total"] = r.actual_total;
    j["conserved"] = r.conserved;
    j["max_sent"] = r.max_sent;
    j["refusals_possible"] = r.refusals_possible;
    j["passed"] = r.passed;
    std::puts(j.dump().c_str());
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

// `bank serve`: runs until SIGINT or SIGTERM, then drains and exits 0.
int serve(bank::serve::options o) {
  // The signals are taken by sigwait() below, not by a handler: blocked here,
  // before any thread starts, so every thread inherits the block.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
  // If the ledger fails, nothing more can be acknowledged: stop, and say so
  // in the exit code.
  static std::atomic<bool> ledger_failed{false};
  o.on_fatal = [](const std::string&) {
    ledger_failed = true;
    kill(getpid(), SIGTERM);
  };
  std::unique_ptr<bank::serve::server> s;
  try {
    s = std::make_unique<bank::serve::server>(o);
  } catch (const bank::durable::storage_error& e) {
    // Another server's directory, or a file that is not ours or is damaged:
    // nothing was changed.
    std::fprintf(stderr, "bank: cannot start: %s\n", e.what());
    return 2;
  } catch (const std::system_error& e) {
    std::fprintf(stderr, "bank: cannot listen on %s:%u: %s\n", o.bind.c_str(),
                 static_cast<unsigned>(o.port), e.code().message().c_str());
    return 3;
  }
  if (o.in_memory) {
    std::fprintf(stderr, "bank serve: in memory: every balance is gone when the server stops\n");
  } else {
    const bank::durable::ledger::recovery& r = s->core().ledger->recovered();
    std::fprintf(stderr,
                 "bank serve: ledger in %s (sync %s): %" PRIu64 " accounts, %" PRIu64
                 " records replayed after the snapshot at record %" PRIu64 ", %" PRIu64
                 " interrupted transfers voided, in %.3f s\n",
                 o.ledger.dir.c_str(),
                 o.ledger.sync == bank::durable::sync_mode::full ? "full" : "normal", r.accounts,
                 r.replayed, r.snapshot_seq, r.voided, r.seconds);
  }
  const auto where = s->endpoint();
  std::printf("listening on %s:%u\n", where.address().to_string().c_str(),
              static_cast<unsigned>(where.port()));
  std::fflush(stdout);
  int signal = 0;
  sigwait(&stop_signals, &signal);
  std::fprintf(stderr, "bank serve: %s: no new connections; answering what was read\n",
               signal == SIGINT ? "SIGINT" : "SIGTERM");
  s->drain();
  s.reset();
  if (ledger_failed) {
    std::fprintf(stderr, "bank serve: stopped: the ledger could not write\n");
    return 1;
  }
  std::fprintf(stderr, "bank serve: stopped\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app(
      "bank: accounts as courier actors; transfers that never create or lose money.\n"
      "With no command: a transfer between alice and bob, then a one-second\n"
      "concurrent run that checks conservation.",
      "bank");
  app.require_subcommand(0, 1);

  bank::simulation_options sim;
  bool json = false;
  CLI::App* simulate_cmd = app.add_subcommand(
      "simulate", "workload W1: closed-loop random transfers between account actors");
  number(*simulate_cmd, "--accounts", sim.accounts, 2, limits::max_accounts,
         "accounts, each opened with 1000000")
      ->capture_default_str();
  number(*simulate_cmd, "--clients", sim.clients, 1, limits::max_clients,
         "clients, each awaiting one transfer's reply before the next")
      ->capture_default_str();
  number(*simulate_cmd, "--transfers", sim.transfers, 1, limits::max_transfers,
         "transfers in total, shared out over the clients")
      ->capture_default_str();
  number(*simulate_cmd, "--threads", sim.threads, 1, limits::max_threads,
         "worker threads of the pool")
      ->capture_default_str();
  number(*simulate_cmd, "--seed", sim.seed, 0, std::numeric_limits<std::uint64_t>::max(),
         "client i draws from splitmix64(S + i)")
      ->capture_default_str();
  simulate_cmd->add_flag("--json", json, "print one JSON object instead of text");
  simulate_cmd->footer(
      "Exits 1 if money was created or lost, or a transfer was refused where no order of\n"
      "the transfers can refuse one (no account sends more than it was opened with); 2 on\n"
      "a usage error; 3 if the run cannot start (out of memory or threads).");

  bank::serve::options srv;
  unsigned idle_seconds = 0;
  bool quiet = false;
  CLI::App* serve_cmd = app.add_subcommand(
      "serve", "run the bank as a server that speaks the Redis protocol (RESP2)");
  serve_cmd->add_option("--bind", srv.bind, "the address to listen on")
      ->type_name("ADDR")
      ->capture_default_str();
  number(*serve_cmd, "--port", srv.port, 0, 65535, "the TCP port (0: any free port)")
      ->capture_default_str();
  number(*serve_cmd, "--threads", srv.threads, 1, limits::max_threads,
         "threads running the event loop of sockets and actors")
      ->capture_default_str();
  number(*serve_cmd, "--max-clients", srv.max_clients, 1, 1000000,
         "connections served at once; more are refused")
      ->capture_default_str();
  number(*serve_cmd, "--idle-timeout", idle_seconds, 0, 31536000,
         "close a connection idle this many seconds (0: never)")
      ->capture_default_str();
  serve_cmd->add_flag("--quiet", quiet, "do not log each connection opened and closed");
  std::string sync = "full";
  serve_cmd->add_option("--data", srv.ledger.dir, "the ledger's directory (created if missing)")
      ->type_name("DIR")
      ->capture_default_str();
  serve_cmd->add_flag("--in-memory", srv.in_memory, "keep nothing on disk (no --data)")
      ->excludes("--data");
  serve_cmd
      ->add_option("--sync", sync,
                   "full: a commit is flushed to disk before it is acknowledged (survives a\n"
                   "power loss where the disk honours the flush); normal: not flushed at commit\n"
                   "(survives a crash of the process; a power loss may lose the last commits)")
      ->check(CLI::IsMember({"full", "normal"}))
      ->capture_default_str();
  number(*serve_cmd, "--snapshot-batches", srv.ledger.snapshot_batches, 0, 1000000000,
         "save a snapshot every N committed batches (0: only at shutdown)")
      ->capture_default_str();
  serve_cmd->footer(
      "Durable unless --in-memory: every acknowledged change is in the ledger (--data)\n"
      "and survives a crash; a restart rebuilds the bank from it.\n"
      "Prints 'listening on ADDR:PORT' when ready. SIGINT or SIGTERM: stops accepting,\n"
      "answers every command already read, closes, and exits 0. Exits 1 if the ledger\n"
      "fails to write; 2 on a usage error, a data directory in use, or a ledger file\n"
      "that is not one or is damaged (left untouched); 3 if it cannot listen.");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "bank: %s (try 'bank --help')\n", e.what());
    return 2;
  }
  // The arguments are within bounds, but the machine may still refuse the
  // memory or the threads: say so in one line.
  try {
    if (*simulate_cmd) return simulate(sim, json);
    if (*serve_cmd) {
      srv.idle_timeout = std::chrono::seconds(idle_seconds);
      srv.log_connections = !quiet;
      srv.ledger.sync =
          sync == "full" ? bank::durable::sync_mode::full : bank::durable::sync_mode::normal;
      return serve(srv);
    }
    return classic();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bank: cannot run: %s\n", e.what());
    return 3;
  }
}
