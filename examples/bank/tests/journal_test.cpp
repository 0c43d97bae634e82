// The journal of examples/bank/journal.hpp: order, group commit, reopening,
// refusal of files that are not a journal, and what survives a SIGKILL.
#include "bank/journal.hpp"
#include "files.hpp"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace fs = std::filesystem;
using bank::durable::journal;
using bank::durable::record;
using bank::durable::storage_error;

using bank_test::read_all;
using bank_test::run_sql;
using bank_test::temp_dir;

std::vector<std::pair<std::uint64_t, std::string>> all_records(const journal& j) {
  std::vector<std::pair<std::uint64_t, std::string>> out;
  j.replay(0, [&out](std::uint64_t seq, std::uint32_t, std::string_view data) {
    out.emplace_back(seq, std::string(data));
  });
  return out;
}

}  // namespace

TEST_CASE("journal: appends from 4 threads are committed in groups, each thread's in order",
          "[journal]") {
  temp_dir dir;
  constexpr int threads = 4;
  constexpr int per_thread = 2000;
  {
    journal j(dir.file("j.db"), bank::durable::sync_mode::normal);
    std::vector<std::thread> ts;
    std::vector<std::vector<courier::future<std::uint64_t>>> futures(threads);
    for (int t = 0; t < threads; ++t)
      ts.emplace_back([&, t] {
        for (int i = 0; i < per_thread; ++i)
          futures[static_cast<std::size_t>(t)].push_back(j.append(
              record{static_cast<std::uint32_t>(t), std::to_string(t) + ":" + std::to_string(i)}));
      });
    for (auto& t : ts) t.join();
    std::set<std::uint64_t> seqs;
    for (auto& fs_of_thread : futures) {
      std::uint64_t previous = 0;
      for (auto& f : fs_of_thread) {
        const std::uint64_t seq = f.get();
        CHECK(seq > previous);  // a thread's appends keep their order
        previous = seq;
        seqs.insert(seq);
      }
    }
    CHECK(seqs.size() == threads * per_thread);
    CHECK(*seqs.begin() == 1);
    CHECK(*seqs.rbegin() == threads * per_thread);
    const journal::stats s = j.counters();
    CHECK(s.records == threads * per_thread);
    CHECK(s.batches >= 1);
    CHECK(s.batches <= s.records);
    const auto records = all_records(j);
    REQUIRE(records.size() == threads * per_thread);
    for (std::size_t i = 0; i < records.size(); ++i) CHECK(records[i].first == i + 1);
  }
}

TEST_CASE("journal: records survive reopening, and numbering goes on", "[journal]") {
  temp_dir dir;
  const std::string path = dir.file("j.db");
  {
    journal j(path);
    CHECK(j.append(record{7, "first"}).get() == 1);
    CHECK(j.append(record{8, std::string("sec\0ond", 7)}).get() == 2);
  }
  journal j(path);
  std::vector<std::string> seen;
  std::vector<std::uint32_t> kinds;
  j.replay(0, [&](std::uint64_t, std::uint32_t kind, std::string_view data) {
    kinds.push_back(kind);
    seen.emplace_back(data);
  });
  CHECK(kinds == std::vector<std::uint32_t>{7, 8});
  CHECK(seen == std::vector<std::string>{"first", std::string("sec\0ond", 7)});
  CHECK(j.append(record{9, "third"}).get() == 3);
  std::vector<std::uint64_t> after_one;
  j.replay(1,
           [&](std::uint64_t seq, std::uint32_t, std::string_view) { after_one.push_back(seq); });
  CHECK(after_one == std::vector<std::uint64_t>{2, 3});
}

TEST_CASE("journal: a file that is not a journal is refused by name and left untouched",
          "[journal]") {
  temp_dir dir;
  SECTION("not SQLite at all") {
    const std::string path = dir.file("foreign.txt");
    {
      std::ofstream out(path, std::ios::binary);
      for (int i = 0; i < 200; ++i) out << "these are not the pages you are looking for\n";
    }
    const std::string before = read_all(path);
    try {
      journal j(path);
      FAIL("opened a foreign file");
    } catch (const storage_error& e) {
      CHECK(std::string(e.what()).find(path) != std::string::npos);
    }
    CHECK(read_all(path) == before);
  }
  SECTION("another application's database") {
    const std::string path = dir.file("other.db");
    run_sql(path, "CREATE TABLE t(x); INSERT INTO t VALUES (1);");
    const std::string before = read_all(path);
    try {
      journal j(path);
      FAIL("opened another application's database");
    } catch (const storage_error& e) {
      CHECK(std::string(e.what()).find("not a bank journal") != std::string::npos);
      CHECK(std::string(e.what()).find(path) != std::string::npos);
    }
    CHECK(read_all(path) == before);
  }
  SECTION("a journal of another format version") {
    const std::string path = dir.file("v3.db");
    { journal j(path); }
    run_sql(path, "PRAGMA user_version=99");
    try {
      journal j(path);
      FAIL("opened a journal of another version");
    } catch (const storage_error& e) {
      CHECK(std::string(e.what()).find("journal format 99") != std::string::npos);
    }
  }
}

TEST_CASE("journal: every append acknowledged before a SIGKILL is there after it", "[journal]") {
  temp_dir dir;
  const std::string path = dir.file("j.db");
  int acks[2];
  REQUIRE(pipe(acks) == 0);
  const pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    // The child appends without end, writing each acknowledged sequence
    // number to the pipe, until the parent kills it.
    close(acks[0]);
    journal j(path, bank::durable::sync_mode::full);
    for (std::uint64_t i = 0;; ++i) {
      std::vector<courier::future<std::uint64_t>> batch;
      for (int k = 0; k < 50; ++k) batch.push_back(j.append(record{1, std::to_string(i)}));
      for (auto& f : batch) {
        const std::uint64_t seq = f.get();
        if (write(acks[1], &seq, sizeof seq) != sizeof seq) _exit(3);
      }
    }
  }
  close(acks[1]);
  std::set<std::uint64_t> acknowledged;
  std::uint64_t seq = 0;
  while (acknowledged.size() < 2000 && read(acks[0], &seq, sizeof seq) == sizeof seq)
    acknowledged.insert(seq);
  kill(child, SIGKILL);
  while (read(acks[0], &seq, sizeof seq) == sizeof seq) acknowledged.insert(seq);
  close(acks[0]);
  int status = 0;
  waitpid(child, &status, 0);
  REQUIRE(WIFSIGNALED(status));
  REQUIRE(acknowledged.size() >= 2000);
  journal j(path);
  std::set<std::uint64_t> present;
  std::uint64_t expected = 1;
  bool dense = true;
  j.replay(0, [&](std::uint64_t s, std::uint32_t, std::string_view) {
    dense = dense && s == expected++;
    present.insert(s);
  });
  CHECK(dense);  // a committed prefix, with no gap
  for (std::uint64_t a : acknowledged) {
    if (present.count(a) == 0) FAIL("acknowledged " << a << " is missing");
  }
}

TEST_CASE("journal: write() and when_committed() wait once for many records, in order",
          "[journal]") {
  temp_dir dir;
  std::vector<std::pair<std::uint64_t, std::string>> seen;  // by the commit hook
  std::mutex seen_mutex;
  journal j(dir.file("j.db"), bank::durable::sync_mode::normal,
            [&](std::uint64_t first, std::vector<record>& records) {
              std::lock_guard<std::mutex> lock(seen_mutex);
              for (record& r : records) seen.emplace_back(first++, std::move(r.data));
            });
  std::uint64_t last = 0;
  for (int i = 0; i < 1000; ++i) last = j.write(record{2, "r" + std::to_string(i)});
  CHECK(last == 1000);
  CHECK(j.appended() == 1000);
  CHECK(j.when_committed(last).get() >= 1000);
  CHECK(j.committed() >= 1000);
  CHECK(j.when_committed(10).get() == 10);  // already committed: at once
  CHECK(j.counters().records == 1000);
  CHECK(j.counters().batches <= 1000);
  std::lock_guard<std::mutex> lock(seen_mutex);
  REQUIRE(seen.size() == 1000);
  for (std::size_t i = 0; i < seen.size(); ++i) {
    CHECK(seen[i].first == i + 1);
    CHECK(seen[i].second == "r" + std::to_string(i));
  }
}

TEST_CASE("journal: forgotten records leave replay, and numbering goes on past them", "[journal]") {
  temp_dir dir;
  const std::string path = dir.file("j.db");
  {
    journal j(path);
    for (int i = 1; i <= 10; ++i) j.write(record{1, std::to_string(i)});
    j.when_committed(10).get();
    j.forget_through(6);
    // The forgetting rides on the next commit.
    CHECK(j.append(record{1, "11"}).get() == 11);
    const auto left = all_records(j);
    REQUIRE(left.size() == 5);
    CHECK(left.front() == std::pair<std::uint64_t, std::string>{7, "7"});
    j.forget_through(11);  // everything
    CHECK(j.append(record{1, "12"}).get() == 12);
    j.forget_through(12);
    j.forget_through(3);  // already forgotten: nothing
  }
  journal j(path);
  CHECK(all_records(j).empty());
  CHECK(j.append(record{1, "13"}).get() == 13);  // not 1: the forgotten keep their numbers
}

TEST_CASE("journal: a batch missing between two others is refused at replay, by name",
          "[journal]") {
  temp_dir dir;
  const std::string path = dir.file("j.db");
  {
    journal j(path);
    for (std::uint64_t i = 1; i <= 3; ++i) CHECK(j.append(record{1, std::to_string(i)}).get() == i);
  }
  CHECK(run_sql(path, "DELETE FROM batches WHERE last = 2") == 1);
  journal j(path);
  CHECK_THROWS_WITH(all_records(j), Catch::Contains(path + ": records 2 to 2 are missing"));
  // Every row kept is checked, also those before the first record asked for.
  CHECK_THROWS_WITH(j.replay(2, [](std::uint64_t, std::uint32_t, std::string_view) {}),
                    Catch::Contains("are missing"));
}

TEST_CASE("journal: closed after fold_log_at_close(), the file alone holds every record",
          "[journal]") {
  temp_dir dir;
  const std::string path = dir.file("j.db");
  {
    journal j(path);
    for (int i = 1; i <= 20; ++i) j.write(record{1, std::to_string(i)});
    j.when_committed(20).get();
    CHECK(fs::exists(path + "-wal"));  // the commits are in the log
    j.fold_log_at_close();
  }
  CHECK(!fs::exists(path + "-wal"));
  fs::copy_file(path, dir.file("copy.db"));
  journal copy(dir.file("copy.db"));
  CHECK(all_records(copy).size() == 20);
}

TEST_CASE("journal: a copy of a new journal's file without its log is still a journal",
          "[journal]") {
  temp_dir dir;
  const std::string path = dir.file("j.db");
  journal j(path);  // open: its log is not folded in
  CHECK(j.append(record{1, "x"}).get() == 1);
  fs::copy_file(path, dir.file("copy.db"));
  // The copy lacks the record (it is in the log), but its header says what
  // it is: it is not taken for a new file and given the format again.
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(dir.file("copy.db").c_str(), &db) == SQLITE_OK);
  sqlite3_stmt* s = nullptr;
  REQUIRE(sqlite3_prepare_v2(db, "PRAGMA application_id", -1, &s, nullptr) == SQLITE_OK);
  REQUIRE(sqlite3_step(s) == SQLITE_ROW);
  CHECK(sqlite3_column_int64(s, 0) == journal::format.application_id);
  sqlite3_finalize(s);
  sqlite3_close(db);
}

TEST_CASE("journal: checksum() changes with any one byte of its input", "[journal]") {
  std::mt19937_64 rng(5);
  for (std::size_t size : {1u, 7u, 8u, 9u, 31u, 64u, 100u}) {
    std::string bytes(size, '\0');
    for (char& c : bytes) c = static_cast<char>(rng());
    const std::uint64_t sum = bank::durable::wire::checksum(42, bytes);
    for (std::size_t i = 0; i < size; ++i) {
      std::string changed = bytes;
      changed[i] = static_cast<char>(changed[i] ^ (1 << (rng() % 8)));
      CHECK(bank::durable::wire::checksum(42, changed) != sum);
    }
    CHECK(bank::durable::wire::checksum(43, bytes) != sum);         // another seed
    CHECK(bank::durable::wire::checksum(42, bytes + '\0') != sum);  // a byte more
  }
}

TEST_CASE("journal: a row changed since it was written, or another journal's, is refused",
          "[journal]") {
  temp_dir dir;
  const std::string path = dir.file("j.db");
  auto fill = [](const std::string& p) {
    journal j(p);
    for (std::uint64_t i = 1; i <= 3; ++i)
      CHECK(j.append(record{1, "amount " + std::to_string(i)}).get() == i);
    j.fold_log_at_close();
  };
  fill(path);
  SECTION("a byte of a record changed") {
    // The second row, re-encoded with one digit changed: it still reads as
    // a record, so only the checksum tells.
    std::string packed;
    bank::durable::wire::put(packed, 1);
    bank::durable::wire::put(packed, "amount 7");
    CHECK(run_sql(path, "UPDATE batches SET data = ?1 WHERE last = 2", &packed) == 1);
    journal j(path);
    CHECK_THROWS_WITH(all_records(j), Catch::Contains(path + ": the journal's batch ending at "
                                                             "record 2 is damaged") &&
                                          Catch::Contains("checksum"));
  }
  SECTION("the rows of another journal with the same records") {
    const std::string other = dir.file("other.db");
    fill(other);
    run_sql(path, "ATTACH '" + other +
                      "' AS other; DELETE FROM main.batches; "
                      "INSERT INTO main.batches SELECT * FROM other.batches;");
    journal j(path);
    CHECK_THROWS_WITH(all_records(j), Catch::Contains("written by another journal"));
    CHECK(journal(other).identity() != j.identity());
  }
}
