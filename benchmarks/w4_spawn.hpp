// w4_spawn.hpp: workload W4. Spawn N idle account actors, send each one
// deposit, read one balance, shut down. Reports actors spawned per second (the
// spawn loop alone) and memory per actor: (peak RSS - RSS before spawning) / N,
// and, for comparison, (RSS right after spawning - RSS before) / N. Both include
// the handle kept for each actor in a std::vector.
//   courier      courier::spawn of examples/bank's bank::account
//   asio_strand  an asio::strand per account over asio::thread_pool, with the
//                balance beside it
//   floor        an account is the shared io_context's executor and a balance;
//                the one thread runs the deposits after they are all posted
#pragma once

#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/strand.hpp>
#include <asio/thread_pool.hpp>
#include <courier.hpp>
#include <cstdint>
#include <future>
#include <vector>

#include "bench_common.hpp"

namespace bench {

inline measurement w4_courier(const workload_sizes& s, std::size_t threads) {
  const std::size_t n = s.spawn_actors;
  measurement m;
  std::uint64_t balance = 0;
  clock::time_point t1;
  {
    courier::thread_pool pool{threads};
    std::vector<bank::account_ref> actors;
    actors.reserve(n);
    const long before = proc_status_kb("VmRSS");
    t1 = clock::now();
    for (std::size_t i = 0; i < n; ++i)
      actors.push_back(courier::spawn<bank::account, bank::account_msg>(pool, bank::account{0}));
    const clock::time_point t2 = clock::now();
    const long after = proc_status_kb("VmRSS");
    for (auto& a : actors) a.tell(bank::Deposit{1});
    balance = actors.back().ask(bank::GetBalance{}).get();
    spawn::record_memory(m, n, before, after);
    m.seconds = seconds_between(t1, t2);
  }
  m.total_seconds = seconds_between(t1, clock::now());
  spawn::check(m, n, balance);
  return m;
}

inline measurement w4_asio_strand(const workload_sizes& s, std::size_t threads) {
  using strand_type = asio::strand<asio::thread_pool::executor_type>;
  struct account {
    strand_type strand;
    std::uint64_t balance;
  };
  const std::size_t n = s.spawn_actors;
  measurement m;
  std::uint64_t balance = 0;
  clock::time_point t1;
  {
    asio::thread_pool pool{threads};
    std::vector<account> actors;
    actors.reserve(n);
    const long before = proc_status_kb("VmRSS");
    t1 = clock::now();
    for (std::size_t i = 0; i < n; ++i)
      actors.push_back(account{asio::make_strand(pool.get_executor()), 0});
    const clock::time_point t2 = clock::now();
    const long after = proc_status_kb("VmRSS");
    for (auto& a : actors) asio::post(a.strand, [&a] { a.balance += 1; });
    std::promise<std::uint64_t> reply;
    account& last = actors.back();
    asio::post(last.strand, [&last, &reply] { reply.set_value(last.balance); });
    balance = reply.get_future().get();
    spawn::record_memory(m, n, before, after);
    m.seconds = seconds_between(t1, t2);
    pool.join();
  }
  m.total_seconds = seconds_between(t1, clock::now());
  spawn::check(m, n, balance);
  return m;
}

inline measurement w4_floor(const workload_sizes& s) {
  using executor_type = asio::io_context::executor_type;
  struct account {
    executor_type ex;
    std::uint64_t balance;
  };
  const std::size_t n = s.spawn_actors;
  measurement m;
  std::uint64_t balance = 0;
  clock::time_point t1;
  {
    asio::io_context io{1};
    std::vector<account> actors;
    actors.reserve(n);
    const long before = proc_status_kb("VmRSS");
    t1 = clock::now();
    for (std::size_t i = 0; i < n; ++i) actors.push_back(account{io.get_executor(), 0});
    const clock::time_point t2 = clock::now();
    const long after = proc_status_kb("VmRSS");
    for (auto& a : actors) asio::post(a.ex, [&a] { a.balance += 1; });
    account& last = actors.back();
    asio::post(last.ex, [&last, &balance] { balance = last.balance; });
    io.run();
    spawn::record_memory(m, n, before, after);
    m.seconds = seconds_between(t1, t2);
  }
  m.total_seconds = seconds_between(t1, clock::now());
  spawn::check(m, n, balance);
  return m;
}

}  // namespace bench
