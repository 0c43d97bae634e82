// files.hpp: a temporary directory, whole-file reads and SQL run on a file,
// for the tests of the durable bank (journal_test.cpp, ledger_test.cpp).
#pragma once

#include <sqlite3.h>
#include <stdlib.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <system_error>

namespace bank_test {

/// A fresh directory under the system's temporary one, removed at the end.
struct temp_dir {
  std::filesystem::path path;
  temp_dir() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "bank-durable-test-XXXXXX").string();
    REQUIRE(mkdtemp(pattern.data()) != nullptr);
    path = pattern;
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  ~temp_dir() {
    std::error_code ignored;
    std::filesystem::remove_all(path, ignored);
  }
  std::string file(const char* name) const { return (path / name).string(); }
};

/// Every byte of the file at `path` (empty if it cannot be read).
inline std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

/// Runs `sql` on the SQLite file at `path` (any number of statements; one,
/// with `blob` bound to ?1, if `blob` is given): how many rows the last
/// statement changed.
inline int run_sql(const std::string& path, const std::string& sql,
                   const std::string* blob = nullptr) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
  if (blob == nullptr) {
    REQUIRE(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr) == SQLITE_OK);
  } else {
    sqlite3_stmt* s = nullptr;
    REQUIRE(sqlite3_prepare_v2(db, sql.c_str(), -1, &s, nullptr) == SQLITE_OK);
    sqlite3_bind_blob(s, 1, blob->data(), static_cast<int>(blob->size()), SQLITE_TRANSIENT);
    const int stepped = sqlite3_step(s);
    sqlite3_finalize(s);
    REQUIRE(stepped == SQLITE_DONE);
  }
  const int changed = sqlite3_changes(db);
  sqlite3_close(db);
  return changed;
}

}  // namespace bank_test
