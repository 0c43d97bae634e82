#!/usr/bin/env bash
# `bank serve` against redis-server running the same transfer as a Redis
# function, both driven by redis-benchmark with the same clients and
# pipelining, side by side: the two servers are measured alternately, round
# after round, and each round's ratio is reported beside the medians.
#
# Usage: benchmarks/serve_vs_redis.sh [rounds (default 3)]
#   BANK_THREADS   threads of bank serve's event loop (default 1)
#   REQUESTS       transfers per -P 16 run (default 2000000; the -P 1 runs do a tenth)
#
# On a machine of 2 cores or more, both servers are pinned to core 0 and the
# load generator to core 1 (taskset), so that each server has one core, as
# redis-server (one thread) uses one.
# Both servers run on 127.0.0.1 on free ports, with their data in a temporary
# directory, and are stopped when the script ends, however it ends. Each
# holds 1,000 accounts src:N and 1,000 accounts dst:N (N a 12-digit number,
# as redis-benchmark's __rand_int__ writes it), so a transfer never goes from
# an account to itself (redis-benchmark stops at the first error reply).
# After every run the money is counted on both: it must be what was opened.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/deps.sh
courier_ensure_packages redis-server redis-tools

rounds=${1:-3}
threads=${BANK_THREADS:-1}
requests=${REQUESTS:-2000000}
accounts=1000
initial=1000000000

cmake -S . -B build/bench -DCMAKE_BUILD_TYPE=Release -DCOURIER_SANITIZE= -DCOURIER_BUILD_EXAMPLES=ON \
  -DCOURIER_BUILD_BENCHMARKS=ON >/dev/null
cmake --build build/bench -j "${COURIER_JOBS:-2}" --target bank >/dev/null

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

server_cpu=()
client_cpu=()
if (($(nproc) >= 2)) && command -v taskset >/dev/null; then
  server_cpu=(taskset -c 0)
  client_cpu=(taskset -c 1)
fi

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# --- bank serve ---
${server_cpu[@]+"${server_cpu[@]}"} build/bench/bin/bank serve --port 0 --threads "$threads" --quiet >"$work/bank.out" 2>"$work/bank.err" &
pids+=($!)
for _ in $(seq 300); do grep -q listening "$work/bank.out" && break; sleep 0.1; done
bank_port=$(sed -n 's/^listening on 127.0.0.1:\([0-9]*\)$/\1/p' "$work/bank.out")
[[ -n $bank_port ]] || { echo "bank serve did not start" >&2; cat "$work/bank.err" >&2; exit 1; }

# --- redis-server, no persistence ---
redis_port=$(free_port)
${server_cpu[@]+"${server_cpu[@]}"} redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
  --dir "$work" --daemonize no >"$work/redis.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done

redis-cli -p "$redis_port" FUNCTION LOAD REPLACE "$(cat <<'LUA'
#!lua name=bank
-- The bank's transfer: the source must exist and hold the amount, the target
-- must exist; then the amount moves. Errors change nothing.
redis.register_function('transfer', function(keys, args)
  local amount = tonumber(args[1])
  if amount == nil or amount <= 0 then return redis.error_reply('ERR amount must be greater than zero') end
  local from = tonumber(redis.call('GET', keys[1]))
  if from == nil or redis.call('EXISTS', keys[2]) == 0 then
    return redis.error_reply('ERR unknown account')
  end
  if from < amount then return redis.error_reply('ERR insufficient funds') end
  redis.call('DECRBY', keys[1], amount)
  redis.call('INCRBY', keys[2], amount)
  return redis.status_reply('OK')
end)
LUA
)" >/dev/null

for ((i = 0; i < accounts; i++)); do
  printf 'OPEN src:%012d %d\r\nOPEN dst:%012d %d\r\n' "$i" "$initial" "$i" "$initial"
done | redis-cli -p "$bank_port" >/dev/null
for ((i = 0; i < accounts; i++)); do
  printf 'SET src:%012d %d\r\nSET dst:%012d %d\r\n' "$i" "$initial" "$i" "$initial"
done | redis-cli -p "$redis_port" >/dev/null

expected=$((2 * accounts * initial))
check_bank_total() {
  local total
  total=$(redis-cli -p "$bank_port" TOTAL | head -1)
  [[ $total == "$expected" ]] || { echo "bank serve: TOTAL $total, expected $expected" >&2; exit 1; }
}
check_redis_total() {
  local total
  total=$(redis-cli -p "$redis_port" EVAL "local t = 0 for _, k in ipairs(redis.call('KEYS', '*')) do t = t + tonumber(redis.call('GET', k)) end return t" 0)
  [[ $total == "$expected" ]] || { echo "redis: total $total, expected $expected" >&2; exit 1; }
}

# run <port> <pipeline> <requests> <command...>: prints "rps p50_ms p99_ms"
run() {
  local port=$1 pipeline=$2 n=$3
  shift 3
  ${client_cpu[@]+"${client_cpu[@]}"} redis-benchmark -p "$port" -c 64 -P "$pipeline" -r "$accounts" -n "$n" --csv "$@" 2>/dev/null |
    tail -1 | tr -d '"' | awk -F, '{ printf "%s %s %s\n", $2, $5, $7 }'
}

echo "# $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; redis $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/'); bank serve --threads $threads; servers on ${server_cpu[*]:-any core}, load generator on ${client_cpu[*]:-any core}"
echo "# redis-benchmark -c 64 -P <P> -r $accounts -n <N>: TRANSFER src:__rand_int__ dst:__rand_int__ 1 (bank serve)"
echo "#   against FCALL transfer 2 src:__rand_int__ dst:__rand_int__ 1 (redis-server, Lua function)"
printf '%-6s %-3s %12s %9s %9s %12s %9s %9s %7s\n' round P bank_rps p50_ms p99_ms redis_rps p50_ms p99_ms ratio
for pipeline in 16 1; do
  n=$requests
  [[ $pipeline == 1 ]] && n=$((requests / 10))
  for ((r = 1; r <= rounds; r++)); do
    read -r b_rps b_p50 b_p99 < <(run "$bank_port" "$pipeline" "$n" TRANSFER src:__rand_int__ dst:__rand_int__ 1)
    check_bank_total
    read -r r_rps r_p50 r_p99 < <(run "$redis_port" "$pipeline" "$n" FCALL transfer 2 src:__rand_int__ dst:__rand_int__ 1)
    check_redis_total
    ratio=$(awk -v a="$b_rps" -v b="$r_rps" 'BEGIN { printf "%.2f", a / b }')
    printf '%-6s %-3s %12s %9s %9s %12s %9s %9s %7s\n' "$r" "$pipeline" "$b_rps" "$b_p50" "$b_p99" "$r_rps" "$r_p50" "$r_p99" "$ratio"
  done
done
echo "# money conserved on both after every run"
