// w2_ping_pong.hpp: workload W2. P pairs of actors; each pair bounces one
// message back and forth, N messages in total over all pairs (N / P each).
//   courier      two actors per pair, each telling the ball to its partner
//   asio_strand  one asio::strand per actor over asio::thread_pool
//   floor        the same handlers on one io_context run by one thread
// Check: every actor counts the messages it handled; the sum must equal N.
#pragma once

#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/strand.hpp>
#include <asio/thread_pool.hpp>
#include <courier.hpp>
#include <cstdint>
#include <latch>
#include <variant>
#include <vector>

#include "bench_common.hpp"

namespace bench {
namespace ping_pong {

/// The ball, with the number of hits left in its pair's rally (this one included).
struct Ball {
  std::uint64_t left;
};
struct HandledCount {};
using player_msg = std::variant<Ball, HandledCount>;

struct player;
using player_ref = courier::actor<player, player_msg>;

struct player {
  const std::vector<player_ref>* players = nullptr;  // filled in before the first serve
  std::size_t partner = 0;
  std::latch* rallies_done = nullptr;
  std::uint64_t handled = 0;

  void handle(Ball b) {
    ++handled;
    if (b.left == 1)
      rallies_done->count_down();
    else
      (*players)[partner].tell(Ball{b.left - 1});
  }
  std::uint64_t handle(HandledCount) const { return handled; }
};

}  // namespace ping_pong

inline measurement w2_courier(const workload_sizes& s, std::size_t pairs, std::size_t threads) {
  using namespace ping_pong;
  courier::thread_pool pool{threads};
  std::latch rallies_done(static_cast<std::ptrdiff_t>(pairs));
  std::vector<player_ref> players;
  players.reserve(2 * pairs);
  for (std::size_t i = 0; i < 2 * pairs; ++i)
    players.push_back(
        courier::spawn<player, player_msg>(pool, player{&players, i ^ 1U, &rallies_done, 0}));
  const clock::time_point t0 = clock::now();
  for (std::size_t k = 0; k < pairs; ++k)
    players[2 * k].tell(Ball{rally_length(s.ping_pong_messages, pairs, k)});
  rallies_done.wait();
  const clock::time_point t1 = clock::now();
  std::uint64_t handled = 0;
  for (auto& p : players) handled += p.ask(HandledCount{}).get();
  measurement m;
  m.seconds = seconds_between(t0, t1);
  ping_pong::check(m, handled, s.ping_pong_messages);
  return m;
}

/// W2 as raw Asio handlers posted to each player's executor.
template <class Executor>
class asio_ping_pong {
 public:
  asio_ping_pong(std::vector<Executor> executors, std::latch& rallies_done)
      : rallies_done_(rallies_done) {
    players_.reserve(executors.size());
    for (auto& ex : executors) players_.push_back(player{std::move(ex), 0});
  }

  void serve(std::size_t pair, std::uint64_t rally) {
    asio::post(players_[2 * pair].ex, [this, pair, rally] { hit(2 * pair, rally); });
  }

  std::uint64_t handled() const {
    std::uint64_t n = 0;
    for (const auto& p : players_) n += p.handled;
    return n;
  }

 private:
  struct alignas(64) player {
    Executor ex;
    std::uint64_t handled = 0;
  };

  void hit(std::size_t i, std::uint64_t left) {
    ++players_[i].handled;
    if (left == 1) {
      rallies_done_.count_down();
      return;
    }
    const std::size_t partner = i ^ 1U;
    asio::post(players_[partner].ex, [this, partner, left] { hit(partner, left - 1); });
  }

  std::vector<player> players_;
  std::latch& rallies_done_;
};

inline measurement w2_asio_strand(const workload_sizes& s, std::size_t pairs, std::size_t threads) {
  using strand_type = asio::strand<asio::thread_pool::executor_type>;
  asio::thread_pool pool{threads};
  std::latch rallies_done(static_cast<std::ptrdiff_t>(pairs));
  std::vector<strand_type> executors;
  for (std::size_t i = 0; i < 2 * pairs; ++i)
    executors.push_back(asio::make_strand(pool.get_executor()));
  asio_ping_pong<strand_type> game(std::move(executors), rallies_done);
  const clock::time_point t0 = clock::now();
  for (std::size_t k = 0; k < pairs; ++k)
    game.serve(k, ping_pong::rally_length(s.ping_pong_messages, pairs, k));
  rallies_done.wait();
  const clock::time_point t1 = clock::now();
  pool.join();
  measurement m;
  m.seconds = seconds_between(t0, t1);
  ping_pong::check(m, game.handled(), s.ping_pong_messages);
  return m;
}

inline measurement w2_floor(const workload_sizes& s, std::size_t pairs) {
  using executor_type = asio::io_context::executor_type;
  asio::io_context io{1};
  std::latch rallies_done(static_cast<std::ptrdiff_t>(pairs));
  asio_ping_pong<executor_type> game(std::vector<executor_type>(2 * pairs, io.get_executor()),
                                     rallies_done);
  const clock::time_point t0 = clock::now();
  for (std::size_t k = 0; k < pairs; ++k)
    game.serve(k, ping_pong::rally_length(s.ping_pong_messages, pairs, k));
  io.run();
  const clock::time_point t1 = clock::now();
  measurement m;
  m.seconds = seconds_between(t0, t1);
  ping_pong::check(m, game.handled(), s.ping_pong_messages);
  if (!rallies_done.try_wait()) {
    m.ok = false;
    m.check += ",UNFINISHED";
  }
  return m;
}

}  // namespace bench
