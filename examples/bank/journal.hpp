// journal.hpp: an append-only journal of records on SQLite, committed in
// groups, for services whose state lives in actors.
//
// A record is a kind (what it means to its service) and bytes. append()
// queues it, from any thread, behind every record appended before it, and
// returns a future that completes with the record's sequence number once the
// transaction holding it is committed: durable as `sync` promises. One
// writer thread takes everything queued at once and commits it as one
// transaction (group commit), so a commit's cost, a disk flush, is shared by
// all the records that arrived while the previous one ran. replay() reads the
// committed records back in sequence order, for a service to rebuild its
// state at start.
//
// Why a thread of its own and not an actor: a commit blocks on the disk for
// as long as the disk takes, and a courier worker that blocks holds up every
// actor queued behind it. The writer blocks nobody but itself; the futures it
// completes carry the outcome back into the actors (a continuation attached
// inside an actor runs inside it).
//
// The file is a SQLite database in WAL mode whose application_id and
// user_version say it is a journal of this format; a file that is not (not
// SQLite, another application's database, another version, a damaged page)
// is refused at open with a journal_error that names it, and left untouched.
#pragma once

#include <courier.hpp>

#include <sqlite3.h>

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace bank::durable {

/// How hard a commit presses on the disk (SQLite's `synchronous` setting in
/// WAL mode): `full` flushes the log at every commit, so a committed record
/// survives a power loss on a disk that honours the flush; `normal` does
/// not flush at commit, so it survives a crash of the process but may lose
/// the last commits to a power loss.
enum class sync_mode { full, normal };

/// The journal cannot be opened, read or written. what() names the file.
class journal_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// One record: its kind and its bytes, both the service's business.
struct record {
  std::uint32_t kind = 0;
  std::string data;
};

/// An append-only journal with group commit (see the file comment).
///
/// Thread safety: append() may be called from any thread at once, also from
/// inside actors; replay() and counters() too, but replay() sees only what
/// was committed when it reads. Construct and destroy from one thread.
class journal {
 public:
  struct options {
    std::string path;  ///< the database file; created if missing
    sync_mode sync = sync_mode::full;
  };

  /// What the writer has done so far.
  struct stats {
    std::uint64_t records = 0;  ///< committed
    std::uint64_t batches = 0;  ///< transactions that committed them
  };

  /// The format: application_id "crjn" and this user_version.
  static constexpr std::int32_t application_id = 0x63726a6e;
  static constexpr std::int32_t format_version = 1;

  /// Opens (or creates) the journal at `o.path` and starts its writer.
  /// @throws journal_error, naming the file, if it cannot be opened or is
  /// not a journal of this format (the file is then left as it was).
  explicit journal(options o) : path_(std::move(o.path)) {
    open(o.sync);
    next_seq_ = last_seq();
    writer_ = std::thread([this] { write_loop(); });
  }

  journal(const journal&) = delete;
  journal& operator=(const journal&) = delete;

  /// Commits what is queued, then closes the file.
  ~journal() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_one();
    writer_.join();
    sqlite3_finalize(insert_);
    sqlite3_close(db_);
  }

  /// Queues `r`; the future completes with its sequence number (1, 2, ...,
  /// in the order of the appends) once it is committed, or fails with
  /// journal_error if the commit failed (then this and every later append
  /// fail: the journal stops taking records rather than leave a gap).
  courier::future<std::uint64_t> append(record r) {
    courier::promise<std::uint64_t> p;
    courier::future<std::uint64_t> f = p.get_future();
    bool was_empty = false;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (failed_ || stopping_) {
        p.set_exception(std::make_exception_ptr(
            journal_error(path_ + ": " + (failed_ ? failure_ : std::string("closed")))));
        return f;
      }
      was_empty = queue_.empty();
      queue_.push_back(pending{++next_seq_, std::move(r), std::move(p)});
    }
    if (was_empty) wake_.notify_one();
    return f;
  }

  /// Calls `f(seq, kind, data)` for every committed record with a sequence
  /// number above `after`, in order.
  /// @throws journal_error if the file cannot be read.
  template <class F>
  void replay(std::uint64_t after, F&& f) const {
    sqlite3_stmt* s = prepare("SELECT seq, kind, data FROM journal WHERE seq > ?1 ORDER BY seq");
    sqlite3_bind_int64(s, 1, static_cast<sqlite3_int64>(after));
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
      const auto* bytes = static_cast<const char*>(sqlite3_column_blob(s, 2));
      const std::string_view data(bytes == nullptr ? "" : bytes,
                                  static_cast<std::size_t>(sqlite3_column_bytes(s, 2)));
      f(static_cast<std::uint64_t>(sqlite3_column_int64(s, 0)),
        static_cast<std::uint32_t>(sqlite3_column_int64(s, 1)), data);
    }
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE) fail_with("cannot read the journal");
  }

  stats counters() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return stats_;
  }

  const std::string& path() const noexcept { return path_; }

 private:
  struct pending {
    std::uint64_t seq;
    record r;
    courier::promise<std::uint64_t> done;
  };

  [[noreturn]] void fail_with(const std::string& what) const {
    throw journal_error(path_ + ": " + what + " (" + sqlite3_errmsg(db_) + ")");
  }

  void exec(const char* sql) const {
    char* message = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &message) != SQLITE_OK) {
      const std::string text = message != nullptr ? message : "unknown error";
      sqlite3_free(message);
      throw journal_error(path_ + ": " + text);
    }
  }

  sqlite3_stmt* prepare(const char* sql) const {
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db_, sql, -1, &s, nullptr) != SQLITE_OK) fail_with("cannot read");
    return s;
  }

  std::int64_t pragma(const char* name) const {
    const std::string sql = std::string("PRAGMA ") + name;
    sqlite3_stmt* s = prepare(sql.c_str());
    std::int64_t v = 0;
    if (sqlite3_step(s) == SQLITE_ROW) v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return v;
  }

  void open(sync_mode sync) {
    if (sqlite3_open_v2(path_.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) !=
        SQLITE_OK) {
      const std::string why = db_ != nullptr ? sqlite3_errmsg(db_) : "out of memory";
      sqlite3_close(db_);
      throw journal_error(path_ + ": cannot open (" + why + ")");
    }
    try {
      // Reading the header first: a foreign file fails here, before any
      // write could change it.
      const std::int64_t app = pragma("application_id");
      const std::int64_t version = pragma("user_version");
      const std::int64_t tables = pragma("schema_version");
      if (app == 0 && version == 0 && tables == 0) {
        exec("PRAGMA journal_mode=WAL");
        exec(("PRAGMA application_id=" + std::to_string(application_id)).c_str());
        exec(("PRAGMA user_version=" + std::to_string(format_version)).c_str());
        exec(
            "CREATE TABLE journal(seq INTEGER PRIMARY KEY, kind INTEGER NOT NULL, "
            "data BLOB NOT NULL)");
      } else if (app != application_id) {
        throw journal_error(path_ + ": not a courier journal (another application's database)");
      } else if (version != format_version) {
        throw journal_error(path_ + ": journal format " + std::to_string(version) +
                            ", this program reads format " + std::to_string(format_version));
      } else {
        exec("PRAGMA journal_mode=WAL");
      }
      exec(sync == sync_mode::full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
      // A damaged page anywhere is refused now, not met halfway through a
      // replay.
      sqlite3_stmt* s = prepare("PRAGMA quick_check");
      const bool ok =
          sqlite3_step(s) == SQLITE_ROW &&
          std::string_view(reinterpret_cast<const char*>(sqlite3_column_text(s, 0))) == "ok";
      sqlite3_finalize(s);
      if (!ok) throw journal_error(path_ + ": the journal is damaged (quick_check failed)");
      insert_ = prepare("INSERT INTO journal(seq, kind, data) VALUES (?1, ?2, ?3)");
    } catch (const journal_error&) {
      sqlite3_close(db_);
      db_ = nullptr;
      throw;
    }
  }

  std::uint64_t last_seq() const {
    sqlite3_stmt* s = prepare("SELECT COALESCE(MAX(seq), 0) FROM journal");
    std::uint64_t v = 0;
    if (sqlite3_step(s) == SQLITE_ROW) v = static_cast<std::uint64_t>(sqlite3_column_int64(s, 0));
    sqlite3_finalize(s);
    return v;
  }

  // Commits `batch` as one transaction: empty, or why it could not.
  std::string commit(std::vector<pending>& batch) {
    if (sqlite3_exec(db_, "BEGIN", nullptr, nullptr, nullptr) != SQLITE_OK) return failed("begin");
    for (pending& p : batch) {
      sqlite3_bind_int64(insert_, 1, static_cast<sqlite3_int64>(p.seq));
      sqlite3_bind_int64(insert_, 2, static_cast<sqlite3_int64>(p.r.kind));
      sqlite3_bind_blob(insert_, 3, p.r.data.data(), static_cast<int>(p.r.data.size()),
                        SQLITE_STATIC);
      const int rc = sqlite3_step(insert_);
      sqlite3_reset(insert_);
      if (rc != SQLITE_DONE) {
        std::string why = failed("write");
        sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
        return why;
      }
    }
    if (sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK) {
      std::string why = failed("commit");
      sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
      return why;
    }
    return {};
  }

  std::string failed(const char* step) const {
    return std::string("cannot ") + step + " (" + sqlite3_errmsg(db_) + ")";
  }

  void write_loop() {
    std::vector<pending> batch;
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [this] { return !queue_.empty() || stopping_; });
        if (queue_.empty()) return;  // stopping, and everything committed
        batch.swap(queue_);
      }
      // Only this thread writes failed_ and failure_ (under the lock, for
      // append()), so it may read them without.
      const std::string why = failed_ ? failure_ : commit(batch);
      {
        std::lock_guard<std::mutex> lock(mutex_);
        if (why.empty()) {
          stats_.records += batch.size();
          ++stats_.batches;
        } else if (!failed_) {
          failed_ = true;
          failure_ = why;
        }
      }
      for (pending& p : batch) {
        if (why.empty())
          p.done.set_value(p.seq);
        else
          p.done.set_exception(std::make_exception_ptr(journal_error(path_ + ": " + why)));
      }
      batch.clear();
    }
  }

  const std::string path_;
  sqlite3* db_ = nullptr;
  sqlite3_stmt* insert_ = nullptr;

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<pending> queue_;  // appended, not yet taken by the writer
  std::uint64_t next_seq_ = 0;  // the last sequence number given out
  bool stopping_ = false;
  bool failed_ = false;
  std::string failure_;  // why failed_ (written by the writer)
  stats stats_;
  std::thread writer_;
};

}  // namespace bank::durable
