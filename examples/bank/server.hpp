// server.hpp: `bank serve`, the bank as a network service that speaks the
// Redis protocol, so redis-cli, redis-benchmark and Redis client libraries
// are its clients.
//
// Everything runs inside actors spawned on one asio::io_context, run by
// options::threads threads. By default one: an event loop that waits on the
// sockets itself and runs the actors on the same thread, as Redis does, so
// that no request is handed from thread to thread. (On a
// courier::thread_pool, Asio's reactor waits on the sockets on a thread of
// its own and hands each completion to a worker: for requests of a few
// microseconds, a hand-off as costly as the request.) The actors:
// - the accounts and their directory (bank::bank);
// - one actor per connection (a `session`), which owns its socket: every read
//   and write completes on that actor's executor, so the session's buffers
//   and state need no lock, and no thread belongs to a connection;
// - a listener actor that owns the listening socket, counts the connections,
//   and drains them at shutdown;
// - the shards of the transfer-id registry, each an actor owning the ids
//   whose hash falls to it.
//
// A session executes its connection's commands one after another, in the
// order they arrived, as Redis does: each command sees the effects of the
// ones before it. Pipelined commands are read ahead into a fixed buffer, and
// their replies collect in an output buffer written in one system call.
// Backpressure is bounded bytes: the session reads only while its input
// buffer has room, and executes only while its output buffer holds less than
// a bound, so a client that sends without reading stalls itself and no one
// else (TCP flow control pushes back on it).
#pragma once

#include <courier.hpp>

#include <asio/bind_executor.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/write.hpp>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include "bank.hpp"
#include "ledger.hpp"
#include "metrics.hpp"
#include "per_thread.hpp"
#include "resp.hpp"

namespace bank::serve {

/// How the server runs (the flags of `bank serve`).
struct options {
  std::string bind = "127.0.0.1";
  std::uint16_t port = 6380;  ///< 0: a free port the system picks
  std::size_t threads = 1;    ///< threads running the event loop
  std::size_t max_clients = 10000;
  std::chrono::seconds idle_timeout{0};  ///< 0: never
  /// How long a graceful shutdown waits for clients to take their replies
  /// before it closes the connections that remain.
  std::chrono::seconds drain_limit{10};
  bool log_connections = true;  ///< one stderr line per connection opened and closed
  /// Keep nothing on disk: every balance is gone when the server stops.
  bool in_memory = false;
  /// Otherwise the ledger's directory, its sync mode and snapshot interval
  /// (ledger.hpp).
  durable::ledger::options ledger;
  /// Called (once, on a server thread) if the ledger fails to write: from
  /// then on nothing is acknowledged, and the server should stop.
  std::function<void(const std::string& why)> on_fatal;
};

/// Per-connection bounds: bytes read ahead, and replies waiting to be written.
inline constexpr std::size_t input_buffer_bytes = 64 * 1024;
inline constexpr std::size_t output_limit_bytes = 64 * 1024;
/// How long a closing connection waits for the client to close its side.
inline constexpr std::chrono::seconds linger_limit{2};
/// Replies held back for the command still running, to leave in one write.
inline constexpr std::size_t write_batch_bytes = 16 * 1024;
/// Account handles each worker thread remembers by name (a name never
/// changes its account, so no entry goes stale).
inline constexpr std::size_t account_cache_entries = 65536;
/// ... holding at most this many bytes of names (a name may be 16 KiB long).
inline constexpr std::size_t account_cache_name_bytes = 4 * 1024 * 1024;
/// The longest transfer id.
inline constexpr std::size_t max_id_bytes = 64;

/// What a command replies: `errc` (+OK, or -ERR with its description), an
/// integer, the totals of TOTAL, or a bulk string.
using reply = std::variant<errc, std::int64_t, ::bank::totals, std::string>;

// --- transfer ids ----------------------------------------------------------------

/// A transfer with a client-chosen id, sent to the id's shard.
struct IdTransfer {
  std::string id;
  std::string from;
  std::string to;
  std::uint64_t amount;
  /// The two accounts, resolved before, or why they could not be.
  std::variant<std::pair<account_ref, account_ref>, errc> accounts;
};

/// A shard of the transfer-id registry: every id whose hash falls to it, with
/// what its transfer came to. A transfer runs once per id; a retry, even
/// while the first attempt is still running, gets the first attempt's
/// outcome, and a retry that names other accounts or another amount gets
/// errc::id_conflict and changes nothing.
///
/// In a durable server the registry writes to the ledger, before the
/// transfer starts, that the id names it (`named`), and, if it fails, its
/// outcome (`refused`): so an id's outcome outlives a restart, and a
/// transfer the restart interrupted answers errc::interrupted to a retry.
struct id_shard {
  // A record keeps a hash of the two names, not the names (up to 16 KiB
  // each): what a client makes the registry keep per id is the id (64 bytes
  // at most) and a few dozen bytes. A retry with other names is told apart
  // but for a hash collision (about 2^-64 per pair of names).
  struct record {
    std::uint64_t accounts = 0;  // durable::names_hash() of the two names
    std::uint64_t amount = 0;
    bool done = false;
    errc outcome = errc::ok;
    std::vector<courier::promise<errc>> waiting;  ///< retries made while it ran
  };
  std::unordered_map<std::string, record> ids;
  durable::ledger* ledger = nullptr;  ///< null: in memory

  // Move-only (promises), which the container does not tell courier.
  id_shard() = default;
  id_shard(id_shard&&) = default;
  id_shard& operator=(id_shard&&) = default;
  id_shard(const id_shard&) = delete;
  id_shard& operator=(const id_shard&) = delete;

  courier::future<errc> handle(IdTransfer t) {
    auto [it, fresh] = ids.try_emplace(t.id);
    record& r = it->second;
    const std::uint64_t accounts = durable::names_hash(t.from, t.to);
    if (!fresh) {
      if (r.accounts != accounts || r.amount != t.amount)
        return courier::make_ready_future(errc::id_conflict);
      if (r.done) return courier::make_ready_future(r.outcome);
      courier::promise<errc> p;
      courier::future<errc> f = p.get_future();
      r.waiting.push_back(std::move(p));
      return f;
    }
    r.accounts = accounts;
    r.amount = t.amount;
    std::uint64_t number = 0;
    if (ledger != nullptr) {
      number = ledger->next_transfer();
      ledger->named(number, t.id, accounts, t.amount);
    }
    if (const errc* e = std::get_if<errc>(&t.accounts))
      return courier::make_ready_future(settle(r, number, *e));
    auto& [from, to] = std::get<0>(t.accounts);
    // `then`, attached inside this shard, runs inside it: it may touch `ids`.
    return ::bank::try_transfer(from, to, t.amount, number)
        .then(
            [this, number, id = std::move(t.id)](errc e) { return settle(ids.at(id), number, e); });
  }

  /// An id whose transfer came to `outcome` before a restart.
  void restore(std::string id, std::uint64_t accounts, std::uint64_t amount, errc outcome) {
    ids.emplace(std::move(id), record{accounts, amount, true, outcome, {}});
  }

 private:
  errc settle(record& r, std::uint64_t number, errc e) {
    if (ledger != nullptr && e != errc::ok) ledger->refused(number, e);
    r.done = true;
    r.outcome = e;
    for (auto& p : r.waiting) p.try_set_value(e);
    std::vector<courier::promise<errc>>().swap(r.waiting);
    return e;
  }
};
using id_msg = std::variant<IdTransfer>;
using id_shard_ref = courier::actor<id_shard, id_msg>;

// --- the shared part of the server -------------------------------------------------

struct Gone {
  std::uint64_t session;
  std::string why;
};
struct Drain {
  courier::promise<void> done;
};
struct ForceClose {};
struct ResumeAccepting {};
struct Listen;
struct listener;
using listener_msg = std::variant<Gone, Drain, ForceClose, ResumeAccepting, Listen>;

namespace detail {
// high * 2^64 + low, in decimal.
inline std::string decimal(std::uint64_t high, std::uint64_t low) {
  std::string digits;
  do {  // long division by 10 of the two 64-bit halves, 32 bits at a time
    std::uint64_t rem = 0;
    std::uint64_t parts[4] = {high >> 32, high & 0xffffffffu, low >> 32, low & 0xffffffffu};
    for (std::uint64_t& p : parts) {
      const std::uint64_t cur = (rem << 32) | p;
      p = cur / 10;
      rem = cur % 10;
    }
    high = (parts[0] << 32) | parts[1];
    low = (parts[2] << 32) | parts[3];
    digits.insert(digits.begin(), static_cast<char>('0' + rem));
  } while (high != 0 || low != 0);
  return digits;
}

struct string_hash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept {
    return std::hash<std::string_view>{}(s);
  }
};
}  // namespace detail

/// Account handles by name, as a worker thread remembers them.
struct account_cache {
  std::unordered_map<std::string, account_ref, detail::string_hash, std::equal_to<>> by_name;
  std::size_t name_bytes = 0;  ///< of the names in by_name
};

/// What every session shares: the bank, the id registry, the metrics, the
/// account handles each thread has looked up, the options, and the listener
/// to report to. Outlives every session.
struct server_core {
  options opts;
  metrics stats;
  per_thread<account_cache> names;
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
  std::atomic<std::uint64_t> connections_accepted{0};
  std::atomic<std::uint64_t> connections_refused{0};
  std::atomic<std::uint64_t> connections_live{0};
  ::bank::bank* accounts = nullptr;
  durable::ledger* ledger = nullptr;  ///< null: in memory
  std::atomic<bool> failed{false};    ///< the ledger failed: nothing more is acknowledged
  std::vector<id_shard_ref> id_shards;
  courier::actor<listener, listener_msg> listen;

  /// How many registry shards there are: 4 per thread.
  std::size_t shard_count() const { return 4 * opts.threads; }
  std::size_t shard_index(std::string_view id) const {
    return std::hash<std::string_view>{}(id) % shard_count();
  }
  const id_shard_ref& shard_of(std::string_view id) const { return id_shards[shard_index(id)]; }

  template <class... Args>
  void log(const char* format, Args... args) const {
    std::fprintf(stderr, format, args...);
  }

  /// The text of INFO.
  courier::future<std::string> info() const;
};

// --- a connection ---------------------------------------------------------------------

struct session_host;
struct Start;
struct StartDrain {};
struct Tick {};
struct LingerOver {};
using session_msg = std::variant<Start, StartDrain, Tick, LingerOver>;
using session_ref = courier::actor<session_host, session_msg>;
/// Starts a session: its own handle, which it keeps until it ends.
struct Start {
  session_ref self;
};

namespace detail {

inline bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char c = a[i];
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    if (c != b[i]) return false;
  }
  return true;
}

// An amount: decimal digits only, at most max_balance.
inline bool parse_amount(std::string_view s, std::uint64_t& out) {
  if (s.empty() || s.size() > 20) return false;
  std::uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    const std::uint64_t d = static_cast<std::uint64_t>(c - '0');
    if (v > (max_balance - d) / 10) return false;
    v = v * 10 + d;
  }
  out = v;
  return true;
}

}  // namespace detail

/// One client connection. Lives inside its actor (session_host): every
/// member runs on that actor's executor, one at a time.
class session {
 public:
  session(server_core& core, asio::ip::tcp::socket socket, std::uint64_t id, std::string peer)
      : core_(core), socket_(std::move(socket)), id_(id), peer_(std::move(peer)) {}

  session(const session&) = delete;
  session& operator=(const session&) = delete;

  ~session() {
    std::error_code ignored;
    socket_.close(ignored);
    core_.listen.tell(Gone{id_, why_.empty() ? "stopped" : why_});
  }

  void start(session_ref self) {
    self_ = std::move(self);
    executor_.emplace(self_.get_executor());
    buffer_ = std::make_unique<char[]>(input_buffer_bytes);
    last_activity_ = std::chrono::steady_clock::now();
    std::error_code ignored;
    socket_.set_option(asio::ip::tcp::no_delay(true), ignored);
    socket_.non_blocking(true, ignored);
    if (core_.opts.idle_timeout.count() > 0)
      idle_timer_.emplace(self_.tell_every(std::chrono::seconds(1), Tick{}));
    pump();
  }

  // Stops reading; answers what was read; then closes.
  // Stops taking commands: those already read are answered, what arrives
  // from now on is discarded; then the connection closes.
  void drain() {
    draining_ = true;
    pump();
  }

  // Closes a connection silent for the idle timeout: nothing read and no
  // reply taken for that long (a client that stopped reading its replies
  // holds its buffers and a --max-clients place as one that stopped sending).
  void tick() {
    const auto idle = std::chrono::steady_clock::now() - last_activity_;
    if (!busy_ && holds_.empty() && idle >= core_.opts.idle_timeout) abandon("idle timeout");
  }

  // The client did not close its side within linger_limit after ours.
  void linger_over() { abandon(why_); }

 private:
  // --- the loop ------------------------------------------------------------------------
  // Executes the commands read and writes their replies, while the output
  // has room; then reads, or ends the connection, as the state allows.
  void pump() {
    for (;;) {
      run_commands();
      // While a command runs, the replies before it wait for it (up to a
      // bound), so that a pipeline's replies leave in one write.
      if (busy_ && out_.size() < write_batch_bytes) break;
      const bool output_full = out_.size() >= output_limit_bytes;
      write_more();
      // A write that took everything at once makes room for more commands.
      if (!output_full || out_.size() >= output_limit_bytes || busy_ || closing_) break;
    }
    if (!busy_ && !closing_ && (eof_ || draining_) && !complete_command_waiting()) {
      if (why_.empty()) why_ = draining_ ? "server shutting down" : "closed by client";
      closing_ = true;
    }
    if (!busy_) write_more();
    read_more();
    if (closing_ && !busy_ && !writing_ && out_.empty()) finish();
  }

  // Executes the commands read, one at a time, while the output has room.
  void run_commands() {
    while (!busy_ && !closing_ && out_.size() < output_limit_bytes && begin_ < end_) {
      const std::string_view pending(buffer_.get() + begin_, end_ - begin_);
      const resp::parse_result r = resp::parse(pending, args_);
      if (r.status == resp::parse_status::incomplete) break;
      if (r.status == resp::parse_status::error) {
        out_ += "-ERR Protocol error: ";
        out_ += r.error;
        out_ += "\r\n";
        why_ = std::string("protocol error: ") + r.error;
        closing_ = true;
        break;
      }
      begin_ += r.consumed;
      if (r.status == resp::parse_status::command) execute();
    }
  }

  bool complete_command_waiting() {
    if (begin_ == end_) return false;
    const resp::parse_result r =
        resp::parse(std::string_view(buffer_.get() + begin_, end_ - begin_), args_);
    return r.status != resp::parse_status::incomplete;
  }

  void read_more() {
    if (reading_ || eof_ || draining_ || closing_ || dead_) return;
    if (begin_ == end_) {
      begin_ = end_ = 0;
    } else if (begin_ > 0 && end_ == input_buffer_bytes) {
      std::memmove(buffer_.get(), buffer_.get() + begin_, end_ - begin_);
      end_ -= begin_;
      begin_ = 0;
    }
    if (end_ == input_buffer_bytes) return;  // full of commands not yet executed
    reading_ = true;
    socket_.async_read_some(
        asio::buffer(buffer_.get() + end_, input_buffer_bytes - end_),
        asio::bind_executor(*executor_,
                            [this](std::error_code ec, std::size_t n) { on_read(ec, n); }));
  }

  void on_read(std::error_code ec, std::size_t n) {
    reading_ = false;
    if (lingering_) return linger(ec, n);
    // Once draining, what arrives was not read before the shutdown: dropped.
    if (!draining_) end_ += n;
    if (n > 0) last_activity_ = std::chrono::steady_clock::now();
    if (ec) {
      if (ec == asio::error::eof || draining_) {
        eof_ = true;
      } else {
        abandon("read failed: " + ec.message());
        return;
      }
    }
    pump();
  }

  void write_more() {
    const std::size_t ready = releasable();
    if (writing_ || ready == 0 || dead_) return;
    // A write now, without waiting: a batch of replies usually fits in the
    // socket's buffer, and then no completion has to come back through the
    // reactor. (The socket is non-blocking: what does not fit is left.)
    std::error_code ec;
    const std::size_t n = socket_.write_some(asio::buffer(out_.data(), ready), ec);
    if (ec && ec != asio::error::would_block && ec != asio::error::try_again) {
      abandon("write failed: " + ec.message());
      return;
    }
    if (n > 0) last_activity_ = std::chrono::steady_clock::now();
    out_base_ += ready;  // written now, or handed to the write below
    if (n == out_.size()) {
      out_.clear();
      return;
    }
    if (ready == out_.size()) {
      out_.erase(0, n);
      out_.swap(writing_buffer_);
    } else {  // replies held for the ledger stay behind
      writing_buffer_.assign(out_, n, ready - n);
      out_.erase(0, ready);
      if (n == ready) return;
    }
    writing_ = true;
    asio::async_write(socket_, asio::buffer(writing_buffer_),
                      asio::bind_executor(*executor_, [this](std::error_code wec, std::size_t) {
                        writing_ = false;
                        writing_buffer_.clear();
                        last_activity_ = std::chrono::steady_clock::now();
                        if (wec) {
                          abandon("write failed: " + wec.message());
                          return;
                        }
                        pump();
                      }));
  }

  // Ends the connection once everything was answered.
  //
  // Closing at once while the client still sends would make the system
  // reset the connection and drop replies not yet delivered. So this closes
  // only the sending side (the client reads every reply, then end of
  // stream), then reads and discards until the client closes its side too,
  // for at most linger_limit.
  void finish() {
    if (dead_ || lingering_) return;
    lingering_ = true;
    std::error_code ignored;
    socket_.shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
    linger_timer_.emplace(self_.tell_after(linger_limit, LingerOver{}));
    if (!reading_) linger({}, 0);
  }

  // A read of a lingering connection completed: discard, read on, or close.
  void linger(std::error_code ec, std::size_t n) {
    if (ec) {  // the client's end of stream, or an error: done
      if (dead_) return;
      dead_ = true;
      std::error_code ignored;
      socket_.close(ignored);
      self_.stop();
      return;
    }
    (void)n;
    reading_ = true;
    socket_.async_read_some(
        asio::buffer(buffer_.get(), input_buffer_bytes),
        asio::bind_executor(*executor_,
                            [this](std::error_code e, std::size_t m) { on_read(e, m); }));
  }

  // Ends the connection now: its peer is gone, or will not be waited for.
  void abandon(std::string why) {
    if (dead_) return;
    why_ = std::move(why);
    dead_ = true;
    closing_ = true;
    std::error_code ignored;
    socket_.close(ignored);
    self_.stop();
  }

  // --- commands ------------------------------------------------------------------------
  void execute() {
    started_ = std::chrono::steady_clock::now();
    const std::string_view name = args_[0];
    const std::size_t argc = args_.size();
    using detail::iequals;
    if (iequals(name, "TRANSFER")) {
      kind_ = command_kind::transfer;
      if (argc != 4 && !(argc == 6 && iequals(args_[4], "ID"))) return wrong_arity("transfer");
      std::uint64_t amount = 0;
      if (!detail::parse_amount(args_[3], amount)) return not_an_amount();
      if (argc == 6) {
        if (args_[5].empty() || args_[5].size() > max_id_bytes)
          return immediate_error("ERR transfer id must be 1 to 64 bytes");
        return transfer_with_id(std::string(args_[1]), std::string(args_[2]), amount,
                                std::string(args_[5]));
      }
      return transfer(args_[1], args_[2], amount);
    }
    if (iequals(name, "BALANCE")) {
      kind_ = command_kind::balance;
      if (argc != 2) return wrong_arity("balance");
      return on_account(args_[1], [](const account_ref& a) {
        return a.ask(GetBalance{}).then([](std::uint64_t b) {
          return reply(static_cast<std::int64_t>(b));
        });
      });
    }
    if (iequals(name, "DEPOSIT") || iequals(name, "WITHDRAW")) {
      const bool deposit = iequals(name, "DEPOSIT");
      kind_ = deposit ? command_kind::deposit : command_kind::withdraw;
      if (argc != 3) return wrong_arity(deposit ? "deposit" : "withdraw");
      std::uint64_t amount = 0;
      if (!detail::parse_amount(args_[2], amount)) return not_an_amount();
      if (deposit)
        return on_account(args_[1], [amount](const account_ref& a) {
          return account_reply(a.ask(Deposit{amount}));
        });
      return on_account(args_[1], [amount](const account_ref& a) {
        return account_reply(a.ask(Withdraw{amount}));
      });
    }
    if (iequals(name, "OPEN")) {
      kind_ = command_kind::open;
      if (argc != 3) return wrong_arity("open");
      std::uint64_t amount = 0;
      if (!detail::parse_amount(args_[2], amount)) return not_an_amount();
      return await_reply(core_.accounts->try_open(std::string(args_[1]), amount).then([](errc e) {
        return reply(e);
      }));
    }
    if (iequals(name, "CLOSE")) {
      kind_ = command_kind::close;
      if (argc != 2) return wrong_arity("close");
      return on_account(args_[1],
                        [](const account_ref& a) { return account_reply(a.ask(Close{})); });
    }
    if (iequals(name, "PING")) {
      kind_ = command_kind::ping;
      if (argc > 2) return wrong_arity("ping");
      if (argc == 2)
        resp::bulk(out_, args_[1]);
      else
        resp::simple(out_, "PONG");
      return done();
    }
    if (iequals(name, "ECHO")) {  // redis-cli --pipe ends its input with one
      kind_ = command_kind::other;
      if (argc != 2) return wrong_arity("echo");
      resp::bulk(out_, args_[1]);
      return done();
    }
    if (iequals(name, "TOTAL")) {
      kind_ = command_kind::total;
      if (argc != 1) return wrong_arity("total");
      return await_reply(core_.accounts->total().then([](::bank::totals t) { return reply(t); }));
    }
    if (iequals(name, "INFO")) {
      kind_ = command_kind::info;
      if (argc > 2) return wrong_arity("info");
      return await_reply(core_.info().then([](std::string s) { return reply(std::move(s)); }),
                         false);
    }
    if (iequals(name, "QUIT")) {
      kind_ = command_kind::quit;
      resp::simple(out_, "OK");
      why_ = "quit";
      closing_ = true;
      return done();
    }
    kind_ = command_kind::other;
    if (iequals(name, "CONFIG") && argc == 3 && iequals(args_[1], "GET")) {
      // redis-benchmark asks for the persistence settings: there are none.
      if (iequals(args_[2], "SAVE") || iequals(args_[2], "APPENDONLY")) {
        resp::array(out_, 2);
        resp::bulk(out_, args_[2]);
        resp::bulk(out_, iequals(args_[2], "SAVE") ? "" : core_.ledger != nullptr ? "yes" : "no");
      } else {
        resp::array(out_, 0);
      }
      return done();
    }
    if (iequals(name, "COMMAND")) {  // redis-cli asks for command docs: none
      resp::array(out_, 0);
      return done();
    }
    if (iequals(name, "HELLO")) {
      resp::error(out_, "NOPROTO this server speaks RESP2 only");
      return done();
    }
    std::string text = "ERR unknown command '";
    text.append(name.substr(0, 64));
    text += "'";
    immediate_error(text);
  }

  void transfer(std::string_view from, std::string_view to, std::uint64_t amount) {
    const account_ref* a = cached(from);
    const account_ref* b = cached(to);
    const std::uint64_t number = core_.ledger != nullptr ? core_.ledger->next_transfer() : 0;
    if (a != nullptr && b != nullptr)
      return await_transfer(::bank::try_transfer(*a, *b, amount, number));
    await_transfer(core_.accounts->find_pair(std::string(from), std::string(to))
                       .then([this, from = std::string(from), to = std::string(to), amount, number](
                                 std::variant<std::pair<account_ref, account_ref>, errc> found) {
                         if (const errc* e = std::get_if<errc>(&found))
                           return courier::make_ready_future(*e);
                         auto& [x, y] = std::get<0>(found);
                         remember(from, x);
                         remember(to, y);
                         return ::bank::try_transfer(x, y, amount, number);
                       }));
  }

  void transfer_with_id(std::string from, std::string to, std::uint64_t amount, std::string id) {
    const id_shard_ref& shard = core_.shard_of(id);
    const account_ref* a = cached(from);
    const account_ref* b = cached(to);
    if (a != nullptr && b != nullptr) {
      std::pair<account_ref, account_ref> both{*a, *b};
      return await_transfer(shard.ask(
          IdTransfer{std::move(id), std::move(from), std::move(to), amount, std::move(both)}));
    }
    std::string f = from, t = to;
    await_transfer(
        core_.accounts->find_pair(std::move(f), std::move(t))
            .then([this, shard, id = std::move(id), from = std::move(from), to = std::move(to),
                   amount](std::variant<std::pair<account_ref, account_ref>, errc> found) {
              if (auto* p = std::get_if<0>(&found)) {
                remember(from, p->first);
                remember(to, p->second);
              }
              return shard.ask(IdTransfer{id, from, to, amount, std::move(found)});
            }));
  }

  void await_transfer(courier::future<errc> f) {
    await_reply(std::move(f).then([this](courier::result<errc> r) {
      const errc e = ::bank::detail::code_of(r);
      thread_metrics& t = core_.stats.local();
      thread_metrics::bump(e == errc::ok ? t.transfers_ok : t.transfers_rejected);
      return reply(e);
    }));
  }

  // Runs `f(account)` on the named account (found in the cache, or through
  // the directory) and awaits the reply it returns.
  template <class F>
  void on_account(std::string_view name, F f) {
    if (const account_ref* a = cached(name)) return await_reply(f(*a));
    await_reply(
        core_.accounts->find(std::string(name))
            .then([this, name = std::string(name), f](std::variant<account_ref, errc> found) {
              if (const errc* e = std::get_if<errc>(&found))
                return courier::make_ready_future(reply(*e));
              remember(name, std::get<0>(found));
              return f(std::get<0>(found));
            }));
  }

  static courier::future<reply> account_reply(courier::future<errc> f) {
    return std::move(f).then(
        [](courier::result<errc> r) { return reply(::bank::detail::code_of(r)); });
  }

  // The cache is the calling thread's: the pointer cached() returns is good
  // until this thread's next remember().
  const account_ref* cached(std::string_view name) const {
    const auto& names = core_.names.local().by_name;
    auto it = names.find(name);
    return it == names.end() ? nullptr : &it->second;
  }
  void remember(const std::string& name, const account_ref& a) {
    account_cache& c = core_.names.local();
    if (c.by_name.size() >= account_cache_entries ||
        c.name_bytes + name.size() > account_cache_name_bytes) {
      c.by_name.clear();
      c.name_bytes = 0;
    }
    if (c.by_name.emplace(name, a).second) c.name_bytes += name.size();
  }

  // The command goes on asynchronously: the next waits for its reply.
  // A reply about the accounts (`durable`) is held back until the ledger has
  // committed every record written before it (see hold_until_committed()).
  void await_reply(courier::future<reply> f, bool durable = true) {
    busy_ = true;
    // Attached inside this session's actor, the continuation runs inside it.
    std::move(f).then([this, durable](courier::result<reply> r) {
      busy_ = false;
      const std::size_t start = out_.size();
      if (r.has_value()) {
        encode(r.value());
      } else {
        try {
          std::rethrow_exception(r.error());
        } catch (const std::exception& e) {
          resp::error(out_, std::string("ERR ") + e.what());
        }
      }
      if (durable) hold_until_committed(start);
      done();
      pump();
    });
  }

  // --- acknowledging only what is durable ----------------------------------------------
  // A reply about the accounts waits until the ledger has committed every
  // record written before the reply came: the records of the command itself
  // (its handlers wrote them before replying), and those of every change it
  // saw. So a client is never told of a change a crash could still undo,
  // success or refusal alike. The reply is encoded at once and held in the
  // output, with the replies after it (replies leave in order); meanwhile
  // the session goes on executing the next commands, whose records join the
  // same group commit.
  void hold_until_committed(std::size_t start) {
    if (core_.ledger == nullptr) return;
    durable::journal& log = core_.ledger->log();
    // A failed journal takes no records: the command's own may be lost.
    if (log.failed()) return ledger_failed(log.path() + ": the journal has failed");
    const std::uint64_t need = log.appended();
    if (holds_.empty() && need <= log.committed()) return;
    holds_.push_back(hold{out_base_ + start, need});
    await_commit();
  }

  void await_commit() {
    if (awaiting_commit_ || holds_.empty()) return;
    awaiting_commit_ = true;
    core_.ledger->log()
        .when_committed(holds_.front().seq)
        .then([this](courier::result<std::uint64_t> r) {
          awaiting_commit_ = false;
          if (!r.has_value()) {
            try {
              std::rethrow_exception(r.error());
            } catch (const std::exception& e) {
              return ledger_failed(e.what());
            }
          }
          const std::uint64_t committed = core_.ledger->log().committed();
          while (!holds_.empty() && holds_.front().seq <= committed) holds_.pop_front();
          await_commit();
          pump();
        });
  }

  // The ledger cannot write: nothing held can be acknowledged, and nothing
  // after it. The connection ends; the server is told to stop.
  void ledger_failed(const std::string& why) {
    if (!core_.failed.exchange(true)) {
      core_.log("bank serve: the ledger cannot write: %s\n", why.c_str());
      if (core_.opts.on_fatal) core_.opts.on_fatal(why);
    }
    abandon("the ledger cannot write");
  }

  // Bytes of out_ that may be written: those before the first held reply.
  std::size_t releasable() const {
    return holds_.empty() ? out_.size()
                          : static_cast<std::size_t>(holds_.front().start - out_base_);
  }

  void encode(const reply& r) {
    if (const errc* e = std::get_if<errc>(&r)) {
      if (*e == errc::ok)
        resp::simple(out_, "OK");
      else
        resp::error(out_, std::string("ERR ") + describe(*e));
    } else if (const std::int64_t* n = std::get_if<std::int64_t>(&r)) {
      resp::integer(out_, *n);
    } else if (const ::bank::totals* t = std::get_if<::bank::totals>(&r)) {
      resp::array(out_, 2);
      if (t->money_high == 0 && t->money <= static_cast<std::uint64_t>(INT64_MAX)) {
        resp::integer(out_, static_cast<std::int64_t>(t->money));
      } else {  // beyond a RESP integer: the exact sum, as a decimal bulk string
        resp::bulk(out_, detail::decimal(t->money_high, t->money));
      }
      resp::integer(out_, static_cast<std::int64_t>(t->accounts));
    } else {
      resp::bulk(out_, std::get<std::string>(r));
    }
  }

  void done() {
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                        std::chrono::steady_clock::now() - started_)
                        .count();
    core_.stats.record(kind_, static_cast<std::uint64_t>(ns));
  }
  void immediate_error(std::string_view text) {
    resp::error(out_, text);
    done();
  }
  void wrong_arity(const char* command) {
    immediate_error(std::string("ERR wrong number of arguments for '") + command + "' command");
  }
  void not_an_amount() {
    immediate_error("ERR amount is not a whole number of minor units from 0 to " +
                    std::to_string(max_balance));
  }

  server_core& core_;
  asio::ip::tcp::socket socket_;
  const std::uint64_t id_;
  const std::string peer_;
  session_ref self_;
  std::optional<courier::actor_executor> executor_;
  std::optional<courier::timer> idle_timer_;
  std::optional<courier::timer> linger_timer_;

  std::unique_ptr<char[]> buffer_;  // input: [begin_, end_) read, not yet executed
  std::size_t begin_ = 0;
  std::size_t end_ = 0;
  std::vector<std::string_view> args_;
  std::string out_;             // replies not yet handed to a write
  std::string writing_buffer_;  // the write in progress
  // Replies held until the ledger commits record `seq`: each from its
  // `start`, an offset in everything this connection was sent (out_ begins
  // at out_base_), to the next.
  struct hold {
    std::uint64_t start;
    std::uint64_t seq;
  };
  std::deque<hold> holds_;
  std::uint64_t out_base_ = 0;
  bool awaiting_commit_ = false;  // a when_committed() for holds_.front() is pending

  command_kind kind_ = command_kind::other;
  std::chrono::steady_clock::time_point started_;
  std::chrono::steady_clock::time_point last_activity_;  // bytes read, or replies taken
  bool reading_ = false;
  bool writing_ = false;
  bool busy_ = false;       // a command awaits its reply
  bool eof_ = false;        // the client sent everything it will send
  bool draining_ = false;   // the server is shutting down
  bool closing_ = false;    // no more commands: answer, then close
  bool lingering_ = false;  // answered and half-closed: waiting for the client's close
  bool dead_ = false;       // the socket is closed
  std::string why_;
};

/// The State of a session's actor: the session, kept at a fixed address
/// (its pending reads and writes refer to it).
struct session_host {
  std::unique_ptr<session> s;
  void handle(Start st) { s->start(std::move(st.self)); }
  void handle(StartDrain) { s->drain(); }
  void handle(Tick) { s->tick(); }
  void handle(LingerOver) { s->linger_over(); }
};

// --- the listener ---------------------------------------------------------------------

/// The listening socket and the connections' register. Lives inside its
/// actor, at a fixed address (its pending accept refers to it).
class listener_impl {
 public:
  listener_impl(server_core& core, asio::io_context& context, asio::ip::tcp::acceptor acceptor)
      : core_(core), context_(context), acceptor_(std::move(acceptor)) {}

  void start(courier::actor<listener, listener_msg> self) {
    self_ = std::move(self);
    accept();
  }

  void gone(const Gone& g) {
    auto it = live_.find(g.session);
    if (it == live_.end()) return;
    live_.erase(it);
    core_.connections_live.fetch_sub(1, std::memory_order_relaxed);
    if (core_.opts.log_connections)
      core_.log("bank serve: connection %" PRIu64 " closed (%s)\n", g.session, g.why.c_str());
    check_drained();
  }

  void drain(courier::promise<void> done) {
    if (draining_) return;
    draining_ = true;
    drained_.emplace(std::move(done));
    std::error_code ignored;
    acceptor_.close(ignored);
    for (auto& [id, s] : live_) s.tell(StartDrain{});
    force_.emplace(self_.tell_after(core_.opts.drain_limit, ForceClose{}));
    check_drained();
  }

  // The drain took too long: the connections left are closed unanswered.
  void force_close() {
    if (!live_.empty())
      core_.log("bank serve: closing %zu connection(s) that did not take their replies\n",
                live_.size());
    for (auto& [id, s] : live_) s.stop();
  }

 private:
  void accept() {
    acceptor_.async_accept(
        context_.get_executor(),
        asio::bind_executor(self_.get_executor(),
                            [this](std::error_code ec, asio::ip::tcp::socket socket) {
                              on_accept(ec, std::move(socket));
                            }));
  }

  void on_accept(std::error_code ec, asio::ip::tcp::socket socket) {
    if (draining_) return;
    if (ec) {
      if (ec == asio::error::operation_aborted) return;
      core_.log("bank serve: accept failed: %s\n", ec.message().c_str());
      // Out of descriptors, say: try again after a pause rather than spin.
      retry_.emplace(self_.tell_after(std::chrono::milliseconds(100), ResumeAccepting{}));
      return;
    }
    const std::uint64_t id = next_id_++;
    std::error_code peer_ec;
    const auto peer = socket.remote_endpoint(peer_ec);
    const std::string peer_text =
        peer_ec ? std::string("?") : peer.address().to_string() + ":" + std::to_string(peer.port());
    if (live_.size() >= core_.opts.max_clients) {
      core_.connections_refused.fetch_add(1, std::memory_order_relaxed);
      core_.log("bank serve: refused %s: max number of clients (%zu) reached\n", peer_text.c_str(),
                core_.opts.max_clients);
      refuse(std::move(socket));
    } else {
      core_.connections_accepted.fetch_add(1, std::memory_order_relaxed);
      core_.connections_live.fetch_add(1, std::memory_order_relaxed);
      if (core_.opts.log_connections)
        core_.log("bank serve: connection %" PRIu64 " from %s\n", id, peer_text.c_str());
      session_host host{std::make_unique<session>(core_, std::move(socket), id, peer_text)};
      session_ref s = courier::spawn<session_host, session_msg>(context_, std::move(host));
      live_.emplace(id, s);
      s.tell(Start{s});
    }
    accept();
  }

  // Tells the client why, as Redis does, and closes.
  static void refuse(asio::ip::tcp::socket socket) {
    static const std::string text = "-ERR max number of clients reached\r\n";
    auto owned = std::make_shared<asio::ip::tcp::socket>(std::move(socket));
    asio::async_write(*owned, asio::buffer(text), [owned](std::error_code, std::size_t) {
      std::error_code ignored;
      owned->shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
      owned->close(ignored);
    });
  }

  void check_drained() {
    if (draining_ && live_.empty() && drained_) {
      drained_->try_set_value();
      drained_.reset();
      force_.reset();
    }
  }

 public:
  // The pause after a failed accept is over.
  void resume_accepting() {
    retry_.reset();
    if (!draining_) accept();
  }

 private:
  server_core& core_;
  asio::io_context& context_;
  asio::ip::tcp::acceptor acceptor_;
  courier::actor<listener, listener_msg> self_;
  std::unordered_map<std::uint64_t, session_ref> live_;
  std::uint64_t next_id_ = 1;
  bool draining_ = false;
  std::optional<courier::promise<void>> drained_;
  std::optional<courier::timer> force_;
  std::optional<courier::timer> retry_;
};

/// Starts the listener: its own handle.
struct Listen {
  courier::actor<listener, listener_msg> self;
};

/// The State of the listener's actor.
struct listener {
  std::unique_ptr<listener_impl> l;
  void handle(const Gone& g) { l->gone(g); }
  void handle(Drain d) { l->drain(std::move(d.done)); }
  void handle(ForceClose) { l->force_close(); }
  void handle(ResumeAccepting) { l->resume_accepting(); }
  void handle(Listen m) { l->start(std::move(m.self)); }
};

// --- INFO --------------------------------------------------------------------------------

inline courier::future<std::string> server_core::info() const {
  const metrics_reading m = stats.read();
  const auto uptime =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started)
          .count();
  std::string text;
  char line[256];
  auto add = [&text, &line](const char* format, auto... args) {
    std::snprintf(line, sizeof line, format, args...);
    text += line;
  };
  add("# Server\r\nuptime_in_seconds:%lld\r\nthreads:%zu\r\n", static_cast<long long>(uptime),
      opts.threads);
  add("\r\n# Clients\r\nconnected_clients:%" PRIu64 "\r\ntotal_connections_received:%" PRIu64
      "\r\nrejected_connections:%" PRIu64 "\r\nmaxclients:%zu\r\n",
      connections_live.load(std::memory_order_relaxed),
      connections_accepted.load(std::memory_order_relaxed),
      connections_refused.load(std::memory_order_relaxed), opts.max_clients);
  std::uint64_t commands = 0;
  for (std::uint64_t c : m.commands) commands += c;
  add("\r\n# Stats\r\ntotal_commands_processed:%" PRIu64 "\r\ntransfers_ok:%" PRIu64
      "\r\ntransfers_rejected:%" PRIu64 "\r\n",
      commands, m.transfers_ok, m.transfers_rejected);
  if (ledger == nullptr) {
    text += "\r\n# Persistence\r\ndurable:no\r\n";
  } else {
    const durable::ledger::stats l = ledger->counters();
    const durable::ledger::recovery& r = ledger->recovered();
    add("\r\n# Persistence\r\ndurable:yes\r\nsync:%s\r\n",
        opts.ledger.sync == durable::sync_mode::full ? "full" : "normal");
    text += "data_dir:" + ledger->dir() + "\r\n";
    add("journal_records:%" PRIu64 "\r\njournal_batches:%" PRIu64 "\r\ncommitted_record:%" PRIu64
        "\r\nsnapshots:%" PRIu64 "\r\nsnapshot_record:%" PRIu64 "\r\n",
        l.writes.records, l.writes.batches, l.committed, l.snapshots, l.snapshot_seq);
    add("recovered_accounts:%" PRIu64 "\r\nrecovered_records:%" PRIu64
        "\r\nrecovered_voided:%" PRIu64 "\r\nrecovery_seconds:%.3f\r\n",
        r.accounts, r.replayed, r.voided, r.seconds);
  }
  text += "\r\n# Latency (microseconds, from a command's parse to its reply)\r\n";
  for (std::size_t k = 0; k < command_kinds; ++k) {
    const auto kind = static_cast<command_kind>(k);
    if (m.commands[k] == 0) continue;
    add("cmd_%s:calls=%" PRIu64 ",p50=%.1f,p99=%.1f,p999=%.1f\r\n", name_of(kind), m.commands[k],
        m.percentile_us(kind, 0.50), m.percentile_us(kind, 0.99), m.percentile_us(kind, 0.999));
  }
  std::size_t ids_queued = 0;
  for (const auto& shard : id_shards) ids_queued += shard.queued();
  const std::size_t directory = accounts->directory_queued();
  return accounts->accounts().then_inline(
      [text = std::move(text), ids_queued,
       directory](std::vector<std::pair<std::string, account_ref>> list) mutable {
        std::size_t sum = 0, max = 0;
        for (const auto& entry : list) {
          const std::size_t q = entry.second.queued();
          sum += q;
          if (q > max) max = q;
        }
        char buf[256];
        std::snprintf(buf, sizeof buf,
                      "\r\n# Mailboxes (messages queued now)\r\naccounts:%zu\r\n"
                      "account_queued_sum:%zu\r\naccount_queued_max:%zu\r\n"
                      "directory_queued:%zu\r\nid_registry_queued:%zu\r\n",
                      list.size(), sum, max, directory, ids_queued);
        text += buf;
        return text;
      });
}

// --- the server -----------------------------------------------------------------------------

/// A running `bank serve`: listening from construction until drain().
///
/// Thread safety: construct, call endpoint() and drain(), and destroy from
/// one thread of your own (not one of the server's).
class server {
 public:
  /// Binds and starts listening. @throws std::system_error if the address
  /// cannot be bound (in use, not local...).
  /// Unless options::in_memory, first opens the ledger and rebuilds the
  /// bank from it. @throws durable::directory_in_use, durable::storage_error
  /// (see durable::ledger).
  explicit server(options o) : context_(static_cast<int>(o.threads)) {
    core_.opts = std::move(o);
    std::vector<id_shard> registry(core_.shard_count());
    if (core_.opts.in_memory) {
      bank_ = std::make_unique<::bank::bank>(context_);
    } else {
      ledger_ = std::make_unique<durable::ledger>(core_.opts.ledger);
      core_.ledger = ledger_.get();
      durable::ledger::restored r = ledger_->take_restored();
      bank_ = std::make_unique<::bank::bank>(context_, *ledger_, std::move(r.accounts));
      for (id_shard& shard : registry) shard.ledger = ledger_.get();
      for (auto& [id, e] : r.ids)
        registry[core_.shard_index(id)].restore(std::move(id), e.names, e.amount,
                                                e.outcome.value_or(errc::interrupted));
    }
    core_.accounts = bank_.get();
    for (id_shard& shard : registry)
      core_.id_shards.push_back(courier::spawn<id_shard, id_msg>(context_, std::move(shard)));
    asio::ip::tcp::acceptor acceptor(context_.get_executor());
    const asio::ip::tcp::endpoint where(asio::ip::make_address(core_.opts.bind), core_.opts.port);
    acceptor.open(where.protocol());
    acceptor.set_option(asio::ip::tcp::acceptor::reuse_address(true));
    acceptor.bind(where);
    acceptor.listen(asio::socket_base::max_listen_connections);
    endpoint_ = acceptor.local_endpoint();
    core_.listen = courier::spawn<listener, listener_msg>(
        context_, listener{std::make_unique<listener_impl>(core_, context_, std::move(acceptor))});
    core_.listen.tell(Listen{core_.listen});
    for (std::size_t i = 0; i < core_.opts.threads; ++i)
      threads_.emplace_back([this] { context_.run(); });
  }

  server(const server&) = delete;
  server& operator=(const server&) = delete;

  ~server() {
    guard_.reset();
    context_.stop();
    for (auto& t : threads_) t.join();
  }

  /// Where it listens (with the port the system chose for port 0).
  asio::ip::tcp::endpoint endpoint() const { return endpoint_; }

  /// Graceful shutdown: stops accepting, lets every connection answer the
  /// commands it has read, closes them (forcibly after options::drain_limit),
  /// and returns once every connection is gone.
  void drain() {
    courier::promise<void> p;
    courier::future<void> done = p.get_future();
    core_.listen.tell(Drain{std::move(p)});
    done.get();
  }

  server_core& core() { return core_; }

 private:
  std::unique_ptr<durable::ledger> ledger_;  // destroyed last: the actors write to it
  server_core core_;
  asio::io_context context_;
  // Keeps run() going while no connection is open.
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> guard_{
      context_.get_executor()};
  std::vector<std::thread> threads_;
  std::unique_ptr<::bank::bank> bank_;
  asio::ip::tcp::endpoint endpoint_;
};

}  // namespace bank::serve
