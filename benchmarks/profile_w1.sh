#!/usr/bin/env bash
# Where courier's time goes in workload W1, as the README's benchmark section
# reports it:
#   1. CPU per transfer on 1 and 2 threads (perf stat, task clock);
#   2. the functions whose time per transfer grows most from 1 to 2 threads
#      (perf record, sampled);
#   3. locked instructions executed per transfer on 1 thread: every
#      `lock`-prefixed instruction and `xchg` of the binary, counted with
#      callgrind's per-instruction counts on a run 10 times smaller.
# Usage: benchmarks/profile_w1.sh   (from any directory; builds build/bench)
# Installs cmake, g++, libasio-dev, catch2, linux-perf, valgrind, binutils and
# python3 if missing. perf needs access to the CPU clock events (root, or
# kernel.perf_event_paranoid <= 1).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/deps.sh
courier_ensure_packages linux-perf valgrind binutils python3

cmake -S . -B build/bench -DCMAKE_BUILD_TYPE=Release -DCOURIER_BUILD_BENCHMARKS=ON \
  -DCOURIER_BUILD_TESTS=OFF -DCOURIER_BUILD_EXAMPLES=OFF >/dev/null
cmake --build build/bench -j2 --target courier_bench >/dev/null
bin=build/bench/bin/courier_bench
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

for t in 1 2; do
  perf stat -x, -e task-clock -o "$work/stat$t.csv" "$bin" --one w1 courier "$t" >"$work/run$t.json"
  perf record -q -o "$work/rec$t.data" "$bin" --one w1 courier "$t" >"$work/rec$t.json" 2>/dev/null
  perf report -i "$work/rec$t.data" --no-children --stdio 2>/dev/null >"$work/rec$t.txt"
done

valgrind --tool=callgrind --dump-instr=yes --callgrind-out-file="$work/cg.out" \
  "$bin" --one w1 courier 1 --quick >"$work/cg.json" 2>/dev/null
objdump -d --no-show-raw-insn "$bin" |
  awk '$2 == "lock" || $2 ~ /^xchg/ { sub(":", "", $1); print $1 }' >"$work/locked.txt"

python3 - "$work" <<'PY'
import json, re, sys, collections
work = sys.argv[1]

def run(name):
    with open(f"{work}/{name}.json") as f:
        return json.loads(f.read().strip().splitlines()[-1])

def task_clock_ns(t):
    for line in open(f"{work}/stat{t}.csv"):
        fields = line.split(",")
        if len(fields) > 2 and fields[2].startswith("task-clock"):
            return float(fields[0]) * 1e6  # msec
    raise SystemExit("no task-clock in perf stat output")

print("W1 (1000 accounts, 64 clients, 1,000,000 transfers), courier")
cpu = {}
for t in (1, 2):
    r = run(f"run{t}")
    cpu[t] = task_clock_ns(t) / r["ops"]
    print(f"  {t} thread(s): {r['ops_per_sec'] / 1e6:.2f} M transfers/s, "
          f"{cpu[t]:.0f} ns of CPU per transfer (whole process)")

def per_function(t):
    # Sampled share of each function, scaled to ns per transfer.
    r = run(f"rec{t}")
    total = t * r["seconds"] / r["ops"] * 1e9  # the workers' time per transfer
    shares = collections.Counter()
    for line in open(f"{work}/rec{t}.txt"):
        m = re.match(r"\s+([\d.]+)%\s+\S+\s+\S+\s+\[\.\]\s+(.*)", line)
        if m:
            name = re.sub(r"<.*", "", m.group(2)).strip()[:72]
            shares[name] += float(m.group(1)) * total / 100
    return shares

one, two = per_function(1), per_function(2)
print("\n  functions whose time per transfer grows most from 1 to 2 threads (perf record):")
growth = sorted(((two[k] - one[k], k) for k in set(one) | set(two)), reverse=True)[:8]
for d, k in growth:
    print(f"    {d:+6.1f} ns  ({one[k]:5.1f} -> {two[k]:5.1f})  {k}")

# Callgrind's format: positions are "instr line" pairs, absolute (0x..),
# relative (+n / -n) or repeated (*); "calls=" lines are followed by the
# position and inclusive cost of a call, which is not the caller's own.
locked = {int(a, 16) for a in open(f"{work}/locked.txt")}
names, objects = {}, {}
obj = fn = None
addr = 0
skip_call = False
counts = collections.Counter()

def position(tok, prev):
    if tok == "*":
        return prev
    if tok[0] in "+-":
        v = int(tok[1:], 16) if tok[1:].startswith("0x") else int(tok[1:])
        return prev + v if tok[0] == "+" else prev - v
    return int(tok, 16) if tok.startswith("0x") else int(tok)

def named(line, table):
    m = re.match(r"\w+=\((\d+)\)(?: (.*))?", line)
    if m.group(2):
        table[m.group(1)] = m.group(2)
    return table.get(m.group(1))

for line in open(f"{work}/cg.out"):
    line = line.rstrip("\n")
    if not line:
        continue
    if line.startswith("ob="):
        obj = named(line, objects)
    elif line.startswith("cob="):
        named(line, objects)
    elif line.startswith("fn="):
        fn = named(line, names)
    elif line.startswith("cfn="):
        named(line, names)
    elif line.startswith("calls="):
        skip_call = True
    elif line[0] in "0123456789+-*":
        tokens = line.split()
        addr = position(tokens[0], addr)
        if skip_call:
            skip_call = False
        elif obj and obj.endswith("courier_bench") and addr in locked and len(tokens) > 2:
            counts[fn] += int(tokens[2])

transfers = run("cg")["ops"]
print(f"\n  locked instructions per transfer, 1 thread (callgrind, {transfers} transfers): "
      f"{sum(counts.values()) / transfers:.1f}")
for name, n in counts.most_common(8):
    print(f"    {n / transfers:5.2f}  {re.sub(r'<.*', '', name)[:72]}")
PY
