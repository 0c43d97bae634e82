// w3_fan_in.hpp: workload W3 (Savina's counting actor: tell throughput into
// one actor). S sender tasks each tell M increments to one counter, fire and
// forget, `chunk` at a time before yielding their thread; the sender that
// finishes last asks the counter for its count, which must equal S * M.
// Senders are tasks on the same threads as the counter (not extra OS threads),
// so that the thread count is the whole parallelism and the floor applies.
//   courier      sender actors that re-tell themselves a Go message per chunk;
//                the count comes back by ask() and then(). The counter has the
//                default mailbox capacity; a sender that finds it full
//                (try_tell() false) sends that increment with async_tell()
//                and goes on with its chunk only once it is queued, so its
//                thread serves the counter meanwhile and memory stays bounded
//   asio_strand  the counter is an asio::strand over asio::thread_pool; sender
//                tasks are plain handlers posted to the pool, re-posting
//                themselves per chunk; the count is posted back as a callback
//   floor        the same handlers on one io_context run by one thread
#pragma once

#include <algorithm>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/strand.hpp>
#include <asio/thread_pool.hpp>
#include <atomic>
#include <courier.hpp>
#include <cstdint>
#include <exception>
#include <latch>
#include <variant>
#include <vector>

#include "bench_common.hpp"

namespace bench {
namespace fan_in {

struct Increment {};
struct GetCount {};
using counter_msg = std::variant<Increment, GetCount>;

struct counter {
  std::uint64_t count = 0;
  void handle(Increment) { ++count; }
  std::uint64_t handle(GetCount) const { return count; }
};
using counter_ref = courier::actor<counter, counter_msg>;

struct Go {};
struct sender;
using sender_ref = courier::actor<sender, Go>;

struct shared_state {
  counter_ref target;
  std::vector<sender_ref> senders;
  std::atomic<std::size_t> senders_left{0};
  std::uint64_t chunk = 0;
  std::uint64_t counted = 0;  // written by the last sender's continuation
  std::latch done{1};
};

struct sender {
  shared_state* shared = nullptr;
  std::size_t index = 0;
  std::uint64_t remaining = 0;

  void handle(Go) {
    const std::uint64_t n = std::min(shared->chunk, remaining);
    for (std::uint64_t i = 0; i < n; ++i) {
      --remaining;
      if (!shared->target.try_tell(Increment{})) {
        // A tell from inside an actor never blocks and would go past the
        // bound; wait for room without holding the thread instead.
        shared->target.async_tell(
            Increment{}, [self = shared->senders[index]](std::exception_ptr) { self.tell(Go{}); });
        return;
      }
    }
    if (remaining > 0) {
      shared->senders[index].tell(Go{});
      return;
    }
    if (shared->senders_left.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      shared_state* s = shared;
      s->target.ask(GetCount{}).then([s](std::uint64_t count) {
        s->counted = count;
        s->done.count_down();
      });
    }
  }
};

}  // namespace fan_in

inline measurement w3_courier(const workload_sizes& s, std::size_t threads) {
  using namespace fan_in;
  courier::thread_pool pool{threads};
  shared_state shared;
  shared.target = courier::spawn<counter, counter_msg>(pool);
  shared.chunk = s.fan_in_chunk;
  shared.senders_left.store(s.fan_in_senders);
  for (std::size_t i = 0; i < s.fan_in_senders; ++i)
    shared.senders.push_back(
        courier::spawn<sender, Go>(pool, sender{&shared, i, s.fan_in_per_sender}));
  const clock::time_point t0 = clock::now();
  for (auto& snd : shared.senders) snd.tell(Go{});
  shared.done.wait();
  const clock::time_point t1 = clock::now();
  measurement m;
  m.seconds = seconds_between(t0, t1);
  fan_in::check(m, shared.counted, s.fan_in_senders * s.fan_in_per_sender);
  return m;
}

/// W3 as raw Asio handlers: increments posted to the counter's executor,
/// sender tasks posted to `tasks`.
template <class CounterExecutor, class TaskExecutor>
class asio_fan_in {
 public:
  asio_fan_in(CounterExecutor target, TaskExecutor tasks, const workload_sizes& s)
      : target_(std::move(target)),
        tasks_(std::move(tasks)),
        remaining_(s.fan_in_senders),
        chunk_(s.fan_in_chunk),
        senders_left_(s.fan_in_senders) {
    for (auto& r : remaining_) r.value = s.fan_in_per_sender;
  }

  void start() {
    for (std::size_t i = 0; i < remaining_.size(); ++i) asio::post(tasks_, [this, i] { send(i); });
  }

  std::latch& done() { return done_; }
  std::uint64_t counted() const { return counted_; }

 private:
  struct alignas(64) padded {
    std::uint64_t value = 0;
  };

  void send(std::size_t i) {
    std::uint64_t& left = remaining_[i].value;
    const std::uint64_t n = std::min(chunk_, left);
    for (std::uint64_t k = 0; k < n; ++k) asio::post(target_, [this] { ++count_.value; });
    left -= n;
    if (left > 0) {
      asio::post(tasks_, [this, i] { send(i); });
      return;
    }
    if (senders_left_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      asio::post(target_, [this] {
        const std::uint64_t count = count_.value;
        asio::post(tasks_, [this, count] {
          counted_ = count;
          done_.count_down();
        });
      });
    }
  }

  CounterExecutor target_;
  TaskExecutor tasks_;
  std::vector<padded> remaining_;
  std::uint64_t chunk_;
  padded count_;  // the counter's State
  std::atomic<std::size_t> senders_left_;
  std::uint64_t counted_ = 0;
  std::latch done_{1};
};

inline measurement w3_asio_strand(const workload_sizes& s, std::size_t threads) {
  using strand_type = asio::strand<asio::thread_pool::executor_type>;
  asio::thread_pool pool{threads};
  asio_fan_in<strand_type, asio::thread_pool::executor_type> run(
      asio::make_strand(pool.get_executor()), pool.get_executor(), s);
  const clock::time_point t0 = clock::now();
  run.start();
  run.done().wait();
  const clock::time_point t1 = clock::now();
  pool.join();
  measurement m;
  m.seconds = seconds_between(t0, t1);
  fan_in::check(m, run.counted(), s.fan_in_senders * s.fan_in_per_sender);
  return m;
}

inline measurement w3_floor(const workload_sizes& s) {
  using executor_type = asio::io_context::executor_type;
  asio::io_context io{1};
  asio_fan_in<executor_type, executor_type> run(io.get_executor(), io.get_executor(), s);
  const clock::time_point t0 = clock::now();
  run.start();
  io.run();
  const clock::time_point t1 = clock::now();
  measurement m;
  m.seconds = seconds_between(t0, t1);
  fan_in::check(m, run.counted(), s.fan_in_senders * s.fan_in_per_sender);
  if (!run.done().try_wait()) {
    m.ok = false;
    m.check += ",UNFINISHED";
  }
  return m;
}

}  // namespace bench
