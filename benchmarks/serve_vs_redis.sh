#!/usr/bin/env bash
# `bank serve` against redis-server running the same transfer as a Redis
# function, both driven by redis-benchmark with the same clients and
# pipelining, side by side: the two servers are measured alternately, round
# after round, and each round's ratio is reported beside the medians.
#
# Usage: benchmarks/serve_vs_redis.sh [rounds (default 3)]
#        benchmarks/serve_vs_redis.sh durable [rounds (default 3)]
#   BANK_THREADS   threads of bank serve's event loop (default 1)
#   REQUESTS       transfers per -P 16 run (default 2000000; the -P 1 runs do a tenth)
#   DURATION       durable: seconds per run (default 20)
#   CONTENDERS     durable: which servers, in the order of a round (default all:
#                  bank_memory bank_full bank_normal redis_always redis_everysec postgres)
#
# On a machine of 2 cores or more, all servers are pinned to core 0 and the
# load generator to core 1 (taskset), so that each server has one core, as
# redis-server (one thread) uses one.
# All servers run on 127.0.0.1 on free ports, with their data in a temporary
# directory, and are stopped when the script ends, however it ends. Each
# holds 1,000 accounts src:N and 1,000 accounts dst:N (N a 12-digit number,
# as redis-benchmark's __rand_int__ writes it), so a transfer never goes from
# an account to itself (redis-benchmark stops at the first error reply).
# After every run the money is counted on every server: it must be what was
# opened.
#
# `durable` compares servers that answer a transfer only once it is on disk
# (or, for the `normal` and `everysec` rows, once it is written for the disk
# to take within about a second), with 64 clients pipelining 16 transfers
# each (-P 16), one row per server in every round:
#   bank_memory     bank serve --in-memory (no journal: what durability costs)
#   bank_full       bank serve --data DIR --sync full (journal flushed at every commit)
#   bank_normal     bank serve --data DIR --sync normal (journal flushed at checkpoints)
#   redis_always    redis-server, appendonly yes, appendfsync always
#   redis_everysec  redis-server, appendonly yes, appendfsync everysec
#   postgres        PostgreSQL 15, synchronous_commit on: the transfer is one
#                   plpgsql function call per transaction (two UPDATEs and an
#                   INSERT into a journal table), driven by pgbench -c 64 -j 2
#                   over the same 2,000 accounts (ids 0-999 send, 1000-1999
#                   receive). pgbench has no pipelining: each client waits for
#                   its commit before the next call.
# Each redis-benchmark run does about DURATION seconds of transfers at the
# rate that server showed in its previous run (a short warm-up before round
# 1); pgbench runs DURATION seconds. The disk's flush rate drifts a lot from
# minute to minute, so the servers take turns within each round, and the
# ratios are given per round beside their medians. On PostgreSQL the journal
# table must also hold one row per transfer pgbench counted.
# Every Redis and bank server keeps running, idle, while the others are
# measured; Redis's AOF rewrites its file in the background when it doubles,
# as it does by default.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/deps.sh

load_at_start=$(cut -d' ' -f1-3 /proc/loadavg)
mode=memory
if [[ ${1:-} == durable ]]; then
  mode=durable
  shift
fi
rounds=${1:-3}
threads=${BANK_THREADS:-1}
requests=${REQUESTS:-2000000}
duration=${DURATION:-20}
accounts=1000
initial=1000000000
pg_bin=/usr/lib/postgresql/15/bin
[[ $rounds =~ ^[1-9][0-9]*$ && $duration =~ ^[1-9][0-9]*$ ]] ||
  { echo "usage: $0 [durable] [rounds]; DURATION in whole seconds" >&2; exit 2; }

if [[ $mode == durable ]]; then
  courier_ensure_packages redis-server redis-tools postgresql-15
else
  courier_ensure_packages redis-server redis-tools
fi

cmake -S . -B build/bench -DCMAKE_BUILD_TYPE=Release -DCOURIER_SANITIZE= -DCOURIER_BUILD_EXAMPLES=ON \
  -DCOURIER_BUILD_BENCHMARKS=ON >/dev/null
cmake --build build/bench -j "${COURIER_JOBS:-2}" --target bank >/dev/null
bank=build/bench/bin/bank

# A bank whose serve has a journal is durable by default; --in-memory asks
# for the bank without one.
memory_flag=()
if "$bank" serve --help | grep -- --in-memory >/dev/null; then
  memory_flag=(--in-memory)
fi

contenders=()
if [[ $mode == durable ]]; then
  read -r -a contenders <<<"${CONTENDERS:-bank_memory bank_full bank_normal redis_always redis_everysec postgres}"
  for c in "${contenders[@]}"; do
    case $c in
      bank_memory | bank_full | bank_normal)
        ((${#memory_flag[@]})) ||
          { echo "$c: this bank serve has no journal (no --in-memory in bank serve --help)" >&2; exit 1; } ;;
      redis_always | redis_everysec | postgres) ;;
      *) echo "CONTENDERS: unknown server $c" >&2; exit 2 ;;
    esac
  done
fi
has() {
  local c
  for c in "${contenders[@]}"; do [[ $c == "$1" ]] && return 0; done
  return 1
}

work=$(mktemp -d)
pids=()
load_pid=
flush_counter=  # perf counting flushes (durable mode)
pg_data=
# PostgreSQL runs as user postgres: root becomes it with runuser, another
# user with sudo.
sudo=()
as_pg=()
if [[ $(id -u) == 0 ]]; then
  as_pg=(runuser -u postgres --)
elif [[ $(id -un) != postgres ]]; then
  sudo=(sudo)
  as_pg=(sudo -u postgres)
fi
as_postgres() {
  (cd "$work/postgres" && ${as_pg[@]+"${as_pg[@]}"} "$@")
}
cleanup() {
  if [[ -n $load_pid ]]; then kill "$load_pid" 2>/dev/null || true; fi
  if [[ -n $flush_counter ]]; then kill -INT "$flush_counter" 2>/dev/null || true; fi
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [[ -n $pg_data && -f $pg_data/postmaster.pid ]]; then
    as_postgres "$pg_bin/pg_ctl" -D "$pg_data" -m immediate stop >/dev/null 2>&1 || true
  fi
  if [[ -n $pg_data ]]; then
    ${sudo[@]+"${sudo[@]}"} rm -rf "$work"
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

server_cpu=()
client_cpu=()
if (($(nproc) >= 2)) && command -v taskset >/dev/null; then
  server_cpu=(taskset -c 0)
  client_cpu=(taskset -c 1)
fi

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# The load generator runs in the background and the script waits for it, so
# that a signal to the script ends the run at once (cleanup kills it).
load() {
  local status=0
  ${client_cpu[@]+"${client_cpu[@]}"} "$@" &
  load_pid=$!
  wait "$load_pid" || status=$?
  load_pid=
  return "$status"
}

declare -A port

# start_bank <name> <bank serve options...>
start_bank() {
  local name=$1
  shift
  ${server_cpu[@]+"${server_cpu[@]}"} "$bank" serve --port 0 --threads "$threads" --quiet "$@" \
    >"$work/$name.out" 2>"$work/$name.err" &
  pids+=($!)
  for _ in $(seq 300); do grep -q listening "$work/$name.out" && break; sleep 0.1; done
  port[$name]=$(sed -n 's/^listening on 127.0.0.1:\([0-9]*\)$/\1/p' "$work/$name.out")
  [[ -n ${port[$name]} ]] || { echo "$name: bank serve did not start" >&2; cat "$work/$name.err" >&2; exit 1; }
  for ((i = 0; i < accounts; i++)); do
    printf 'OPEN src:%012d %d\r\nOPEN dst:%012d %d\r\n' "$i" "$initial" "$i" "$initial"
  done | redis-cli -p "${port[$name]}" >/dev/null
}

# start_redis <name> <redis-server options...>
start_redis() {
  local name=$1
  shift
  port[$name]=$(free_port)
  mkdir "$work/$name"
  ${server_cpu[@]+"${server_cpu[@]}"} redis-server --port "${port[$name]}" --bind 127.0.0.1 --save '' \
    --dir "$work/$name" --daemonize no "$@" >"$work/$name.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do redis-cli -p "${port[$name]}" ping >/dev/null 2>&1 && break; sleep 0.1; done
  redis-cli -p "${port[$name]}" ping >/dev/null 2>&1 ||
    { echo "$name: redis-server did not start" >&2; cat "$work/$name.log" >&2; exit 1; }

  redis-cli -p "${port[$name]}" FUNCTION LOAD REPLACE "$(cat <<'LUA'
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
    printf 'SET src:%012d %d\r\nSET dst:%012d %d\r\n' "$i" "$initial" "$i" "$initial"
  done | redis-cli -p "${port[$name]}" >/dev/null
}

# PostgreSQL 15 in the temporary directory, run by user postgres; accounts
# 0-999 are the sources, 1000-1999 the targets.
pg_psql() {
  "$pg_bin/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "${port[postgres]}" -U postgres "$@" postgres
}
start_postgres() {
  chmod 711 "$work"
  mkdir "$work/postgres"
  [[ $(id -un) == postgres ]] || ${sudo[@]+"${sudo[@]}"} chown postgres: "$work/postgres"
  pg_data=$work/postgres/data
  as_postgres "$pg_bin/initdb" -D "$pg_data" --no-sync --auth=trust -U postgres --locale=C -E UTF8 \
    >"$work/postgres/initdb.log" 2>&1 ||
    { echo "postgres: initdb failed" >&2; cat "$work/postgres/initdb.log" >&2; exit 1; }
  port[postgres]=$(free_port)
  as_postgres ${server_cpu[@]+"${server_cpu[@]}"} "$pg_bin/pg_ctl" -w -D "$pg_data" -l "$work/postgres/server.log" \
    -o "-c listen_addresses=127.0.0.1 -c port=${port[postgres]} -c unix_socket_directories=$work/postgres" \
    start >/dev/null 2>&1 ||
    { echo "postgres: pg_ctl start failed" >&2; cat "$work/postgres/server.log" >&2; exit 1; }
  pg_psql <<SQL
CREATE TABLE accounts (id integer PRIMARY KEY, balance bigint NOT NULL);
INSERT INTO accounts SELECT g, $initial FROM generate_series(0, $((2 * accounts - 1))) g;
CREATE TABLE transfers (
  id bigserial PRIMARY KEY,
  source integer NOT NULL,
  target integer NOT NULL,
  amount bigint NOT NULL,
  at timestamptz NOT NULL DEFAULT now()
);
-- The bank's transfer: the source must exist and hold the amount, the target
-- must exist; then the amount moves and the journal gets its row. An error
-- rolls the whole call back. Sources lock before targets, and no account is
-- both, so concurrent calls cannot deadlock.
CREATE FUNCTION transfer(p_source integer, p_target integer, p_amount bigint) RETURNS void
LANGUAGE plpgsql AS \$\$
BEGIN
  IF p_amount <= 0 THEN
    RAISE EXCEPTION 'amount must be greater than zero';
  END IF;
  UPDATE accounts SET balance = balance - p_amount WHERE id = p_source AND balance >= p_amount;
  IF NOT FOUND THEN
    IF EXISTS (SELECT 1 FROM accounts WHERE id = p_source) THEN
      RAISE EXCEPTION 'insufficient funds';
    END IF;
    RAISE EXCEPTION 'unknown account';
  END IF;
  UPDATE accounts SET balance = balance + p_amount WHERE id = p_target;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'unknown account';
  END IF;
  INSERT INTO transfers (source, target, amount) VALUES (p_source, p_target, p_amount);
END
\$\$;
SQL
  cat >"$work/transfer.sql" <<SQL
\\set source random(0, $((accounts - 1)))
\\set target random($accounts, $((2 * accounts - 1)))
SELECT transfer(:source, :target, 1);
SQL
}

expected=$((2 * accounts * initial))
check_bank_total() {
  local total
  total=$(redis-cli -p "${port[$1]}" TOTAL | head -1)
  [[ $total == "$expected" ]] || { echo "$1: TOTAL $total, expected $expected" >&2; exit 1; }
}
check_redis_total() {
  local total
  total=$(redis-cli -p "${port[$1]}" EVAL "local t = 0 for _, k in ipairs(redis.call('KEYS', '*')) do t = t + tonumber(redis.call('GET', k)) end return t" 0)
  [[ $total == "$expected" ]] || { echo "$1: total $total, expected $expected" >&2; exit 1; }
}
pg_transfers=0  # transfers pgbench counted, which the journal table must hold
check_pg_total() {
  local total rows
  IFS='|' read -r total rows < <(pg_psql -c 'SELECT (SELECT sum(balance) FROM accounts), (SELECT count(*) FROM transfers)')
  [[ $total == "$expected" ]] || { echo "postgres: total $total, expected $expected" >&2; exit 1; }
  [[ $rows == "$pg_transfers" ]] || { echo "postgres: $rows journal rows, $pg_transfers transfers counted" >&2; exit 1; }
}

# run <port> <pipeline> <requests> <command...>: sets res to (rps p50_ms p99_ms)
run() {
  local server=$1 pipeline=$2 n=$3
  shift 3
  load redis-benchmark -p "$server" -c 64 -P "$pipeline" -r "$accounts" -n "$n" --csv "$@" \
    >"$work/benchmark.csv" 2>"$work/benchmark.err" ||
    { echo "redis-benchmark failed on port $server" >&2; cat "$work/benchmark.csv" "$work/benchmark.err" >&2; exit 1; }
  read -r -a res <<<"$(tail -1 "$work/benchmark.csv" | tr -d '"' | awk -F, '{ printf "%s %s %s\n", $2, $5, $7 }')"
}

# run_pgbench <seconds>: sets res to (tps p50_ms p99_ms), the percentiles
# from pgbench's log of every transaction's time
run_pgbench() {
  local processed
  rm -f "$work"/pgbench_log.*
  load "$pg_bin/pgbench" -h 127.0.0.1 -p "${port[postgres]}" -U postgres -c 64 -j 2 -T "$1" -n \
    -f "$work/transfer.sql" -l --log-prefix "$work/pgbench_log" postgres >"$work/pgbench.out" 2>"$work/pgbench.err" ||
    { echo "postgres: pgbench failed" >&2; cat "$work/pgbench.out" "$work/pgbench.err" >&2; exit 1; }
  grep -q '^number of failed transactions: 0 ' "$work/pgbench.out" ||
    { echo "postgres: failed transactions" >&2; cat "$work/pgbench.out" >&2; exit 1; }
  processed=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$work/pgbench.out")
  pg_transfers=$((pg_transfers + processed))
  read -r -a res <<<"$(awk '/^tps = / { printf "%.2f", $3 }' "$work/pgbench.out") $(
    cat "$work"/pgbench_log.* | awk '{ print $3 }' | sort -n |
      awk '{ t[NR] = $1 } END { printf "%.3f %.3f", t[int(NR * 0.50 + 0.5)] / 1000, t[int(NR * 0.99 + 0.5)] / 1000 }')"
}

# median <decimals> <values...>
median() {
  local decimals=$1
  shift
  printf '%s\n' "$@" | sort -g |
    awk -v d="$decimals" '{ v[NR] = $1 } END { printf "%.*f", d, NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

if [[ $mode == memory ]]; then
  start_bank bank ${memory_flag[@]+"${memory_flag[@]}"}
  start_redis redis --appendonly no

  echo "# $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; redis $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/'); bank serve --threads $threads; servers on ${server_cpu[*]:-any core}, load generator on ${client_cpu[*]:-any core}"
  echo "# redis-benchmark -c 64 -P <P> -r $accounts -n <N>: TRANSFER src:__rand_int__ dst:__rand_int__ 1 (bank serve)"
  echo "#   against FCALL transfer 2 src:__rand_int__ dst:__rand_int__ 1 (redis-server, Lua function)"
  printf '%-6s %-3s %12s %9s %9s %12s %9s %9s %7s\n' round P bank_rps p50_ms p99_ms redis_rps p50_ms p99_ms ratio
  for pipeline in 16 1; do
    n=$requests
    [[ $pipeline == 1 ]] && n=$((requests / 10))
    for ((r = 1; r <= rounds; r++)); do
      run "${port[bank]}" "$pipeline" "$n" TRANSFER src:__rand_int__ dst:__rand_int__ 1
      b_rps=${res[0]} b_p50=${res[1]} b_p99=${res[2]}
      check_bank_total bank
      run "${port[redis]}" "$pipeline" "$n" FCALL transfer 2 src:__rand_int__ dst:__rand_int__ 1
      r_rps=${res[0]} r_p50=${res[1]} r_p99=${res[2]}
      check_redis_total redis
      ratio=$(awk -v a="$b_rps" -v b="$r_rps" 'BEGIN { printf "%.2f", a / b }')
      printf '%-6s %-3s %12s %9s %9s %12s %9s %9s %7s\n' "$r" "$pipeline" "$b_rps" "$b_p50" "$b_p99" "$r_rps" "$r_p50" "$r_p99" "$ratio"
    done
  done
  echo "# money conserved on both after every run"
  exit 0
fi

# --- durable ---
for c in "${contenders[@]}"; do
  case $c in
    bank_memory) start_bank "$c" --in-memory ;;
    bank_full) start_bank "$c" --data "$work/$c" --sync full ;;
    bank_normal) start_bank "$c" --data "$work/$c" --sync normal ;;
    redis_always) start_redis "$c" --appendonly yes --appendfsync always ;;
    redis_everysec) start_redis "$c" --appendonly yes --appendfsync everysec ;;
    postgres) start_postgres ;;
  esac
done

# Flushes: the fdatasync and fsync calls of every process on the machine
# while a run goes on (only the server measured is busy), counted by perf's
# syscall tracepoints where perf can count them: how many transfers one
# flush carries, on average, shows who commits in groups.
flushes_counted=false
if command -v perf >/dev/null &&
  perf stat -a -x, -e syscalls:sys_enter_fdatasync,syscalls:sys_enter_fsync -- true >/dev/null 2>&1; then
  flushes_counted=true
fi
flushes_start() {
  $flushes_counted || return 0
  perf stat -a -x, -e syscalls:sys_enter_fdatasync,syscalls:sys_enter_fsync -o "$work/flushes" &
  flush_counter=$!
  sleep 0.3  # perf counts from here
}
# flushes_stop <seconds the run took> <transfers/s>: adds to res the flushes
# per second and the transfers per flush ("-" where not counted)
flushes_stop() {
  if ! $flushes_counted; then
    res+=(- -)
    return 0
  fi
  kill -INT "$flush_counter"
  wait "$flush_counter" || true
  res+=($(grep -v '^#' "$work/flushes" | awk -F, -v secs="$1" -v rate="$2" \
    '$1 ~ /^[0-9]+$/ { n += $1 } END { f = n / secs; printf "%.0f %s\n", f, (f > 0 ? sprintf("%.0f", rate / f) : "-") }'))
}

# measure <server> <size>: one run of <size> transfers (postgres: seconds),
# checked; sets res to (rps p50_ms p99_ms seconds flushes/s transfers/flush)
measure() {
  local c=$1 n=$2 start secs
  flushes_start
  start=$EPOCHREALTIME
  case $c in
    bank_*) run "${port[$c]}" 16 "$n" TRANSFER src:__rand_int__ dst:__rand_int__ 1 ;;
    redis_*) run "${port[$c]}" 16 "$n" FCALL transfer 2 src:__rand_int__ dst:__rand_int__ 1 ;;
    postgres) run_pgbench "$n" ;;
  esac
  secs=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
  res+=("$secs")
  flushes_stop "$secs" "${res[0]}"
  case $c in
    bank_*) check_bank_total "$c" ;;
    redis_*) check_redis_total "$c" ;;
    postgres) check_pg_total ;;
  esac
}

# Transfers for about <seconds> at <rps>.
size() { awk -v r="$1" -v d="$2" 'BEGIN { n = int(r * d); print n < 1000 ? 1000 : n }'; }

declare -A next rps p99 per_flush
warmup=()
for c in "${contenders[@]}"; do
  if [[ $c == postgres ]]; then
    measure "$c" 3
    next[$c]=$duration
  else
    measure "$c" 20000
    measure "$c" "$(size "${res[0]}" 2)"
    next[$c]=$(size "${res[0]}" "$duration")
  fi
  warmup+=("$c ${res[0]}")
done

pg_version=
if has postgres; then pg_version="; PostgreSQL $("$pg_bin/postgres" --version | awk '{ print $3 }')"; fi
echo "# $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; redis $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/')$pg_version; bank serve --threads $threads; servers on ${server_cpu[*]:-any core}, load generator on ${client_cpu[*]:-any core}; load average at start $load_at_start"
echo "# redis-benchmark -c 64 -P 16 -r $accounts -n <about ${duration} s>: TRANSFER src:__rand_int__ dst:__rand_int__ 1 (bank serve)"
echo "#   FCALL transfer 2 src:__rand_int__ dst:__rand_int__ 1 (redis-server, Lua function)"
echo "# pgbench -c 64 -j 2 -T $duration -n -f transfer.sql: SELECT transfer(:source, :target, 1) (PostgreSQL, plpgsql function)"
echo "# bank_memory: bank serve --in-memory; bank_full, bank_normal: bank serve --data DIR --sync full, normal;"
echo "#   redis_always, redis_everysec: appendonly yes, appendfsync always, everysec; postgres: synchronous_commit on"
echo "# warm-up, transfers/s: ${warmup[*]}"
printf '%-6s %-15s %12s %9s %9s %7s %9s %9s\n' round server transfers/s p50_ms p99_ms secs flushes/s per_flush

# The ratios reported, of servers both measured: a/b is a's rate over b's.
pairs=()
for pair in bank_full/redis_always bank_full/postgres bank_normal/redis_everysec bank_full/bank_memory; do
  if has "${pair%/*}" && has "${pair#*/}"; then pairs+=("$pair"); fi
done
# ratio <a/b> <round>
ratio() { awk -v a="${rps[${1%/*},$2]}" -v b="${rps[${1#*/},$2]}" 'BEGIN { printf "%.2f", a / b }'; }
for ((r = 1; r <= rounds; r++)); do
  for c in "${contenders[@]}"; do
    measure "$c" "${next[$c]}"
    rps[$c,$r]=${res[0]}
    p99[$c,$r]=${res[2]}
    [[ $c == postgres ]] || next[$c]=$(size "${res[0]}" "$duration")
    per_flush[$c,$r]=${res[5]}
    printf '%-6s %-15s %12s %9s %9s %7s %9s %9s\n' "$r" "$c" "${res[@]}"
  done
  if ((${#pairs[@]})); then
    line=
    for pair in "${pairs[@]}"; do line+="  $pair $(ratio "$pair" "$r")"; done
    printf '%-6s %s\n' "$r" "ratios:$line"
  fi
done

echo "# medians over $rounds rounds"
printf '%-15s %12s %9s %9s\n' server transfers/s p99_ms per_flush
for c in "${contenders[@]}"; do
  rates=()
  tails=()
  carried=()
  for ((r = 1; r <= rounds; r++)); do
    rates+=("${rps[$c,$r]}")
    tails+=("${p99[$c,$r]}")
    [[ ${per_flush[$c,$r]} == - ]] || carried+=("${per_flush[$c,$r]}")
  done
  printf '%-15s %12s %9s %9s\n' "$c" "$(median 2 "${rates[@]}")" "$(median 3 "${tails[@]}")" \
    "$( ((${#carried[@]})) && median 0 "${carried[@]}" || echo -)"
done
((${#pairs[@]} == 0)) || printf '%-27s %6s   %s\n' ratio median 'per round'
for pair in "${pairs[@]}"; do
  per=()
  for ((r = 1; r <= rounds; r++)); do per+=("$(ratio "$pair" "$r")"); done
  printf '%-27s %6s   %s\n' "$pair" "$(median 2 "${per[@]}")" "${per[*]}"
done
echo "# money conserved on every server after every run; PostgreSQL's journal holds one row per transfer"
