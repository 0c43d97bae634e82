"""The limits of `bank serve`: --max-clients refuses connections beyond it
(with Redis's error) and serves again once one leaves; --idle-timeout closes
a silent connection; a client that sends a long pipeline without reading
stalls itself (the server's memory stays bounded) and gets every reply once
it reads."""

import socket
import sys
import threading
import time

from harness import BankServer, Replies, check, command


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def wait_until_served(srv, failure, pause):
    """Connects anew, every `pause` seconds for at most 60 s, until a new
    connection is served (answers PING) rather than refused."""
    deadline = time.monotonic() + 60
    while True:
        c = srv.connect()
        c.sendall(command("PING"))
        if Replies(c).read() == "PONG":
            return
        check(time.monotonic() < deadline, failure)
        time.sleep(pause)


def max_clients(bank):
    with BankServer(bank, "--max-clients", "2") as srv:
        a, b = srv.connect(), srv.connect()
        for s in (a, b):
            s.sendall(command("PING"))
            check(Replies(s).read() == "PONG", "a served client")
        refused = []
        for _ in range(3):
            c = srv.connect()
            r = Replies(c)
            got = r.read()
            check(isinstance(got, Exception) and str(got) == "ERR max number of clients reached",
                  "refusal: %r" % got)
            check(r.closed(), "a refused connection stays open")
            refused.append(c)
        a.close()
        # Served again once a client left (the server learns of it shortly).
        wait_until_served(srv, "never served again after a client left", 0.05)
        info = {}
        b.sendall(command("INFO"))
        for line in Replies(b).read().decode().split("\r\n"):
            if ":" in line:
                k, v = line.split(":", 1)
                info[k] = v
        check(int(info["rejected_connections"]) >= 3, "INFO: %r" % info)
        check(srv.terminate() == 0, "exit code %s" % srv.returncode)
        check("max number of clients (2) reached" in srv.stderr_text(), "refusals are not logged")
    print("max-clients ok")


def idle_timeout_non_reader(bank):
    """A client that sent a pipeline and stopped reading its replies is as
    idle as a silent one: it is closed, and its --max-clients place freed."""
    with BankServer(bank, "--quiet", "--idle-timeout", "1", "--max-clients", "2") as srv:
        stuck = []
        for _ in range(2):
            c = srv.connect()
            c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            c.setblocking(False)
            try:
                for _ in range(1000):
                    c.send(b"PING\r\n" * 10000)
            except BlockingIOError:
                pass
            stuck.append(c)
        wait_until_served(srv, "clients that stopped reading were never timed out", 0.2)
        check(srv.terminate() == 0, "exit code %s" % srv.returncode)
    print("idle-timeout of non-readers ok")


def protocol_error_after_pipeline(bank):
    """A protocol error after a long pipeline, with more bytes behind it, from
    a client that reads slowly: it gets every reply before the error, the
    error, and then end of stream, not a reset that drops replies."""
    count = 100000
    with BankServer(bank, "--quiet") as srv:
        c = srv.connect()
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)

        def send():
            try:
                c.sendall(b"PING\r\n" * count + b"*1\r\n$x\r\n" + b"A" * (1 << 20))
            except OSError:
                pass
        t = threading.Thread(target=send, daemon=True)
        t.start()
        got = bytearray()
        while True:
            data = c.recv(4096)  # raises ConnectionResetError on a reset
            if not data:
                break
            got += data
        t.join(60)
        check(got.count(b"+PONG\r\n") == count, "%d PONGs of %d" % (got.count(b"+PONG\r\n"), count))
        check(got.endswith(b"-ERR Protocol error: invalid bulk length\r\n"), repr(bytes(got[-80:])))
        check(srv.terminate() == 0, "exit code %s" % srv.returncode)
    print("protocol error after a pipeline ok: every reply, then the error, then end of stream")


def idle_timeout(bank):
    with BankServer(bank, "--idle-timeout", "1") as srv:
        quiet = srv.connect()
        busy = srv.connect()
        r = Replies(busy)
        # The quiet one is closed by the server; the busy one is not.
        end = time.monotonic() + 60
        quiet.settimeout(0.2)
        closed = False
        while time.monotonic() < end and not closed:
            busy.sendall(command("PING"))
            check(r.read() == "PONG", "the busy client was cut off")
            try:
                closed = quiet.recv(1) == b""
            except socket.timeout:
                pass
        check(closed, "an idle connection was never closed")
        check(srv.terminate() == 0, "exit code %s" % srv.returncode)
        check("idle timeout" in srv.stderr_text(), "the close is not logged")
    print("idle-timeout ok")


def backpressure(bank):
    with BankServer(bank, "--quiet") as srv:
        s = srv.connect()
        r = Replies(s)
        before = rss_kb(srv.proc.pid)
        # 200,000 pipelined PINGs of 500 bytes (100 MB) sent without reading a
        # reply: more than the kernel's buffers hold both ways, so the server
        # must stop reading, and the sender blocks.
        payload = b"p" * 500
        chunk = command("PING", payload) * 1000
        total = 200 * 1000
        sent = [0]

        def send():
            for _ in range(200):
                s.sendall(chunk)
                sent[0] += 1000
        t = threading.Thread(target=send)
        t.start()
        # Wait (bounded) until the sender has made no progress for a second.
        deadline = time.monotonic() + 60
        last = -1
        while sent[0] != last and time.monotonic() < deadline:
            last = sent[0]
            time.sleep(1)
        stalled_at = sent[0]
        during = rss_kb(srv.proc.pid)
        check(stalled_at < total, "the server read a whole 100 MB pipeline nobody answered")
        check(during - before < 16 * 1024,
              "the server grew by %d kB for a client that does not read" % (during - before))
        # Reading now: every reply arrives, in order.
        for i in range(total):
            got = r.read()
            if got != payload:
                check(False, "reply %d: %r" % (i, got[:20] if got else got))
        t.join()
        check(srv.terminate() == 0, "exit code %s" % srv.returncode)
    print("backpressure ok: the sender stalled after %d of %d commands; RSS +%d kB"
          % (stalled_at, total, during - before))


if __name__ == "__main__":
    max_clients(sys.argv[1])
    idle_timeout(sys.argv[1])
    idle_timeout_non_reader(sys.argv[1])
    protocol_error_after_pipeline(sys.argv[1])
    backpressure(sys.argv[1])
