// ledger.hpp: the durable bank's ledger. The accounts write what they do
// to a journal (journal.hpp); on start the bank is rebuilt from the newest
// snapshot and the journal after it.
//
// Records. Each account actor writes its own records, inside its handlers
// (bank::ledger_sink): open, deposit, withdraw, close, and the legs of a
// transfer as TigerBeetle's two-phase transfers have them: pending (the
// source reserved the amount), posted (the target took it), voided (the
// source got it back). A transfer with a client's id adds named (the id,
// before the transfer starts) and, if it failed, refused (its outcome).
//
// Why every durable prefix is a consistent bank. The journal numbers records
// in the order they enter its queue, and a prefix of that order is what a
// crash can leave (commits happen in order). A record enters the queue inside
// the handler that made its change, before the handler's reply or any message
// it sends leaves. So if a change B happened because of a change A (B's actor
// heard of A, directly or through other actors), A was queued before the
// message that led to B was sent, and B after it was received: A is before
// B. Every prefix therefore holds, with each change, every change it
// depended on: a posted is preceded by its pending, and a transfer spending
// money a deposit brought finds that deposit before it. What a prefix can
// lack is the end of a transfer: a pending without its posted or voided.
// Such a transfer was never acknowledged (a reply waits for its posted to be
// committed), and recovery voids it: the amount goes back to its source.
// Replaying a prefix in order thus never takes more from an account than it
// holds, which apply() checks, record by record.
//
// Snapshots. A thread of the ledger applies every committed batch to its own
// copy of the state (the same apply() as recovery) and, every
// `snapshot_batches` batches, saves that copy, exact at a batch boundary, to
// snapshot.db; then the journal forgets the records the snapshot holds.
// Recovery reads the snapshot and replays only the journal after it.
#pragma once

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "bank.hpp"
#include "journal.hpp"
#include "sqlite_file.hpp"

namespace bank::durable {

/// The kinds of the bank's records.
enum class kind : std::uint32_t {
  open = 1,  ///< account, name, initial balance
  deposit,   ///< account, amount
  withdraw,  ///< account, amount
  close,     ///< account
  pending,   ///< transfer, source account, amount
  posted,    ///< transfer, target account, amount
  voided,    ///< transfer, source account, amount
  named,     ///< transfer, client's id, hash of the two names, amount
  refused,   ///< transfer, errc
};

/// A hash of a transfer's two account names, the same in every build (a
/// retry with an id is compared with the first attempt by it): FNV-1a over
/// the first name's length and the two names.
inline std::uint64_t names_hash(std::string_view from, std::string_view to) noexcept {
  std::uint64_t h = 0xcbf29ce484222325u;
  auto mix = [&h](unsigned char c) {
    h ^= c;
    h *= 0x100000001b3u;
  };
  for (int i = 0; i < 8; ++i) mix(static_cast<unsigned char>(from.size() >> (8 * i)));
  for (char c : from) mix(static_cast<unsigned char>(c));
  for (char c : to) mix(static_cast<unsigned char>(c));
  return h;
}

namespace detail {
inline void put_fields(std::string&) {}
template <class First, class... Rest>
void put_fields(std::string& out, First first, Rest... rest) {
  if constexpr (std::is_convertible_v<First, std::string_view>)
    wire::put(out, std::string_view(first));
  else
    wire::put(out, static_cast<std::uint64_t>(first));
  put_fields(out, rest...);
}
}  // namespace detail

/// A record of kind `k` whose fields are `fields` (numbers and strings).
template <class... Fields>
record make_record(kind k, Fields... fields) {
  record r{static_cast<std::uint32_t>(k), {}};
  detail::put_fields(r.data, fields...);
  return r;
}

/// What the records up to `seq` make: the accounts, the transfers still in
/// flight, and the transfer ids with their outcomes.
///
/// Thread safety: none; one thread at a time.
struct ledger_state {
  struct account_entry {
    std::string name;
    std::uint64_t balance = 0;
    bool closed = false;
  };
  struct pending_entry {
    std::uint64_t from = 0;
    std::uint64_t amount = 0;
  };
  struct id_entry {
    std::uint64_t names = 0;  ///< names_hash() of the two accounts
    std::uint64_t amount = 0;
    std::uint64_t transfer = 0;
    std::optional<errc> outcome;  ///< none while the transfer runs
  };

  std::uint64_t seq = 0;                                     ///< the last record applied
  std::uint64_t last_transfer = 0;                           ///< the highest transfer number seen
  std::vector<account_entry> accounts;                       ///< account n at n - 1
  std::unordered_map<std::uint64_t, pending_entry> pending;  ///< neither posted nor voided
  std::unordered_map<std::string, id_entry> ids;
  std::unordered_map<std::uint64_t, std::string> unresolved;  ///< transfer -> id, no outcome yet

  /// Applies record `s`; returns what is wrong with it (empty: nothing), and
  /// then changes nothing.
  std::string apply(std::uint64_t s, std::uint32_t k, std::string_view data) {
    wire::reader in(data);
    std::uint64_t a = 0, b = 0, c = 0;
    std::string_view text;
    auto ended = [&in] { return in.ok() && in.at_end(); };
    account_entry* acc = nullptr;
    auto account_at = [this, &acc](std::uint64_t n) {
      acc = n >= 1 && n <= accounts.size() ? &accounts[n - 1] : nullptr;
      return acc != nullptr;
    };
    switch (static_cast<kind>(k)) {
      case kind::open:
        if (!in.get(a) || !in.get(text) || !in.get(b) || !ended()) break;
        if (a != accounts.size() + 1)
          return "account " + std::to_string(a) + " opened out of order";
        if (b > max_balance) return "opening balance beyond the maximum";
        accounts.push_back({std::string(text), b, false});
        return done(s);
      case kind::deposit:
      case kind::withdraw:
        if (!in.get(a) || !in.get(b) || !ended()) break;
        if (!account_at(a)) return "no account " + std::to_string(a);
        if (static_cast<kind>(k) == kind::deposit) {
          if (b > max_balance - acc->balance) return "deposit beyond the maximum balance";
          acc->balance += b;
        } else {
          if (b > acc->balance) return "withdrawal of more than the balance";
          acc->balance -= b;
        }
        return done(s);
      case kind::close:
        if (!in.get(a) || !ended()) break;
        if (!account_at(a)) return "no account " + std::to_string(a);
        acc->closed = true;
        return done(s);
      case kind::pending:
        if (!in.get(a) || !in.get(b) || !in.get(c) || !ended()) break;
        if (!account_at(b)) return "no account " + std::to_string(b);
        if (a == 0 || pending.count(a) != 0)
          return "transfer " + std::to_string(a) + " reserved twice";
        if (c > acc->balance) return "reservation of more than the balance";
        acc->balance -= c;
        pending.emplace(a, pending_entry{b, c});
        last_transfer = std::max(last_transfer, a);
        return done(s);
      case kind::posted:
      case kind::voided: {
        if (!in.get(a) || !in.get(b) || !in.get(c) || !ended()) break;
        if (!account_at(b)) return "no account " + std::to_string(b);
        auto it = pending.find(a);
        if (it == pending.end() || it->second.amount != c)
          return "transfer " + std::to_string(a) + " completed without its reservation";
        const bool posted = static_cast<kind>(k) == kind::posted;
        if (!posted && it->second.from != b)
          return "transfer " + std::to_string(a) + " voided to another account";
        if (c > max_balance - acc->balance) return "deposit beyond the maximum balance";
        acc->balance += c;
        pending.erase(it);
        if (posted) resolve(a, errc::ok);
        return done(s);
      }
      case kind::named:
        if (!in.get(a) || !in.get(text) || !in.get(b) || !in.get(c) || !ended()) break;
        if (a == 0 || unresolved.count(a) != 0)
          return "transfer " + std::to_string(a) + " named twice";
        if (!ids.emplace(std::string(text), id_entry{b, c, a, std::nullopt}).second)
          return "a transfer id used twice";
        unresolved.emplace(a, std::string(text));
        last_transfer = std::max(last_transfer, a);
        return done(s);
      case kind::refused:
        if (!in.get(a) || !in.get(b) || !ended()) break;
        if (b == 0 || b > static_cast<std::uint64_t>(errc::interrupted))
          return "an unknown outcome";
        if (unresolved.count(a) == 0)
          return "an outcome for transfer " + std::to_string(a) + ", which has no id to resolve";
        resolve(a, static_cast<errc>(b));
        return done(s);
    }
    return in.ok() ? "a record of an unknown kind or with extra bytes" : "a truncated record";
  }

  /// The records that end every transfer left in flight, as recovery writes
  /// them: voided for each pending, then refused (interrupted) for each id
  /// still without an outcome. In transfer order.
  std::vector<record> interrupted() const {
    std::vector<record> out;
    std::map<std::uint64_t, pending_entry> in_order(pending.begin(), pending.end());
    for (const auto& [t, p] : in_order)
      out.push_back(make_record(kind::voided, t, p.from, p.amount));
    std::vector<std::uint64_t> ts;
    for (const auto& entry : unresolved) ts.push_back(entry.first);
    std::sort(ts.begin(), ts.end());
    for (std::uint64_t t : ts)
      out.push_back(make_record(kind::refused, t, static_cast<std::uint64_t>(errc::interrupted)));
    return out;
  }

 private:
  std::string done(std::uint64_t s) {
    seq = s;
    return {};
  }
  void resolve(std::uint64_t transfer, errc e) {
    auto it = unresolved.find(transfer);
    if (it == unresolved.end()) return;
    ids.at(it->second).outcome = e;
    unresolved.erase(it);
  }
};

/// snapshot.db: a ledger_state saved at a batch boundary, replaced whole by
/// each save (one transaction).
///
/// Thread safety: none; one thread at a time.
class snapshot_file {
 public:
  /// The format: application_id "crsn" and this user_version. `journal` is
  /// the identity of the journal the snapshot was saved beside; `sum` a
  /// checksum of the head's other numbers and every chunk, in order.
  static constexpr file_format format{
      0x6372736e, 2, "snapshot",
      "CREATE TABLE snapshot(id INTEGER PRIMARY KEY CHECK (id = 0), seq INTEGER NOT NULL, "
      "last_transfer INTEGER NOT NULL, accounts INTEGER NOT NULL, journal INTEGER NOT NULL, "
      "sum INTEGER NOT NULL);"
      "CREATE TABLE chunks(n INTEGER PRIMARY KEY, kind INTEGER NOT NULL, data BLOB NOT NULL);"};

  /// Opens or creates it. A snapshot is always written with sync_mode::full:
  /// the journal forgets what a snapshot holds once it is saved.
  /// @throws storage_error naming the file.
  explicit snapshot_file(std::string path) : file_(std::move(path), format, sync_mode::full) {}

  const std::string& path() const noexcept { return file_.path(); }
  /// See sqlite_file::fold_log_at_close().
  void fold_log_at_close() noexcept { file_.fold_log_at_close(); }

  /// The saved state (empty, at record 0, if none was saved), and the
  /// identity of the journal it was saved beside (none if none was saved).
  /// @throws storage_error if it cannot be read or is damaged.
  ledger_state load(std::optional<std::uint64_t>& journal_identity) const {
    ledger_state st;
    std::uint64_t accounts = 0, sum = 0;
    journal_identity.reset();
    {
      const sqlite_file::statement head(
          file_, "SELECT seq, last_transfer, accounts, journal, sum FROM snapshot");
      if (!head.step()) return st;
      st.seq = static_cast<std::uint64_t>(head.int64(0));
      st.last_transfer = static_cast<std::uint64_t>(head.int64(1));
      accounts = static_cast<std::uint64_t>(head.int64(2));
      journal_identity = static_cast<std::uint64_t>(head.int64(3));
      sum = static_cast<std::uint64_t>(head.int64(4));
    }
    std::uint64_t check = head_checksum(st.seq, st.last_transfer, accounts, *journal_identity);
    st.accounts.reserve(accounts);
    const sqlite_file::statement s(file_, "SELECT kind, data FROM chunks ORDER BY n");
    while (s.step()) {
      check = chunk_checksum(check, s.int64(0), s.blob(1));
      if (!load_chunk(st, s.int64(0), s.blob(1))) damaged("a chunk cannot be read");
    }
    if (check != sum) damaged("its checksum does not match");
    if (st.accounts.size() != accounts) damaged("accounts are missing");
    for (auto& [id, entry] : st.ids)
      if (!entry.outcome) st.unresolved.emplace(entry.transfer, id);
    return st;
  }

  /// Replaces the saved state with `st`, saved beside the journal whose
  /// identity is `journal_identity`. @throws storage_error.
  void save(const ledger_state& st, std::uint64_t journal_identity) {
    file_.exec("BEGIN");
    try {
      file_.exec("DELETE FROM chunks; DELETE FROM snapshot");
      const sqlite_file::statement insert(file_,
                                          "INSERT INTO chunks(n, kind, data) VALUES (?1, ?2, ?3)");
      std::int64_t n = 0;
      std::string chunk;
      std::uint64_t sum =
          head_checksum(st.seq, st.last_transfer, st.accounts.size(), journal_identity);
      auto flush = [&](std::int64_t k) {
        if (chunk.empty()) return;
        sum = chunk_checksum(sum, k, chunk);
        sqlite3_bind_int64(insert.get(), 1, ++n);
        sqlite3_bind_int64(insert.get(), 2, k);
        sqlite3_bind_blob(insert.get(), 3, chunk.data(), static_cast<int>(chunk.size()),
                          SQLITE_STATIC);
        insert.step();
        insert.reset();
        chunk.clear();
      };
      auto add = [&](std::int64_t k, auto... fields) {
        detail::put_fields(chunk, fields...);
        if (chunk.size() >= chunk_bytes) flush(k);
      };
      for (const auto& a : st.accounts)
        add(1, std::string_view(a.name), a.balance, a.closed ? 1 : 0);
      flush(1);
      for (const auto& [t, p] : st.pending) add(2, t, p.from, p.amount);
      flush(2);
      for (const auto& [id, e] : st.ids)
        add(3, std::string_view(id), e.names, e.amount, e.transfer,
            e.outcome ? static_cast<std::uint64_t>(*e.outcome) + 1 : 0);
      flush(3);
      file_.exec("INSERT INTO snapshot VALUES (0, " + std::to_string(st.seq) + ", " +
                 std::to_string(st.last_transfer) + ", " + std::to_string(st.accounts.size()) +
                 ", " + std::to_string(static_cast<std::int64_t>(journal_identity)) + ", " +
                 std::to_string(static_cast<std::int64_t>(sum)) + ")");
      file_.exec("COMMIT");
    } catch (...) {
      file_.try_exec("ROLLBACK");
      throw;
    }
  }

 private:
  static constexpr std::size_t chunk_bytes = 1 << 20;

  [[noreturn]] void damaged(const char* why) const {
    throw storage_error(file_.path() + ": the snapshot is damaged (" + why + ")");
  }

  static std::uint64_t head_checksum(std::uint64_t seq, std::uint64_t last_transfer,
                                     std::uint64_t accounts, std::uint64_t journal) noexcept {
    using wire::checksum;
    return checksum(checksum(checksum(journal, seq), last_transfer), accounts);
  }
  static std::uint64_t chunk_checksum(std::uint64_t h, std::int64_t kind,
                                      std::string_view data) noexcept {
    return wire::checksum(wire::checksum(h, static_cast<std::uint64_t>(kind)), data);
  }

  static bool load_chunk(ledger_state& st, std::int64_t k, std::string_view data) {
    wire::reader in(data);
    while (!in.at_end()) {
      std::string_view text;
      std::uint64_t a = 0, b = 0, c = 0, d = 0;
      if (k == 1) {
        if (!in.get(text) || !in.get(a) || !in.get(b) || a > max_balance || b > 1) return false;
        st.accounts.push_back({std::string(text), a, b == 1});
      } else if (k == 2) {
        if (!in.get(a) || !in.get(b) || !in.get(c)) return false;
        if (b == 0 || b > st.accounts.size() ||
            !st.pending.emplace(a, ledger_state::pending_entry{b, c}).second)
          return false;
      } else if (k == 3) {
        if (!in.get(text) || !in.get(a) || !in.get(b) || !in.get(c) || !in.get(d)) return false;
        if (d > static_cast<std::uint64_t>(errc::interrupted) + 1) return false;
        ledger_state::id_entry e{a, b, c, std::nullopt};
        if (d != 0) e.outcome = static_cast<errc>(d - 1);
        if (!st.ids.emplace(std::string(text), e).second) return false;
      } else {
        return false;
      }
    }
    return true;
  }

  sqlite_file file_;
};

/// Another process holds the data directory.
class directory_in_use : public storage_error {
 public:
  using storage_error::storage_error;
};

/// The ledger of a durable bank in a data directory: journal.db,
/// snapshot.db and a lock file, which keeps a second process out.
///
/// Thread safety: the ledger_sink members, named(), refused(),
/// next_transfer(), log() and counters() may be called from any thread at
/// once. Construct, take_restored() and destroy from one thread.
class ledger final : public ledger_sink {
 public:
  struct options {
    std::string dir = "bank-data";
    sync_mode sync = sync_mode::full;
    /// Save a snapshot every this many committed batches (0: only at close).
    std::uint64_t snapshot_batches = 10000;
  };

  /// What recovery found and did.
  struct recovery {
    std::uint64_t snapshot_seq = 0;  ///< the snapshot's last record (0: none)
    std::uint64_t replayed = 0;      ///< journal records applied after it
    std::uint64_t voided = 0;        ///< transfers left in flight, voided now
    std::uint64_t accounts = 0;
    std::uint64_t ids = 0;
    double seconds = 0;
  };

  /// What the bank starts with: its accounts (in number order) and its
  /// transfer ids, every one with its outcome.
  struct restored {
    std::vector<std::pair<std::string, account>> accounts;
    std::vector<std::pair<std::string, ledger_state::id_entry>> ids;
  };

  struct stats {
    journal::stats writes;           ///< the journal's
    std::uint64_t committed = 0;     ///< the last committed record
    std::uint64_t snapshots = 0;     ///< saved since start
    std::uint64_t snapshot_seq = 0;  ///< the newest snapshot's last record
  };

  /// Locks the directory (creating it if missing), reads the snapshot and
  /// the journal, voids the transfers left in flight (committing that), and
  /// starts the journal's writer and the snapshot thread.
  /// @throws directory_in_use if another process holds the directory;
  /// storage_error, naming the file, if a file cannot be read, is not ours,
  /// or is damaged (nothing is then changed).
  explicit ledger(options o) : opts_(std::move(o)) {
    const auto started = std::chrono::steady_clock::now();
    // A start that is refused leaves the directory as it was found: what it
    // created is removed, and a data file that was empty is empty again.
    std::vector<found> before{{opts_.dir}, {path("lock")}};
    for (const char* file : {"snapshot.db", "journal.db"})
      for (const char* suffix : {"", "-wal", "-shm"}) before.push_back({path(file) + suffix});
    for (found& f : before) f.look();
    lock_directory();
    try {
      recover();
    } catch (...) {
      journal_.reset();
      snapshots_.reset();
      if (lock_.fd >= 0) ::close(std::exchange(lock_.fd, -1));
      // The files first, the directory last (removed only if then empty).
      for (auto f = before.rbegin(); f != before.rend(); ++f) f->put_back();
      throw;
    }
    recovered_.seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    // The files were accepted: from now on closing them folds their logs in.
    journal_->fold_log_at_close();
    snapshots_->fold_log_at_close();
    // The journal keeps nothing the loaded snapshot holds (the last run may
    // have saved it after the journal could forget: at close, say).
    journal_->forget_through(recovered_.snapshot_seq);
    // From here on the snapshot thread keeps its copy in step with the commits.
    {
      std::lock_guard<std::mutex> lock(snap_mutex_);
      snapshotting_ = true;
      recovered_through_ = journal_->appended();
      forgetter_ = journal_.get();
    }
    snapshotter_ = std::thread([this] { snapshot_loop(); });
  }

  ledger(const ledger&) = delete;
  ledger& operator=(const ledger&) = delete;

  /// Commits what is queued, saves a last snapshot, and unlocks.
  ~ledger() override {
    {
      std::lock_guard<std::mutex> lock(snap_mutex_);
      forgetter_ = nullptr;
    }
    journal_.reset();  // commits the rest; its hook hands it to the snapshot thread
    {
      std::lock_guard<std::mutex> lock(snap_mutex_);
      stopping_ = true;
    }
    snap_wake_.notify_one();
    if (snapshotter_.joinable()) snapshotter_.join();
  }

  const recovery& recovered() const noexcept { return recovered_; }
  /// The accounts and ids recovery rebuilt (once: moved out).
  restored take_restored() { return std::move(restored_); }
  journal& log() noexcept { return *journal_; }
  const std::string& dir() const noexcept { return opts_.dir; }

  stats counters() const {
    stats s;
    s.writes = journal_->counters();
    s.committed = journal_->committed();
    std::lock_guard<std::mutex> lock(snap_mutex_);
    s.snapshots = snapshots_saved_;
    s.snapshot_seq = last_snapshot_seq_;
    return s;
  }

  // --- transfer ids (the server's registry writes these) ---------------------
  /// A transfer with the client's id `id` starts as number `transfer`.
  void named(std::uint64_t transfer, std::string_view id, std::uint64_t names,
             std::uint64_t amount) noexcept {
    put(make_record(kind::named, transfer, id, names, amount));
  }
  /// The transfer failed with `e` (its id's outcome).
  void refused(std::uint64_t transfer, errc e) noexcept {
    put(make_record(kind::refused, transfer, static_cast<std::uint64_t>(e)));
  }

  // --- ledger_sink -------------------------------------------------------------
  std::uint64_t next_transfer() noexcept override {
    return next_transfer_.fetch_add(1, std::memory_order_relaxed);
  }
  void opened(std::uint64_t a, std::string_view name, std::uint64_t initial) noexcept override {
    put(make_record(kind::open, a, name, initial));
  }
  void deposited(std::uint64_t a, std::uint64_t amount) noexcept override {
    put(make_record(kind::deposit, a, amount));
  }
  void withdrew(std::uint64_t a, std::uint64_t amount) noexcept override {
    put(make_record(kind::withdraw, a, amount));
  }
  void closed(std::uint64_t a) noexcept override { put(make_record(kind::close, a)); }
  void pending(std::uint64_t t, std::uint64_t from, std::uint64_t amount) noexcept override {
    put(make_record(kind::pending, t, from, amount));
  }
  void posted(std::uint64_t t, std::uint64_t to, std::uint64_t amount) noexcept override {
    put(make_record(kind::posted, t, to, amount));
  }
  void voided(std::uint64_t t, std::uint64_t from, std::uint64_t amount) noexcept override {
    put(make_record(kind::voided, t, from, amount));
  }

 private:
  std::string path(const char* file) const {
    return (std::filesystem::path(opts_.dir) / file).string();
  }

  // A record the journal refuses (it failed) is not lost silently: every
  // wait for the journal fails from then on, so nothing after it is
  // acknowledged. A record that cannot even be made (out of memory) ends
  // the process (noexcept): going on without it would break the prefix rule.
  void put(record r) noexcept { journal_->write(std::move(r)); }

  // A path as a start found it, to put it back if the start is refused.
  struct found {
    std::string path;
    std::filesystem::file_type type = std::filesystem::file_type::none;
    std::uintmax_t size = 0;

    void look() {
      std::error_code ec;
      type = std::filesystem::symlink_status(path, ec).type();
      if (type == std::filesystem::file_type::regular) size = std::filesystem::file_size(path, ec);
    }
    void put_back() const {
      std::error_code ignored;
      if (type == std::filesystem::file_type::not_found)
        std::filesystem::remove(path, ignored);  // a directory only if empty
      else if (type == std::filesystem::file_type::regular && size == 0)
        std::filesystem::resize_file(path, 0, ignored);
    }
  };

  // Reads the snapshot and the journal into shadow_ and restored_, and
  // voids the transfers left in flight. @throws storage_error.
  void recover() {
    snapshots_ = std::make_unique<snapshot_file>(path("snapshot.db"));
    std::optional<std::uint64_t> saved_beside;
    ledger_state st = snapshots_->load(saved_beside);
    recovered_.snapshot_seq = st.seq;
    last_snapshot_seq_ = st.seq;
    if (st.seq != 0) {
      found j{path("journal.db")};
      j.look();
      const bool missing = j.type == std::filesystem::file_type::not_found;
      if (missing || (j.type == std::filesystem::file_type::regular && j.size == 0))
        throw storage_error(path("journal.db") + (missing ? ": missing" : ": empty") +
                            ", but the snapshot holds records up to " + std::to_string(st.seq));
    }
    journal_ = std::make_unique<journal>(
        path("journal.db"), opts_.sync,
        [this](std::uint64_t first, std::vector<record>& rs) { committed_batch(first, rs); });
    journal_identity_ = journal_->identity();
    if (saved_beside && *saved_beside != journal_identity_)
      throw storage_error(path("snapshot.db") + " and " + journal_->path() +
                          ": the snapshot was saved beside another journal (one of the files, "
                          "or a -wal file beside it, comes from another data directory)");
    // The journal forgets only what a saved snapshot holds: if it forgot
    // more than this snapshot holds, the snapshot is not the one it was
    // saved with (lost, or an older copy), and records are missing.
    if (journal_->forgotten_at_open() > st.seq)
      throw storage_error(path("snapshot.db") + ": holds records up to " + std::to_string(st.seq) +
                          ", but the journal has already forgotten those up to " +
                          std::to_string(journal_->forgotten_at_open()) +
                          " (the snapshot is missing or older than the journal)");
    journal_->replay(st.seq, [&](std::uint64_t s, std::uint32_t k, std::string_view data) {
      const std::string why = st.apply(s, k, data);
      if (!why.empty())
        throw storage_error(journal_->path() + ": record " + std::to_string(s) + ": " + why);
      ++recovered_.replayed;
    });
    // A snapshot newer than the journal's end: the journal lost its last
    // commits. --sync normal allows that after a power loss (the snapshot,
    // always flushed, kept them), and the snapshot is then a consistent
    // state of its own to go on from, numbering after it. With --sync full
    // every commit was flushed before the snapshot could hold it, so the
    // journal was damaged (its log lost, or an old copy): records after
    // the snapshot may be missing too.
    if (journal_->appended() < st.seq) {
      const std::string what = journal_->path() + ": ends at record " +
                               std::to_string(journal_->appended()) + ", before the snapshot's " +
                               std::to_string(st.seq);
      if (opts_.sync == sync_mode::full)
        throw storage_error(what +
                            ", but every commit was flushed (--sync full): the journal is "
                            "damaged or an older copy (was its -wal file lost?). If the last "
                            "run used --sync normal and the machine lost power, start with "
                            "--sync normal to go on from the snapshot");
      std::fprintf(stderr, "bank: %s: its last commits were lost; going on from the snapshot\n",
                   what.c_str());
      journal_->skip_to(st.seq);
    }
    // The files' names are in the directory for good (SQLite flushes the
    // files, not the directory that names them).
    sync_directory();
    // What was in flight was never acknowledged: voided, durably, before the
    // first client is served.
    std::vector<record> settle = st.interrupted();
    recovered_.voided = st.pending.size();
    std::uint64_t seq = 0;
    for (record& r : settle) {
      const std::string why = st.apply(journal_->appended() + 1, r.kind, r.data);
      if (!why.empty()) throw storage_error(journal_->path() + ": recovery: " + why);
      seq = journal_->write(std::move(r));
    }
    if (seq != 0) journal_->when_committed(seq).get();
    next_transfer_.store(st.last_transfer + 1);
    recovered_.accounts = st.accounts.size();
    recovered_.ids = st.ids.size();
    for (const auto& a : st.accounts) {
      account acc;
      acc.balance = a.balance;
      acc.closed = a.closed;
      restored_.accounts.emplace_back(a.name, acc);
    }
    restored_.ids.reserve(st.ids.size());
    for (const auto& [id, e] : st.ids) restored_.ids.emplace_back(id, e);
    shadow_ = std::move(st);
  }

  void sync_directory() const {
    const int fd = ::open(opts_.dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    const bool ok = fd >= 0 && ::fsync(fd) == 0;
    const int err = errno;
    if (fd >= 0) ::close(fd);
    if (!ok)
      throw storage_error(opts_.dir + ": cannot flush the directory (" + std::strerror(err) + ")");
  }

  // The lock file, held while the ledger lives.
  struct directory_lock {
    int fd = -1;
    directory_lock() = default;
    directory_lock(const directory_lock&) = delete;
    directory_lock& operator=(const directory_lock&) = delete;
    ~directory_lock() {
      if (fd >= 0) ::close(fd);
    }
  };

  void lock_directory() {
    int& lock_fd_ = lock_.fd;
    std::error_code ec;
    std::filesystem::create_directories(opts_.dir, ec);
    if (ec)
      throw storage_error(opts_.dir + ": cannot create the data directory (" + ec.message() + ")");
    const std::string lock_path = path("lock");
    lock_fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (lock_fd_ < 0)
      throw storage_error(lock_path + ": cannot open (" + std::strerror(errno) + ")");
    if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
      const int err = errno;
      char pid[32] = {};
      const ssize_t n = ::pread(lock_fd_, pid, sizeof pid - 1, 0);
      ::close(lock_fd_);
      lock_fd_ = -1;
      if (err == EWOULDBLOCK)
        throw directory_in_use(opts_.dir + ": the data directory is in use by another process" +
                               (n > 0
                                    ? " (pid " + std::string(pid, static_cast<std::size_t>(n)) + ")"
                                    : std::string()));
      throw storage_error(lock_path + ": cannot lock (" + std::strerror(err) + ")");
    }
    const std::string pid = std::to_string(::getpid());
    if (::ftruncate(lock_fd_, 0) != 0 ||
        ::pwrite(lock_fd_, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size()))
      throw storage_error(lock_path + ": cannot write (" + std::strerror(errno) + ")");
  }

  // The journal's writer, after each commit: hands the batch over.
  void committed_batch(std::uint64_t first, std::vector<record>& records) {
    std::lock_guard<std::mutex> lock(snap_mutex_);
    // Recovery's own records are in the copy already (the writer may hand
    // them over after recovery has gone on).
    if (!snapshotting_ || first + records.size() - 1 <= recovered_through_) return;
    batches_.push_back({first, std::move(records)});
    snap_wake_.notify_one();
  }

  void snapshot_loop() {
    std::vector<std::pair<std::uint64_t, std::vector<record>>> todo;
    // Whether the copy holds records the saved snapshot does not, and the
    // batches applied since the last attempt to save it. What recovery
    // replayed is saved at once (in this thread, while clients are served),
    // so that the next start need not replay it again. A save that failed
    // (a full disk, say) is tried again after as many batches, not after
    // every commit; the journal keeps everything meanwhile.
    bool unsaved = recovered_.replayed + recovered_.voided != 0;
    std::uint64_t since = unsaved ? std::max<std::uint64_t>(opts_.snapshot_batches, 1) : 0;
    bool healthy = true;
    bool stop = false;
    for (;;) {
      const bool due = opts_.snapshot_batches != 0 && since >= opts_.snapshot_batches;
      if (healthy && unsaved && (due || stop)) {
        since = 0;
        try {
          snapshots_->save(shadow_, journal_identity_);
          unsaved = false;
          std::lock_guard<std::mutex> lock(snap_mutex_);
          ++snapshots_saved_;
          last_snapshot_seq_ = shadow_.seq;
          if (forgetter_ != nullptr) forgetter_->forget_through(shadow_.seq);
        } catch (const storage_error& e) {
          std::fprintf(stderr, "bank: cannot save a snapshot: %s\n", e.what());
        }
      }
      if (stop) return;
      {
        std::unique_lock<std::mutex> lock(snap_mutex_);
        snap_wake_.wait(lock, [this] { return !batches_.empty() || stopping_; });
        todo.swap(batches_);
        stop = stopping_ && todo.empty();
      }
      for (auto& [first, records] : todo) {
        std::uint64_t s = first;
        for (const record& r : records) {
          const std::string why = healthy ? shadow_.apply(s, r.kind, r.data) : std::string();
          if (!why.empty()) {
            // A record the live bank made and recovery would refuse: keep
            // the journal whole (no snapshot, nothing forgotten) and say so.
            std::fprintf(stderr, "bank: record %llu cannot be applied (%s); snapshots stop\n",
                         static_cast<unsigned long long>(s), why.c_str());
            healthy = false;
          }
          ++s;
        }
        ++since;
        unsaved = true;
      }
      todo.clear();
    }
  }

  options opts_;
  directory_lock lock_;
  recovery recovered_;
  restored restored_;
  std::atomic<std::uint64_t> next_transfer_{1};

  // The snapshot thread's side (declared before the journal, whose writer
  // hands it batches until the journal is gone).
  std::unique_ptr<snapshot_file> snapshots_;
  ledger_state shadow_;                 // the snapshot thread's, once it runs
  std::uint64_t journal_identity_ = 0;  // the journal's (the last save comes after it closed)
  mutable std::mutex snap_mutex_;
  std::condition_variable snap_wake_;
  std::vector<std::pair<std::uint64_t, std::vector<record>>> batches_;
  bool snapshotting_ = false;
  std::uint64_t recovered_through_ =
      0;                          // the last record recovery wrote (set before snapshotting_)
  journal* forgetter_ = nullptr;  // the journal, while it may be told to forget
  bool stopping_ = false;
  std::uint64_t snapshots_saved_ = 0;
  std::uint64_t last_snapshot_seq_ = 0;
  std::thread snapshotter_;

  std::unique_ptr<journal> journal_;
};

}  // namespace bank::durable
