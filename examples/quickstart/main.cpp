// quickstart: one account actor on a two-thread pool; tell, ask, then, stop.
#include <courier.hpp>
#include <cstdint>
#include <cstdio>
#include <variant>

struct Deposit {
  std::uint64_t amount;
};
struct Withdraw {
  std::uint64_t amount;
};
struct Balance {};
using account_msg = std::variant<Deposit, Withdraw, Balance>;

struct account {  // the State: plain C++, owned by the actor alone
  std::uint64_t balance = 0;
  void handle(Deposit d) { balance += d.amount; }
  bool handle(Withdraw w) {
    if (balance < w.amount) return false;
    balance -= w.amount;
    return true;
  }
  std::uint64_t handle(Balance) const { return balance; }
};

int main() {
  courier::thread_pool pool{2};
  auto alice = courier::spawn<account, account_msg>(pool, account{1000});
  alice.tell(Deposit{5});
  bool ok = alice.ask(Withdraw{10}).get();
  std::uint64_t after = alice.ask(Balance{}).then([](std::uint64_t b) { return b * 100; }).get();
  std::printf("withdraw ok: %s, balance: %llu cents\n", ok ? "yes" : "no",
              static_cast<unsigned long long>(after));
  alice.stop();
}
