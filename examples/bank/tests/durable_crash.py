"""kill -9 under load, at 20 random moments, over one data directory whose
state carries from each run to the next: whatever was acknowledged survives,
nothing runs twice, and whatever was in flight at the kill comes to one
definite outcome.

16 clients, each on its own connection, send one command at a time and log
it as acknowledged only once its reply has arrived; the command whose reply
had not arrived at the kill is in flight. The commands:
- TRANSFERs with unique ids between accounts that hold plenty, and out of
  accounts opened empty (refused for lack of funds);
- TRANSFERs without an id into a sink account of the client's own, which
  only those touch (BALANCE tells whether one in flight was committed);
- DEPOSITs and WITHDRAWs into a cash account of the client's own, which no
  other command touches, so that BALANCE tells whether one in flight was
  committed (its balance is the known one, or that plus or minus the amount);
- OPENs of new accounts of the client's own (BALANCE tells whether one in
  flight was), TRANSFERs with ids into them, and CLOSEs of them (a transfer
  into a closed account is refused and its amount goes back: a WITHDRAW of
  more than the balance tells closed from open without changing anything).
After each restart: every transfer id in flight, retried twice, answers the
same definite outcome (+OK or an error); every acknowledged id (and a sample
of those of earlier runs) answers what it answered before; then every
account holds exactly what the outcomes make it (initial, plus transfers in,
minus transfers out, plus deposits, minus withdrawals), which also shows
that no transfer ran twice and none is both posted and voided; and TOTAL is
the money opened plus deposited minus withdrawn, over the accounts opened.
Before any retry, the balances must already be those of the acknowledged
outcomes plus some of the transfers in flight (those that answer +OK).
Each run picks --sync, --snapshot-batches and --threads at random; the last
is stopped with SIGTERM (exit 0) and started once more.

The load runs for a random time, not a number of commands, so sanitizer
builds (several times slower) take about as long; no new run starts after
BUDGET_S. The seed is printed; `run.sh durable_crash.py BANK SEED` (or
BANK_CRASH_SEED=SEED) repeats its choices (not the threads' interleaving).
"""

import os
import random
import re
import signal
import sys
import tempfile
import threading
import time

from harness import Client, check, durable, outcome, stop_cleanly

CLIENTS = 16
ACCOUNTS = 50
INITIAL = 10000
EMPTY = 4  # accounts opened with 0: a transfer out of one is refused
CASH_INITIAL = 1000
KILLS = 20
MIN_KILLS = 3
BUDGET_S = 40  # no new run starts after this
MAX_LOAD_S = 0.5  # the kill comes up to this long after the load is under way
UNDER_WAY_LIMIT_S = 30
SAMPLE = 200  # ids of earlier runs retried after each restart
REFUSED = "ERR insufficient funds"
CLOSED = "ERR account closed"
TRANSFERS = ("transfer", "into", "refused")  # the kinds of op that are transfers with ids


def owner(name):
    """The client whose account `name` ("new:k<kill>c<client>-<n>") is."""
    return int(re.search(r"c(\d+)-", name).group(1))


class Model:
    """What the server must hold: every account's balance, and every
    transfer id settled so far with its arguments and outcome."""

    def __init__(self):
        self.balances = {}
        self.settled = {}  # id -> (command, outcome)
        self.opened_money = 0  # opened + deposited - withdrawn
        self.owned = {}  # client -> its new accounts
        self.closed = set()

    def open(self, name, amount):
        self.balances[name] = amount
        self.opened_money += amount

    def apply(self, op, result):
        """Counts an operation whose outcome is known."""
        kind, args = op
        if kind in TRANSFERS:
            self.settled[args[5]] = (args, result)
        if result != "OK":
            return
        if kind in ("transfer", "into", "anon"):
            self.balances[args[1]] -= args[3]
            self.balances[args[2]] += args[3]
        elif kind == "refused":
            fail_op(op, "a transfer out of an empty account answered +OK")
        elif kind == "deposit":
            self.balances[args[1]] += args[2]
            self.opened_money += args[2]
        elif kind == "withdraw":
            self.balances[args[1]] -= args[2]
            self.opened_money -= args[2]
        elif kind == "open":
            self.open(args[1], args[2])
            self.owned.setdefault(owner(args[1]), []).append(args[1])
        elif kind == "close":
            self.closed.add(args[1])


def fail_op(op, message):
    check(False, "%s: %s" % (" ".join(map(str, op[1])), message))


class Worker(threading.Thread):
    """One client: commands one at a time until the connection dies."""

    def __init__(self, port, rng, tag, client, cash_balance, owned, closed, stop):
        super().__init__(daemon=True)
        self.port, self.rng, self.tag, self.stop = port, rng, tag, stop
        self.cash, self.sink = "cash:%d" % client, "sink:%d" % client
        self.cash_balance = cash_balance
        self.owned, self.closed = list(owned), set(closed)  # its new accounts
        self.acked = []  # (op, outcome), in order
        self.inflight = None  # the op whose reply had not arrived
        self.error = None

    def next_op(self, n):
        rng = self.rng
        pick = rng.randrange(100)
        ident = "%s-%d" % (self.tag, n)
        if 58 <= pick < 66:
            return "anon", ("TRANSFER", "a:%d" % rng.randrange(ACCOUNTS), self.sink,
                            rng.randint(1, 100))
        if pick < 73 and self.owned and pick >= 66:
            return "into", ("TRANSFER", "a:%d" % rng.randrange(ACCOUNTS), rng.choice(self.owned),
                            rng.randint(1, 100), "ID", ident)
        if pick < 73:
            a, b = rng.sample(range(ACCOUNTS), 2)
            return "transfer", ("TRANSFER", "a:%d" % a, "a:%d" % b, rng.randint(1, 100), "ID", ident)
        if pick < 78:
            return "refused", ("TRANSFER", "empty:%d" % rng.randrange(EMPTY),
                               "a:%d" % rng.randrange(ACCOUNTS), rng.randint(1, 100), "ID", ident)
        if pick < 93 and (pick < 86 or self.cash_balance == 0):
            return "deposit", ("DEPOSIT", self.cash, rng.randint(1, 50))
        if pick < 93:
            return "withdraw", ("WITHDRAW", self.cash, rng.randint(1, min(50, self.cash_balance)))
        still_open = [n for n in self.owned if n not in self.closed]
        if pick >= 98 and still_open:
            return "close", ("CLOSE", rng.choice(still_open))
        return "open", ("OPEN", "new:%s" % ident, rng.randint(0, 100))

    def run(self):
        try:
            conn = Client(self.port)
        except OSError:
            return  # killed before this client connected
        try:
            n = 0
            while not self.stop.is_set():
                op = self.next_op(n)
                n += 1
                self.inflight = op
                result = outcome(conn.call(*op[1]))
                self.acked.append((op, result))
                self.inflight = None
                self.check_acked(op, result)
        except (EOFError, OSError):
            pass  # the server was killed
        except BaseException as e:  # reported by the main thread
            self.error = e
        finally:
            conn.close()

    def check_acked(self, op, result):
        kind, args = op
        if kind in ("transfer", "anon"):
            ok = result in ("OK", REFUSED)
        elif kind == "into":
            ok = result in (CLOSED if args[2] in self.closed else "OK", REFUSED)
        elif kind == "refused":
            ok = result == REFUSED
        else:
            ok = result == "OK"
        if not ok:
            fail_op(op, "answered %r" % result)
        if kind == "deposit":
            self.cash_balance += args[2]
        elif kind == "withdraw":
            self.cash_balance -= args[2]
        elif kind == "open":
            self.owned.append(args[1])
        elif kind == "close":
            self.closed.add(args[1])


def setup(c, model):
    names = ([("a:%d" % i, INITIAL) for i in range(ACCOUNTS)] +
             [("empty:%d" % i, 0) for i in range(EMPTY)] +
             [("cash:%d" % i, CASH_INITIAL) for i in range(CLIENTS)] +
             [("sink:%d" % i, 0) for i in range(CLIENTS)])
    replies = c.calls([("OPEN", name, amount) for name, amount in names])
    for (name, amount), reply in zip(names, replies):
        check(outcome(reply) == "OK", "OPEN %s %d: %r" % (name, amount, reply))
        model.open(name, amount)


def unexplained(found, expected, moves):
    """The accounts whose balance in `found` is not what `expected` holds
    plus some subset of `moves` (from, to, amount): the transfers that may
    or may not have been committed. Each group of moves linked by their
    accounts is tried on its own, subset by subset."""
    diff = {n: found[n] - expected[n] for n in found if found[n] != expected[n]}
    wrong = []
    left = list(moves)
    while left:
        group = [left.pop()]
        names = {group[0][0], group[0][1]}
        grown = True
        while grown:
            grown = False
            for m in list(left):
                if m[0] in names or m[1] in names:
                    left.remove(m)
                    group.append(m)
                    names |= {m[0], m[1]}
                    grown = True
        fits = len(group) > 14  # (too many to try: 16 moves on 50 accounts seldom link so)
        for mask in range(0 if fits else 1 << len(group)):
            delta = dict.fromkeys(names, 0)
            for k, (a, b, amount) in enumerate(group):
                if mask >> k & 1:
                    delta[a] -= amount
                    delta[b] += amount
            if all(delta[n] == diff.get(n, 0) for n in names):
                fits = True
                break
        if not fits:
            wrong += sorted(names)
        for n in names:
            diff.pop(n, None)
    return wrong + sorted(diff)


def resolve(c, model, workers):
    """Counts what the last run acknowledged, settles what it had in flight,
    and checks the server against the model. Returns a summary."""
    fresh = []
    for w in workers:
        for op, result in w.acked:
            model.apply(op, result)
            if op[0] in TRANSFERS:
                fresh.append(op[1][5])
    # As recovered, before any retry: what was acknowledged, and perhaps some
    # of what was in flight.
    accounts = sorted(n for n in model.balances if not n.startswith("cash:"))
    found = dict(zip(accounts, c.calls([("BALANCE", n) for n in accounts])))
    expected = {n: model.balances[n] for n in accounts}
    moves = []
    settled = {}  # outcome (its text before any ':') -> how many
    for w in workers:
        op = w.inflight
        if op is None:
            continue
        kind, args = op
        if kind in TRANSFERS:
            first, again = outcome(c.call(*args)), outcome(c.call(*args))
            check(first == again, "%s in flight at the kill: retried, %r; again, %r"
                  % (args[5], first, again))
            check(first != "ERR transfer id already used with different parameters",
                  "%s in flight at the kill: %s" % (args[5], first))
            fresh.append(args[5])
            if first == "OK" and kind != "refused":
                moves.append(args[1:4])
        elif kind == "anon":
            src, sink, amount = args[1:4]
            got = c.call("BALANCE", sink)
            check(got in (expected[sink], expected[sink] + amount),
                  "%s, in flight at the kill: BALANCE %s %r, not %d or %d"
                  % (" ".join(map(str, args)), sink, got, expected[sink], expected[sink] + amount))
            first = "OK" if got != expected[sink] else "not committed"
            if first == "OK":  # committed before the kill
                expected[src] -= amount
                expected[sink] += amount
        elif kind == "close":
            probe = outcome(c.call("WITHDRAW", args[1], c.call("BALANCE", args[1]) + 1))
            check(probe in (CLOSED, REFUSED), "CLOSE %s in flight at the kill: a WITHDRAW of "
                  "more than the balance answered %r" % (args[1], probe))
            first = "OK" if probe == CLOSED else "not committed"
        else:
            name, amount = args[1], args[2]
            known = model.balances.get(name)
            got = c.call("BALANCE", name)
            if kind == "open":
                committed = got == amount
                check(committed or (isinstance(got, Exception) and
                                    str(got) == "ERR unknown account"),
                      "OPEN %s %d in flight at the kill: BALANCE %r" % (name, amount, got))
            else:
                sign = 1 if kind == "deposit" else -1
                committed = got == known + sign * amount
                check(committed or got == known,
                      "%s in flight at the kill: BALANCE %r, not %d or %d"
                      % (" ".join(map(str, args)), got, known, known + sign * amount))
            first = "OK" if committed else "not committed"
        model.apply(op, first)
        key = first.split(":")[0]
        settled[key] = settled.get(key, 0) + 1
    wrong = unexplained(found, expected, moves)
    check(not wrong, "as recovered, %d accounts hold neither what the acknowledged outcomes "
          "make them nor that plus some of the %d transfers in flight that answered +OK "
          "(name, BALANCE, expected without those): %r"
          % (len(wrong), len(moves), [(n, found[n], expected[n]) for n in wrong[:10]]))
    # Every id answers what it answered before (and moves nothing again).
    fresh_set = set(fresh)
    older = [i for i in model.settled if i not in fresh_set]
    ids = fresh + random.Random(len(model.settled)).sample(older, min(SAMPLE, len(older)))
    replies = c.calls([model.settled[i][0] for i in ids])
    for i, reply in zip(ids, replies):
        check(outcome(reply) == model.settled[i][1],
              "%s (%s) retried after the restart answered %r, before %r"
              % (i, " ".join(map(str, model.settled[i][0][:4])), reply, model.settled[i][1]))
    names = sorted(model.balances)
    replies = c.calls([("BALANCE", n) for n in names])
    wrong = [(n, got, model.balances[n]) for n, got in zip(names, replies)
             if got != model.balances[n]]
    check(not wrong, "%d accounts differ from the outcomes (name, BALANCE, expected): %r"
          % (len(wrong), wrong[:10]))
    new = [n for n in names if n.startswith("new:")]
    replies = c.calls([("WITHDRAW", n, model.balances[n] + 1) for n in new])
    wrong = [(n, r) for n, r in zip(new, replies)
             if outcome(r) != (CLOSED if n in model.closed else REFUSED)]
    check(not wrong, "accounts closed or open against the outcomes (a WITHDRAW of more than "
          "the balance answered): %r" % wrong[:10])
    total = c.call("TOTAL")
    check(total == [model.opened_money, len(model.balances)],
          "TOTAL %r, expected [%d, %d]" % (total, model.opened_money, len(model.balances)))
    return "%d acknowledged, in flight: %s" % (
        sum(len(w.acked) for w in workers),
        ", ".join("%d %s" % (n, k) for k, n in sorted(settled.items())) or "none")


def under_way(workers):
    deadline = time.monotonic() + UNDER_WAY_LIMIT_S
    while sum(len(w.acked) for w in workers) < CLIENTS:
        check(time.monotonic() < deadline, "the load did not start in %d s" % UNDER_WAY_LIMIT_S)
        check(all(w.is_alive() for w in workers),
              "a client ended before the kill: %r" % [w.error for w in workers if w.error])
        time.sleep(0.005)


def load_and_kill(srv, rng, kills, model):
    """Starts the clients, kills the server at a random moment, and returns
    the clients, each with what it logged."""
    stop = threading.Event()
    workers = [Worker(srv.port, random.Random(rng.random()), "k%dc%d" % (kills, i),
                      i, model.balances["cash:%d" % i], model.owned.get(i, []),
                      model.closed, stop)
               for i in range(CLIENTS)]
    for w in workers:
        w.start()
    if rng.random() < 0.2:
        time.sleep(rng.uniform(0, 0.05))  # while the clients connect
    else:
        under_way(workers)
        time.sleep(rng.uniform(0, MAX_LOAD_S))
    code = srv.terminate(signal.SIGKILL)
    stop.set()
    for w in workers:
        w.join(60)
    check(code == -signal.SIGKILL, "exit code %s instead of the kill's" % code)
    check("Sanitizer" not in srv.stderr_text(), srv.stderr_text())
    check(not any(w.is_alive() for w in workers), "a client still runs after the kill")
    errors = [w.error for w in workers if w.error]
    check(not errors, "client failed: %r" % errors[:3])
    return workers


def main(bank, seed):
    print("seed %d" % seed, flush=True)
    rng = random.Random(seed)
    model = Model()
    workers = []
    started = time.monotonic()
    kills = 0
    with tempfile.TemporaryDirectory(prefix="bank-durable-") as tmp:
        data = os.path.join(tmp, "data")
        while True:
            flags = ["--sync", rng.choice(["full", "full", "normal"]),
                     "--threads", str(rng.choice([1, 2]))]
            batches = rng.choice([None, 0, 3, 50])
            if batches is not None:
                flags += ["--snapshot-batches", str(batches)]
            last = kills == KILLS or (kills >= MIN_KILLS and
                                      time.monotonic() - started > BUDGET_S)
            with durable(bank, data, *flags) as srv, Client(srv.port) as c:
                if kills == 0:
                    setup(c, model)
                    summary = "set up"
                else:
                    summary = resolve(c, model, workers)
                print("run %d (%s): %s" % (kills, " ".join(flags), summary), flush=True)
                if last:  # stopped with SIGTERM; all is there after one more start
                    stop_cleanly(srv, c)
                    break
                workers = load_and_kill(srv, rng, kills, model)
                kills += 1
        with durable(bank, data) as srv, Client(srv.port) as c:
            resolve(c, model, [])
            stop_cleanly(srv, c)
    print("PASS %d kills -9 under load (%.0f s): %d accounts, %d transfer ids, every outcome "
          "definite and kept, balances exact, money conserved"
          % (kills, time.monotonic() - started, len(model.balances), len(model.settled)))


if __name__ == "__main__":
    seed_arg = sys.argv[2] if len(sys.argv) > 2 else os.environ.get("BANK_CRASH_SEED")
    main(sys.argv[1], int(seed_arg) if seed_arg else random.randrange(2 ** 32))
