// courier_bench: the benchmark workloads of WORKLOAD.md (W1 bank, W1-hot,
// W2 ping-pong with 1 and 64 pairs, W3 fan-in, W4 spawn), each in courier and
// in the baselines it is compared with, side by side.
//
// Every single measurement runs in a child process of its own (this binary,
// re-executed with `--one <workload> <impl> <threads>`), which prints one JSON
// line; so peak RSS is per implementation and no run inherits another's heap.
// The parent repeats each measurement, takes the median and prints a table.
// Any failed correctness check (conservation, exact counts) or crashed run
// makes the program exit 1.  Run `courier_bench --help` for the options.
#include <sys/resource.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <asio/version.hpp>

#include "bench_common.hpp"
#include "w1_bank.hpp"
#include "w2_ping_pong.hpp"
#include "w3_fan_in.hpp"
#include "w4_spawn.hpp"
#ifdef COURIER_BENCH_HAVE_CAF
#include "caf_workloads.hpp"
#endif

#ifndef COURIER_BENCH_CXX_FLAGS
#define COURIER_BENCH_CXX_FLAGS "(unknown)"
#endif
#ifndef COURIER_BENCH_BUILD_TYPE
#define COURIER_BENCH_BUILD_TYPE "(unknown)"
#endif

namespace {

using bench::measurement;
using bench::workload_sizes;

// --- workloads and implementations -------------------------------------------

const std::vector<std::string> all_workloads = {"w1", "w1hot", "w2", "w2x64", "w3", "w4"};
const std::vector<std::string> all_impls = {"courier", "courier_coro", "asio_strand", "floor",
                                            "mutex",   "sequential",   "caf"};

bool known(const std::vector<std::string>& names, const std::string& n) {
  return std::find(names.begin(), names.end(), n) != names.end();
}

// Whether `impl` has a version of `workload`.
bool applies(const std::string& workload, const std::string& impl) {
  if (impl == "courier_coro" || impl == "mutex" || impl == "sequential")
    return workload == "w1" || workload == "w1hot";
#ifdef COURIER_BENCH_HAVE_CAF
  if (impl == "caf") return true;
#endif
  return impl == "courier" || impl == "asio_strand" || impl == "floor";
}

// Implementations that always run on exactly one thread: measured once, as threads = 1.
bool single_threaded(const std::string& impl) { return impl == "floor" || impl == "sequential"; }

std::string describe_workload(const std::string& w, const workload_sizes& s) {
  char buf[256];
  if (w == "w1" || w == "w1hot")
    std::snprintf(buf, sizeof buf,
                  "%s bank: %zu accounts, %zu clients, %" PRIu64 " transfers (M transfers/s)",
                  w == "w1" ? "W1" : "W1-hot", w == "w1" ? s.accounts : std::size_t{2}, s.clients,
                  s.transfers);
  else if (w == "w2" || w == "w2x64")
    std::snprintf(buf, sizeof buf, "W2 ping-pong: %d pair%s, %" PRIu64 " messages (M messages/s)",
                  w == "w2" ? 1 : 64, w == "w2" ? "" : "s", s.ping_pong_messages);
  else if (w == "w3")
    std::snprintf(buf, sizeof buf,
                  "W3 fan-in: %zu sender tasks x %" PRIu64 " tells to one counter (M messages/s)",
                  s.fan_in_senders, s.fan_in_per_sender);
  else
    std::snprintf(buf, sizeof buf,
                  "W4 spawn: %zu idle account actors, one deposit each (M actors/s spawned)",
                  s.spawn_actors);
  return buf;
}

measurement run_measurement(const std::string& w, const std::string& impl, std::size_t threads,
                            const workload_sizes& s) {
  if (w == "w1" || w == "w1hot") {
    const std::size_t accounts = w == "w1" ? s.accounts : 2;
    if (impl == "courier") return bench::w1_courier(s, accounts, threads);
    if (impl == "courier_coro") return bench::w1_courier_coro(s, accounts, threads);
    if (impl == "asio_strand") return bench::w1_asio_strand(s, accounts, threads);
    if (impl == "floor") return bench::w1_floor(s, accounts);
    if (impl == "mutex") return bench::w1_mutex(s, accounts, threads);
    if (impl == "sequential") return bench::w1_sequential(s, accounts);
#ifdef COURIER_BENCH_HAVE_CAF
    if (impl == "caf") return bench::caf_impl::w1(s, accounts, threads);
#endif
  } else if (w == "w2" || w == "w2x64") {
    const std::size_t pairs = w == "w2" ? 1 : 64;
    if (impl == "courier") return bench::w2_courier(s, pairs, threads);
    if (impl == "asio_strand") return bench::w2_asio_strand(s, pairs, threads);
    if (impl == "floor") return bench::w2_floor(s, pairs);
#ifdef COURIER_BENCH_HAVE_CAF
    if (impl == "caf") return bench::caf_impl::w2(s, pairs, threads);
#endif
  } else if (w == "w3") {
    if (impl == "courier") return bench::w3_courier(s, threads);
    if (impl == "asio_strand") return bench::w3_asio_strand(s, threads);
    if (impl == "floor") return bench::w3_floor(s);
#ifdef COURIER_BENCH_HAVE_CAF
    if (impl == "caf") return bench::caf_impl::w3(s, threads);
#endif
  } else if (w == "w4") {
    if (impl == "courier") return bench::w4_courier(s, threads);
    if (impl == "asio_strand") return bench::w4_asio_strand(s, threads);
    if (impl == "floor") return bench::w4_floor(s);
#ifdef COURIER_BENCH_HAVE_CAF
    if (impl == "caf") return bench::caf_impl::w4(s, threads);
#endif
  }
  measurement m;
  m.check = "NOT_APPLICABLE";
  return m;
}

// --- small helpers ------------------------------------------------------------

[[noreturn]] void usage_error(const std::string& what) {
  std::fprintf(stderr, "courier_bench: %s (try --help)\n", what.c_str());
  std::exit(2);
}

std::vector<std::string> split(const std::string& text, char sep) {
  std::vector<std::string> parts;
  std::string part;
  std::istringstream in(text);
  while (std::getline(in, part, sep))
    if (!part.empty()) parts.push_back(part);
  return parts;
}

std::size_t parse_positive(const std::string& text, const char* what) {
  char* end = nullptr;
  errno = 0;
  const unsigned long long v = std::strtoull(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno != 0 || v == 0 || text[0] == '-' || v > 4096)
    usage_error(std::string(what) + " must be an integer from 1 to 4096, got '" + text + "'");
  return static_cast<std::size_t>(v);
}

std::string json_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out;
}

// Parses the child's one-line flat JSON object: keys to raw values (strings
// without their quotes). Enough for what print_measurement writes.
std::map<std::string, std::string> parse_flat_json(const std::string& line) {
  std::map<std::string, std::string> out;
  std::size_t i = line.find('{');
  if (i == std::string::npos) return out;
  ++i;
  auto skip_space = [&] {
    while (i < line.size() && (line[i] == ' ' || line[i] == ',')) ++i;
  };
  auto read_string = [&] {
    std::string s;
    ++i;  // opening quote
    while (i < line.size() && line[i] != '"') {
      if (line[i] == '\\' && i + 1 < line.size()) ++i;
      s += line[i++];
    }
    ++i;  // closing quote
    return s;
  };
  for (;;) {
    skip_space();
    if (i >= line.size() || line[i] != '"') break;
    const std::string key = read_string();
    skip_space();
    if (i >= line.size() || line[i] != ':') break;
    ++i;
    skip_space();
    std::string value;
    if (i < line.size() && line[i] == '"') {
      value = read_string();
    } else {
      while (i < line.size() && line[i] != ',' && line[i] != '}') value += line[i++];
    }
    out[key] = value;
  }
  return out;
}

std::string first_line_of(const char* path, const char* prefix) {
  std::FILE* f = std::fopen(path, "r");
  if (f == nullptr) return "";
  char line[512];
  std::string found;
  const std::size_t len = std::strlen(prefix);
  while (std::fgets(line, sizeof line, f) != nullptr) {
    if (std::strncmp(line, prefix, len) == 0) {
      found = line;
      break;
    }
  }
  std::fclose(f);
  while (!found.empty() && (found.back() == '\n' || found.back() == ' ')) found.pop_back();
  return found;
}

std::string cpu_model() {
  std::string line = first_line_of("/proc/cpuinfo", "model name");
  const std::size_t colon = line.find(':');
  if (colon == std::string::npos) return "(unknown)";
  return line.substr(line.find_first_not_of(' ', colon + 1));
}

std::string compiler_version() {
#if defined(__clang__)
  return std::string("clang++ ") + __clang_version__;
#elif defined(__GNUC__)
  return std::string("g++ ") + __VERSION__;
#else
  return "(unknown compiler)";
#endif
}

std::string now_text() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S %Z", &tm);
  return buf;
}

std::string caf_note() {
#ifdef COURIER_BENCH_HAVE_CAF
  return "caf: " + bench::caf_impl::version() + " (libcaf-dev), default scheduler";
#else
  return "caf: skipped (CAF was not found when courier_bench was built; Debian: libcaf-dev)";
#endif
}

// --- child mode: one measurement ----------------------------------------------

void print_measurement(const std::string& w, const std::string& impl, std::size_t threads,
                       const measurement& m) {
  std::printf(
      "{\"workload\":\"%s\",\"impl\":\"%s\",\"threads\":%zu,\"ops\":%" PRIu64
      ",\"seconds\":%.6f,\"ops_per_sec\":%.1f,\"ok\":%s,\"check\":\"%s\",\"rejected\":%" PRIu64
      ",\"peak_rss_kb\":%ld,\"bytes_per_actor\":%.1f,\"idle_bytes_per_actor\":%.1f,"
      "\"total_seconds\":%.6f}\n",
      w.c_str(), impl.c_str(), threads, m.ops, m.seconds, m.ops_per_second(),
      m.ok ? "true" : "false", json_escape(m.check).c_str(), m.rejected,
      bench::proc_status_kb("VmHWM"), m.bytes_per_actor, m.idle_bytes_per_actor, m.total_seconds);
  std::fflush(stdout);
}

int run_one(int argc, char** argv) {
  // argv: courier_bench --one <workload> <impl> <threads> [--quick] [--timeout S]
  if (argc < 5) usage_error("--one needs <workload> <impl> <threads>");
  const std::string w = argv[2];
  const std::string impl = argv[3];
  const std::size_t threads = parse_positive(argv[4], "threads");
  workload_sizes s;
  unsigned timeout = 900;
  for (int i = 5; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--quick")
      s = workload_sizes::quick();
    else if (a == "--timeout" && i + 1 < argc)
      timeout = static_cast<unsigned>(parse_positive(argv[++i], "--timeout"));
    else
      usage_error("unknown argument to --one: " + a);
  }
  if (!known(all_workloads, w)) usage_error("unknown workload '" + w + "'");
  if (!known(all_impls, impl)) usage_error("unknown implementation '" + impl + "'");
  if (!applies(w, impl)) usage_error(impl + " has no version of " + w);
  if (single_threaded(impl) && threads != 1) usage_error(impl + " runs on one thread: threads 1");
  alarm(timeout);  // a deadlocked run dies of SIGALRM and the parent reports it
  measurement m;
  try {
    m = run_measurement(w, impl, threads, s);
  } catch (const std::exception& e) {
    m.ok = false;
    m.check = std::string("EXCEPTION: ") + e.what();
  }
  print_measurement(w, impl, threads, m);
  return m.ok ? 0 : 1;
}

// --- parent mode ----------------------------------------------------------------

struct options {
  std::size_t repeat = 5;
  std::vector<std::size_t> threads = {1, 2};
  std::vector<std::string> workloads = all_workloads;
  std::vector<std::string> impls = all_impls;
  bool quick = false;
  bool json = false;
  unsigned timeout = 0;  // per child; 0: 900 s, or 120 s with --quick
};

struct sample {
  bool ok = false;
  std::string failure;
  double ops_per_sec = 0;
  double seconds = 0;
  double peak_rss_mb = 0;
  double bytes_per_actor = -1;
  double idle_bytes_per_actor = -1;
  std::string check;
};

struct row {
  std::string workload;
  std::string impl;
  std::size_t threads = 0;
  std::vector<sample> samples;

  bool ok() const {
    return !samples.empty() &&
           std::all_of(samples.begin(), samples.end(), [](const sample& s) { return s.ok; });
  }
  template <class F>
  double median(F field) const {
    std::vector<double> v;
    for (const auto& s : samples)
      if (s.ok) v.push_back(field(s));
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
  }
  double median_ops() const {
    return median([](const sample& s) { return s.ops_per_sec; });
  }
  double min_ops() const {
    double m = 0;
    bool first = true;
    for (const auto& s : samples)
      if (s.ok && (first || s.ops_per_sec < m)) m = s.ops_per_sec, first = false;
    return m;
  }
  double max_ops() const {
    double m = 0;
    for (const auto& s : samples)
      if (s.ok) m = std::max(m, s.ops_per_sec);
    return m;
  }
  std::string failures() const {
    std::string f;
    for (const auto& s : samples)
      if (!s.ok) {
        if (!f.empty()) f += "; ";
        f += s.failure;
      }
    return f;
  }
};

sample run_child(const std::string& w, const std::string& impl, std::size_t threads,
                 const options& o) {
  sample result;
  std::vector<std::string> args = {"courier_bench", "--one", w, impl, std::to_string(threads)};
  if (o.quick) args.push_back("--quick");
  args.push_back("--timeout");
  args.push_back(std::to_string(o.timeout != 0 ? o.timeout : (o.quick ? 120U : 900U)));
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  int fds[2];
  if (pipe(fds) != 0) {
    result.failure = "pipe() failed";
    return result;
  }
  std::fflush(stdout);
  std::fflush(stderr);
  const pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    result.failure = "fork() failed";
    return result;
  }
  if (pid == 0) {
    dup2(fds[1], STDOUT_FILENO);
    close(fds[0]);
    close(fds[1]);
    execv("/proc/self/exe", argv.data());
    _exit(127);
  }
  close(fds[1]);
  std::string out;
  char buf[4096];
  for (;;) {
    const ssize_t n = read(fds[0], buf, sizeof buf);
    if (n > 0) {
      out.append(buf, static_cast<std::size_t>(n));
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      break;
    }
  }
  close(fds[0]);
  int status = 0;
  rusage usage{};
  while (wait4(pid, &status, 0, &usage) < 0 && errno == EINTR) {
  }

  const auto fields = parse_flat_json(out);
  auto number = [&fields](const char* key, double fallback) {
    auto it = fields.find(key);
    return it == fields.end() ? fallback : std::strtod(it->second.c_str(), nullptr);
  };
  result.check = fields.count("check") ? fields.at("check") : "";
  result.ops_per_sec = number("ops_per_sec", 0);
  result.seconds = number("seconds", 0);
  result.bytes_per_actor = number("bytes_per_actor", -1);
  result.idle_bytes_per_actor = number("idle_bytes_per_actor", -1);
  // The child's own VmHWM (its address space only); ru_maxrss of wait4 as a
  // fallback, which may also count the forked copy of this parent before exec.
  const double hwm_kb = number("peak_rss_kb", -1);
  result.peak_rss_mb = (hwm_kb > 0 ? hwm_kb : static_cast<double>(usage.ru_maxrss)) / 1024.0;

  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    result.failure = std::string("killed by signal ") + std::to_string(sig) +
                     (sig == SIGALRM ? " (timeout)" : "");
  } else if (!WIFEXITED(status)) {
    result.failure = "abnormal exit";
  } else if (fields.empty()) {
    result.failure = "no result (exit " + std::to_string(WEXITSTATUS(status)) + ")";
  } else if (fields.count("ok") == 0 || fields.at("ok") != "true" || WEXITSTATUS(status) != 0) {
    result.failure = "check failed: " + result.check;
  } else {
    result.ok = true;
  }
  return result;
}

struct header_info {
  std::string date;
  std::string compiler;
  std::string flags;
  std::string build_type;
  std::string cpu;
  unsigned cores = 0;
  std::string kernel;
  std::string loadavg;
  std::string asio;
  std::string command;
};

header_info collect_header(int argc, char** argv) {
  header_info h;
  h.date = now_text();
  h.compiler = compiler_version();
  h.flags = COURIER_BENCH_CXX_FLAGS;
  h.build_type = COURIER_BENCH_BUILD_TYPE;
  h.cpu = cpu_model();
  h.cores = std::thread::hardware_concurrency();
  utsname u{};
  if (uname(&u) == 0) h.kernel = std::string(u.sysname) + " " + u.release + " " + u.machine;
  h.loadavg = first_line_of("/proc/loadavg", "");
  h.asio = std::to_string(ASIO_VERSION / 100000) + "." + std::to_string(ASIO_VERSION / 100 % 1000) +
           "." + std::to_string(ASIO_VERSION % 100);
  for (int i = 0; i < argc; ++i) {
    if (i > 0) h.command += ' ';
    h.command += argv[i];
  }
  return h;
}

void print_help() {
  std::printf(
      "usage: courier_bench [options]\n"
      "  --workloads LIST  comma-separated, from w1,w1hot,w2,w2x64,w3,w4 (default: all)\n"
      "  --impls LIST      comma-separated, from courier,courier_coro,asio_strand,floor,mutex,\n"
      "                    sequential,caf\n"
      "                    (default: all that apply to each workload)\n"
      "  --threads LIST    thread counts to sweep (default 1,2); floor and sequential always\n"
      "                    run on one thread and are measured once\n"
      "  --repeat K        runs per measurement, each in its own process (default 5)\n"
      "  --quick           every workload about 10x smaller, for a fast check\n"
      "  --json            print the result as one JSON object instead of a table\n"
      "  --timeout S       kill a single run after S seconds (default 900, 120 with --quick)\n"
      "  --one W IMPL T    (internal) run one measurement here and print it as JSON\n"
      "Exit status: 0 when every run passed its checks, 1 otherwise, 2 on a usage error.\n");
}

options parse_options(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage_error(a + " needs a value");
      return argv[++i];
    };
    if (a == "--help" || a == "-h") {
      print_help();
      std::exit(0);
    } else if (a == "--repeat") {
      o.repeat = parse_positive(value(), "--repeat");
    } else if (a == "--threads") {
      o.threads.clear();
      for (const auto& t : split(value(), ',')) o.threads.push_back(parse_positive(t, "--threads"));
      if (o.threads.empty()) usage_error("--threads needs at least one thread count");
    } else if (a == "--workloads") {
      o.workloads = split(value(), ',');
      for (const auto& w : o.workloads)
        if (!known(all_workloads, w)) usage_error("unknown workload '" + w + "'");
      if (o.workloads.empty()) usage_error("--workloads needs at least one workload");
    } else if (a == "--impls") {
      o.impls = split(value(), ',');
      for (const auto& m : o.impls)
        if (!known(all_impls, m)) usage_error("unknown implementation '" + m + "'");
      if (o.impls.empty()) usage_error("--impls needs at least one implementation");
    } else if (a == "--quick") {
      o.quick = true;
    } else if (a == "--json") {
      o.json = true;
    } else if (a == "--timeout") {
      o.timeout = static_cast<unsigned>(parse_positive(value(), "--timeout"));
    } else {
      usage_error("unknown option '" + a + "'");
    }
  }
  return o;
}

const row* find_row(const std::vector<row>& rows, const std::string& w, const std::string& impl,
                    std::size_t threads) {
  for (const auto& r : rows)
    if (r.workload == w && r.impl == impl && r.threads == threads) return &r;
  return nullptr;
}

// impl's median over courier's at the same thread count, or negative.
double ratio_to_courier(const std::vector<row>& rows, const row& r) {
  const row* c = find_row(rows, r.workload, "courier", r.threads);
  if (c == nullptr || !c->ok() || !r.ok() || c->median_ops() <= 0) return -1;
  return r.median_ops() / c->median_ops();
}

void print_table(const header_info& h, const options& o, const workload_sizes& s,
                 const std::vector<row>& rows, const std::vector<std::string>& notes,
                 double total_seconds) {
  std::printf("courier_bench  %s\n", h.date.c_str());
  std::printf("command:   %s\n", h.command.c_str());
  std::printf("compiler:  %s, flags: %s (build type %s)\n", h.compiler.c_str(), h.flags.c_str(),
              h.build_type.c_str());
  std::printf("asio:      %s\n", h.asio.c_str());
  std::printf("cpu:       %s, %u cores\n", h.cpu.c_str(), h.cores);
  std::printf("system:    %s, load average at start: %s\n", h.kernel.c_str(), h.loadavg.c_str());
  std::printf("runs:      median of %zu, each run in its own process%s\n", o.repeat,
              o.quick ? "; --quick sizes (about 10x smaller)" : "");
  for (const auto& n : notes) std::printf("note:      %s\n", n.c_str());
  std::string last_workload;
  for (const auto& r : rows) {
    if (r.workload != last_workload) {
      last_workload = r.workload;
      std::printf("\n%s\n", describe_workload(r.workload, s).c_str());
      std::printf("  %-12s %7s %9s %17s %9s %9s%s  %s\n", "impl", "threads", "M/s", "min..max",
                  "x courier", "RSS MB", r.workload == "w4" ? " B/actor (idle)" : "", "check");
    }
    char range[64];
    std::snprintf(range, sizeof range, "%.3f..%.3f", r.min_ops() / 1e6, r.max_ops() / 1e6);
    char ratio[32] = "-";
    const double q = ratio_to_courier(rows, r);
    if (q >= 0) std::snprintf(ratio, sizeof ratio, "%.2f", q);
    char per_actor[48] = "";
    if (r.workload == "w4") std::snprintf(per_actor, sizeof per_actor, " %14s", "-");
    if (r.workload == "w4" && r.ok()) {
      char both[32];
      std::snprintf(both, sizeof both, "%.0f (%.0f)",
                    r.median([](const sample& x) { return x.bytes_per_actor; }),
                    r.median([](const sample& x) { return x.idle_bytes_per_actor; }));
      std::snprintf(per_actor, sizeof per_actor, " %14s", both);
    }
    const std::string check = r.ok() ? r.samples.front().check : "FAILED: " + r.failures();
    const bool any_ok =
        std::any_of(r.samples.begin(), r.samples.end(), [](const sample& x) { return x.ok; });
    if (any_ok)
      std::printf("  %-12s %7zu %9.3f %17s %9s %9.1f%s  %s\n", r.impl.c_str(), r.threads,
                  r.median_ops() / 1e6, range, ratio,
                  r.median([](const sample& x) { return x.peak_rss_mb; }), per_actor,
                  check.c_str());
    else
      std::printf("  %-12s %7zu %9s %17s %9s %9s%s  %s\n", r.impl.c_str(), r.threads, "-", "-", "-",
                  "-", per_actor, check.c_str());
  }
  std::printf("\ntotal: %.1f s\n", total_seconds);
}

void print_json(const header_info& h, const options& o, const workload_sizes& s,
                const std::vector<row>& rows, const std::vector<std::string>& notes,
                double total_seconds, bool all_ok) {
  std::printf("{\n  \"header\": {\"date\": \"%s\", \"command\": \"%s\", \"compiler\": \"%s\", ",
              json_escape(h.date).c_str(), json_escape(h.command).c_str(),
              json_escape(h.compiler).c_str());
  std::printf("\"flags\": \"%s\", \"build_type\": \"%s\", \"asio\": \"%s\", \"cpu\": \"%s\", ",
              json_escape(h.flags).c_str(), json_escape(h.build_type).c_str(), h.asio.c_str(),
              json_escape(h.cpu).c_str());
  std::printf("\"cores\": %u, \"system\": \"%s\", \"loadavg\": \"%s\", \"repeat\": %zu, ", h.cores,
              json_escape(h.kernel).c_str(), json_escape(h.loadavg).c_str(), o.repeat);
  std::printf("\"quick\": %s},\n  \"notes\": [", o.quick ? "true" : "false");
  for (std::size_t i = 0; i < notes.size(); ++i)
    std::printf("%s\"%s\"", i ? ", " : "", json_escape(notes[i]).c_str());
  std::printf("],\n  \"results\": [\n");
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const row& r = rows[i];
    std::printf("    {\"workload\": \"%s\", \"description\": \"%s\", \"impl\": \"%s\", ",
                r.workload.c_str(), json_escape(describe_workload(r.workload, s)).c_str(),
                r.impl.c_str());
    std::printf("\"threads\": %zu, \"ok\": %s, \"median_ops_per_sec\": %.1f, ", r.threads,
                r.ok() ? "true" : "false", r.median_ops());
    const double q = ratio_to_courier(rows, r);
    if (q >= 0)
      std::printf("\"ratio_to_courier\": %.4f, ", q);
    else
      std::printf("\"ratio_to_courier\": null, ");
    std::printf("\"median_peak_rss_mb\": %.1f, ",
                r.median([](const sample& x) { return x.peak_rss_mb; }));
    if (r.workload == "w4")
      std::printf("\"median_bytes_per_actor\": %.1f, \"median_idle_bytes_per_actor\": %.1f, ",
                  r.median([](const sample& x) { return x.bytes_per_actor; }),
                  r.median([](const sample& x) { return x.idle_bytes_per_actor; }));
    std::printf("\"samples_ops_per_sec\": [");
    for (std::size_t k = 0; k < r.samples.size(); ++k)
      std::printf("%s%.1f", k ? ", " : "", r.samples[k].ops_per_sec);
    std::printf("], \"check\": \"%s\"}%s\n",
                json_escape(r.ok() ? r.samples.front().check : "FAILED: " + r.failures()).c_str(),
                i + 1 < rows.size() ? "," : "");
  }
  std::printf("  ],\n  \"total_seconds\": %.1f,\n  \"ok\": %s\n}\n", total_seconds,
              all_ok ? "true" : "false");
}

int run_suite(int argc, char** argv) {
  const options o = parse_options(argc, argv);
  const workload_sizes s = o.quick ? workload_sizes::quick() : workload_sizes{};
  const header_info h = collect_header(argc, argv);
  const bench::clock::time_point start = bench::clock::now();

  std::vector<std::string> notes;
  if (known(o.impls, "caf")) notes.push_back(caf_note());
#ifndef NDEBUG
  notes.push_back("WARNING: built without NDEBUG; use -DCMAKE_BUILD_TYPE=Release");
#endif
  if (!o.json)
    for (const auto& n : notes) std::fprintf(stderr, "courier_bench: %s\n", n.c_str());

  std::vector<row> rows;
  for (const auto& w : o.workloads) {
    for (const auto& impl : all_impls) {
      if (!known(o.impls, impl) || !applies(w, impl)) continue;
      std::vector<std::size_t> counts = o.threads;
      if (single_threaded(impl)) counts = {1};
      for (std::size_t t : counts) {
        row r{w, impl, t, {}};
        for (std::size_t k = 0; k < o.repeat; ++k) {
          sample x = run_child(w, impl, t, o);
          if (x.ok)
            std::fprintf(stderr,
                         "[%6.1f s] %-6s %-12s threads %zu run %zu/%zu: %.3f M/s, %.1f MB\n",
                         bench::seconds_between(start, bench::clock::now()), w.c_str(),
                         impl.c_str(), t, k + 1, o.repeat, x.ops_per_sec / 1e6, x.peak_rss_mb);
          else
            std::fprintf(stderr, "[%6.1f s] %-6s %-12s threads %zu run %zu/%zu: FAILED: %s\n",
                         bench::seconds_between(start, bench::clock::now()), w.c_str(),
                         impl.c_str(), t, k + 1, o.repeat, x.failure.c_str());
          r.samples.push_back(std::move(x));
        }
        rows.push_back(std::move(r));
      }
    }
  }
  const double total = bench::seconds_between(start, bench::clock::now());
  if (rows.empty()) notes.push_back("nothing to run: no selected implementation applies");
  const bool all_ok = std::all_of(rows.begin(), rows.end(), [](const row& r) { return r.ok(); });
  if (o.json)
    print_json(h, o, s, rows, notes, total, all_ok);
  else
    print_table(h, o, s, rows, notes, total);
  if (!all_ok) std::fprintf(stderr, "courier_bench: some runs FAILED (see the table)\n");
  return all_ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "--one") return run_one(argc, argv);
  return run_suite(argc, argv);
}
