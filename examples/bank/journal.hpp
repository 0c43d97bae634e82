// journal.hpp: an append-only journal of records on SQLite, committed in
// groups, for services whose state lives in actors.
//
// A record is a kind (what it means to its service) and bytes. append() or
// write() queues it, from any thread, behind every record queued before it,
// and gives it the next sequence number. One writer thread takes everything
// queued at once and commits it as one transaction (group commit), so a
// commit's cost, a disk flush, is shared by all the records that arrived
// while the previous one ran. A record is durable (as `sync` promises) once
// its transaction commits, and commits happen in sequence order, so "every
// record up to n is durable" is one number, committed(). append() returns a
// future completed at that point; write() returns the sequence number, and
// when_committed(n) a future for any n, so that a service that appends many
// records waits once. replay() reads the committed records back in order,
// for a service to rebuild its state at start; forget_through() drops the
// oldest once the service has saved a snapshot of what they made.
//
// Why a thread of its own and not an actor: a commit blocks on the disk for
// as long as the disk takes, and a courier worker that blocks holds up every
// actor queued behind it. The writer blocks nobody but itself; the futures it
// completes carry the outcome back into the actors (a continuation attached
// inside an actor runs inside it).
//
// The file is a SQLite database in WAL mode (sqlite_file.hpp): a file that is
// not a journal of this format is refused at open, by name, and left as it
// was. Each transaction is one row holding its records packed, so a commit
// is one insert however many records it holds. Each row also holds a
// checksum of itself chained from the row before, starting from a number
// drawn at random when the file was made (the journal's identity): replay
// refuses a row changed since it was written, a row missing, and rows of
// another journal (a write-ahead log copied from elsewhere).
#pragma once

#include <courier.hpp>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "sqlite_file.hpp"

namespace bank::durable {

/// One record: its kind and its bytes, both the service's business.
struct record {
  std::uint32_t kind = 0;
  std::string data;
};

/// Little-endian base-128 integers and length-prefixed bytes, the encoding of
/// the journal's rows (and of the bank's records).
namespace wire {
inline void put(std::string& out, std::uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}
inline void put(std::string& out, std::string_view bytes) {
  put(out, static_cast<std::uint64_t>(bytes.size()));
  out.append(bytes);
}

/// A 64-bit checksum of `bytes`, going on from `h`. Each step is a bijection
/// of the state, so a change within any one 8-byte word of the input always
/// changes the result (and more changes do with odds of 2^-64 against).
/// Made to catch damage, not an attacker. Words are read in the machine's
/// byte order.
inline std::uint64_t checksum(std::uint64_t h, std::uint64_t word) noexcept {
  h = (h ^ word) * 0x9e3779b97f4a7c15u;
  return h ^ (h >> 32);
}
inline std::uint64_t checksum(std::uint64_t h, std::string_view bytes) noexcept {
  std::size_t i = 0;
  for (std::uint64_t word = 0; i + 8 <= bytes.size(); i += 8) {
    std::memcpy(&word, bytes.data() + i, 8);
    h = checksum(h, word);
  }
  std::uint64_t tail = 0;
  if (i < bytes.size()) std::memcpy(&tail, bytes.data() + i, bytes.size() - i);
  return checksum(checksum(h, tail), static_cast<std::uint64_t>(bytes.size()));
}

/// Reads what put() wrote; every read fails (returns false) past the end or
/// on a malformed number, and stays failed.
class reader {
 public:
  explicit reader(std::string_view in) : in_(in) {}
  bool get(std::uint64_t& v) {
    v = 0;
    for (unsigned shift = 0; ok_ && shift < 64; shift += 7) {
      if (in_.empty()) break;
      const auto byte = static_cast<unsigned char>(in_.front());
      in_.remove_prefix(1);
      v |= static_cast<std::uint64_t>(byte & 0x7f) << shift;
      if ((byte & 0x80) == 0) return true;
    }
    ok_ = false;
    return false;
  }
  bool get(std::string_view& bytes) {
    std::uint64_t n = 0;
    if (!get(n) || n > in_.size()) return ok_ = false;
    bytes = in_.substr(0, static_cast<std::size_t>(n));
    in_.remove_prefix(static_cast<std::size_t>(n));
    return true;
  }
  bool ok() const noexcept { return ok_; }
  bool at_end() const noexcept { return in_.empty(); }

 private:
  std::string_view in_;
  bool ok_ = true;
};
}  // namespace wire

/// An append-only journal with group commit (see the file comment).
///
/// Thread safety: append(), write(), appended(), committed(),
/// when_committed(), forget_through() and counters() may be called from any
/// thread at once, also from inside actors. replay() reads the file on the
/// caller's thread: call it before the first append, or from one thread at a
/// time. Construct and destroy from one thread.
class journal {
 public:
  /// Called on the writer thread after each commit, with the sequence number
  /// of the first record and the records (moved out: the callee may keep
  /// them). Must not append.
  using commit_hook = std::function<void(std::uint64_t first, std::vector<record>& records)>;

  /// What the writer has done so far.
  struct stats {
    std::uint64_t records = 0;  ///< committed
    std::uint64_t batches = 0;  ///< transactions that committed them
  };

  /// The format: application_id "crjn" and this user_version. `forgotten`
  /// holds the last record forgotten, the checksum of the last row deleted
  /// with it (the identity while none was), and the identity.
  static constexpr file_format format{
      0x63726a6e, 3, "journal",
      "CREATE TABLE batches(last INTEGER PRIMARY KEY, count INTEGER NOT NULL, "
      "data BLOB NOT NULL, sum INTEGER NOT NULL);"
      "CREATE TABLE forgotten(id INTEGER PRIMARY KEY CHECK (id = 0), through INTEGER NOT NULL, "
      "sum INTEGER NOT NULL, identity INTEGER NOT NULL);"
      "INSERT INTO forgotten VALUES (0, 0, 0, random());"
      "UPDATE forgotten SET sum = identity;"};

  /// Opens (or creates) the journal at `path` (a database file) and starts
  /// its writer, which calls `on_commit`, if given, after each commit.
  /// @throws storage_error, naming the file, if it cannot be opened or is
  /// not a journal of this format (the file is then left as it was).
  explicit journal(std::string path, sync_mode sync = sync_mode::full, commit_hook on_commit = {})
      : file_(std::move(path), format, sync),
        insert_(file_, "INSERT INTO batches(last, count, data, sum) VALUES (?1, ?2, ?3, ?4)"),
        on_commit_(std::move(on_commit)) {
    const sqlite_file::statement head(
        file_,
        "SELECT MAX(COALESCE((SELECT MAX(last) FROM batches), 0), through), through, "
        "COALESCE((SELECT sum FROM batches ORDER BY last DESC LIMIT 1), sum), identity "
        "FROM forgotten");
    if (!head.step())
      throw storage_error(file_.path() + ": the journal is damaged (its header row is missing)");
    next_seq_ = static_cast<std::uint64_t>(head.int64(0));
    forgotten_at_open_ = static_cast<std::uint64_t>(head.int64(1));
    chain_ = static_cast<std::uint64_t>(head.int64(2));
    identity_ = static_cast<std::uint64_t>(head.int64(3));
    committed_.store(next_seq_);
    appended_.store(next_seq_);
    writer_ = std::thread([this] { write_loop(); });
  }

  journal(const journal&) = delete;
  journal& operator=(const journal&) = delete;

  /// Commits what is queued, then closes the file (folding its log into it
  /// if fold_log_at_close() was called).
  ~journal() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_one();
    writer_.join();
    if (fold_at_close_.load(std::memory_order_acquire)) file_.fold_log_at_close();
  }

  /// The service has read the journal and goes on with it: closing will
  /// fold the write-ahead log into the file, so that the closed file holds
  /// every record by itself. Until then, closing leaves the file's bytes as
  /// they were found (a service that refuses what it replayed changes
  /// nothing).
  void fold_log_at_close() noexcept { fold_at_close_.store(true, std::memory_order_release); }

  /// Queues `r`; the future completes with its sequence number (1, 2, ...,
  /// in the order of the appends) once it is committed, or fails with
  /// storage_error if the commit failed (then this and every later record
  /// fail: the journal stops taking records rather than leave a gap).
  courier::future<std::uint64_t> append(record r) {
    const std::uint64_t seq = write(std::move(r));
    return when_committed(seq);
  }

  /// Queues `r` and returns its sequence number, without a future: see
  /// when_committed(). 0 if the journal has failed or is closing (the
  /// record is not kept; when_committed() says why).
  std::uint64_t write(record r) {
    bool was_empty = false;
    std::uint64_t seq = 0;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (failed_ || stopping_) return 0;
      was_empty = queue_.empty();
      seq = ++next_seq_;
      queued_bytes_ += r.data.size() + 16;
      queue_.push_back(std::move(r));
      appended_.store(seq, std::memory_order_release);
    }
    if (was_empty) wake_.notify_one();
    return seq;
  }

  /// The sequence number of the last record queued.
  std::uint64_t appended() const noexcept { return appended_.load(std::memory_order_acquire); }
  /// The journal has failed: it takes no more records (write() returns 0,
  /// every wait fails).
  bool failed() const noexcept { return failed_flag_.load(std::memory_order_acquire); }

  /// Every record up to this sequence number is committed.
  std::uint64_t committed() const noexcept { return committed_.load(std::memory_order_acquire); }

  /// A future completed with `seq` once every record up to `seq` is
  /// committed (at once if they are), or failed with storage_error if the
  /// journal failed, or closed, before that. when_committed(write(r)) fails if
  /// write() refused `r` (returned 0).
  courier::future<std::uint64_t> when_committed(std::uint64_t seq) {
    courier::promise<std::uint64_t> p;
    courier::future<std::uint64_t> f = p.get_future();
    std::lock_guard<std::mutex> lock(mutex_);
    const std::uint64_t now = committed_.load(std::memory_order_relaxed);
    // What is committed stays so, even once the journal has failed.
    if (seq == 0 ? failed_ || stopping_ : seq > now && failed_)
      p.set_exception(failure());
    else if (seq <= now)
      p.set_value(seq);
    else
      waiters_.emplace(seq, std::move(p));
    return f;
  }

  /// Drops the records up to `seq` from the file (at the writer's next
  /// commit, or soon): the service has saved what they made elsewhere.
  /// replay() no longer returns them; numbering goes on.
  void forget_through(std::uint64_t seq) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (seq <= forget_through_) return;
      forget_through_ = seq;
    }
    wake_.notify_one();
  }

  /// The records up to this sequence number had been forgotten when the
  /// journal was opened (forget_through()).
  std::uint64_t forgotten_at_open() const noexcept { return forgotten_at_open_; }

  /// A number drawn at random when the file was made: what a service's
  /// other files can name to say which journal they belong to.
  std::uint64_t identity() const noexcept { return identity_; }

  /// Numbers the next record `seq` + 1, as if every record up to `seq` had
  /// been written and forgotten: for a service whose saved state is newer
  /// than the journal's end (the journal lost its last commits, which its
  /// sync mode allowed). Call before the first write; does nothing if
  /// `seq` is not beyond appended(). @throws storage_error.
  void skip_to(std::uint64_t seq) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (seq <= next_seq_) return;
    // The rows left are all before `seq`: forgotten with it.
    file_.exec("BEGIN; " + forget_sql(seq) + "; COMMIT");
    next_seq_ = seq;
    forgotten_ = forget_through_ = seq;
    appended_.store(seq, std::memory_order_release);
    committed_.store(seq, std::memory_order_release);
  }

  /// Calls `f(seq, kind, data)` for every committed record with a sequence
  /// number above `after`, in order. Every row kept is checked, also those
  /// before `after`.
  /// @throws storage_error if the file cannot be read, a row is damaged or
  /// missing, or a row is not this journal's.
  template <class F>
  void replay(std::uint64_t after, F&& f) const {
    const sqlite_file::statement head(file_, "SELECT through, sum FROM forgotten");
    if (!head.step())
      throw storage_error(file_.path() + ": the journal is damaged (its header row is missing)");
    const auto through = static_cast<std::uint64_t>(head.int64(0));
    std::uint64_t chain = static_cast<std::uint64_t>(head.int64(1));
    // A row may hold forgotten records and kept ones: those are skipped.
    after = std::max(after, through);
    const sqlite_file::statement s(file_,
                                   "SELECT last, count, data, sum FROM batches ORDER BY last");
    // Each row goes on where the one before it ended; the first, where the
    // last one forgotten ended, or before. A gap is records lost.
    std::uint64_t ended = through;
    bool first = true;
    while (s.step()) {
      const auto last = static_cast<std::uint64_t>(s.int64(0));
      const auto count = static_cast<std::uint64_t>(s.int64(1));
      auto damaged = [&](const char* why) {
        return storage_error(file_.path() + ": the journal's batch ending at record " +
                             std::to_string(last) + " is damaged (" + why + ")");
      };
      if (count == 0 || count > last) throw damaged("a bad record count");
      if (first ? last - count > ended : last - count != ended)
        throw storage_error(file_.path() + ": records " + std::to_string(ended + 1) + " to " +
                            std::to_string(last - count) + " are missing from the journal");
      first = false;
      ended = last;
      chain = row_checksum(chain, last, count, s.blob(2));
      if (chain != static_cast<std::uint64_t>(s.int64(3)))
        throw damaged(
            "its checksum does not match: changed since it was written, or written "
            "by another journal");
      if (last <= after) continue;
      wire::reader in(s.blob(2));
      std::uint64_t seq = last - count;
      for (std::uint64_t i = 0; i < count; ++i) {
        std::uint64_t kind = 0;
        std::string_view data;
        if (!in.get(kind) || !in.get(data) || kind > UINT32_MAX) break;
        if (++seq > after) f(seq, static_cast<std::uint32_t>(kind), data);
      }
      if (!in.ok() || !in.at_end() || seq != last) throw damaged("a record cannot be read");
    }
  }

  stats counters() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return stats_;
  }

  const std::string& path() const noexcept { return file_.path(); }

 private:
  std::exception_ptr failure() const {
    return std::make_exception_ptr(
        storage_error(file_.path() + ": " + (failed_ ? failure_ : std::string("closed"))));
  }

  // A row's checksum, going on from the one before it.
  static std::uint64_t row_checksum(std::uint64_t before, std::uint64_t last, std::uint64_t count,
                                    std::string_view data) noexcept {
    return wire::checksum(wire::checksum(wire::checksum(before, last), count), data);
  }

  // SQL deleting the rows whose records are all at or before `through`,
  // and noting it; the chain of checksums goes on, at the next replay, from
  // the last row deleted.
  static std::string forget_sql(std::uint64_t through) {
    const std::string t = std::to_string(through);
    return "UPDATE forgotten SET through = MAX(through, " + t +
           "), sum = COALESCE((SELECT sum FROM batches WHERE last <= " + t +
           " ORDER BY last DESC LIMIT 1), sum); DELETE FROM batches WHERE last <= " + t;
  }

  // Commits `batch`, whose last record is `last`, and any forgetting asked
  // for, as one transaction: empty, or why it could not.
  std::string commit(const std::vector<record>& batch, std::uint64_t last, std::uint64_t forget) {
    packed_.clear();
    for (const record& r : batch) {
      wire::put(packed_, r.kind);
      wire::put(packed_, r.data);
    }
    const std::uint64_t sum = row_checksum(chain_, last, batch.size(), packed_);
    std::string why = file_.try_exec("BEGIN");
    if (!why.empty()) return "cannot begin (" + why + ")";
    if (forget != 0) {  // before the new row goes in, which it must not delete
      why = file_.try_exec(forget_sql(forget).c_str());
      if (!why.empty()) why = "cannot forget old records (" + why + ")";
    }
    if (why.empty() && !batch.empty()) {
      sqlite3_bind_int64(insert_.get(), 1, static_cast<sqlite3_int64>(last));
      sqlite3_bind_int64(insert_.get(), 2, static_cast<sqlite3_int64>(batch.size()));
      sqlite3_bind_int64(insert_.get(), 4, static_cast<sqlite3_int64>(sum));
      const int bound =
          sqlite3_bind_blob64(insert_.get(), 3, packed_.data(),
                              static_cast<sqlite3_uint64>(packed_.size()), SQLITE_STATIC);
      const int rc = bound == SQLITE_OK ? sqlite3_step(insert_.get()) : bound;
      if (rc != SQLITE_DONE) why = std::string("cannot write (") + sqlite3_errmsg(file_.db()) + ")";
      insert_.reset();
    }
    if (why.empty()) {
      why = file_.try_exec("COMMIT");
      if (!why.empty()) why = "cannot commit (" + why + ")";
    }
    if (!why.empty())
      file_.try_exec("ROLLBACK");
    else if (!batch.empty())
      chain_ = sum;
    return why;
  }

  // Takes what is queued into `batch` (empty): all of it, or, past
  // max_batch_bytes, the oldest records up to that size (at least one), the
  // rest for the next commit; a row stays well within SQLite's limits.
  void take_batch(std::vector<record>& batch) {
    if (queued_bytes_ <= max_batch_bytes) {
      batch.swap(queue_);
      queued_bytes_ = 0;
      return;
    }
    std::size_t n = 0, bytes = 0;
    while (n < queue_.size() && (n == 0 || bytes + queue_[n].data.size() + 16 <= max_batch_bytes))
      bytes += queue_[n++].data.size() + 16;
    batch.assign(std::make_move_iterator(queue_.begin()),
                 std::make_move_iterator(queue_.begin() + static_cast<std::ptrdiff_t>(n)));
    queue_.erase(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(n));
    queued_bytes_ -= bytes;
  }

  void write_loop() {
    std::vector<record> batch;
    for (;;) {
      std::uint64_t last = 0;
      std::uint64_t forget = 0;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock,
                   [this] { return !queue_.empty() || stopping_ || forget_through_ > forgotten_; });
        if (queue_.empty() && forget_through_ <= forgotten_) {
          // Stopping, and everything committed: fail whoever still waits.
          for (auto& [seq, p] : waiters_) p.set_exception(failure());
          waiters_.clear();
          return;
        }
        take_batch(batch);
        last = next_seq_ - queue_.size();
        if (forget_through_ > forgotten_) forget = forgotten_ = forget_through_;
      }
      // Only this thread writes failed_ and failure_ (under the lock), so it
      // may read them without.
      const std::string why = failed_ ? failure_ : commit(batch, last, forget);
      std::multimap<std::uint64_t, courier::promise<std::uint64_t>> done;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        if (why.empty()) {
          stats_.records += batch.size();
          if (!batch.empty()) ++stats_.batches;
          committed_.store(last, std::memory_order_release);
          auto end = waiters_.upper_bound(last);
          done.insert(std::make_move_iterator(waiters_.begin()), std::make_move_iterator(end));
          waiters_.erase(waiters_.begin(), end);
        } else {
          if (!failed_) {
            failed_ = true;
            failed_flag_.store(true, std::memory_order_release);
            failure_ = why;
          }
          done.swap(waiters_);
        }
      }
      for (auto& [seq, p] : done) {
        if (why.empty())
          p.set_value(seq);
        else
          p.set_exception(std::make_exception_ptr(storage_error(file_.path() + ": " + why)));
      }
      if (why.empty() && on_commit_ && !batch.empty()) on_commit_(last - batch.size() + 1, batch);
      batch.clear();
    }
  }

  // The most a commit takes from the queue (a record larger is committed alone).
  static constexpr std::size_t max_batch_bytes = 64u << 20;

  sqlite_file file_;
  sqlite_file::statement insert_;
  commit_hook on_commit_;
  std::string packed_;  // the batch being committed, encoded (writer only)

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<record> queue_;     // queued, not yet taken by the writer
  std::size_t queued_bytes_ = 0;  // about: each record's bytes, and 16 more
  std::uint64_t next_seq_ = 0;    // the last sequence number given out
  std::atomic<std::uint64_t> appended_{0};
  std::atomic<std::uint64_t> committed_{0};
  std::multimap<std::uint64_t, courier::promise<std::uint64_t>> waiters_;
  std::uint64_t forgotten_at_open_ = 0;
  std::uint64_t identity_ = 0;
  std::uint64_t chain_ = 0;           // the checksum of the last row (writer only, once running)
  std::uint64_t forget_through_ = 0;  // asked for
  std::uint64_t forgotten_ = 0;       // handed to a commit
  bool stopping_ = false;
  bool failed_ = false;
  std::atomic<bool> failed_flag_{false};  // failed_, for failed() without the lock
  std::atomic<bool> fold_at_close_{false};
  std::string failure_;  // why failed_ (written by the writer)
  stats stats_;
  std::thread writer_;
};

}  // namespace bank::durable
