// sqlite_file.hpp: one SQLite database file of a given format, opened so
// that a file of another format is refused by name and left as it was.
//
// A format is an application_id and a user_version (SQLite's two header
// fields for this purpose) and the SQL that creates its tables. Opening
// reads the header before writing anything: a file that is not SQLite,
// another application's database, or another version of this format is
// refused with storage_error; so is a file with a damaged page
// (`PRAGMA quick_check`). An empty or new file is given the format.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

namespace bank::durable {

/// How hard a commit presses on the disk (SQLite's `synchronous` setting in
/// WAL mode): `full` flushes the log at every commit, so a committed record
/// survives a power loss on a disk that honours the flush; `normal` does
/// not flush at commit, so it survives a crash of the process but may lose
/// the last commits to a power loss.
enum class sync_mode { full, normal };

/// A durable file cannot be opened, read or written. what() names the file.
class storage_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// What makes a file one of ours.
struct file_format {
  std::int32_t application_id;
  std::int32_t version;
  const char* name;    ///< what the file is, for messages ("journal")
  const char* schema;  ///< SQL creating its tables in a new file
};

/// An open SQLite file of one format, in WAL mode.
///
/// Thread safety: none; one thread at a time (SQLite's own connection may be
/// used by one thread at a time here).
class sqlite_file {
 public:
  /// Opens or creates `path` as a file of `format`.
  /// @throws storage_error, naming the file, if it is not one (the file is
  /// then left as it was).
  sqlite_file(std::string path, const file_format& format, sync_mode sync)
      : path_(std::move(path)) {
    if (sqlite3_open_v2(path_.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) !=
        SQLITE_OK) {
      const std::string why = db_ != nullptr ? sqlite3_errmsg(db_) : "out of memory";
      sqlite3_close(db_);
      throw storage_error(path_ + ": cannot open (" + why + ")");
    }
    // Another process reading the file (a backup, the sqlite3 shell) may
    // hold a lock for a moment: wait for it rather than fail.
    sqlite3_busy_timeout(db_, 5000);
    try {
      check_and_prepare(format, sync);
    } catch (...) {
      sqlite3_close(db_);
      throw;
    }
  }

  sqlite_file(const sqlite_file&) = delete;
  sqlite_file& operator=(const sqlite_file&) = delete;
  ~sqlite_file() { sqlite3_close(db_); }

  sqlite3* db() const noexcept { return db_; }

  /// Closing will fold the write-ahead log into the file (SQLite's
  /// checkpoint at close, which then deletes the log), so that the closed
  /// file holds everything by itself. For a file its owner has read and
  /// accepted: until this is called, closing leaves the file as it was.
  void fold_log_at_close() noexcept {
    sqlite3_db_config(db_, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 0, nullptr);
  }
  const std::string& path() const noexcept { return path_; }

  /// Runs SQL without results. @throws storage_error.
  void exec(const std::string& sql) const {
    char* message = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &message) != SQLITE_OK) {
      const std::string text = message != nullptr ? message : "unknown error";
      sqlite3_free(message);
      throw storage_error(path_ + ": " + text);
    }
  }

  /// Like exec(), but returns why it failed (empty: it did not).
  std::string try_exec(const char* sql) const {
    if (sqlite3_exec(db_, sql, nullptr, nullptr, nullptr) == SQLITE_OK) return {};
    return sqlite3_errmsg(db_);
  }

  /// A prepared statement, finalized with its owner.
  class statement {
   public:
    statement(const sqlite_file& f, const char* sql) : file_(&f) {
      if (sqlite3_prepare_v2(f.db_, sql, -1, &s_, nullptr) != SQLITE_OK)
        f.fail("cannot prepare a statement");
    }
    statement(const statement&) = delete;
    statement& operator=(const statement&) = delete;
    ~statement() { sqlite3_finalize(s_); }
    sqlite3_stmt* get() const noexcept { return s_; }
    /// Steps once: true for a row, false when done. @throws storage_error.
    bool step() const {
      const int rc = sqlite3_step(s_);
      if (rc == SQLITE_ROW) return true;
      if (rc == SQLITE_DONE) return false;
      file_->fail("cannot read or write");
    }
    void reset() const noexcept {
      sqlite3_reset(s_);
      sqlite3_clear_bindings(s_);
    }
    std::int64_t int64(int column) const noexcept { return sqlite3_column_int64(s_, column); }
    std::string_view blob(int column) const noexcept {
      const auto* bytes = static_cast<const char*>(sqlite3_column_blob(s_, column));
      return {bytes == nullptr ? "" : bytes,
              static_cast<std::size_t>(sqlite3_column_bytes(s_, column))};
    }

   private:
    const sqlite_file* file_;
    sqlite3_stmt* s_ = nullptr;
  };

  /// Throws storage_error naming the file, `what` and SQLite's reason.
  [[noreturn]] void fail(const std::string& what) const {
    throw storage_error(path_ + ": " + what + " (" + sqlite3_errmsg(db_) + ")");
  }

 private:
  std::int64_t pragma(const char* name) const {
    const statement s(*this, (std::string("PRAGMA ") + name).c_str());
    return s.step() ? s.int64(0) : 0;
  }

  void check_and_prepare(const file_format& format, sync_mode sync) {
    // Closing never checkpoints the write-ahead log into the file: a file
    // refused, here or by its reader later (a record it cannot apply), must
    // be left as it was. (SQLite still checkpoints as the log grows, and
    // reads the log at the next open.)
    sqlite3_db_config(db_, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, nullptr);
    // The header first: a file that is not SQLite fails here, before any
    // write could change it.
    const std::string what = format.name;
    std::int64_t app = 0, version = 0, tables = 0;
    try {
      app = pragma("application_id");
      version = pragma("user_version");
      tables = pragma("schema_version");
    } catch (const storage_error&) {
      // Not a database at all, or one SQLite cannot read here (a read-only
      // directory, say): only the first is a verdict on the file.
      if ((sqlite3_extended_errcode(db_) & 0xff) == SQLITE_NOTADB)
        throw storage_error(path_ + ": not a bank " + what + " (" + sqlite3_errmsg(db_) + ")");
      throw storage_error(path_ + ": cannot read the " + what + " (" + sqlite3_errmsg(db_) + ")");
    }
    if (app == 0 && version == 0 && tables == 0) {
      // The header and the tables in one transaction: a crash halfway
      // leaves a file that is still new, not one refused forever. It is
      // written before the switch to WAL, into the file itself: a copy of
      // the file without its log is then never taken for a new file.
      exec("BEGIN; PRAGMA application_id=" + std::to_string(format.application_id) +
           "; PRAGMA user_version=" + std::to_string(format.version) + "; " + format.schema +
           "; COMMIT");
      exec("PRAGMA journal_mode=WAL");
    } else if (app != format.application_id) {
      throw storage_error(path_ + ": not a bank " + what + " (another application's database)");
    } else if (version != format.version) {
      throw storage_error(path_ + ": " + what + " format " + std::to_string(version) +
                          ", this program reads format " + std::to_string(format.version));
    } else {
      // A damaged page anywhere is refused now, not met halfway through a
      // read.
      const statement s(*this, "PRAGMA quick_check");
      if (!s.step() || s.blob(0) != "ok")
        throw storage_error(path_ + ": the " + what + " is damaged (quick_check failed)");
      exec("PRAGMA journal_mode=WAL");
    }
    exec(sync == sync_mode::full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
  }

  const std::string path_;
  sqlite3* db_ = nullptr;
};

}  // namespace bank::durable
