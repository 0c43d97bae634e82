"""Starts and stops `bank serve` for the tests beside this file.

The server listens on a free port of 127.0.0.1 (it is started with --port 0
and prints the port it got), and is always stopped when the `with` block
ends, whether the test passed or failed: SIGTERM first, SIGKILL if it has not
exited after a while.

For the tests of the durable server (--data DIR): durable() starts one on a
data directory, stop_cleanly() stops one and checks it exited 0,
refused_start() runs one that must refuse to start, and Client speaks RESP
over one connection with every reply exact.
"""

import hashlib
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time

STARTUP_LIMIT_S = 60  # sanitizer builds start slowly on a loaded machine
STOP_LIMIT_S = 60


def fail(message):
    print("FAIL: " + message, flush=True)
    sys.exit(1)


def check(condition, message):
    if not condition:
        fail(message)


class BankServer:
    """`with BankServer(bank, "--threads", "2") as s:` ... s.port ..."""

    def __init__(self, bank, *args, wrapper=()):
        self.bank = bank
        self.args = list(args)
        # Durable, as the server is by default, with its ledger in a fresh
        # directory removed at the end, unless the test chose.
        self.data = None
        if "--data" not in self.args and "--in-memory" not in self.args:
            self.data = tempfile.TemporaryDirectory(prefix="bank-data-")
            self.args += ["--data", self.data.name]
        self.wrapper = list(wrapper)  # a command that runs bank, as `strace -o F`
        self.proc = None
        self.port = None
        self.returncode = None
        self.log = tempfile.NamedTemporaryFile(prefix="bank-serve-", suffix=".log", delete=False)

    def __enter__(self):
        self.proc = subprocess.Popen(
            self.wrapper + [self.bank, "serve", "--port", "0"] + self.args,
            stdout=subprocess.PIPE,
            stderr=self.log,
            stdin=subprocess.DEVNULL,
        )
        try:
            line = self._read_line(STARTUP_LIMIT_S)
            prefix = b"listening on 127.0.0.1:"
            check(line.startswith(prefix), "unexpected first line: %r" % line)
            self.port = int(line[len(prefix):].strip())
        except BaseException:
            self._stop()
            raise
        return self

    def __exit__(self, *exc):
        self._stop()
        if exc[0] is not None:
            sys.stdout.write(self.stderr_text())
        os.unlink(self.log.name)
        if self.data is not None:
            self.data.cleanup()
        return False

    def _read_line(self, limit):
        deadline = time.monotonic() + limit
        out = b""
        while not out.endswith(b"\n"):
            left = deadline - time.monotonic()
            check(left > 0, "bank serve printed no 'listening on' line in %d s" % limit)
            ready, _, _ = select.select([self.proc.stdout], [], [], left)
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 1)
                check(chunk, "bank serve exited before listening: " + self.stderr_text())
                out += chunk
        return out

    def terminate(self, sig=signal.SIGTERM, limit=STOP_LIMIT_S):
        """Sends `sig` and waits for the exit code (None if it did not exit)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.returncode = self.proc.wait(limit)
        except subprocess.TimeoutExpired:
            self.returncode = None
        return self.returncode

    def _stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            if self.terminate(signal.SIGTERM, STOP_LIMIT_S) is None:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()

    def stderr_text(self):
        self.log.flush()
        with open(self.log.name, "r", errors="replace") as f:
            return f.read()

    def connect(self):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=60)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return s


def command(*args):
    """One command as RESP bytes."""
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


class Replies:
    """Reads RESP2 replies from a socket, one at a time."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exactly(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read(self):
        """+OK -> 'OK'; -ERR x -> Exception('ERR x'); :5 -> 5; $ -> bytes; * -> list."""
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            return Exception(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self._exactly(n + 2)
            return data[:-2]
        if kind == b"*":
            return [self.read() for _ in range(int(rest))]
        raise ValueError("not a RESP reply: %r" % line)

    def closed(self):
        """True if the server closed the connection (after any pending bytes)."""
        try:
            self.read()
            return False
        except (EOFError, ConnectionResetError):
            return True


class Client:
    """One connection: call() sends a command and returns its reply (an error
    reply as Exception('ERR ...'), its text exact); calls() pipelines many."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.replies = Replies(self.sock)

    def call(self, *args):
        self.sock.sendall(command(*args))
        return self.replies.read()

    def calls(self, commands, chunk=256):
        """The replies to `commands` (each a tuple of arguments), in order."""
        out = []
        for i in range(0, len(commands), chunk):
            part = commands[i:i + chunk]
            self.sock.sendall(b"".join(command(*c) for c in part))
            out += [self.replies.read() for _ in part]
        return out

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def outcome(reply):
    """A reply to a command that answers +OK or an error, as text: 'OK' or
    'ERR ...'. Anything else fails."""
    if isinstance(reply, Exception):
        return str(reply)
    check(reply == "OK", "neither +OK nor an error: %r" % (reply,))
    return reply


def durable(bank, data, *args, **kwargs):
    """A BankServer on the data directory `data`."""
    return BankServer(bank, "--data", data, "--quiet", *args, **kwargs)


def stop_cleanly(srv, *clients, what="bank serve"):
    """Closes `clients` (a server that stops waits a while for its clients to
    close), stops `srv` with SIGTERM, and checks that it exited 0 with no
    sanitizer report."""
    for c in clients:
        c.close()
    code = srv.terminate()
    check(code == 0, "%s: exit code %s after SIGTERM" % (what, code))
    check("Sanitizer" not in srv.stderr_text(), srv.stderr_text())


def refused_start(bank, *args, limit=STARTUP_LIMIT_S):
    """Runs `bank serve --port 0 args`, which must refuse to start, and
    returns its exit code and stderr. Fails (after stopping it) if it starts
    listening instead, or has not exited within `limit` seconds."""
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([bank, "serve", "--port", "0"] + list(args),
                                stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + limit
            out = b""
            while True:
                left = deadline - time.monotonic()
                check(left > 0, "bank serve %s neither listened nor exited in %d s"
                      % (" ".join(args), limit))
                ready, _, _ = select.select([proc.stdout], [], [], left)
                if not ready:
                    continue
                chunk = os.read(proc.stdout.fileno(), 4096)
                if not chunk:
                    break
                out += chunk
                check(b"listening on" not in out,
                      "bank serve %s started instead of refusing: %r" % (" ".join(args), out))
            code = proc.wait(max(1, deadline - time.monotonic()))
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()
        err.seek(0)
        return code, err.read().decode(errors="replace")


def sha256_of(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def sanitized(bank):
    """The sanitizer the binary is built with ('address', 'thread'), or None."""
    with open(bank, "rb") as f:
        image = f.read()
    for name, marker in (("thread", b"__tsan_init"), ("address", b"__asan_init")):
        if marker in image:
            return name
    return None
