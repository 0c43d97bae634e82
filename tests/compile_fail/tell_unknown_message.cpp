// expect: tell_check<Transfer.*static assertion failed: courier: tell\(\) was given a type that is not one of the actor's message types
// Telling a type that is not an alternative of the actor's Msg is rejected by
// a static_assert whose message and instantiation note name the type.
#include <courier.hpp>
#include <variant>

struct Deposit {
  int amount;
};
struct Transfer {
  int amount;
};
struct account {
  int balance = 0;
  void handle(Deposit d) { balance += d.amount; }
};

int main() {
  courier::thread_pool pool{1};
  auto a = courier::spawn<account, std::variant<Deposit>>(pool);
  a.tell(Transfer{1});
}
