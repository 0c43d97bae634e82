#!/usr/bin/env bash
# How long `bank serve` takes to start on a large ledger: 1,000,000 accounts
# and 10,000,000 journal records (the 1,000,000 opens and 4,500,000 transfers,
# each a pending and a posted record), first with no snapshot (every record
# replayed), then from the snapshot the server saves after that replay.
#
# Usage: benchmarks/recovery.sh [starts per case (default 3)]
# Runs on 127.0.0.1 on a free port with its data in a temporary directory,
# removed at the end, however the script ends. Needs about 200 MB of disk.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/deps.sh
courier_ensure_packages redis-tools

starts=${1:-3}
cmake -S . -B build/bench -DCMAKE_BUILD_TYPE=Release -DCOURIER_SANITIZE= -DCOURIER_BUILD_EXAMPLES=ON \
  -DCOURIER_BUILD_BENCHMARKS=ON >/dev/null
cmake --build build/bench -j "${COURIER_JOBS:-2}" --target bank >/dev/null
bank=build/bench/bin/bank

work=$(mktemp -d)
pid=
cleanup() {
  [[ -n $pid ]] && kill -9 "$pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

# Starts the server on the data and waits for its ready line: prints the
# seconds that took and the server's own account of its recovery.
start() {
  : >"$work/out"
  local t0 t1
  t0=$(date +%s.%N)
  "$bank" serve --port "$port" --quiet --data "$work/data" "$@" >"$work/out" 2>"$work/err" &
  pid=$!
  until grep -q listening "$work/out"; do
    kill -0 "$pid" 2>/dev/null || { cat "$work/err" >&2; exit 1; }
    sleep 0.01
  done
  t1=$(date +%s.%N)
  printf '%.2f s to listening; %s\n' "$(echo "$t1 - $t0" | bc)" "$(sed -n 's/^bank serve: ledger in [^:]*: //p' "$work/err")"
}
crash() {
  kill -9 "$pid"
  wait "$pid" 2>/dev/null || true
  pid=
}

echo "# $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores"
# No snapshot while loading, and none at the crash that ends it.
start --snapshot-batches 0 >/dev/null
python3 -c '
import sys
for i in range(500000):
    sys.stdout.write("OPEN src:%012d 1000000\r\nOPEN dst:%012d 0\r\n" % (i, i))
' | redis-cli -p "$port" --pipe >/dev/null
redis-benchmark -p "$port" -c 64 -P 16 -n 4500000 -r 500000 -q \
  TRANSFER src:__rand_int__ dst:__rand_int__ 1 2>/dev/null | tr '\r' '\n' | tail -1
redis-cli -p "$port" INFO | grep -E '^(journal_records|committed_record):'
crash
echo "## from the journal alone"
for _ in $(seq "$starts"); do
  start --snapshot-batches 0
  crash
done
# This start replays, then saves a snapshot; stopped gracefully once it has.
start >/dev/null
until redis-cli -p "$port" INFO | grep -q '^snapshots:1'; do sleep 0.2; done
kill -TERM "$pid"; wait "$pid"; pid=
echo "## from the snapshot"
for _ in $(seq "$starts"); do
  start
  money=$(redis-cli -p "$port" TOTAL | head -1)
  [[ $money == 500000000000 ]] || { echo "money is $money, not 500000000000" >&2; exit 1; }
  crash
done
