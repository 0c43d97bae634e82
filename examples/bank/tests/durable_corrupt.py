"""Data the server must not take: it exits 2, with a message on stderr that
names the file (or the directory), and leaves the file byte for byte as it
was, so that nothing is lost that a person could still recover.

- Foreign files: random bytes as journal.db, another application's SQLite
  database as journal.db, a journal of another format version; the same
  as snapshot.db beside a good journal, and a journal in snapshot.db's place.
- Damaged pages: pages of a real journal.db and snapshot.db (written by a
  server with --snapshot-batches 1 and stopped with SIGTERM), each
  overwritten whole (its header and the middle of it): the second page, the
  last one, and one between, among the pages in use.
- Missing pieces: the journal forgets the records a snapshot holds, so
  without that snapshot (snapshot.db deleted, or an older snapshot of the
  same data in its place) it starts after a gap, and a snapshot without its
  journal (journal.db deleted) lacks what came after it: either way the bank
  would silently lack acknowledged changes. Exit 2, naming the file missing
  (or older), and no file left behind that was not there.
- Pieces of another bank's data directory (its snapshot.db, its journal.db,
  its journal.db-wal) in place of this one's: refused, naming the files.
- The lock: a second server on the data directory of a running one exits 2
  naming the directory, and the first goes on serving; once the first is
  killed (-9), a new one starts on the directory.
"""

import os
import random
import shutil
import signal
import sqlite3
import struct
import sys
import tempfile

from harness import Client, check, durable, outcome, refused_start, sha256_of, stop_cleanly

ACCOUNTS = 20
INITIAL = 1000
TRANSFERS = 400


def make_good(bank, data, older):
    """Data written by servers: accounts (then SIGTERM, and a copy of that
    snapshot.db to `older`), then transfers and deposits, in batches, with a
    snapshot after each (then SIGTERM)."""
    rng = random.Random(7)
    with durable(bank, data, "--snapshot-batches", "1") as srv, Client(srv.port) as c:
        for i in range(ACCOUNTS):
            check(outcome(c.call("OPEN", "a:%d" % i, INITIAL)) == "OK", "OPEN a:%d" % i)
        stop_cleanly(srv, c)
    shutil.copyfile(os.path.join(data, "snapshot.db"), older)
    with durable(bank, data, "--snapshot-batches", "1") as srv, Client(srv.port) as c:
        ops = [("TRANSFER", "a:%d" % rng.randrange(ACCOUNTS), "a:%d" % rng.randrange(ACCOUNTS),
                rng.randint(1, 50), "ID", "t%d" % i) for i in range(TRANSFERS)]
        for k in range(0, TRANSFERS, 20):  # batches of several transfers
            c.calls(ops[k:k + 20])
            check(outcome(c.call("DEPOSIT", "a:0", 1)) == "OK", "DEPOSIT")
        total = c.call("TOTAL")
        check(total == [ACCOUNTS * INITIAL + TRANSFERS // 20, ACCOUNTS], "TOTAL %r" % total)
        stop_cleanly(srv, c)
    for name in ("journal.db", "snapshot.db"):
        path = os.path.join(data, name)
        check(os.path.exists(path), "no %s in %s" % (name, os.listdir(data)))
        # What follows changes the files themselves: a log still beside one
        # would hide the change.
        if os.path.exists(path + "-wal") and os.path.getsize(path + "-wal") > 0:
            print("note: %s-wal left after SIGTERM (%d bytes): checkpointed here"
                  % (name, os.path.getsize(path + "-wal")))
            db = sqlite3.connect(path)
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            db.close()
    return total


def expect_refused(bank, data, culprits, what):
    """A server on `data` must exit 2 naming `culprits` (a path, or one of a
    tuple of paths) and leave each of them as it was."""
    culprits = culprits if isinstance(culprits, tuple) else (culprits,)
    before = {p: sha256_of(p) for p in culprits if os.path.isfile(p)}
    files = lambda: sorted(f for f in os.listdir(data) if f.endswith(".db"))
    files_before = files()
    code, err = refused_start(bank, "--data", data, "--quiet")
    check(code == 2, "%s: exit code %s, not 2; stderr:\n%s" % (what, code, err))
    check(any(p in err for p in culprits),
          "%s: stderr does not name %s:\n%s" % (what, " or ".join(culprits), err))
    for p, digest in before.items():
        check(sha256_of(p) == digest, "%s: %s was changed" % (what, p))
    check(files() == files_before,
          "%s: the data files were %s, and after the refused start %s" % (what, files_before, files()))
    print("%s: exit 2, %s" % (what, err.strip().splitlines()[-1] if err.strip() else "(no message)"),
          flush=True)


def foreign_database(path):
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE notes(id INTEGER PRIMARY KEY, text TEXT)")
    db.executemany("INSERT INTO notes(text) VALUES (?)", [("note %d" % i,) for i in range(100)])
    db.commit()
    db.close()


def other_version(path):
    """Makes the journal or snapshot at `path` say it is of another format
    version (its user_version, header bytes 60..63, plus one)."""
    with open(path, "r+b") as f:
        f.seek(60)
        version = struct.unpack(">i", f.read(4))[0]
        f.seek(60)
        f.write(struct.pack(">i", version + 1))


def pages_in_use(path):
    """The page size of the SQLite file at `path`, and its pages that belong
    to a table or an index (dbstat, on a read-only copy)."""
    with tempfile.TemporaryDirectory() as tmp:
        copy = os.path.join(tmp, "copy.db")
        shutil.copyfile(path, copy)
        db = sqlite3.connect("file:%s?mode=ro&immutable=1" % copy, uri=True)
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
        pages = sorted(p for (p,) in db.execute("SELECT pageno FROM dbstat"))
        db.close()
    return page_size, pages


def foreign_files(bank, tmp, good):
    rng = random.Random(1)

    def random_bytes(path):
        with open(path, "wb") as f:
            f.write(rng.randbytes(16384))

    def a_journal(path):
        shutil.copyfile(os.path.join(good, "journal.db"), path)

    # (file, what it is made, where: alone in a new directory, in place of
    # the good one, or the good one changed)
    cases = [("journal.db", "random bytes", "alone", random_bytes),
             ("journal.db", "another application's SQLite database", "alone", foreign_database),
             ("journal.db", "a journal of another format version", "changed", other_version),
             ("snapshot.db", "random bytes", "instead", random_bytes),
             ("snapshot.db", "another application's SQLite database", "instead", foreign_database),
             ("snapshot.db", "a journal", "instead", a_journal),
             ("snapshot.db", "a snapshot of another format version", "changed", other_version)]
    for name, what, where, make in cases:
        data = os.path.join(tmp, "foreign")
        if where == "alone":
            os.mkdir(data)
        else:
            shutil.copytree(good, data)
        path = os.path.join(data, name)
        if where == "instead":
            os.unlink(path)
        make(path)
        expect_refused(bank, data, path, "%s: %s" % (name, what))
        shutil.rmtree(data)


def damaged_pages(bank, tmp, good):
    rng = random.Random(2)
    for name in ("journal.db", "snapshot.db"):
        page_size, pages = pages_in_use(os.path.join(good, name))
        later = [p for p in pages if p > 1]
        check(later, "%s has no page in use after the first" % name)
        chosen = sorted({later[0], later[-1], rng.choice(later)})
        for page in chosen:
            data = os.path.join(tmp, "damaged")
            shutil.copytree(good, data)
            path = os.path.join(data, name)
            with open(path, "r+b") as f:
                f.seek((page - 1) * page_size)
                f.write(b"\xff" * page_size)
            expect_refused(bank, data, path, "%s: page %d of %d overwritten"
                           % (name, page, os.path.getsize(path) // page_size))
            shutil.rmtree(data)


def missing_pieces(bank, tmp, good, older):
    for what in ("snapshot.db deleted", "an older snapshot.db", "journal.db deleted"):
        data = os.path.join(tmp, "missing")
        shutil.copytree(good, data)
        gone = "journal.db" if what.startswith("journal") else "snapshot.db"
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(os.path.join(data, gone + suffix)):
                os.unlink(os.path.join(data, gone + suffix))
        if what == "an older snapshot.db":
            shutil.copyfile(older, os.path.join(data, gone))
        # Named: the file that is missing, or older than the other says.
        expect_refused(bank, data, os.path.join(data, gone), what)
        shutil.rmtree(data)


def another_directory(bank, tmp):
    """Two banks' data directories, a and b, each with accounts (stopped
    cleanly: a snapshot) and then deposits (killed: the journal's last
    commits are in journal.db-wal). A piece of b in a copy of a is refused:
    b's snapshot.db, b's journal.db with its log, or b's journal.db-wal."""
    dirs = {}
    for name in ("a", "b"):
        data = os.path.join(tmp, "bank-" + name)
        with durable(bank, data) as srv, Client(srv.port) as c:
            for i in range(5):  # the same records in both
                check(outcome(c.call("OPEN", "x:%d" % i, 100)) == "OK", "OPEN x:%d" % i)
            stop_cleanly(srv, c)
        with durable(bank, data) as srv, Client(srv.port) as c:
            for i in range(5):
                check(outcome(c.call("DEPOSIT", "x:%d" % i, 1)) == "OK", "DEPOSIT x:%d" % i)
            check(srv.terminate(signal.SIGKILL) == -signal.SIGKILL, "kill")
        dirs[name] = data
    for pieces, what in ((("snapshot.db",), "a snapshot.db"),
                         (("journal.db", "journal.db-wal"), "a journal.db and its log"),
                         (("journal.db-wal",), "a journal.db-wal")):
        data = os.path.join(tmp, "mixed")
        shutil.copytree(dirs["a"], data)
        for suffix in ("-wal", "-shm"):  # what SQLite keeps beside the replaced file
            path = os.path.join(data, pieces[0] + suffix)
            if os.path.exists(path):
                os.unlink(path)
        for piece in pieces:
            shutil.copyfile(os.path.join(dirs["b"], piece), os.path.join(data, piece))
        expect_refused(bank, data, tuple(os.path.join(data, f) for f in ("journal.db", "snapshot.db")),
                       "%s of another data directory" % what)
        shutil.rmtree(data)


def lock(bank, tmp):
    data = os.path.join(tmp, "locked")
    with durable(bank, data) as first, Client(first.port) as c:
        check(outcome(c.call("OPEN", "x", 5)) == "OK", "OPEN")
        expect_refused(bank, data, data, "a second server on the same --data")
        check(first.proc.poll() is None, "the first server exited")
        check(outcome(c.call("DEPOSIT", "x", 1)) == "OK", "the first server stopped serving")
        check(c.call("BALANCE", "x") == 6, "BALANCE")
        check(first.terminate(signal.SIGKILL) == -signal.SIGKILL, "kill")
    with durable(bank, data) as again, Client(again.port) as c:
        check(c.call("BALANCE", "x") == 6, "after the kill, BALANCE x is not 6")
        stop_cleanly(again, c)
    print("lock: a second server refused, the first served on; after kill -9, a new one starts")


def main(bank):
    with tempfile.TemporaryDirectory(prefix="bank-durable-") as tmp:
        good, older = os.path.join(tmp, "good"), os.path.join(tmp, "older-snapshot.db")
        make_good(bank, good, older)
        foreign_files(bank, tmp, good)
        damaged_pages(bank, tmp, good)
        missing_pieces(bank, tmp, good, older)
        another_directory(bank, tmp)
        lock(bank, tmp)
        # The good data itself is taken, as it was.
        with durable(bank, good) as srv, Client(srv.port) as c:
            total = c.call("TOTAL")
            check(total == [ACCOUNTS * INITIAL + TRANSFERS // 20, ACCOUNTS],
                  "the good data: TOTAL %r" % total)
            stop_cleanly(srv, c)
    print("PASS foreign files, damaged pages, missing pieces and a second server: exit 2 "
          "naming the file, the file unchanged")


if __name__ == "__main__":
    main(sys.argv[1])
