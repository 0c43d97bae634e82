// caf_workloads.cpp: the CAF 0.17 versions of the workloads (see
// caf_workloads.hpp). Each one starts its own actor_system with
// `scheduler.max-threads` set to the thread count under test, so CAF runs its
// default work-stealing scheduler on that many workers.
#include "caf_workloads.hpp"

#include <caf/all.hpp>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <latch>
#include <vector>

namespace bench::caf_impl {
namespace {

using withdraw_atom = caf::atom_constant<caf::atom("withdraw")>;
using deposit_atom = caf::atom_constant<caf::atom("deposit")>;
using balance_atom = caf::atom_constant<caf::atom("balance")>;
using partner_atom = caf::atom_constant<caf::atom("partner")>;
using ball_atom = caf::atom_constant<caf::atom("ball")>;
using handled_atom = caf::atom_constant<caf::atom("handled")>;
using increment_atom = caf::atom_constant<caf::atom("increment")>;
using go_atom = caf::atom_constant<caf::atom("go")>;
using count_atom = caf::atom_constant<caf::atom("count")>;

caf::actor_system_config config_for(std::size_t threads) {
  caf::actor_system_config cfg;
  cfg.set("scheduler.max-threads", static_cast<caf::config_value::integer>(threads));
  return cfg;
}

// Asks `a` for a value from a thread outside the actor system; false if the
// request failed.
template <class T, class... Args>
bool ask_from_outside(caf::actor_system& sys, const caf::actor& a, T& out, Args... args) {
  caf::scoped_actor self{sys};
  bool ok = false;
  self->request(a, caf::infinite, args...)
      .receive(
          [&](T value) {
            out = value;
            ok = true;
          },
          [&](caf::error&) { ok = false; });
  return ok;
}

void stop_all(const std::vector<caf::actor>& actors) {
  for (const auto& a : actors) caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
}

// --- W1 ------------------------------------------------------------------------

struct account_state {
  std::uint64_t balance = 0;
};

caf::behavior account(caf::stateful_actor<account_state>* self, std::uint64_t initial) {
  self->state.balance = initial;
  return {
      [=](withdraw_atom, std::uint64_t amount) {
        if (self->state.balance < amount) return false;
        self->state.balance -= amount;
        return true;
      },
      [=](deposit_atom, std::uint64_t amount) {
        self->state.balance += amount;
        return true;
      },
      [=](balance_atom) { return self->state.balance; },
  };
}

struct w1_run {
  std::vector<caf::actor> accounts;
  std::latch finished;
  std::atomic<bool> failed{false};
  explicit w1_run(std::size_t clients) : finished(static_cast<std::ptrdiff_t>(clients)) {}
};

// One transfer of client `c`, then the next from its reply handler; only this
// client's actor touches `c`.
void w1_step(caf::event_based_actor* self, w1_run* run, bank_client* c) {
  if (c->remaining == 0) {
    run->finished.count_down();
    self->quit();
    return;
  }
  --c->remaining;
  const bank::w1_transfer t = bank::draw_w1_transfer(c->rng, run->accounts.size());
  auto fail = [self, run](caf::error&) {
    run->failed = true;
    run->finished.count_down();
    self->quit();
  };
  self->request(run->accounts[t.from], caf::infinite, withdraw_atom::value, t.amount)
      .then(
          [self, run, c, t, fail](bool withdrawn) {
            if (!withdrawn) {
              ++c->rejected;
              w1_step(self, run, c);
              return;
            }
            self->request(run->accounts[t.to], caf::infinite, deposit_atom::value, t.amount)
                .then(
                    [self, run, c](bool) {
                      ++c->ok;
                      w1_step(self, run, c);
                    },
                    fail);
          },
          fail);
}

caf::behavior w1_client(caf::event_based_actor* self, w1_run* run, bank_client* c) {
  w1_step(self, run, c);
  // The client lives on its reply handlers; this behavior only keeps it
  // from terminating before its first reply.
  return {[](go_atom) {}};
}

// --- W2 ------------------------------------------------------------------------

struct player_state {
  caf::actor partner;
  std::uint64_t handled = 0;
};

caf::behavior player(caf::stateful_actor<player_state>* self, std::latch* rallies_done) {
  return {
      [=](partner_atom, const caf::actor& partner) { self->state.partner = partner; },
      [=](ball_atom, std::uint64_t left) {
        ++self->state.handled;
        if (left == 1)
          rallies_done->count_down();
        else
          self->send(self->state.partner, ball_atom::value, left - 1);
      },
      [=](handled_atom) { return self->state.handled; },
  };
}

// --- W3 ------------------------------------------------------------------------

struct counter_state {
  std::uint64_t count = 0;
};

caf::behavior counter(caf::stateful_actor<counter_state>* self) {
  return {
      [=](increment_atom) { ++self->state.count; },
      [=](count_atom) { return self->state.count; },
  };
}

struct w3_run {
  caf::actor target;
  std::uint64_t chunk = 0;
  std::atomic<std::size_t> senders_left{0};
  std::uint64_t counted = 0;  // written by the last sender's reply handler
  std::latch done{1};
  std::atomic<bool> failed{false};
};

struct sender_state {
  std::uint64_t remaining = 0;
};

caf::behavior sender(caf::stateful_actor<sender_state>* self, w3_run* run, std::uint64_t total) {
  self->state.remaining = total;
  return {
      [=](go_atom) {
        const std::uint64_t n = std::min(run->chunk, self->state.remaining);
        for (std::uint64_t i = 0; i < n; ++i) self->send(run->target, increment_atom::value);
        self->state.remaining -= n;
        if (self->state.remaining > 0) {
          self->send(self, go_atom::value);
          return;
        }
        if (run->senders_left.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
        self->request(run->target, caf::infinite, count_atom::value)
            .then(
                [run](std::uint64_t count) {
                  run->counted = count;
                  run->done.count_down();
                },
                [run](caf::error&) {
                  run->failed = true;
                  run->done.count_down();
                });
      },
  };
}

}  // namespace

measurement w1(const workload_sizes& s, std::size_t accounts, std::size_t threads) {
  std::vector<bank_client> clients = make_clients(s);
  std::vector<std::uint64_t> balances;
  measurement m;
  {
    caf::actor_system_config cfg = config_for(threads);
    caf::actor_system sys{cfg};
    w1_run run(clients.size());
    run.accounts.reserve(accounts);
    for (std::size_t i = 0; i < accounts; ++i)
      run.accounts.push_back(sys.spawn(account, s.initial_balance));
    const clock::time_point t0 = clock::now();
    for (auto& c : clients) sys.spawn(w1_client, &run, &c);
    run.finished.wait();
    const clock::time_point t1 = clock::now();
    m.seconds = seconds_between(t0, t1);
    for (const auto& a : run.accounts) {
      std::uint64_t b = 0;
      if (!ask_from_outside(sys, a, b, balance_atom::value)) run.failed = true;
      balances.push_back(b);
    }
    stop_all(run.accounts);
    if (run.failed) {
      m.ok = false;
      m.check = "REQUEST_FAILED";
      return m;
    }
  }
  check_bank(m, s, accounts, clients, balances);
  return m;
}

measurement w2(const workload_sizes& s, std::size_t pairs, std::size_t threads) {
  measurement m;
  std::uint64_t handled = 0;
  bool failed = false;
  {
    caf::actor_system_config cfg = config_for(threads);
    caf::actor_system sys{cfg};
    std::latch rallies_done(static_cast<std::ptrdiff_t>(pairs));
    std::vector<caf::actor> players;
    players.reserve(2 * pairs);
    for (std::size_t i = 0; i < 2 * pairs; ++i) players.push_back(sys.spawn(player, &rallies_done));
    for (std::size_t i = 0; i < 2 * pairs; ++i)
      caf::anon_send(players[i], partner_atom::value, players[i ^ 1U]);
    const clock::time_point t0 = clock::now();
    for (std::size_t k = 0; k < pairs; ++k) {
      caf::anon_send(players[2 * k], ball_atom::value,
                     ping_pong::rally_length(s.ping_pong_messages, pairs, k));
    }
    rallies_done.wait();
    const clock::time_point t1 = clock::now();
    m.seconds = seconds_between(t0, t1);
    for (const auto& p : players) {
      std::uint64_t n = 0;
      if (!ask_from_outside(sys, p, n, handled_atom::value)) failed = true;
      handled += n;
    }
    stop_all(players);  // each holds its partner: without this they would never go
  }
  ping_pong::check(m, handled, s.ping_pong_messages);
  if (failed) {
    m.ok = false;
    m.check = "REQUEST_FAILED";
  }
  return m;
}

measurement w3(const workload_sizes& s, std::size_t threads) {
  measurement m;
  const std::uint64_t expected = s.fan_in_senders * s.fan_in_per_sender;
  w3_run run;
  {
    caf::actor_system_config cfg = config_for(threads);
    caf::actor_system sys{cfg};
    run.target = sys.spawn(counter);
    run.chunk = s.fan_in_chunk;
    run.senders_left = s.fan_in_senders;
    std::vector<caf::actor> senders;
    for (std::size_t i = 0; i < s.fan_in_senders; ++i)
      senders.push_back(sys.spawn(sender, &run, s.fan_in_per_sender));
    const clock::time_point t0 = clock::now();
    for (const auto& snd : senders) caf::anon_send(snd, go_atom::value);
    run.done.wait();
    const clock::time_point t1 = clock::now();
    m.seconds = seconds_between(t0, t1);
    senders.push_back(run.target);
    stop_all(senders);
    run.target = caf::actor();
  }
  fan_in::check(m, run.counted, expected);
  if (run.failed) {
    m.ok = false;
    m.check = "REQUEST_FAILED";
  }
  return m;
}

measurement w4(const workload_sizes& s, std::size_t threads) {
  const std::size_t n = s.spawn_actors;
  measurement m;
  std::uint64_t balance = 0;
  clock::time_point t1;
  {
    caf::actor_system_config cfg = config_for(threads);
    caf::actor_system sys{cfg};
    std::vector<caf::actor> actors;
    actors.reserve(n);
    const long before = proc_status_kb("VmRSS");
    t1 = clock::now();
    for (std::size_t i = 0; i < n; ++i) actors.push_back(sys.spawn(account, std::uint64_t{0}));
    const clock::time_point t2 = clock::now();
    const long after = proc_status_kb("VmRSS");
    for (const auto& a : actors) caf::anon_send(a, deposit_atom::value, std::uint64_t{1});
    if (!ask_from_outside(sys, actors.back(), balance, balance_atom::value)) balance = 0;
    spawn::record_memory(m, n, before, after);
    m.seconds = seconds_between(t1, t2);
    stop_all(actors);
  }
  m.total_seconds = seconds_between(t1, clock::now());
  spawn::check(m, n, balance);
  return m;
}

std::string version() {
  return "CAF " + std::to_string(CAF_MAJOR_VERSION) + "." + std::to_string(CAF_MINOR_VERSION) +
         "." + std::to_string(CAF_PATCH_VERSION);
}

}  // namespace bench::caf_impl
