// coroutines: a handler that is a coroutine. A greeter's Greet handler asks a
// clock for the time and waits for the answer inside the handler, top to
// bottom. What the greeter does while it waits is its reentrancy; and an ask
// that would wait on itself is refused. The clock answers only when the
// program lets it tick, so every line below comes out the same on every run.
#include <courier.hpp>

#include <asio/use_awaitable.hpp>
#include <cstdio>
#include <deque>
#include <string>
#include <variant>

struct Now {};
struct Tick {};
struct clock_state {
  clock_state() = default;
  clock_state(clock_state&&) = default;  // promises move, never copy
  int ticks = 0;
  int allowed = 0;
  std::deque<courier::promise<int>> waiting;
  courier::future<int> handle(Now) {  // replies once a Tick allows it
    waiting.emplace_back();
    auto reply = waiting.back().get_future();
    answer();
    return reply;
  }
  void handle(Tick) {
    ++allowed;
    answer();
  }
  void answer() {
    for (; allowed > 0 && !waiting.empty(); --allowed, waiting.pop_front())
      waiting.front().set_value(++ticks);
  }
};
using clock_actor = courier::actor<clock_state, std::variant<Now, Tick>>;

struct Greet {
  std::string name;
};
struct Count {};
struct AskMyself;
struct greeter;
using greeter_msg = std::variant<Greet, Count, AskMyself>;
struct AskMyself {
  courier::actor<greeter, greeter_msg> me;
};

struct greeter {
  clock_actor clock;
  int greeted = 0;
  asio::awaitable<std::string> handle(Greet g) {  // a coroutine handler
    const int tick = co_await clock.async_ask(Now{}, asio::use_awaitable);
    ++greeted;
    co_return "hello " + g.name + " at tick " + std::to_string(tick);
  }
  int handle(Count) { return greeted; }
  asio::awaitable<int> handle(AskMyself a) {
    co_return co_await a.me.async_ask(Count{}, asio::use_awaitable);
  }
};

int main() {
  courier::thread_pool pool{2};
  auto clock = courier::spawn<clock_state, std::variant<Now, Tick>>(pool);

  // Atomic (the default): a Count sent while Greet waits is handled after it.
  auto g = courier::spawn<greeter, greeter_msg>(pool, greeter{clock});
  auto hello = g.ask(Greet{"ada"});
  auto count = g.ask(Count{});
  clock.tell(Tick{});
  std::printf("atomic: %s, and a Count sent meanwhile saw %d\n", hello.get().c_str(), count.get());

  // Interleave: the Count is handled while Greet waits for the clock.
  courier::spawn_options<greeter> o;
  o.reentrancy = courier::reentrancy::interleave;
  auto h = courier::spawn<greeter, greeter_msg>(pool, greeter{clock}, o);
  auto hello2 = h.ask(Greet{"grace"});
  std::printf("interleave: Count sent meanwhile saw %d\n", h.ask(Count{}).get());
  clock.tell(Tick{});
  std::printf("interleave: %s\n", hello2.get().c_str());

  // An atomic coroutine that asks its own actor would wait for itself.
  try {
    g.ask(AskMyself{g}).get();
  } catch (const courier::would_deadlock&) {
    std::printf("atomic, asking itself: would_deadlock\n");
  }
}
