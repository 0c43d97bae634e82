// The ledger of a durable bank (examples/bank/ledger.hpp): every durable
// prefix of a busy bank's journal is a consistent bank; recovery voids what
// was in flight and keeps ids' outcomes; snapshots let the journal forget;
// damaged or foreign files and a directory in use are refused.
#include "bank/ledger.hpp"
#include "files.hpp"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace fs = std::filesystem;
using bank::errc;
using bank::durable::journal;
using bank::durable::ledger;
using bank::durable::ledger_state;
using bank::durable::storage_error;

using bank_test::read_all;
using bank_test::run_sql;
using bank_test::temp_dir;

ledger::options in(const temp_dir& d, std::uint64_t snapshot_batches = 0) {
  ledger::options o;
  o.dir = d.path.string();
  o.sync = bank::durable::sync_mode::normal;
  o.snapshot_batches = snapshot_batches;
  return o;
}

// Money a state holds: every balance, and every amount reserved in flight.
std::uint64_t money(const ledger_state& st) {
  std::uint64_t sum = 0;
  for (const auto& a : st.accounts) sum += a.balance;
  for (const auto& [t, p] : st.pending) sum += p.amount;
  return sum;
}

}  // namespace

TEST_CASE("ledger: every durable prefix of a busy bank's journal is a consistent bank",
          "[ledger]") {
  // Four threads move money at random between 16 accounts (and deposit,
  // withdraw and close some), so that transfers spend what other transfers
  // brought. Then the journal is replayed record by record: each prefix,
  // which is what a crash can leave, must apply without taking from an
  // account more than it holds, and hold exactly the money opened and
  // deposited minus withdrawn in it.
  temp_dir dir;
  constexpr int accounts = 16;
  std::vector<std::uint64_t> live(accounts);
  {
    courier::thread_pool pool{2};
    ledger l(in(dir));
    bank::bank b(pool, l, {});
    for (int i = 0; i < accounts; ++i)
      REQUIRE(b.try_open("a" + std::to_string(i), 100).get() == errc::ok);
    std::vector<std::thread> clients;
    for (int c = 0; c < 4; ++c)
      clients.emplace_back([&b, c] {
        std::mt19937 rng(static_cast<unsigned>(c));
        std::vector<courier::future<errc>> inflight;
        for (int i = 0; i < 1500; ++i) {
          const auto x = "a" + std::to_string(rng() % accounts);
          const auto y = "a" + std::to_string(rng() % accounts);
          const std::uint64_t amount = 1 + rng() % 60;
          switch (rng() % 20) {
            case 0:
              inflight.push_back(b.try_deposit(x, amount));
              break;
            case 1:
              inflight.push_back(b.try_withdraw(x, amount));
              break;
            default:
              inflight.push_back(b.try_transfer(x, y, amount));
          }
          if (inflight.size() == 16) {
            for (auto& f : inflight) f.get();
            inflight.clear();
          }
        }
        for (auto& f : inflight) f.get();
      });
    for (auto& t : clients) t.join();
    REQUIRE(b.try_close("a3").get() == errc::ok);
    for (int i = 0; i < accounts; ++i)
      live[static_cast<std::size_t>(i)] = b.balance("a" + std::to_string(i)).get();
    // Settles and refunds told after the last reply: give them their turn.
    pool.wait();
    pool.stop();
  }
  journal j(dir.file("journal.db"));
  ledger_state st;
  std::uint64_t brought = 0;  // opened and deposited, minus withdrawn
  std::uint64_t records = 0, transfers_posted = 0;
  j.replay(0, [&](std::uint64_t seq, std::uint32_t kind, std::string_view data) {
    const std::string why = st.apply(seq, kind, data);
    if (!why.empty()) FAIL("record " << seq << ": " << why);
    bank::durable::wire::reader r(data);
    std::uint64_t a = 0, amount = 0;
    std::string_view name;
    switch (static_cast<bank::durable::kind>(kind)) {
      case bank::durable::kind::open:
        r.get(a), r.get(name), r.get(amount);
        brought += amount;
        break;
      case bank::durable::kind::deposit:
        r.get(a), r.get(amount);
        brought += amount;
        break;
      case bank::durable::kind::withdraw:
        r.get(a), r.get(amount);
        brought -= amount;
        break;
      case bank::durable::kind::posted:
        ++transfers_posted;
        break;
      default:
        break;
    }
    ++records;
    if (money(st) != brought) FAIL("after record " << seq << " the money is not what came in");
  });
  CHECK(records > 6000);
  CHECK(transfers_posted > 1000);
  // The whole journal is the bank as it was left.
  CHECK(st.pending.empty());
  REQUIRE(st.accounts.size() == accounts);
  for (int i = 0; i < accounts; ++i)
    CHECK(st.accounts[static_cast<std::size_t>(i)].balance == live[static_cast<std::size_t>(i)]);
  CHECK(st.accounts[3].closed);
}

TEST_CASE("ledger: a Transfer message's coroutine numbers its transfer from the ledger",
          "[ledger]") {
  // The coroutine handler runs a whole transfer inside the source account;
  // its legs must carry a number of their own, as try_transfer()'s do, or
  // recovery could not tell the transfers apart (and refuses number 0).
  temp_dir dir;
  {
    courier::thread_pool pool{2};
    ledger l(in(dir));
    bank::bank b(pool, l, {});
    REQUIRE(b.try_open("a", 100).get() == errc::ok);
    REQUIRE(b.try_open("b", 0).get() == errc::ok);
    const auto from = std::get<bank::account_ref>(b.find("a").get());
    const auto to = std::get<bank::account_ref>(b.find("b").get());
    auto first = from.ask(bank::Transfer{to, 30});
    auto second = from.ask(bank::Transfer{to, 20});
    CHECK(first.get() == errc::ok);
    CHECK(second.get() == errc::ok);
    CHECK(from.ask(bank::Transfer{to, 80}).get() == errc::insufficient_funds);
    pool.wait();
    pool.stop();
  }
  journal j(dir.file("journal.db"));
  ledger_state st;
  std::vector<std::uint64_t> pending, posted;
  j.replay(0, [&](std::uint64_t seq, std::uint32_t kind, std::string_view data) {
    const std::string why = st.apply(seq, kind, data);
    if (!why.empty()) FAIL("record " << seq << ": " << why);
    bank::durable::wire::reader r(data);
    std::uint64_t transfer = 0;
    r.get(transfer);
    if (kind == static_cast<std::uint32_t>(bank::durable::kind::pending))
      pending.push_back(transfer);
    if (kind == static_cast<std::uint32_t>(bank::durable::kind::posted)) posted.push_back(transfer);
  });
  REQUIRE(pending.size() == 2);
  CHECK(pending[0] != 0);
  CHECK(pending[1] != 0);
  CHECK(pending[0] != pending[1]);
  CHECK(posted == pending);
  CHECK(st.pending.empty());
  REQUIRE(st.accounts.size() == 2);
  CHECK(st.accounts[0].balance == 50);
  CHECK(st.accounts[1].balance == 50);
}

TEST_CASE("ledger: recovery voids the transfers left in flight, once, and keeps ids' outcomes",
          "[ledger]") {
  temp_dir dir;
  const std::uint64_t names = bank::durable::names_hash("a", "b");
  {
    ledger l(in(dir));
    l.opened(1, "a", 100);
    l.opened(2, "b", 0);
    const std::uint64_t t1 = l.next_transfer(), t2 = l.next_transfer(), t3 = l.next_transfer();
    l.named(t1, "id-1", names, 30);
    l.pending(t1, 1, 30);  // reserved, never posted: a crash mid-transfer
    l.pending(t2, 1, 10);
    l.posted(t2, 2, 10);
    l.named(t3, "id-3", names, 500);
    l.refused(t3, errc::insufficient_funds);
    l.named(l.next_transfer(), "id-4", names, 1);  // named, never started
    l.log().when_committed(l.log().appended()).get();
  }  // (its last snapshot holds t1 in flight)
  for (int restart = 0; restart < 2; ++restart) {
    ledger l(in(dir));
    CHECK(l.recovered().voided == (restart == 0 ? 1u : 0u));
    ledger::restored r = l.take_restored();
    REQUIRE(r.accounts.size() == 2);
    CHECK(r.accounts[0].first == "a");
    CHECK(r.accounts[0].second.balance == 90);  // 100 - 10 sent; the 30 came back
    CHECK(r.accounts[1].second.balance == 10);
    std::map<std::string, errc> outcomes;
    for (auto& [id, e] : r.ids) {
      REQUIRE(e.outcome.has_value());
      CHECK(e.names == names);
      outcomes[id] = *e.outcome;
    }
    CHECK(outcomes == std::map<std::string, errc>{{"id-1", errc::interrupted},
                                                  {"id-3", errc::insufficient_funds},
                                                  {"id-4", errc::interrupted}});
    CHECK(l.next_transfer() > 4);  // never a number given before
  }
}

TEST_CASE("ledger: snapshots let the journal forget, and recovery replays only what follows",
          "[ledger]") {
  temp_dir dir;
  {
    ledger l(in(dir, 5));
    l.opened(1, "a", 0);
    // Ten groups of five batches, each group waited for: the snapshot
    // thread runs behind the commits, and may take many batches at once
    // (one snapshot for them all), but five more make the next one due.
    std::uint64_t saved = 0;
    for (int group = 0; group < 10; ++group) {
      for (int i = 0; i < 5; ++i) {
        l.deposited(1, 2);
        l.log().when_committed(l.log().appended()).get();  // one batch each
      }
      for (int i = 0; i < 2000 && l.counters().snapshots == saved; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      saved = l.counters().snapshots;
    }
    CHECK(l.counters().snapshots >= 2);  // (a snapshot may cover several batches)
    CHECK(l.counters().snapshot_seq > 0);
  }
  {
    journal j(dir.file("journal.db"));
    std::uint64_t left = 0;
    j.replay(0, [&left](std::uint64_t, std::uint32_t, std::string_view) { ++left; });
    CHECK(left < 51);  // forgotten: what a snapshot holds
  }
  ledger l(in(dir, 5));
  CHECK(l.recovered().snapshot_seq == 51);  // the last, saved at close
  CHECK(l.recovered().replayed == 0);
  CHECK(l.take_restored().accounts.at(0).second.balance == 100);
}

TEST_CASE("ledger: with no snapshots but at close, the journal forgets at the next start",
          "[ledger]") {
  temp_dir dir;
  {
    ledger l(in(dir, 0));
    l.opened(1, "a", 0);
    for (int i = 0; i < 10; ++i) {
      l.deposited(1, 3);
      l.log().when_committed(l.log().appended()).get();
    }
  }
  {
    ledger l(in(dir, 0));
    CHECK(l.recovered().snapshot_seq == 11);
    CHECK(l.recovered().replayed == 0);
    CHECK(l.counters().snapshots == 0);
  }
  journal j(dir.file("journal.db"));
  std::uint64_t left = 0;
  j.replay(0, [&left](std::uint64_t, std::uint32_t, std::string_view) { ++left; });
  CHECK(left == 0);
  CHECK(j.forgotten_at_open() == 11);
}

TEST_CASE("ledger: a journal that ends before the snapshot is refused with --sync full",
          "[ledger]") {
  temp_dir dir;
  {
    ledger l(in(dir));
    l.opened(1, "a", 7);
  }
  // The journal as it was then, and more records after it (kept by the
  // snapshot saved at close).
  const std::string early = (dir.path / "early.db").string();
  fs::copy_file(dir.file("journal.db"), early);
  {
    ledger l(in(dir));
    l.deposited(1, 5);
  }
  fs::remove(dir.file("journal.db"));
  fs::copy_file(early, dir.file("journal.db"));
  const std::string before = read_all(dir.file("journal.db"));
  ledger::options full = in(dir);
  full.sync = bank::durable::sync_mode::full;
  CHECK_THROWS_WITH(ledger(full), Catch::Contains(dir.file("journal.db") +
                                                  ": ends at record 1, before the snapshot's 2") &&
                                      Catch::Contains("--sync normal"));
  CHECK(read_all(dir.file("journal.db")) == before);
  // --sync normal allows a journal to lose its last commits to a power loss:
  // the snapshot, always flushed, is then the newest state.
  ledger l(in(dir));
  CHECK(l.recovered().snapshot_seq == 2);
  CHECK(l.take_restored().accounts.at(0).second.balance == 12);
}

TEST_CASE("ledger: a damaged or foreign file, or a directory in use, is refused by name",
          "[ledger]") {
  temp_dir dir;
  {
    ledger l(in(dir));
    l.opened(1, "a", 7);
  }
  SECTION("a directory in use") {
    ledger first(in(dir));
    try {
      ledger second(in(dir));
      FAIL("two ledgers on one directory");
    } catch (const bank::durable::directory_in_use& e) {
      CHECK(std::string(e.what()).find(dir.path.string()) != std::string::npos);
      CHECK(std::string(e.what()).find("pid " + std::to_string(getpid())) != std::string::npos);
    }
  }
  SECTION("a damaged snapshot") {
    const std::string path = dir.file("snapshot.db");
    run_sql(path, "UPDATE chunks SET data = x'ff'");
    const std::string before = read_all(path);
    try {
      ledger l(in(dir));
      FAIL("opened a damaged snapshot");
    } catch (const storage_error& e) {
      CHECK(std::string(e.what()).find(path + ": the snapshot is damaged") != std::string::npos);
    }
    CHECK(read_all(path) == before);
  }
  SECTION("a journal swapped for a text file") {
    const std::string path = dir.file("journal.db");
    fs::remove(path);
    fs::remove(dir.file("journal.db-wal"));
    fs::remove(dir.file("journal.db-shm"));
    { std::ofstream(path) << std::string(5000, 'x'); }
    try {
      ledger l(in(dir));
      FAIL("opened a text file as the journal");
    } catch (const storage_error& e) {
      CHECK(std::string(e.what()).find(path + ": not a bank journal") != std::string::npos);
    }
    CHECK(read_all(path) == std::string(5000, 'x'));
  }
  SECTION("a balance changed in the snapshot") {
    // The account's chunk re-encoded with 9 for 7: it still reads, so only
    // the checksum tells.
    const std::string path = dir.file("snapshot.db");
    CHECK(run_sql(path, "UPDATE chunks SET data = x'01610900' WHERE data = x'01610700'") == 1);
    CHECK_THROWS_WITH(ledger(in(dir)),
                      Catch::Contains(path + ": the snapshot is damaged (its checksum"));
  }
  SECTION("a snapshot of another data directory") {
    temp_dir other;
    {
      ledger l(in(other));
      l.opened(1, "a", 7);  // the same records as this one's
    }
    for (const char* f : {"snapshot.db", "snapshot.db-wal", "snapshot.db-shm"})
      fs::remove(dir.file(f));
    fs::copy_file(other.file("snapshot.db"), dir.file("snapshot.db"));
    const std::string before = read_all(dir.file("snapshot.db"));
    CHECK_THROWS_WITH(ledger(in(dir)),
                      Catch::Contains(dir.file("snapshot.db") + " and " + dir.file("journal.db") +
                                      ": the snapshot was saved beside another "
                                      "journal"));
    CHECK(read_all(dir.file("snapshot.db")) == before);
  }
  SECTION("an empty journal beside the snapshot") {
    fs::remove(dir.file("journal.db"));
    { std::ofstream(dir.file("journal.db")); }
    CHECK_THROWS_WITH(ledger(in(dir)), Catch::Contains("journal.db: empty, but the snapshot"));
    CHECK(fs::file_size(dir.file("journal.db")) == 0);
    CHECK(!fs::exists(dir.file("journal.db-wal")));
  }
  SECTION("a refused start in a new directory leaves nothing") {
    temp_dir fresh;
    fs::create_directory(fresh.path / "journal.db");  // not a file
    CHECK_THROWS_AS(ledger(in(fresh)), storage_error);
    std::vector<std::string> left;
    for (const auto& e : fs::directory_iterator(fresh.path))
      left.push_back(e.path().filename().string());
    CHECK(left == std::vector<std::string>{"journal.db"});
  }
  SECTION("a lost snapshot, once the journal has forgotten what it held") {
    { ledger l(in(dir)); }  // forgets, at start, what the snapshot holds
    for (const char* f : {"snapshot.db", "snapshot.db-wal", "snapshot.db-shm"})
      fs::remove(dir.file(f));
    const std::string before = read_all(dir.file("journal.db"));
    CHECK_THROWS_WITH(ledger(in(dir)),
                      Catch::Contains(dir.file("snapshot.db") + ": holds records up to 0") &&
                          Catch::Contains("missing or older"));
    CHECK(read_all(dir.file("journal.db")) == before);
    CHECK(!fs::exists(dir.file("snapshot.db")));  // the refused start made none
  }
  SECTION("a journal that does not reach the snapshot") {
    fs::remove(dir.file("journal.db"));
    fs::remove(dir.file("journal.db-wal"));
    fs::remove(dir.file("journal.db-shm"));
    CHECK_THROWS_WITH(ledger(in(dir)), Catch::Contains("journal.db: missing, but the snapshot"));
    CHECK(!fs::exists(dir.file("journal.db")));
  }
}
