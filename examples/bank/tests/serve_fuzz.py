"""Bad input harms no one else: thousands of random and mutated frames, each
batch on its own connection, while a well-behaved client keeps working on
another. Afterwards every balance and TOTAL are exactly as the well-behaved
client's acknowledged transfers make them, and the server still serves."""

import random
import socket
import sys
import threading

from harness import BankServer, Replies, check, command

FRAMES = 3000
SEED = 20261201
ACCOUNTS = 8
INITIAL = 10 ** 6

# Valid commands to mutate: none of them creates or destroys money (the check
# at the end sums balances), and mutations of them cannot become OPEN,
# DEPOSIT, WITHDRAW or CLOSE.
CORPUS = [
    command("TRANSFER", "f:1", "f:2", 5),
    command("TRANSFER", "f:2", "f:1", 5, "ID", "fuzz-id"),
    command("BALANCE", "f:1"),
    command("PING"),
    command("PING", "x" * 100),
    command("TOTAL"),
    command("INFO"),
    b"PING\r\n",
    b"BALANCE f:1\r\n",
]


def mutate(rng, frame):
    kind = rng.randrange(9)
    b = bytearray(frame)
    if kind == 0:  # random bytes
        return bytes(rng.randrange(256) for _ in range(rng.randint(1, 200)))
    if kind == 1:  # flip some bytes
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        return bytes(b)
    if kind == 2:  # cut short: a half-sent command
        return bytes(b[:rng.randrange(len(b))])
    if kind == 3:  # a huge announced bulk length (2^40, 10 MB, 2^63)
        n = rng.choice([1 << 40, 10 * 1024 * 1024, (1 << 63) - 1, 99999999999999999999])
        return b"*2\r\n$4\r\nPING\r\n$%d\r\n" % n + b"x" * rng.randint(0, 100)
    if kind == 4:  # a 10 MB argument actually sent (in part: the server stops it early)
        return b"*2\r\n$4\r\nPING\r\n$10485760\r\n" + b"y" * 100000
    if kind == 5:  # a huge argument count
        return b"*%d\r\n" % rng.choice([65, 1 << 31, 1 << 62])
    if kind == 6:  # framing characters in the wrong places
        return bytes(b.replace(b"\r\n", rng.choice([b"\n", b"\r", b"", b"\r\r\n"]), 1))
    if kind == 7:  # a valid frame followed by garbage
        return frame + bytes(rng.randrange(256) for _ in range(rng.randint(1, 20)))
    return frame  # valid


def well_behaved(port, stop, moves, errors):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=60)
        replies = Replies(s)
        rng = random.Random(SEED + 1)
        while not stop.is_set():
            a, b = rng.sample(range(ACCOUNTS), 2)
            amount = rng.randint(1, 1000)
            s.sendall(command("TRANSFER", "w:%d" % a, "w:%d" % b, amount))
            r = replies.read()
            if r == "OK":
                moves.append(("w:%d" % a, "w:%d" % b, amount))
            else:
                check(isinstance(r, Exception) and str(r) == "ERR insufficient funds",
                      "well-behaved client got %r" % r)
        s.close()
    except BaseException as e:
        errors.append(e)


def fuzz_connection(port, frames):
    """Sends the frames (or as many as the server takes) and reads until the
    server closes the connection or has nothing more to say."""
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    s.settimeout(2)
    try:
        for f in frames:
            s.sendall(f)
    except OSError:
        pass  # the server closed it: a protocol error
    try:
        s.shutdown(socket.SHUT_WR)  # a half-sent command ends with the client
        while s.recv(65536):
            pass
    except OSError:
        pass
    s.close()


def main(bank):
    with BankServer(bank, "--threads", "2", "--quiet") as srv:
        c = socket.create_connection(("127.0.0.1", srv.port), timeout=60)
        r = Replies(c)
        for name in ["f:1", "f:2"] + ["w:%d" % i for i in range(ACCOUNTS)]:
            c.sendall(command("OPEN", name, INITIAL))
            check(r.read() == "OK", "open " + name)
        stop, moves, errors = threading.Event(), [], []
        t = threading.Thread(target=well_behaved, args=(srv.port, stop, moves, errors))
        t.start()
        rng = random.Random(SEED)
        sent = 0
        while sent < FRAMES:
            n = rng.randint(1, 12)
            fuzz_connection(srv.port, [mutate(rng, rng.choice(CORPUS)) for _ in range(n)])
            sent += n
        # A client that vanishes mid-command, without a FIN.
        v = socket.create_connection(("127.0.0.1", srv.port), timeout=60)
        v.sendall(b"*3\r\n$8\r\nTRANSFER\r\n$3\r\nf:1")
        v.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        v.close()  # RST
        stop.set()
        t.join()
        check(not errors, "the well-behaved client failed: %r" % errors)
        check(len(moves) > 0, "the well-behaved client made no transfer")
        expected = {"w:%d" % i: INITIAL for i in range(ACCOUNTS)}
        for a, b, amount in moves:
            expected[a] -= amount
            expected[b] += amount
        for name, balance in expected.items():
            c.sendall(command("BALANCE", name))
            got = r.read()
            check(got == balance, "%s: %r, expected %d" % (name, got, balance))
        c.sendall(command("BALANCE", "f:1"))
        f1 = r.read()
        c.sendall(command("BALANCE", "f:2"))
        f2 = r.read()
        check(f1 + f2 == 2 * INITIAL, "fuzzed transfers created or lost money: %r %r" % (f1, f2))
        c.sendall(command("TOTAL"))
        total = r.read()
        check(total == [(ACCOUNTS + 2) * INITIAL, ACCOUNTS + 2], "TOTAL %r" % total)
        c.sendall(command("PING"))
        check(r.read() == "PONG", "the server stopped serving")
        c.close()
        check(srv.terminate() == 0, "exit code %s" % srv.returncode)
    print("%d fuzzed frames; %d transfers of the well-behaved client all true; money conserved"
          % (sent, len(moves)))


if __name__ == "__main__":
    main(sys.argv[1])
