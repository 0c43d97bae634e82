"""16 concurrent connections of random transfers (python3-redis), some with
ids and retried: every reply is true. The final balance of every account is
exactly what the acknowledged transfers make it, TOTAL equals the money
opened, and a retried id never moves money twice."""

import random
import sys
import threading

import redis

from harness import BankServer, check

CLIENTS = 16
ACCOUNTS = 24
INITIAL = 1000
TRANSFERS_PER_CLIENT = 400


def transfer(r, args):
    """True for OK, False for a refusal for lack of funds (anything else fails)."""
    try:
        r.execute_command(*args)
        return True
    except redis.ResponseError as e:
        check(str(e) == "insufficient funds", "unexpected refusal: %s" % e)
        return False


def client(port, seed, moves, ok_replies, errors):
    r = redis.Redis(port=port, socket_timeout=60)
    rng = random.Random(seed)
    names = ["acct:%d" % i for i in range(ACCOUNTS)]
    try:
        for n in range(TRANSFERS_PER_CLIENT):
            a, b = rng.sample(names, 2)
            amount = rng.randint(1, 300)
            args = ["TRANSFER", a, b, amount]
            with_id = n % 4 == 0
            if with_id:
                args += ["ID", "c%d-%d" % (seed, n)]
            ok = transfer(r, args)
            if ok:
                moves.append((a, b, amount))
                ok_replies.append(1)
            if with_id:  # a retry answers the same and moves nothing
                again = transfer(r, args)
                check(again == ok, "retry of %s answered differently" % args)
                if again:
                    ok_replies.append(1)
    except BaseException as e:  # reported by the main thread
        errors.append(e)


def main(bank):
    with BankServer(bank, "--threads", "2", "--quiet") as s:
        r = redis.Redis(port=s.port, socket_timeout=60)
        for i in range(ACCOUNTS):
            check(r.execute_command("OPEN", "acct:%d" % i, INITIAL) == b"OK", "open")
        moves, ok_replies, errors = [], [], []
        threads = [threading.Thread(target=client, args=(s.port, seed, moves, ok_replies, errors))
                   for seed in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        check(not errors, "client failed: %r" % errors[:3])
        expected = {"acct:%d" % i: INITIAL for i in range(ACCOUNTS)}
        for a, b, amount in moves:
            expected[a] -= amount
            expected[b] += amount
        for name, balance in expected.items():
            got = r.execute_command("BALANCE", name)
            check(got == balance, "%s: balance %s, the acknowledged transfers make it %s"
                  % (name, got, balance))
        total = r.execute_command("TOTAL")
        check(total == [ACCOUNTS * INITIAL, ACCOUNTS], "TOTAL %r" % total)
        info = r.info()  # redis-py parses INFO as Redis writes it
        check(info["transfers_ok"] == len(ok_replies),
              "INFO's transfers_ok is %s, not %d" % (info["transfers_ok"], len(ok_replies)))
        check(info["cmd_transfer"]["calls"] == CLIENTS * TRANSFERS_PER_CLIENT * 5 // 4,
              "INFO's transfer calls: %r" % info["cmd_transfer"])
        check(s.terminate() == 0, "exit code %s" % s.returncode)
    print("%d clients, %d acknowledged transfers: balances true, money conserved"
          % (CLIENTS, len(moves)))


if __name__ == "__main__":
    main(sys.argv[1])
