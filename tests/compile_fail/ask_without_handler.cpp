// expect: ask_check<Audit.*static assertion failed: courier: the actor's State has no handle\(\) member that accepts this message type
// A message type listed in Msg but with no handle() in the State is rejected
// with a static_assert naming the problem, not a page of template errors.
#include <courier.hpp>
#include <variant>

struct Deposit {
  int amount;
};
struct Audit {};
struct account {
  int balance = 0;
  void handle(Deposit d) { balance += d.amount; }
};

int main() {
  courier::thread_pool pool{1};
  auto a = courier::spawn<account, std::variant<Deposit, Audit>>(pool);
  auto f = a.ask(Audit{});
}
