// replies: the ways an ask's reply comes back: get() off the pool, then()
// chains, a handler that defers its reply to another actor, and co_await.
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/use_awaitable.hpp>
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

struct account {
  std::uint64_t balance = 0;
  void handle(Deposit d) { balance += d.amount; }
  bool handle(Withdraw w) {
    if (balance < w.amount) return false;
    balance -= w.amount;
    return true;
  }
  std::uint64_t handle(Balance) const { return balance; }
};

// An auditor answers "what is the balance in cents?" by asking the account:
// returning a future defers the reply until the account has answered.
struct InCents {};
struct auditor {
  courier::actor<account, account_msg> target;
  courier::future<std::uint64_t> handle(InCents) {
    return target.ask(Balance{}).then([](std::uint64_t b) { return b * 100; });
  }
};

asio::awaitable<void> report(courier::actor<account, account_msg> alice) {
  std::uint64_t b = co_await alice.async_ask(Balance{}, asio::use_awaitable);
  std::printf("co_await async_ask: balance %llu\n", static_cast<unsigned long long>(b));
}

int main() {
  courier::thread_pool pool{2};
  auto alice = courier::spawn<account, account_msg>(pool, account{1000});
  alice.tell(Deposit{5});

  bool ok = alice.ask(Withdraw{10}).get();  // blocks this (non-pool) thread
  std::printf("get(): withdraw 10 %s\n", ok ? "succeeded" : "was refused");

  bool refused = !alice.ask(Withdraw{5000}).then([](bool done) { return done; }).get();
  std::printf("then(): withdraw 5000 %s\n", refused ? "was refused" : "succeeded");

  auto audit = courier::spawn<auditor, InCents>(pool, auditor{alice});
  std::printf("deferred reply: %llu cents\n",
              static_cast<unsigned long long>(audit.ask(InCents{}).get()));

  asio::io_context ctx;
  asio::co_spawn(ctx, report(alice), asio::detached);
  ctx.run();
}
