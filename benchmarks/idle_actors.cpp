// idle_actors: the memory one idle actor costs, and how fast actors spawn.
// Spawns N account actors on a courier::thread_pool, measures resident memory
// before and after (from /proc/self/statm), then sends each one deposit and
// reads one balance so every actor has run once.
//   usage: idle_actors [N=1000000] [threads=2]
#include <unistd.h>
#include <chrono>
#include <courier.hpp>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <variant>
#include <vector>

namespace {

struct Deposit {
  std::uint64_t amount;
};
struct Balance {};
using account_msg = std::variant<Deposit, Balance>;

struct account {
  std::uint64_t balance = 0;
  void handle(Deposit d) { balance += d.amount; }
  std::uint64_t handle(Balance) const { return balance; }
};

long resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  long pages_total = 0;
  long pages_resident = 0;
  statm >> pages_total >> pages_resident;
  return pages_resident * sysconf(_SC_PAGESIZE);
}

std::size_t parse_count(const char* text, const char* what) {
  char* end = nullptr;
  const unsigned long long v = std::strtoull(text, &end, 10);
  if (end == text || *end != '\0' || v == 0) {
    std::fprintf(stderr, "idle_actors: %s must be a positive integer, got '%s'\n", what, text);
    std::exit(2);
  }
  return static_cast<std::size_t>(v);
}

}  // namespace

int main(int argc, char** argv) {
  const std::size_t n = argc > 1 ? parse_count(argv[1], "N") : 1000000;
  const std::size_t threads = argc > 2 ? parse_count(argv[2], "threads") : 2;
  courier::thread_pool pool{threads};
  std::vector<courier::actor<account, account_msg>> actors;
  actors.reserve(n);
  const long before = resident_bytes();
  const auto t0 = std::chrono::steady_clock::now();
  for (std::size_t i = 0; i < n; ++i) actors.push_back(courier::spawn<account, account_msg>(pool));
  const auto t1 = std::chrono::steady_clock::now();
  const long after = resident_bytes();
  for (auto& a : actors) a.tell(Deposit{1});
  const std::uint64_t b = actors.back().ask(Balance{}).get();
  const double seconds = std::chrono::duration<double>(t1 - t0).count();
  const double per_actor = static_cast<double>(after - before) / static_cast<double>(n);
  std::printf("actors:               %zu\n", n);
  std::printf("spawn rate:           %.2f M actors/s\n", static_cast<double>(n) / seconds / 1e6);
  std::printf("resident per actor:   %.0f bytes (handle %zu B included, State %zu B)\n", per_actor,
              sizeof(actors[0]), sizeof(account));
  std::printf("last balance:         %llu\n", static_cast<unsigned long long>(b));
  return b == 1 ? 0 : 1;
}
