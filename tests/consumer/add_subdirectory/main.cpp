// A consumer of the courier package: one actor, one ask.
#include <courier.hpp>

struct Ping {
  int value;
};
struct echo {
  int handle(Ping p) const { return p.value + 1; }
};

int main() {
  courier::thread_pool pool{1};
  auto a = courier::spawn<echo, Ping>(pool);
  return a.ask(Ping{41}).get() == 42 ? 0 : 1;
}
