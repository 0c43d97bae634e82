#include "bank/bank.hpp"

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <courier/testing.hpp>
#include <cstdlib>
#include <functional>
#include <latch>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

#include "bank/simulate.hpp"

namespace {

using bank::errc;

// Every account's balance, by name.
std::map<std::string, std::uint64_t> snapshot(bank::bank& b) {
  std::map<std::string, std::uint64_t> out;
  for (auto& [name, ref] : b.accounts().get()) out[name] = ref.ask(bank::GetBalance{}).get();
  return out;
}

std::uint64_t total(const std::map<std::string, std::uint64_t>& balances) {
  std::uint64_t sum = 0;
  for (auto& [name, v] : balances) sum += v;
  return sum;
}

}  // namespace

TEST_CASE("bank: the classic transfer", "[bank]") {
  courier::thread_pool pool{2};
  bank::bank b(pool);
  b.open("alice", 1000).get();
  b.open("bob", 500).get();
  b.transfer("alice", "bob", 200).get();
  CHECK(b.balance("alice").get() == 800);
  CHECK(b.balance("bob").get() == 700);
}

TEST_CASE("bank: a bank that outlives its pool fails every call cleanly", "[bank]") {
  std::optional<bank::bank> b;
  bank::account_ref alice;
  {
    courier::thread_pool pool{2};
    b.emplace(pool);
    b->open("alice", 100).get();
    b->open("bob", 0).get();
    alice = std::get<bank::account_ref>(b->find("alice").get());
  }
  // The directory and the accounts stopped with the pool; the bank still
  // answers every call, with the lifecycle error.
  CHECK_THROWS_AS(b->open("carol", 1).get(), courier::actor_stopped);
  CHECK_THROWS_AS(b->find("alice").get(), courier::actor_stopped);
  CHECK_THROWS_AS(b->balance("alice").get(), courier::actor_stopped);
  CHECK_THROWS_AS(b->try_deposit("alice", 1).get(), courier::actor_stopped);
  CHECK_THROWS_AS(b->transfer("alice", "bob", 1).get(), courier::actor_stopped);
  CHECK(alice.stopped());
  CHECK_THROWS_AS(alice.ask(bank::GetBalance{}).get(), courier::actor_stopped);
  b.reset();
}

TEST_CASE("bank: a bank keeps the executor it was given, not the caller's variable", "[bank]") {
  courier::thread_pool pool{2};
  std::optional<bank::bank> b;
  {
    const courier::thread_pool::executor_type ex = pool.get_executor();
    b.emplace(ex);
  }  // `ex` is gone; accounts opened from now on run on the bank's copy
  b->open("alice", 1000).get();
  b->open("bob", 500).get();
  b->transfer("alice", "bob", 200).get();
  CHECK(b->balance("alice").get() == 800);
  CHECK(b->balance("bob").get() == 700);
}

TEST_CASE("bank: every error leaves every balance unchanged", "[bank]") {
  courier::thread_pool pool{2};
  bank::bank b(pool);
  b.open("alice", 1000).get();
  b.open("bob", 500).get();
  b.open("carol", 0).get();
  b.open("full", bank::max_balance - 10).get();
  b.open("shut", 300).get();
  b.close("shut").get();
  const auto before = snapshot(b);

  struct attempt {
    const char* what;
    courier::future<errc> result;
    errc expected;
  };
  std::vector<attempt> attempts;
  attempts.push_back(
      {"insufficient funds", b.try_transfer("bob", "alice", 501), errc::insufficient_funds});
  attempts.push_back(
      {"empty source", b.try_transfer("carol", "alice", 1), errc::insufficient_funds});
  attempts.push_back(
      {"unknown source", b.try_transfer("mallory", "alice", 1), errc::unknown_account});
  attempts.push_back(
      {"unknown target", b.try_transfer("alice", "mallory", 1), errc::unknown_account});
  attempts.push_back({"same account", b.try_transfer("alice", "alice", 1), errc::same_account});
  attempts.push_back({"zero transfer", b.try_transfer("alice", "bob", 0), errc::zero_amount});
  attempts.push_back({"zero deposit", b.try_deposit("alice", 0), errc::zero_amount});
  attempts.push_back({"zero withdraw", b.try_withdraw("alice", 0), errc::zero_amount});
  attempts.push_back({"overflowing deposit", b.try_deposit("full", 11), errc::balance_overflow});
  attempts.push_back(
      {"overflowing transfer", b.try_transfer("alice", "full", 11), errc::balance_overflow});
  attempts.push_back(
      {"transfer to closed", b.try_transfer("alice", "shut", 5), errc::account_closed});
  attempts.push_back(
      {"transfer from closed", b.try_transfer("shut", "alice", 5), errc::account_closed});
  attempts.push_back({"deposit to closed", b.try_deposit("shut", 5), errc::account_closed});
  attempts.push_back({"withdraw too much", b.try_withdraw("bob", 501), errc::insufficient_funds});
  attempts.push_back({"duplicate name", b.try_open("alice", 7), errc::duplicate_account});
  attempts.push_back({"opening above the maximum", b.try_open("huge", bank::max_balance + 1),
                      errc::balance_overflow});
  attempts.push_back({"close twice", b.try_close("shut"), errc::account_closed});
  for (auto& a : attempts) {
    INFO(a.what);
    CHECK(a.result.get() == a.expected);
  }
  CHECK(snapshot(b) == before);
  CHECK_THROWS_AS(b.balance("mallory").get(), bank::bank_error);
  try {
    b.transfer("alice", "bob", 0).get();
    FAIL("transfer of zero succeeded");
  } catch (const bank::bank_error& e) {
    CHECK(e.code() == errc::zero_amount);
  }
  CHECK(snapshot(b) == before);
}

// 8 client threads each make 1,500 transfers of 1 to 700 between random
// accounts of `refs` with transfer(from, to, amount) -> errc, and check that
// each ended ok or insufficient_funds, and that some bounced.
template <class Transfer>
void check_random_transfers(const std::vector<bank::account_ref>& refs, Transfer transfer) {
  std::atomic<int> ok{0};
  std::atomic<int> rejected{0};
  std::atomic<int> other{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < 8; ++c)
    clients.emplace_back([&, c] {
      std::mt19937_64 rng(static_cast<std::uint64_t>(c) + 1);
      for (int i = 0; i < 1500; ++i) {
        const auto from = rng() % refs.size();
        auto to = rng() % refs.size();
        while (to == from) to = rng() % refs.size();
        const errc e = transfer(refs[from], refs[to], 1 + rng() % 700);
        if (e == errc::ok)
          ++ok;
        else if (e == errc::insufficient_funds)
          ++rejected;
        else
          ++other;
      }
    });
  for (auto& t : clients) t.join();
  CHECK(other == 0);
  CHECK(ok + rejected == 8 * 1500);
  CHECK(rejected > 0);  // the amounts are large enough that some must bounce
}

TEST_CASE("bank: money is conserved under concurrent random transfers", "[bank]") {
  const int threads = GENERATE(1, 2, 4);
  courier::thread_pool pool{static_cast<std::size_t>(threads)};
  bank::bank b(pool);
  constexpr int accounts = 50;
  constexpr std::uint64_t initial = 1000;
  for (int i = 0; i < accounts; ++i) b.open("acct" + std::to_string(i), initial).get();
  std::vector<bank::account_ref> refs;
  for (auto& [name, ref] : b.accounts().get()) refs.push_back(ref);
  check_random_transfers(
      refs, [](const bank::account_ref& from, const bank::account_ref& to, std::uint64_t amount) {
        return bank::try_transfer(from, to, amount).get();
      });
  const auto after = snapshot(b);
  CHECK(total(after) == accounts * initial);
  for (auto& [name, v] : after) CHECK(v <= accounts * initial);
}

TEST_CASE("bank: W1 simulation conserves money", "[bank]") {
  const int threads = GENERATE(1, 2, 4);
  bank::simulation_options o;
  o.accounts = 200;
  o.clients = 32;
  o.transfers = 20000;
  o.threads = static_cast<std::size_t>(threads);
  const auto r = bank::simulate(o);
  CHECK(r.transfers == 20000);
  CHECK(r.conserved);
  CHECK(r.actual_total == 200 * o.initial_balance);
  // No account sends more than it was opened with, so none can be refused.
  CHECK_FALSE(r.refusals_possible);
  CHECK(r.rejected == 0);
  CHECK(r.passed);
}

TEST_CASE("bank: W1 simulation refuses options out of bounds before it starts", "[bank]") {
  using limits = bank::simulation_limits;
  auto with = [](auto change) {
    bank::simulation_options o;
    change(o);
    return o;
  };
  using options = bank::simulation_options;
  const std::vector<options> refused = {
      with([](options& o) { o.accounts = 1; }),
      with([](options& o) { o.accounts = limits::max_accounts + 1; }),
      with([](options& o) { o.clients = 0; }),
      with([](options& o) { o.clients = limits::max_clients + 1; }),
      with([](options& o) { o.transfers = 0; }),
      with([](options& o) { o.transfers = std::numeric_limits<std::uint64_t>::max(); }),
      with([](options& o) { o.threads = 0; }),
      with([](options& o) { o.threads = limits::max_threads + 1; }),
      with([](options& o) { o.initial_balance = bank::max_balance; }),
  };
  for (const auto& o : refused) CHECK_THROWS_AS(bank::simulate(o), std::invalid_argument);
}

TEST_CASE("bank: W1's parameters allow no refused transfer", "[bank]") {
  // The figure bank::w1_max_sent's comment gives: 1000 accounts opened with
  // 1,000,000, 64 clients from seed 42, 10^6 transfers.
  std::vector<std::uint64_t> made;
  for (std::size_t i = 0; i < 64; ++i) made.push_back(bank::w1_share(1000000, 64, i));
  CHECK(bank::w1_max_sent(42, made, 1000) == 56540);
  // W1-hot's two accounts send far more than they hold: refusals possible.
  CHECK(bank::w1_max_sent(42, made, 2) > 1000000);
}

TEST_CASE("bank: W1's check fails a bank that refuses every transfer", "[bank]") {
  // Refusing every transfer conserves money; the check must fail it anyway,
  // since no order of these transfers can refuse one.
  struct refusing_account : bank::account {
    using account::handle;
    errc handle(bank::Reserve) { return errc::insufficient_funds; }
  };
  courier::thread_pool pool{2};
  bank::basic_bank<refusing_account> b(
      pool, [](std::uint64_t initial) { return refusing_account{{initial}}; });
  const auto accounts = bank::open_w1_accounts(b, 100, 1000000);
  std::vector<bank::w1_client> clients = bank::make_w1_clients(16, 2000, 42);
  bank::w1_driver<refusing_account> driver(accounts, clients);
  driver.start();
  driver.wait();
  const bank::w1_check c =
      bank::check_w1(clients, 42, accounts.size(), 1000000, bank::read_balances(accounts));
  CHECK(c.conserved());
  CHECK(c.ok == 0);
  CHECK(c.rejected == 2000);
  CHECK_FALSE(c.refusals_possible());
  CHECK_FALSE(c.passed());
}

TEST_CASE("bank: W1's check allows refusals where some order can refuse", "[bank]") {
  bank::simulation_options o;
  o.accounts = 2;
  o.clients = 8;
  o.transfers = 2000;
  o.initial_balance = 100;
  const auto r = bank::simulate(o);
  CHECK(r.refusals_possible);
  CHECK(r.rejected > 0);
  CHECK(r.conserved);
  CHECK(r.passed);
}

TEST_CASE("bank: a storm of opposite transfers between two accounts completes", "[bank]") {
  const int threads = GENERATE(1, 2, 4);
  courier::thread_pool pool{static_cast<std::size_t>(threads)};
  bank::bank b(pool);
  b.open("alice", 1000).get();
  b.open("bob", 1000).get();
  auto pair = b.accounts().get();
  const bank::account_ref alice = pair[0].second;
  const bank::account_ref bob = pair[1].second;
  std::vector<courier::future<errc>> storm;
  for (int i = 0; i < 5000; ++i) {
    storm.push_back(bank::try_transfer(alice, bob, 3));
    storm.push_back(bank::try_transfer(bob, alice, 3));
  }
  int ok = 0;
  for (auto& f : storm) {
    const errc e = f.get();
    CHECK((e == errc::ok || e == errc::insufficient_funds));
    ok += e == errc::ok;
  }
  CHECK(ok > 0);
  CHECK(b.balance("alice").get() + b.balance("bob").get() == 2000);
}

TEST_CASE("bank: a deposit refused for overflow refunds the source exactly", "[bank]") {
  courier::thread_pool pool{2};
  bank::bank b(pool);
  b.open("alice", 1000).get();
  b.open("full", bank::max_balance - 50).get();
  std::vector<courier::future<errc>> fs;
  for (int i = 0; i < 20; ++i) fs.push_back(b.try_transfer("alice", "full", 10));
  int ok = 0;
  for (auto& f : fs) {
    const errc e = f.get();
    CHECK((e == errc::ok || e == errc::balance_overflow));
    ok += e == errc::ok;
  }
  CHECK(ok == 5);
  CHECK(b.balance("alice").get() == 1000 - 50);
  CHECK(b.balance("full").get() == bank::max_balance);
  // The refunded reservations are released: alice can send the rest away.
  b.open("carol", 0).get();
  CHECK(b.try_transfer("alice", "carol", 950).get() == errc::ok);
  CHECK(b.balance("alice").get() == 0);
}

TEST_CASE("bank: closing the target while transfers are in flight refunds exactly", "[bank]") {
  const int threads = GENERATE(1, 2, 4);
  courier::thread_pool pool{static_cast<std::size_t>(threads)};
  bank::bank b(pool);
  b.open("alice", 100000).get();
  b.open("bob", 0).get();
  std::vector<courier::future<errc>> fs;
  for (int i = 0; i < 4000; ++i) {
    fs.push_back(b.try_transfer("alice", "bob", 7));
    if (i == 2000) b.close("bob").get();
  }
  std::uint64_t moved = 0;
  int closed = 0;
  for (auto& f : fs) {
    const errc e = f.get();
    REQUIRE((e == errc::ok || e == errc::account_closed));
    if (e == errc::ok) moved += 7;
    closed += e == errc::account_closed;
  }
  CHECK(closed > 0);
  CHECK(b.balance("bob").get() == moved);
  CHECK(b.balance("alice").get() == 100000 - moved);
}

// --- deterministic interleavings ------------------------------------------------------------

namespace {

using transfer_fn = courier::future<errc> (*)(const bank::account_ref&, const bank::account_ref&,
                                              std::uint64_t);

// A transfer with a deliberate bug: it deposits before the withdrawal is
// confirmed, and does not take the deposit back when the withdrawal fails.
courier::future<errc> deposit_first_transfer(const bank::account_ref& from,
                                             const bank::account_ref& to, std::uint64_t amount) {
  to.tell(bank::Deposit{amount});
  return from.ask(bank::Reserve{amount}).then([from, amount](courier::result<errc> r) {
    const errc e = r.has_value() ? r.value() : errc::account_closed;
    if (e == errc::ok) from.tell(bank::Settle{amount});
    return e;
  });
}

// A transfer with an ordering bug that only some interleavings expose: after
// a first look at the target, it reads the source's balance with one message
// and, if the amount is there, withdraws it with another, without waiting
// for the withdrawal's reply. Whether another transfer's withdrawal from the
// same source is handled between the two depends on the order: when it is,
// and leaves too little, the withdrawal is refused while the deposit goes
// through, and the replies no longer match the balances.
// (The first look puts the read one hop late. Sent at once, every read
// would be queued before every withdrawal, and the order would not matter.)
courier::future<errc> check_then_withdraw_transfer(const bank::account_ref& from,
                                                   const bank::account_ref& to,
                                                   std::uint64_t amount) {
  return to.ask(bank::GetBalance{}).then([from, to, amount](courier::result<std::uint64_t> seen) {
    if (!seen.has_value()) return courier::make_ready_future(errc::account_closed);
    return from.ask(bank::GetBalance{})
        .then([from, to, amount](courier::result<std::uint64_t> balance) {
          if (!balance.has_value()) return errc::account_closed;
          if (balance.value() < amount) return errc::insufficient_funds;
          from.tell(bank::Withdraw{amount});
          to.tell(bank::Deposit{amount});
          return errc::ok;
        });
  });
}

// How often each outcome came up over a sweep, so a test can tell that the
// scenarios reach every path.
struct outcome_counts {
  std::uint64_t ok = 0;
  std::uint64_t insufficient = 0;
  std::uint64_t closed = 0;
};

// Runs one scenario drawn from `seed` (small balances, six transfers, maybe
// an account closed concurrently) under the interleaving chosen by
// `schedule`, by default the same seed. Returns what went wrong, or an empty
// string.
std::string check_interleaving(std::uint64_t seed, transfer_fn transfer, outcome_counts& counts,
                               std::optional<std::uint64_t> schedule = std::nullopt) {
  courier::testing::deterministic_context ctx(schedule.value_or(seed));
  bank::splitmix64 draw(seed);
  courier::spawn_options<bank::account> one_at_a_time;
  one_at_a_time.batch = 1;
  const std::vector<std::uint64_t> initial{30, 5, 0, 12};
  std::vector<bank::account_ref> accounts;
  for (std::uint64_t b : initial)
    accounts.push_back(
        courier::spawn<bank::account, bank::account_msg>(ctx, bank::account{b}, one_at_a_time));
  struct sent {
    std::size_t from;
    std::size_t to;
    std::uint64_t amount;
    courier::future<errc> result;
  };
  std::vector<sent> transfers;
  courier::future<errc> closing;
  const bool close_one = draw.next() % 4 == 0;
  const std::size_t closed = static_cast<std::size_t>(draw.next() % accounts.size());
  for (int i = 0; i < 6; ++i) {
    const auto from = static_cast<std::size_t>(draw.next() % accounts.size());
    auto to = static_cast<std::size_t>(draw.next() % accounts.size());
    while (to == from) to = static_cast<std::size_t>(draw.next() % accounts.size());
    const std::uint64_t amount = 1 + draw.next() % 20;
    transfers.push_back({from, to, amount, transfer(accounts[from], accounts[to], amount)});
    if (close_one && i == 2) closing = accounts[closed].ask(bank::Close{});
  }
  ctx.run(1000000);

  std::vector<std::int64_t> expected(initial.begin(), initial.end());
  for (auto& t : transfers) {
    if (!t.result.ready()) return "a transfer's reply never arrived";
    const errc e = t.result.get();
    if (e == errc::ok) {
      ++counts.ok;
      expected[t.from] -= static_cast<std::int64_t>(t.amount);
      expected[t.to] += static_cast<std::int64_t>(t.amount);
    } else if (e == errc::insufficient_funds) {
      ++counts.insufficient;
    } else if (e == errc::account_closed) {
      ++counts.closed;
    } else {
      return std::string("unexpected error: ") + bank::describe(e);
    }
  }
  if (close_one && !closing.ready()) return "the close never got its reply";
  std::vector<courier::future<std::uint64_t>> balances;
  for (auto& a : accounts) balances.push_back(a.ask(bank::GetBalance{}));
  ctx.run(1000000);
  std::uint64_t sum = 0;
  std::string what;
  for (std::size_t i = 0; i < accounts.size(); ++i) {
    if (!balances[i].ready()) return "a balance query never got its reply";
    const std::uint64_t b = balances[i].get();
    sum += b;
    if (static_cast<std::int64_t>(b) != expected[i])
      what += "account " + std::to_string(i) + " holds " + std::to_string(b) +
              ", the replies say " + std::to_string(expected[i]) + "; ";
  }
  if (sum != 47) what += "money not conserved: total " + std::to_string(sum) + " of 47; ";
  return what;
}

// The first seed in [0, seeds) whose interleaving breaks a property, with
// its description; or seeds when none does. COURIER_SEED=<n> checks n only.
std::pair<std::uint64_t, std::string> sweep(std::uint64_t seeds, transfer_fn transfer,
                                            outcome_counts& counts) {
  if (const char* only = std::getenv("COURIER_SEED")) {
    const std::uint64_t seed = std::strtoull(only, nullptr, 10);
    std::string what = check_interleaving(seed, transfer, counts);
    return {what.empty() ? seeds : seed, what};
  }
  for (std::uint64_t seed = 0; seed < seeds; ++seed) {
    std::string what = check_interleaving(seed, transfer, counts);
    if (!what.empty()) return {seed, what};
  }
  return {seeds, {}};
}

}  // namespace

TEST_CASE("bank: transfers keep their properties under 10,000 interleavings", "[bank]") {
  // Conservation, transfer atomicity as each client sees it, and every ask
  // resolved, under 10,000 seeded interleavings of six concurrent transfers
  // and a concurrent close.
  constexpr std::uint64_t seeds = 10000;
  outcome_counts counts;
  const auto [seed, what] = sweep(
      seeds,
      [](const bank::account_ref& from, const bank::account_ref& to, std::uint64_t amount) {
        return bank::try_transfer(from, to, amount);
      },
      counts);
  if (seed != seeds)
    FAIL("seed " << seed << ": " << what << "\nreplay: COURIER_SEED=" << seed
                 << " courier_tests \"bank: transfers keep their properties under 10\\,000 "
                    "interleavings\"");
  if (std::getenv("COURIER_SEED") == nullptr) {
    // The scenarios reach every path: success, a refused withdrawal, and a
    // deposit refused by a closed account (refunded).
    CHECK(counts.ok > 0);
    CHECK(counts.insufficient > 0);
    CHECK(counts.closed > 0);
  }
}

TEST_CASE("bank: the interleaving sweep catches a transfer that deposits first", "[bank]") {
  // The sweep must find a seed where the broken transfer creates money: a
  // check that the sweep can fail at all. (This bug shows in almost any
  // order; the next test's shows only in some.)
  outcome_counts counts;
  const auto [seed, what] = sweep(10000, deposit_first_transfer, counts);
  INFO("first failing seed " << seed << ": " << what);
  CHECK(seed < 10000);
  CHECK(what.find("money not conserved") != std::string::npos);
}

TEST_CASE("bank: the interleaving sweep finds a transfer that only some orders break", "[bank]") {
  // check_then_withdraw_transfer loses track of money only when another
  // message reaches the source between its read and its withdrawal. The
  // sweep over seeded interleavings must find such orders among many that
  // hide the bug, and a failing seed must replay exactly.
  constexpr std::uint64_t seeds = 2000;
  outcome_counts counts;
  std::vector<std::uint64_t> failing;
  std::string first_what;
  for (std::uint64_t seed = 0; seed < seeds; ++seed) {
    std::string what = check_interleaving(seed, check_then_withdraw_transfer, counts);
    if (what.empty()) continue;
    if (failing.empty()) first_what = what;
    failing.push_back(seed);
  }
  REQUIRE_FALSE(failing.empty());
  const std::uint64_t first = failing.front();
  INFO(failing.size() << " of " << seeds << " seeds fail; the first, " << first << ": "
                      << first_what);
  CHECK(failing.size() < seeds);  // some orders hide it
  CHECK(first_what.find("the replies say") != std::string::npos);

  // The failing seed replays: the same transfers in the same order fail the
  // same way.
  outcome_counts replay;
  CHECK(check_interleaving(first, check_then_withdraw_transfer, replay) == first_what);

  // It is the order that breaks them: the same scenario (balances, transfers
  // and close) passes under another interleaving.
  std::uint64_t passing_schedule = seeds;
  for (std::uint64_t schedule = 0; schedule < seeds && passing_schedule == seeds; ++schedule)
    if (check_interleaving(first, check_then_withdraw_transfer, replay, schedule).empty())
      passing_schedule = schedule;
  CHECK(passing_schedule < seeds);
}

// --- fault injection ----------------------------------------------------------------------

namespace {

// Decides when a faulty_account's handler fails on purpose.
class fault_plan {
 public:
  virtual ~fault_plan() = default;
  // At the start of a handler, before anything changes.
  virtual bool fail_now() noexcept = 0;
  // After Deposit, Withdraw, Reserve or Close changed the account (its
  // balance, reservation or closed flag) and before the handler returns: a
  // poisoned message, which leaves the State changed as it crashes. Only a
  // restart from the last good State (bank::account_options()) undoes it.
  virtual bool fail_midway() noexcept { return false; }
};

// The exception an injected fault throws.
class injected_fault : public std::runtime_error {
 public:
  injected_fault() : std::runtime_error("injected fault") {}
};

// An account whose handlers fail when `faults` says so: it forwards every
// message to a bank::account and throws before (fail_now) or after
// (fail_midway) the account handled it. Settle and Refund never fail, as a
// transfer must not lose them.
struct faulty_account {
  bank::account inner;
  fault_plan* faults = nullptr;

  errc handle(bank::Deposit m) { return forward(m); }
  errc handle(bank::Withdraw m) { return forward(m); }
  errc handle(bank::Reserve m) { return forward(m); }
  void handle(bank::Settle m) { inner.handle(m); }
  void handle(bank::Refund m) { inner.handle(m); }
  std::uint64_t handle(bank::GetBalance m) const {
    fail_now();
    return inner.handle(m);
  }
  bank::holdings handle(bank::Audit m) const { return inner.handle(m); }
  errc handle(bank::Close m) { return forward(m); }

 private:
  void fail_now() const {
    if (faults->fail_now()) throw injected_fault();
  }
  // Deposit, Withdraw, Reserve and Close: a fault midway only after a change.
  template <class M>
  errc forward(M m) {
    fail_now();
    const errc e = inner.handle(m);
    if (e == errc::ok && faults->fail_midway()) throw injected_fault();
    return e;
  }
};
using faulty_ref = bank::basic_account_ref<faulty_account>;
using faulty_bank = bank::basic_bank<faulty_account>;

// Fails one call in `one_in`, chosen by a seeded generator, either at the
// start of handlers or midway through them; can be switched off.
class seeded_faults final : public fault_plan {
 public:
  enum class point { start, midway };
  seeded_faults(std::uint64_t seed, std::uint64_t one_in, point where = point::start)
      : seed_(seed), one_in_(one_in), where_(where) {}
  bool fail_now() noexcept override { return where_ == point::start && draw(); }
  bool fail_midway() noexcept override { return where_ == point::midway && draw(); }
  void off() { on_.store(false, std::memory_order_release); }
  std::uint64_t failures() const { return failures_.load(); }

 private:
  bool draw() noexcept {
    if (!on_.load(std::memory_order_acquire)) return false;
    bank::splitmix64 d(seed_ + calls_.fetch_add(1, std::memory_order_relaxed));
    if (d.next() % one_in_ != 0) return false;
    failures_.fetch_add(1, std::memory_order_relaxed);
    return true;
  }

  const std::uint64_t seed_;
  const std::uint64_t one_in_;
  const point where_;
  std::atomic<bool> on_{true};
  std::atomic<std::uint64_t> calls_{0};
  std::atomic<std::uint64_t> failures_{0};
};

// What random transfers by 8 concurrent clients came to.
struct transfer_run {
  std::vector<std::int64_t> expected;  // each balance, as the replies of ok say it must be
  int failed = 0;                      // replies of operation_failed
  int unexpected = 0;                  // replies other than those and insufficient_funds
};

// 8 clients each make 600 transfers of 1 to 300 between accounts drawn at
// random (client c from splitmix64(seed + c)) and wait for each reply.
transfer_run random_transfers(const std::vector<faulty_ref>& refs, std::uint64_t initial,
                              std::uint64_t seed) {
  const std::size_t accounts = refs.size();
  struct moved {
    std::size_t from;
    std::size_t to;
    std::uint64_t amount;
  };
  std::vector<std::vector<moved>> done(8);
  std::atomic<int> failed{0};
  std::atomic<int> unexpected{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < 8; ++c)
    clients.emplace_back([&, c] {
      bank::splitmix64 draw(seed + static_cast<std::uint64_t>(c));
      for (int i = 0; i < 600; ++i) {
        const auto from = static_cast<std::size_t>(draw.next() % accounts);
        auto to = static_cast<std::size_t>(draw.next() % accounts);
        while (to == from) to = static_cast<std::size_t>(draw.next() % accounts);
        const std::uint64_t amount = 1 + draw.next() % 300;
        const errc e = bank::try_transfer(refs[from], refs[to], amount).get();
        if (e == errc::ok)
          done[static_cast<std::size_t>(c)].push_back({from, to, amount});
        else if (e == errc::operation_failed)
          ++failed;
        else if (e != errc::insufficient_funds)
          ++unexpected;
      }
    });
  for (auto& t : clients) t.join();
  transfer_run run;
  run.expected.assign(accounts, static_cast<std::int64_t>(initial));
  for (auto& per_client : done)
    for (auto& m : per_client) {
      run.expected[m.from] -= static_cast<std::int64_t>(m.amount);
      run.expected[m.to] += static_cast<std::int64_t>(m.amount);
    }
  run.failed = failed.load();
  run.unexpected = unexpected.load();
  return run;
}

// Checks that every account holds what `expected` says and is still running;
// returns the sum of the balances.
std::uint64_t check_balances(const std::vector<faulty_ref>& refs,
                             const std::vector<std::int64_t>& expected) {
  std::uint64_t sum = 0;
  for (std::size_t i = 0; i < refs.size(); ++i) {
    INFO("account " << i);
    const std::uint64_t b = refs[i].ask(bank::GetBalance{}).get();
    CHECK(static_cast<std::int64_t>(b) == expected[i]);
    CHECK_FALSE(refs[i].stopped());
    sum += b;
  }
  return sum;
}

// Makes random transfers while `faults` fails handlers, then stops the
// faults and checks what every such run must show: some transfers failed and
// the faults fired, no other error came back, and every balance is exactly
// what the ok replies say (so the total is conserved). Returns the run.
transfer_run check_transfers_under_faults(const std::vector<faulty_ref>& refs,
                                          std::uint64_t initial, std::uint64_t seed,
                                          seeded_faults& faults) {
  const transfer_run run = random_transfers(refs, initial, seed);
  faults.off();
  CHECK(run.unexpected == 0);
  CHECK(run.failed > 0);
  CHECK(faults.failures() > 0);
  CHECK(check_balances(refs, run.expected) == refs.size() * initial);
  return run;
}

}  // namespace

TEST_CASE("bank: injected handler faults are reported and change nothing else", "[bank]") {
  const int threads = GENERATE(1, 2, 4);
  courier::thread_pool pool{static_cast<std::size_t>(threads)};
  seeded_faults faults(99, 10);
  constexpr std::size_t accounts = 20;
  constexpr std::uint64_t initial = 1000;
  std::vector<faulty_ref> refs;
  for (std::size_t i = 0; i < accounts; ++i)
    refs.push_back(courier::spawn<faulty_account, bank::account_msg>(
        pool, faulty_account{{initial}, &faults}));
  check_transfers_under_faults(refs, initial, 1000, faults);
  // The pool and every account survived.
  CHECK(bank::try_transfer(refs[0], refs[1], 1).get() != errc::operation_failed);
}

// --- stops mid-transfer ---------------------------------------------------------------------

namespace {

// One change an account made, by the message that made it.
struct leg {
  enum kind_type { reserve, deposit, settle, refund } kind;
  std::uint64_t amount;
};

// An account's State when it was destroyed, and every change it made.
struct final_account {
  bank::account state;
  std::vector<leg> legs;
};

// Collects the final State of every account, which each reports as it is
// destroyed: the only way to see an account after its actor stopped.
class ledger {
 public:
  explicit ledger(std::size_t accounts) : finals_(accounts) {}
  void report(std::size_t i, const bank::account& state, std::vector<leg> legs) {
    std::lock_guard<std::mutex> lock(mutex_);
    finals_[i] = {state, std::move(legs)};
    ++reported_;
  }
  std::size_t reported() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return reported_;
  }
  const final_account& operator[](std::size_t i) const { return finals_[i]; }

 private:
  mutable std::mutex mutex_;
  std::vector<final_account> finals_;
  std::size_t reported_ = 0;
};

// An account that logs every change it makes and reports its final State to
// a ledger when it is destroyed; it forwards every message to a
// bank::account.
class logged_account {
 public:
  logged_account(std::uint64_t initial, std::size_t index, ledger& book)
      : inner_{initial}, index_(index), book_(&book) {}
  logged_account(logged_account&& o) noexcept
      : inner_(o.inner_),
        index_(o.index_),
        book_(std::exchange(o.book_, nullptr)),
        legs_(std::move(o.legs_)) {}
  logged_account(const logged_account&) = delete;
  logged_account& operator=(const logged_account&) = delete;
  logged_account& operator=(logged_account&&) = delete;
  ~logged_account() {
    if (book_ != nullptr) book_->report(index_, inner_, std::move(legs_));
  }

  errc handle(bank::Deposit m) { return logged(inner_.handle(m), leg::deposit, m.amount); }
  errc handle(bank::Withdraw m) { return inner_.handle(m); }
  errc handle(bank::Reserve m) { return logged(inner_.handle(m), leg::reserve, m.amount); }
  void handle(bank::Settle m) {
    inner_.handle(m);
    legs_.push_back({leg::settle, m.amount});
  }
  void handle(bank::Refund m) {
    inner_.handle(m);
    legs_.push_back({leg::refund, m.amount});
  }
  std::uint64_t handle(bank::GetBalance m) const { return inner_.handle(m); }
  bank::holdings handle(bank::Audit m) const { return inner_.handle(m); }
  errc handle(bank::Close m) { return inner_.handle(m); }

 private:
  errc logged(errc e, leg::kind_type kind, std::uint64_t amount) {
    if (e == errc::ok) legs_.push_back({kind, amount});
    return e;
  }

  bank::account inner_;
  std::size_t index_;
  ledger* book_;  // null once moved from
  std::vector<leg> legs_;
};

// Where one transfer's legs landed, found by its amount.
struct legs_of {
  int reserves = 0;
  int deposits = 0;
  int settles = 0;
  int refunds = 0;
  std::size_t reserved_at = 0;
  std::size_t deposited_at = 0;
};

// Every transfer's legs, by amount, from the accounts' final reports.
std::map<std::uint64_t, legs_of> legs_by_amount(const ledger& book, std::size_t accounts) {
  std::map<std::uint64_t, legs_of> by_amount;
  for (std::size_t i = 0; i < accounts; ++i)
    for (const leg& l : book[i].legs) {
      legs_of& t = by_amount[l.amount];
      switch (l.kind) {
        case leg::reserve:
          ++t.reserves;
          t.reserved_at = i;
          break;
        case leg::deposit:
          ++t.deposits;
          t.deposited_at = i;
          break;
        case leg::settle:
          ++t.settles;
          break;
        case leg::refund:
          ++t.refunds;
          break;
      }
    }
  return by_amount;
}

// What is wrong with a transfer from `from` to `to` that replied `result`,
// given its legs; empty when it was all or nothing. An ok transfer took its
// amount from the source and gave it to the target once, and was never
// refunded; a failed one (only a stop may fail it) gave the target nothing,
// and its reservation, if any, was refunded or is still held. Held means the
// source stopped before the settle or refund queued behind the reservation:
// with `settled` that cannot be, as the source ran past them.
std::string all_or_nothing(std::size_t from, std::size_t to, errc result, const legs_of& l,
                           bool settled) {
  std::string wrong;
  auto expect = [&wrong](bool holds, const char* what) {
    if (!holds) wrong += std::string(what) + "; ";
  };
  expect(l.reserves <= 1, "reserved twice");
  expect(l.settles + l.refunds <= l.reserves, "settled or refunded beyond its reservation");
  expect(l.reserves == 0 || l.reserved_at == from, "reserved on another account");
  if (settled) expect(l.settles + l.refunds == l.reserves, "reservation held on a running source");
  if (result == errc::ok) {
    expect(l.reserves == 1, "ok without a reservation");
    expect(l.deposits == 1 && l.deposited_at == to, "ok without one deposit to the target");
    expect(l.refunds == 0, "ok and refunded");
  } else {
    expect(result == errc::account_closed, "failed for another reason than a stop");
    expect(l.deposits == 0, "failed and deposited");
    expect(l.settles == 0, "failed and settled");
  }
  return wrong;
}

}  // namespace

TEST_CASE("bank: stopping accounts and the pool mid-transfer leaves every transfer all or nothing",
          "[bank]") {
  const int threads = GENERATE(1, 2, 4);
  constexpr std::size_t account_count = 100;
  // Plenty for every transfer: a transfer fails only for a stop.
  constexpr std::uint64_t initial = 1000000000000;
  constexpr int client_count = 64;
  struct sent {
    std::uint64_t amount;  // unique: it names the transfer in the accounts' legs
    std::size_t from;
    std::size_t to;
    errc result;
  };
  struct client {
    bank::splitmix64 draw{0};
    std::vector<sent> transfers;
    std::atomic<std::size_t> replied{0};  // transfers whose reply came
  };
  ledger book(account_count);
  std::vector<client> clients(client_count);
  std::atomic<std::uint64_t> next_amount{1};
  std::atomic<std::uint64_t> replies{0};
  std::atomic<bool> pool_stopping{false};
  std::latch finished(client_count);
  std::vector<bank::basic_account_ref<logged_account>> refs;
  auto stopped_early = [](std::size_t account) { return account % 10 == 0; };
  std::vector<std::size_t> checked_at(client_count);  // replies in before the barrier
  std::function<void(client&)> step;
  // Lets 2000 more replies come (or 20 seconds pass).
  auto let_replies_come = [&replies] {
    const std::uint64_t n = replies.load() + 2000;
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (replies.load() < n && std::chrono::steady_clock::now() < give_up)
      std::this_thread::yield();
  };
  {
    courier::thread_pool pool{static_cast<std::size_t>(threads)};
    for (std::size_t i = 0; i < account_count; ++i)
      refs.push_back(courier::spawn<logged_account, bank::account_msg>(
          pool, logged_account(initial, i, book)));
    // Each client transfers, past the failures the ten stopped accounts
    // cause, until a transfer fails once the pool is stopping: so every
    // client is mid-transfer when the pool stops.
    step = [&](client& c) {
      const auto from = static_cast<std::size_t>(c.draw.next() % refs.size());
      auto to = static_cast<std::size_t>(c.draw.next() % refs.size());
      while (to == from) to = static_cast<std::size_t>(c.draw.next() % refs.size());
      const std::uint64_t amount = next_amount.fetch_add(1, std::memory_order_relaxed);
      c.transfers.push_back({amount, from, to, errc::ok});
      bank::try_transfer(refs[from], refs[to], amount)
          .then([&c, &step, &finished, &replies, &pool_stopping](errc e) {
            c.transfers.back().result = e;
            c.replied.store(c.transfers.size(), std::memory_order_release);
            replies.fetch_add(1, std::memory_order_relaxed);
            if (e == errc::ok || e == errc::insufficient_funds || !pool_stopping.load())
              step(c);
            else
              finished.count_down();
          });
    };
    for (int i = 0; i < client_count; ++i) {
      clients[static_cast<std::size_t>(i)].draw = bank::splitmix64(static_cast<std::uint64_t>(i));
      step(clients[static_cast<std::size_t>(i)]);
    }
    let_replies_come();
    for (std::size_t i = 0; i < account_count; ++i)
      if (stopped_early(i)) refs[i].stop();
    let_replies_come();
    // A barrier: every settle and refund sent before the replies counted
    // here reaches its account (if it still runs) before this balance query
    // does, so these transfers must not keep a reservation on a running
    // source.
    for (std::size_t c = 0; c < clients.size(); ++c)
      checked_at[c] = clients[c].replied.load(std::memory_order_acquire);
    for (std::size_t i = 0; i < account_count; ++i)
      if (!stopped_early(i)) (void)refs[i].ask(bank::GetBalance{}).get();
    let_replies_come();
    pool_stopping.store(true);
  }                 // the pool stops here with every client mid-transfer
  finished.wait();  // every client's last transfer resolved (ctest's TIMEOUT guards a hang)
  for (auto& a : refs) CHECK(a.stopped());
  // Once the last handles are gone, every account's State has been destroyed
  // and reported.
  step = nullptr;
  refs.clear();
  REQUIRE(book.reported() == account_count);

  // Every transfer is all or nothing (all_or_nothing()), and what each
  // account must hold follows from the replies and the reservations held.
  std::map<std::uint64_t, legs_of> by_amount = legs_by_amount(book, account_count);
  std::vector<std::int64_t> expected(account_count, static_cast<std::int64_t>(initial));
  std::vector<std::uint64_t> held(account_count, 0);  // reserved, neither settled nor refunded
  std::uint64_t held_for_failed = 0;
  std::size_t held_count = 0;
  std::size_t refunded_before_barrier = 0;
  std::size_t ok = 0;
  std::size_t failed = 0;
  std::size_t transfers = 0;
  std::size_t wrong = 0;
  std::string first_wrong;
  for (std::size_t ci = 0; ci < clients.size(); ++ci) {
    const client& c = clients[ci];
    REQUIRE_FALSE(c.transfers.empty());
    CHECK(c.transfers.back().result == errc::account_closed);  // each client saw the pool stop
    for (std::size_t j = 0; j < c.transfers.size(); ++j) {
      const sent& t = c.transfers[j];
      const legs_of l = by_amount[t.amount];
      const bool settled = j < checked_at[ci] && !stopped_early(t.from);
      std::string what = all_or_nothing(t.from, t.to, t.result, l, settled);
      // Before the pool stopped, only the ten stopped accounts fail transfers.
      if (t.result != errc::ok && j + 1 < c.transfers.size() && !stopped_early(t.from) &&
          !stopped_early(t.to))
        what += "failed between running accounts; ";
      if (!what.empty() && wrong++ == 0)
        first_wrong = "transfer of " + std::to_string(t.amount) + " from " +
                      std::to_string(t.from) + " to " + std::to_string(t.to) + " (" +
                      bank::describe(t.result) + "): " + what;
      ++transfers;
      const bool is_held = l.reserves == 1 && l.settles + l.refunds == 0;
      if (is_held) {
        held[t.from] += t.amount;
        ++held_count;
      }
      if (t.result == errc::ok) {
        ++ok;
        expected[t.from] -= static_cast<std::int64_t>(t.amount);
        expected[t.to] += static_cast<std::int64_t>(t.amount);
      } else {
        ++failed;
        if (settled && l.refunds == 1) ++refunded_before_barrier;
        if (is_held) {
          expected[t.from] -= static_cast<std::int64_t>(t.amount);
          held_for_failed += t.amount;
        }
      }
    }
  }
  INFO(transfers << " transfers, " << ok << " ok, " << failed << " failed, " << held_count
                 << " reservations held by a stop");
  CHECK(wrong == 0);
  CHECK(first_wrong == "");
  CHECK(by_amount.size() == transfers);  // no leg of a transfer nobody sent
  CHECK(ok > 0);
  CHECK(failed > static_cast<std::size_t>(client_count));  // not only the pool's stop
  CHECK(refunded_before_barrier > 0);  // the barrier saw refunds of deposits a stop refused

  // Each account holds what the replies say, less what it holds for the
  // refunds a stop cut off, and its reservation is exactly what is held.
  std::uint64_t sum = 0;
  for (std::size_t i = 0; i < account_count; ++i) {
    INFO("account " << i);
    CHECK(static_cast<std::int64_t>(book[i].state.balance) == expected[i]);
    CHECK(book[i].state.reserved == held[i]);
    sum += book[i].state.balance;
  }
  // Money is conserved: the balances and the reservations of failed
  // transfers make up every unit the accounts were opened with.
  CHECK(sum + held_for_failed == account_count * initial);
}

TEST_CASE("bank: a transfer started by an actor that then stops still completes", "[bank]") {
  // The transfer's legs are chained with then_inline, so stopping the actor
  // that started it cannot strand the reserved amount.
  struct Start {
    bank::account_ref from;
    bank::account_ref to;
    std::function<void()> stop_self;
  };
  struct starter {
    void handle(Start s) {
      (void)bank::try_transfer(s.from, s.to, 10);
      s.stop_self();
    }
  };
  for (std::uint64_t seed = 0; seed < 200; ++seed) {
    courier::testing::deterministic_context ctx(seed);
    courier::spawn_options<bank::account> one_at_a_time;
    one_at_a_time.batch = 1;
    auto a =
        courier::spawn<bank::account, bank::account_msg>(ctx, bank::account{100}, one_at_a_time);
    auto b = courier::spawn<bank::account, bank::account_msg>(ctx, bank::account{0}, one_at_a_time);
    auto s = courier::spawn<starter, Start>(ctx);
    s.tell(Start{a, b, [s] { s.stop(); }});
    ctx.run();
    auto ba = a.ask(bank::GetBalance{});
    auto bb = b.ask(bank::GetBalance{});
    ctx.run();
    REQUIRE(s.stopped());
    CHECK(ba.get() == 90);
    CHECK(bb.get() == 10);
  }
}

// --- poisoned messages ----------------------------------------------------------------------

namespace {

// Poisons the next handler that reaches its midway point, once armed: the
// handler changes the State, then crashes.
class poison_next final : public fault_plan {
 public:
  void arm() { armed_.store(true, std::memory_order_release); }
  bool fail_now() noexcept override { return false; }
  bool fail_midway() noexcept override {
    if (!armed_.exchange(false, std::memory_order_acq_rel)) return false;
    fired_.fetch_add(1, std::memory_order_relaxed);
    return true;
  }
  int fired() const { return fired_.load(); }

 private:
  std::atomic<bool> armed_{false};
  std::atomic<int> fired_{0};
};

}  // namespace

TEST_CASE("bank: a poisoned deposit restarts the account from its last good balance",
          "[bank][last_good]") {
  courier::thread_pool pool{2};
  poison_next poison;
  faulty_bank b(pool, [&poison](std::uint64_t initial) {
    return faulty_account{{initial}, &poison};
  });
  b.open("alice", 100).get();
  b.open("bob", 0).get();
  b.deposit("alice", 10).get();
  b.deposit("alice", 20).get();  // the last good balance: 130

  // The deposit's handler adds the amount, then crashes: the account
  // restarts from 130, and its asker hears that the operation failed.
  poison.arm();
  CHECK(b.try_deposit("alice", 1000).get() == errc::operation_failed);
  CHECK(poison.fired() == 1);
  CHECK(b.balance("alice").get() == 130);

  // Later messages are handled against the restored State.
  b.deposit("alice", 5).get();
  CHECK(b.balance("alice").get() == 135);
  b.transfer("alice", "bob", 35).get();
  CHECK(b.balance("alice").get() == 100);
  CHECK(b.balance("bob").get() == 35);

  // The asker of the poisoned message gets the handler's exception itself.
  auto alice = std::get<faulty_ref>(b.find("alice").get());
  poison.arm();
  CHECK_THROWS_AS(alice.ask(bank::Deposit{7}).get(), injected_fault);
  CHECK(b.balance("alice").get() == 100);

  // A transfer whose reservation is poisoned (withdrawn and held, then a crash)
  // moves nothing; the throwing API reports it as a bank_error.
  poison.arm();
  try {
    b.transfer("alice", "bob", 60).get();
    FAIL("a poisoned transfer succeeded");
  } catch (const bank::bank_error& e) {
    CHECK(e.code() == errc::operation_failed);
  }
  CHECK(poison.fired() == 3);
  CHECK(b.balance("alice").get() == 100);
  CHECK(b.balance("bob").get() == 35);

  // Every unit is still there: alice can send all of it away.
  CHECK(b.try_transfer("alice", "bob", 100).get() == errc::ok);
  CHECK(b.balance("alice").get() == 0);
  CHECK(b.balance("bob").get() == 135);
  CHECK_FALSE(alice.stopped());
}

TEST_CASE("bank: without a restart from the last good State a poisoned deposit stays half done",
          "[bank][last_good]") {
  // The control for the test above: the poisoned handler really changes the
  // State before it crashes, and only the restart undoes that.
  courier::thread_pool pool{2};
  poison_next poison;
  auto resuming =
      courier::spawn<faulty_account, bank::account_msg>(pool, faulty_account{{130}, &poison});
  poison.arm();
  CHECK_THROWS_AS(resuming.ask(bank::Deposit{1000}).get(), injected_fault);
  CHECK(resuming.ask(bank::GetBalance{}).get() == 1130);

  auto restarting = courier::spawn<faulty_account, bank::account_msg>(
      pool, faulty_account{{130}, &poison}, bank::account_options<faulty_account>());
  poison.arm();
  CHECK_THROWS_AS(restarting.ask(bank::Deposit{1000}).get(), injected_fault);
  CHECK(restarting.ask(bank::GetBalance{}).get() == 130);
}

TEST_CASE("bank: money is conserved with poisoned messages injected at random",
          "[bank][last_good]") {
  // Deposits, reservations and withdrawals crash midway at random (seeded)
  // while 8 clients transfer concurrently; every reply must still be exact.
  const int threads = GENERATE(1, 2, 4);
  courier::thread_pool pool{static_cast<std::size_t>(threads)};
  seeded_faults poison(7, 10, seeded_faults::point::midway);
  faulty_bank b(pool, [&poison](std::uint64_t initial) {
    return faulty_account{{initial}, &poison};
  });
  constexpr std::size_t accounts = 20;
  constexpr std::uint64_t initial = 1000;
  for (std::size_t i = 0; i < accounts; ++i) b.open("acct" + std::to_string(i), initial).get();
  std::vector<faulty_ref> refs;
  for (auto& [name, ref] : b.accounts().get()) refs.push_back(ref);
  const transfer_run run = check_transfers_under_faults(refs, initial, 2000, poison);
  // Every reservation was settled or refunded, none lost or doubled: with
  // nothing reserved, each account takes a deposit up to max_balance exactly.
  for (std::size_t i = 0; i < accounts; ++i) {
    INFO("account " << i);
    const auto room = bank::max_balance - static_cast<std::uint64_t>(run.expected[i]);
    CHECK(refs[i].ask(bank::Deposit{room}).get() == errc::ok);
  }
}

namespace {

std::vector<bank::account_ref> spawn_accounts(auto& where, int n, std::uint64_t initial,
                                              courier::spawn_options<bank::account> o) {
  std::vector<bank::account_ref> refs;
  for (int i = 0; i < n; ++i)
    refs.push_back(
        courier::spawn<bank::account, bank::account_msg>(where, bank::account{initial}, o));
  return refs;
}

std::uint64_t sum_of_balances(const std::vector<bank::account_ref>& refs) {
  std::uint64_t sum = 0;
  for (auto& r : refs) sum += r.ask(bank::GetBalance{}).get();
  return sum;
}

}  // namespace

TEST_CASE(
    "bank: Transfer coroutines (interleave) conserve money under concurrent random "
    "transfers",
    "[bank]") {
  const int threads = GENERATE(1, 2, 4);
  courier::thread_pool pool{static_cast<std::size_t>(threads)};
  constexpr int accounts = 50;
  constexpr std::uint64_t initial = 1000;
  auto refs = spawn_accounts(pool, accounts, initial, bank::coroutine_account_options());
  check_random_transfers(
      refs, [](const bank::account_ref& from, const bank::account_ref& to, std::uint64_t amount) {
        return from.ask(bank::Transfer{to, amount}).get();
      });
  CHECK(sum_of_balances(refs) == accounts * initial);
}

TEST_CASE(
    "bank: two opposite Transfer coroutines in atomic mode: one deposit is refused with "
    "would_deadlock, that transfer is refunded, the other completes",
    "[bank]") {
  for (std::uint64_t seed = 1; seed <= 20; ++seed) {
    courier::testing::deterministic_context ctx(seed);
    auto o = bank::account_options();  // reentrancy::atomic
    o.batch = 1;
    auto refs = spawn_accounts(ctx, 2, 100, o);
    // Both transfers are queued before either runs: whichever account runs
    // first is held by its transfer while it asks the other for a deposit,
    // and the other then starts its own transfer (queued first) and asks back.
    auto to_b = refs[0].ask(bank::Transfer{refs[1], 30});
    auto to_a = refs[1].ask(bank::Transfer{refs[0], 50});
    ctx.run();
    REQUIRE(to_b.ready());
    REQUIRE(to_a.ready());
    const errc first = to_b.get();
    const errc second = to_a.get();
    CHECK(((first == errc::ok && second == errc::operation_failed) ||
           (first == errc::operation_failed && second == errc::ok)));
    auto a = refs[0].ask(bank::GetBalance{});
    auto b = refs[1].ask(bank::GetBalance{});
    ctx.run();
    const std::uint64_t balance_a = a.get();
    const std::uint64_t balance_b = b.get();
    CHECK(balance_a + balance_b == 200);
    CHECK(balance_a == (first == errc::ok ? 70u : 150u));
  }
}
