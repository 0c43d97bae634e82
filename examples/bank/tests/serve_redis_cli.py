"""The newcomer's session, driven by redis-cli: alice 1000, bob 500, a
transfer of 200, then 800 and 700; a refused transfer changes nothing;
TOTAL conserves the money; command names are case-insensitive; errors come
back as Redis errors. Then the server is stopped and started again on the
same data directory: every balance, and every transfer id's outcome, is
still there. redis-cli --pipe loads accounts in bulk."""

import subprocess
import sys
import tempfile

from harness import BankServer, check


def cli(port, *args):
    out = subprocess.run(["redis-cli", "-p", str(port)] + list(args), capture_output=True,
                         text=True, timeout=60, stdin=subprocess.DEVNULL)
    check(out.returncode == 0, "redis-cli %s failed: %s" % (args, out.stderr))
    return out.stdout.strip()


def main(bank):
    data = tempfile.TemporaryDirectory(prefix="bank-data-")
    with BankServer(bank, "--threads", "2", "--data", data.name) as s:
        session = [
            (["PING"], "PONG"),
            (["ECHO", "hello"], "hello"),
            (["OPEN", "alice", "1000"], "OK"),
            (["OPEN", "bob", "500"], "OK"),
            (["TRANSFER", "alice", "bob", "200"], "OK"),
            (["BALANCE", "alice"], "800"),
            (["BALANCE", "bob"], "700"),
            (["transfer", "alice", "bob", "5000"], "ERR insufficient funds"),
            (["balance", "alice"], "800"),
            (["TOTAL"], "1500\n2"),
            (["OPEN", "alice", "1"], "ERR duplicate account name"),
            (["TRANSFER", "alice", "alice", "1"], "ERR transfer to the same account"),
            (["TRANSFER", "alice", "carol", "1"], "ERR unknown account"),
            (["TRANSFER", "alice", "bob", "0"], "ERR amount must be greater than zero"),
            (["DEPOSIT", "bob", "-5"],
             "ERR amount is not a whole number of minor units from 0 to 9223372036854775807"),
            (["TRANSFER", "alice", "bob"], "ERR wrong number of arguments for 'transfer' command"),
            (["FLY", "me"], "ERR unknown command 'FLY'"),
            (["TRANSFER", "alice", "bob", "100", "ID", "t-1"], "OK"),
            (["TRANSFER", "alice", "bob", "100", "ID", "t-1"], "OK"),  # a retry: nothing moves
            (["BALANCE", "alice"], "700"),
            (["TRANSFER", "alice", "bob", "101", "ID", "t-1"],
             "ERR transfer id already used with different parameters"),
            (["TRANSFER", "bob", "alice", "999999", "ID", "t-2"], "ERR insufficient funds"),
            (["DEPOSIT", "bob", "1000000"], "OK"),
            # The original outcome, even though it would succeed now.
            (["TRANSFER", "bob", "alice", "999999", "ID", "t-2"], "ERR insufficient funds"),
            (["WITHDRAW", "bob", "1000000"], "OK"),
            (["CLOSE", "bob"], "OK"),
            (["DEPOSIT", "bob", "1"], "ERR account closed"),
            (["BALANCE", "bob"], "800"),
            (["TOTAL"], "1500\n2"),
            # Past 2^64 in all: TOTAL stays exact, as a decimal bulk string.
            (["OPEN", "max1", "9223372036854775807"], "OK"),
            (["OPEN", "max2", "9223372036854775807"], "OK"),
            (["OPEN", "max3", "9223372036854775808"],
             "ERR amount is not a whole number of minor units from 0 to 9223372036854775807"),
            (["DEPOSIT", "max1", "1"], "ERR balance would exceed the maximum"),
            (["TOTAL"], "18446744073709553114\n4"),
        ]
        for args, expected in session:
            got = cli(s.port, *args)
            check(got == expected, "%s: expected %r, got %r" % (" ".join(args), expected, got))
        info = cli(s.port, "INFO")
        # (connected_clients counts this one, and may still count the one
        # before it, whose close the server may not have seen yet.)
        for field in ("uptime_in_seconds:", "connected_clients:", "transfers_ok:3",
                      "transfers_rejected:7", "cmd_transfer:calls=11", "p99=",
                      "account_queued_max:0", "durable:yes", "sync:full"):
            check(field in info, "INFO lacks %r:\n%s" % (field, info))
        check(s.terminate() == 0, "exit code %s" % s.returncode)
    with BankServer(bank, "--data", data.name) as s:
        after_restart = [
            (["BALANCE", "alice"], "700"),
            (["BALANCE", "bob"], "800"),
            (["DEPOSIT", "bob", "1"], "ERR account closed"),
            (["TOTAL"], "18446744073709553114\n4"),
            (["TRANSFER", "alice", "max1", "100", "ID", "t-1"],
             "ERR transfer id already used with different parameters"),
            (["TRANSFER", "bob", "alice", "999999", "ID", "t-2"], "ERR insufficient funds"),
            (["TRANSFER", "alice", "bob", "100", "ID", "t-1"], "OK"),  # nothing moves
            (["BALANCE", "alice"], "700"),
        ]
        for args, expected in after_restart:
            got = cli(s.port, *args)
            check(got == expected, "after a restart, %s: expected %r, got %r"
                  % (" ".join(args), expected, got))
        # Bulk loading, as Redis users do it: --pipe sends its own ECHO last.
        commands = "".join("OPEN bulk:%d %d\r\n" % (i, i) for i in range(1, 1001))
        out = subprocess.run(["redis-cli", "-p", str(s.port), "--pipe"], input=commands,
                             capture_output=True, text=True, timeout=120)
        check(out.returncode == 0 and "errors: 0, replies: 1000" in out.stdout,
              "redis-cli --pipe: %s %s" % (out.stdout, out.stderr))
        total = cli(s.port, "TOTAL")
        check(total == "%d\n1004" % (18446744073709553114 + 500500),
              "TOTAL after the bulk load: %r" % total)
        check(s.terminate() == 0, "exit code %s" % s.returncode)
    data.cleanup()
    print("redis-cli session ok")


if __name__ == "__main__":
    main(sys.argv[1])
