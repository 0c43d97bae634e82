"""A torn write-ahead log: the server starts on a copy of its data whose
journal.db-wal was cut in the middle of a frame, and what it holds is a
prefix of what was acknowledged, nothing more and nothing mixed.

A server opens accounts and stops (SIGTERM); a second one, on the same data,
takes acknowledged TRANSFERs with ids from one client, one at a time (each
its own commit, each a few frames of the WAL), until its WAL holds enough
frames of them, and is killed (-9). Then, on copies of the data, the WAL is
cut: inside its header, and inside a frame chosen at random in each third of
the frames the transfers wrote (SQLite's own recovery keeps the whole
transactions before the cut). Each transfer moves money from a lower- to a
higher-numbered account, so that every prefix of them leaves different
balances. On each copy the server must start, and:
- its balances are those after the first m transfers, for some m;
- TOTAL is the money opened (transfers conserve it);
- each id retried, twice, answers the same definite outcome: +OK for the
  first m, +OK or an error (the transfer interrupted, say) for the rest;
- the balances are then those after the first m transfers and those of the
  rest that answered +OK.
- after a stop (SIGTERM) and a start, all that is still so.
On the uncut data (the kill alone) m is every transfer.

Twice: with --sync full and no snapshot but the set-up's (the journal alone
holds the transfers); and with --sync normal and a snapshot every 5 batches.
The second is what a power loss can leave: --sync normal does not flush the
journal at commit, but a snapshot is always flushed, so the journal may end
before the newest snapshot; the snapshot is then the newest consistent state.
The seed is printed; `run.sh durable_torn.py BANK SEED` repeats its choices.
"""

import os
import random
import shutil
import signal
import struct
import sys
import tempfile
import time

from harness import Client, check, durable, outcome, stop_cleanly

ACCOUNTS = 8
INITIAL = 10000
MIN_FRAMES = 24  # of the transfers, in the WAL at the kill
MAX_TRANSFERS = 3000
CHUNK = 25
LOAD_LIMIT_S = 30
SCENARIOS = (("--sync", "full", "--snapshot-batches", "0"),
             ("--sync", "normal", "--snapshot-batches", "5"))


def wal_frames(path):
    """The WAL at `path`: its frame size, its frames of the current
    generation (those whose salt is the header's, up to the first that is
    not), and that salt; (0, 0, None) if there is no WAL."""
    if not os.path.exists(path):
        return 0, 0, None
    with open(path, "rb") as f:
        wal = f.read()
    if len(wal) < 32:
        return 0, 0, None
    page_size = struct.unpack(">I", wal[8:12])[0]
    salt = wal[16:24]
    size = 24 + page_size
    n = 0
    while 32 + (n + 1) * size <= len(wal) and wal[32 + n * size + 8:32 + n * size + 16] == salt:
        n += 1
    return size, n, salt


def balances_after(transfers, kept):
    """The balances after the transfers whose index is in `kept`."""
    b = {"a:%d" % i: INITIAL for i in range(ACCOUNTS)}
    for i in kept:
        a, c, amount = transfers[i][1:4]
        b[a] -= amount
        b[c] += amount
    return b


def read_balances(c):
    names = ["a:%d" % i for i in range(ACCOUNTS)]
    return dict(zip(names, c.calls([("BALANCE", n) for n in names])))


def load(bank, data, rng, flags):
    """Opens the accounts (and stops), then takes transfers until the WAL
    holds MIN_FRAMES of them, and is killed. Returns the transfers and the
    WAL frames of the set-up that may still be in it."""
    with durable(bank, data, *flags) as srv, Client(srv.port) as c:
        for i in range(ACCOUNTS):
            check(outcome(c.call("OPEN", "a:%d" % i, INITIAL)) == "OK", "OPEN a:%d" % i)
        stop_cleanly(srv, c)
    wal = os.path.join(data, "journal.db-wal")
    _, setup_frames, setup_salt = wal_frames(wal)
    transfers = []
    deadline = time.monotonic() + LOAD_LIMIT_S
    with durable(bank, data, *flags) as srv, Client(srv.port) as c:
        while True:
            for _ in range(CHUNK):
                a = rng.randrange(ACCOUNTS - 1)
                t = ("TRANSFER", "a:%d" % a, "a:%d" % rng.randrange(a + 1, ACCOUNTS),
                     rng.randint(1, 10), "ID", "t%d" % len(transfers))
                got = outcome(c.call(*t))
                check(got == "OK", "%s: %s" % (" ".join(map(str, t)), got))
                transfers.append(t)
            _, n, salt = wal_frames(wal)
            base = setup_frames if salt == setup_salt else 0
            if n - base >= MIN_FRAMES:
                break
            check(len(transfers) < MAX_TRANSFERS and time.monotonic() < deadline,
                  "after %d acknowledged transfers the WAL holds %d frames of them, not %d"
                  % (len(transfers), n - base, MIN_FRAMES))
        check(srv.terminate(signal.SIGKILL) == -signal.SIGKILL, "exit code %s" % srv.returncode)
    return transfers, base


def check_copy(bank, data, flags, transfers, what):
    """Starts a server on `data` and checks it (see the file comment).
    Returns m, the number of transfers it kept."""
    with durable(bank, data, *flags) as srv, Client(srv.port) as c:
        total = c.call("TOTAL")
        check(total == [ACCOUNTS * INITIAL, ACCOUNTS], "%s: TOTAL %r" % (what, total))
        found = read_balances(c)
        prefixes, b = [], balances_after(transfers, [])
        for m, t in enumerate(transfers + [None]):
            if b == found:
                prefixes.append(m)
            if t:
                b[t[1]] -= t[3]
                b[t[2]] += t[3]
        check(prefixes, "%s: the balances %r are those of no prefix of the %d acknowledged "
              "transfers" % (what, found, len(transfers)))
        m = prefixes[0]
        kept = list(range(m))
        outcomes = []
        for i, t in enumerate(transfers):
            first, again = outcome(c.call(*t)), outcome(c.call(*t))
            outcomes.append(first)
            check(first == again, "%s: %s retried answered %r, then %r" % (what, t[5], first, again))
            check(first == "OK" or i >= m, "%s: %s, among the %d kept, retried answered %r"
                  % (what, t[5], m, first))
            if i >= m and first == "OK":
                kept.append(i)
        found = read_balances(c)
        expected = balances_after(transfers, kept)
        check(found == expected, "%s: after the retries the balances are %r, not %r"
              % (what, found, expected))
        total = c.call("TOTAL")
        check(total == [ACCOUNTS * INITIAL, ACCOUNTS], "%s: TOTAL %r" % (what, total))
        stop_cleanly(srv, c, what=what)
    what += ", stopped and started again"
    with durable(bank, data, *flags) as srv, Client(srv.port) as c:
        found = read_balances(c)
        check(found == expected, "%s: the balances are %r, not %r" % (what, found, expected))
        again = [outcome(r) for r in c.calls(transfers)]
        check(again == outcomes, "%s: the ids retried answer %r, not %r"
              % (what, [(t[5], a, o) for t, a, o in zip(transfers, again, outcomes) if a != o][:5],
                 "as before"))
        total = c.call("TOTAL")
        check(total == [ACCOUNTS * INITIAL, ACCOUNTS], "%s: TOTAL %r" % (what, total))
        stop_cleanly(srv, c, what=what)
    return m


def scenario(bank, tmp, rng, flags):
    data = os.path.join(tmp, "data")
    transfers, base = load(bank, data, rng, flags)
    size, frames, _ = wal_frames(os.path.join(data, "journal.db-wal"))
    cuts = [("in the header", 10)] if base == 0 else []
    third = (frames - base) // 3
    for k in range(3):
        frame = base + k * third + rng.randrange(third)
        cuts.append(("in frame %d of %d" % (frame, frames), 32 + frame * size + 100))
    for what, cut in cuts:
        copy = os.path.join(tmp, "copy")
        shutil.copytree(data, copy)
        wal = os.path.join(copy, "journal.db-wal")
        before = os.path.getsize(wal)
        os.truncate(wal, cut)
        check(os.path.getsize(wal) == cut < before, "the WAL was not cut")
        what = "%s: WAL cut %s (%d bytes of %d)" % (" ".join(flags), what, cut, before)
        m = check_copy(bank, copy, flags, transfers, what)
        print("%s: %d of %d acknowledged transfers kept" % (what, m, len(transfers)), flush=True)
        shutil.rmtree(copy)
    m = check_copy(bank, data, flags, transfers, " ".join(flags) + ": uncut")
    check(m == len(transfers), "%s: after kill -9, %d of %d acknowledged transfers kept"
          % (" ".join(flags), m, len(transfers)))
    shutil.rmtree(data)
    return len(cuts)


def main(bank, seed):
    print("seed %d" % seed)
    rng = random.Random(seed)
    cuts = 0
    with tempfile.TemporaryDirectory(prefix="bank-durable-") as tmp:
        for flags in SCENARIOS:
            cuts += scenario(bank, tmp, rng, flags)
    print("PASS torn WAL: %d cuts, each a prefix of the acknowledged transfers; uncut, all of them"
          % cuts)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else random.randrange(2 ** 32))
