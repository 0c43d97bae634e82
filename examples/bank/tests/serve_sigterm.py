"""SIGTERM during load: the server stops reading, answers every command it
had read, closes every connection, and exits 0 (under ASan: with no leak).
Every reply that was sent is true: each client moves 1 at a time out of an
account of its own that holds BUDGET, pipelining transfers and balance
queries, so the n-th OK must leave BUDGET - n, and no OK may follow a
refusal."""

import signal
import socket
import sys
import threading
import time

from harness import BankServer, Replies, check, command

CLIENTS = 8
BUDGET = 2000
BATCH = 50


def client(port, srv, i, results, errors):
    try:
        s = srv.connect()
        r = Replies(s)
        mine, sink = "own:%d" % i, "sink:%d" % i
        for name, amount in ((mine, BUDGET), (sink, 0)):
            s.sendall(command("OPEN", name, amount))
            check(r.read() == "OK", "open")
        results[i] = (0, 0)
        oks, refused, sent = 0, 0, 0
        try:
            while True:
                batch = b""
                for k in range(BATCH):
                    batch += command("BALANCE", mine) if k % 10 == 9 else \
                        command("TRANSFER", mine, sink, 1)
                s.sendall(batch)
                sent += BATCH
                for k in range(BATCH):
                    reply = r.read()
                    if k % 10 == 9:
                        check(reply == BUDGET - oks,
                              "client %d: balance %r after %d OKs" % (i, reply, oks))
                    elif reply == "OK":
                        check(refused == 0, "client %d: an OK after a refusal" % i)
                        oks += 1
                    else:
                        check(isinstance(reply, Exception) and
                              str(reply) == "ERR insufficient funds",
                              "client %d: %r" % (i, reply))
                        check(oks == BUDGET, "client %d: refused after only %d OKs" % (i, oks))
                        refused += 1
                results[i] = (oks, sent)
        except (EOFError, ConnectionResetError, BrokenPipeError):
            results[i] = (oks, sent)  # the server closed: everything read was answered
    except BaseException as e:
        errors.append(e)


def slow_reader(bank):
    """SIGTERM while a client pipelines large commands and reads slowly: the
    replies to everything read arrive whole, then end of stream (the server
    does not reset the connection while the client still sends)."""
    with BankServer(bank, "--quiet") as srv:
        c = socket.socket()
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
        c.connect(("127.0.0.1", srv.port))
        stop = threading.Event()
        reply_size = len(b"$2008\r\n") + 2008 + 2

        def send():
            n = 0
            try:
                while not stop.is_set():
                    c.sendall(b"".join(command("PING", b"%08d" % (n + j) + b"x" * 2000)
                                       for j in range(50)))
                    n += 50
            except OSError:
                pass
        t = threading.Thread(target=send, daemon=True)
        t.start()
        got = bytearray()
        signalled = False
        while True:
            if not signalled and len(got) > 200 * reply_size:
                srv.proc.send_signal(signal.SIGTERM)
                signalled = True
            data = c.recv(8192)  # raises ConnectionResetError on a reset
            if not data:
                break
            got += data
            time.sleep(0.001)
        stop.set()
        code = srv.terminate()
        check(code == 0, "exit code %s" % code)
        check(signalled, "the stream ended before the signal")
        check(len(got) % reply_size == 0, "the stream was cut mid-reply")
        for i in range(len(got) // reply_size):
            r = got[i * reply_size:(i + 1) * reply_size]
            check(r[7:15] == b"%08d" % i, "reply %d is %r" % (i, bytes(r[:20])))
    print("SIGTERM with a slow reader: %d whole replies in order, then end of stream"
          % (len(got) // reply_size))


def main(bank):
    with BankServer(bank, "--threads", "2") as srv:
        results, errors = {}, []
        threads = [threading.Thread(target=client, args=(srv.port, srv, i, results, errors))
                   for i in range(CLIENTS)]
        for t in threads:
            t.start()
        # Wait until every client is under way (bounded), then stop the server.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (len(results) < CLIENTS or
                                               min(r[0] for r in results.values()) < 100):
            time.sleep(0.01)
        code = srv.terminate(signal.SIGTERM)
        for t in threads:
            t.join(60)
        check(not errors, "client failed: %r" % errors[:3])
        check(code == 0, "exit code %s after SIGTERM; stderr:\n%s" % (code, srv.stderr_text()))
        log = srv.stderr_text()
        check("SIGTERM" in log and "stopped" in log, "no shutdown lines:\n" + log)
        check("Sanitizer" not in log, log)
    print("SIGTERM under load from %d clients: exit 0, every reply true (%s)"
          % (CLIENTS, ", ".join("%d OKs" % results[i][0] for i in sorted(results))))


if __name__ == "__main__":
    main(sys.argv[1])
    slow_reader(sys.argv[1])
