// quickstart: one account actor on a two-thread pool, told and asked.
#include <courier.hpp>
#include <cstdio>
#include <variant>

struct Balance {};
struct Deposit {
  long amount;
};
struct account {  // the State: plain C++, owned by the actor alone
  long balance = 0;
  void handle(Deposit d) { balance += d.amount; }
  long handle(Balance) const { return balance; }
};

int main() {
  courier::thread_pool pool{2};
  auto alice = courier::spawn<account, std::variant<Deposit, Balance>>(pool, account{1000});
  alice.tell(Deposit{5});                                   // fire-and-forget
  std::printf("alice: %ld\n", alice.ask(Balance{}).get());  // request-reply
}
