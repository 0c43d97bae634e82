"""--sync full flushes the journal at every commit, --sync normal does not:
counted with strace (-c, fsync and fdatasync), over K DEPOSITs that one
client sends one at a time, each waiting for its reply, so that each is a
commit of its own. With full the server makes at least K flushes; with
normal well under K/2 (those of its start and stop, of a checkpoint).

Exits 77 (skipped) if strace is missing, cannot trace here, or the server is
built with a sanitizer (whose runtime does not sit well under ptrace).
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from harness import STOP_LIMIT_S, Client, check, durable, outcome, sanitized

K = 200
SKIP = 77


def skip(why):
    print("SKIP: " + why)
    sys.exit(SKIP)


def child_of(pid):
    """The pid of the process whose parent is `pid` (the server strace runs)."""
    deadline = time.monotonic() + 10
    while True:
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open("/proc/%s/stat" % entry) as f:
                        stat = f.read()
                except OSError:
                    continue
                # pid (comm) state ppid ...: comm may hold spaces, not ')'.
                if int(stat[stat.rindex(")") + 2:].split()[1]) == pid:
                    return int(entry)
        check(time.monotonic() < deadline, "no child of strace (pid %d)" % pid)
        time.sleep(0.01)


def flushes(summary):
    """fsync plus fdatasync calls in a summary of `strace -c`."""
    calls = 0
    for line in summary.splitlines():
        fields = line.split()
        if len(fields) >= 5 and fields[-1] in ("fsync", "fdatasync"):
            calls += int(fields[3])
    return calls


def count(bank, strace, tmp, sync):
    """Flushes made by a server with --sync `sync` over K deposits."""
    data = os.path.join(tmp, sync)
    out = os.path.join(tmp, sync + ".strace")
    wrapper = [strace, "-f", "-c", "-e", "trace=fsync,fdatasync", "-o", out]
    with durable(bank, data, "--sync", sync, "--snapshot-batches", "0",
                 wrapper=wrapper) as srv:
        server = child_of(srv.proc.pid)
        try:
            with Client(srv.port) as c:
                check(outcome(c.call("OPEN", "acct", 0)) == "OK", "OPEN")
                for i in range(K):
                    got = outcome(c.call("DEPOSIT", "acct", 1))
                    check(got == "OK", "DEPOSIT %d: %s" % (i, got))
                check(c.call("BALANCE", "acct") == K, "BALANCE")
            os.kill(server, signal.SIGTERM)  # strace exits with the server's exit code
            code = srv.proc.wait(STOP_LIMIT_S)
            check(code == 0, "--sync %s: exit code %s after SIGTERM" % (sync, code))
        finally:
            try:  # strace does not pass its own signals on
                os.kill(server, signal.SIGKILL)
            except ProcessLookupError:
                pass
    with open(out) as f:
        summary = f.read()
    print("--sync %s: %d fsync/fdatasync calls for %d deposits" % (sync, flushes(summary), K))
    return flushes(summary)


def main(bank):
    strace = shutil.which("strace")
    if strace is None:
        skip("strace not found")
    kind = sanitized(bank)
    if kind:
        skip("%s is built with the %s sanitizer" % (bank, kind))
    probe = subprocess.run([strace, "-f", "-o", os.devnull, "true"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if probe.returncode != 0:
        skip("strace cannot trace here: " + probe.stderr.decode(errors="replace").strip())
    with tempfile.TemporaryDirectory(prefix="bank-durable-") as tmp:
        full = count(bank, strace, tmp, "full")
        normal = count(bank, strace, tmp, "normal")
    check(full >= K, "--sync full: %d flushes for %d commits" % (full, K))
    check(normal < K // 2, "--sync normal: %d flushes for %d commits" % (normal, K))
    print("PASS --sync full flushes at every commit (%d for %d), --sync normal does not (%d)"
          % (full, K, normal))


if __name__ == "__main__":
    main(sys.argv[1])
