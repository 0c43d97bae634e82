#!/usr/bin/env bash
# Does this tree's `bank serve --in-memory` transfer as fast as an earlier
# commit's `bank serve`? Both are built in Release, then measured alternately,
# round after round, under the same load (redis-benchmark -c 64 -P 16
# TRANSFER over 1,000 + 1,000 accounts, the server pinned to core 0 and the
# load to core 1 on a machine of 2 cores or more). Each round also measures
# the earlier build a second time: the spread of that A/A ratio is the noise
# the A/B ratio (new over the mean of the two old runs) is to be read
# against. The three runs of a round take turns at going first.
#
# Usage: benchmarks/in_memory_vs_commit.sh COMMIT [rounds (default 8)]
#   TRANSFERS   transfers per run (default 3000000)
# The earlier commit is built in a temporary git worktree, removed at the
# end; the servers run on 127.0.0.1 on free ports and are stopped however
# the script ends.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/deps.sh

[[ $# -ge 1 ]] || { echo "usage: $0 COMMIT [rounds]" >&2; exit 2; }
base=$(git rev-parse --verify --quiet "$1^{commit}") || { echo "$0: no commit '$1'" >&2; exit 2; }
rounds=${2:-8}
transfers=${TRANSFERS:-3000000}
[[ $rounds =~ ^[1-9][0-9]*$ && $transfers =~ ^[1-9][0-9]*$ ]] ||
  { echo "usage: $0 COMMIT [rounds]; TRANSFERS a whole number" >&2; exit 2; }
courier_ensure_packages redis-tools

work=$(mktemp -d)
pid=
cleanup() {
  if [[ -n $pid ]]; then kill "$pid" 2>/dev/null || true; fi
  wait 2>/dev/null || true
  git worktree remove --force "$work/base" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

build() {  # build <source dir> <build dir>
  cmake -S "$1" -B "$2" -DCMAKE_BUILD_TYPE=Release -DCOURIER_SANITIZE= -DCOURIER_BUILD_EXAMPLES=ON \
    >/dev/null
  cmake --build "$2" -j "${COURIER_JOBS:-2}" --target bank >/dev/null
}
git worktree add --detach "$work/base" "$base" >/dev/null 2>&1
build "$work/base" "$work/base-build"
build . build/bench
new=build/bench/bin/bank
old=$work/base-build/bin/bank
# The earlier server may predate --in-memory (then it kept nothing anyway).
old_flags=()
old_help=$("$old" serve --help 2>&1 || true)
if [[ $old_help == *--in-memory* ]]; then old_flags=(--in-memory); fi

server_cpu=()
client_cpu=()
if (($(nproc) >= 2)) && command -v taskset >/dev/null; then
  server_cpu=(taskset -c 0)
  client_cpu=(taskset -c 1)
fi
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
for ((i = 0; i < 1000; i++)); do
  printf 'OPEN src:%012d 1000000000\r\nOPEN dst:%012d 0\r\n' "$i" "$i"
done >"$work/opens"

# rate <bank> <flags...>: transfers/s of one run on a fresh server
rate() {
  local bank=$1 r
  shift
  ${server_cpu[@]+"${server_cpu[@]}"} "$bank" serve --port "$port" --quiet "$@" >/dev/null 2>"$work/err" &
  pid=$!
  for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  redis-cli -p "$port" <"$work/opens" >/dev/null
  r=$(${client_cpu[@]+"${client_cpu[@]}"} redis-benchmark -p "$port" -c 64 -P 16 -n "$transfers" -r 1000 --csv \
    TRANSFER src:__rand_int__ dst:__rand_int__ 1 | tail -1 | tr -d '"' | cut -d, -f2)
  kill "$pid"
  wait "$pid" || true
  pid=
  [[ $r =~ ^[0-9.]+$ ]] || { echo "$0: no rate from $bank" >&2; cat "$work/err" >&2; exit 1; }
  echo "$r"
}
median() {
  printf '%s\n' "$@" | sort -g |
    awk '{ v[NR] = $1 } END { printf "%.3f", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

echo "# $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; load average at start $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# redis-benchmark -c 64 -P 16 -r 1000 -n $transfers TRANSFER src:__rand_int__ dst:__rand_int__ 1"
echo "# new: $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- include examples || echo ' + changes') bank serve --in-memory;" \
  "old: $(git rev-parse --short "$base") bank serve ${old_flags[*]}"
printf '%-6s %12s %12s %12s %8s %8s\n' round new old old_again new/olds A/A
ab=()
aa=()
for ((r = 1; r <= rounds; r++)); do
  # The three runs take turns at going first: a run's place in the round
  # (a warmer cache, say) is then no one build's advantage.
  n= o= o2=
  for ((k = 0; k < 3; k++)); do
    case $(((r - 1 + k) % 3)) in
      0) n=$(rate "$new" --in-memory) ;;
      1) o=$(rate "$old" ${old_flags[@]+"${old_flags[@]}"}) ;;
      2) o2=$(rate "$old" ${old_flags[@]+"${old_flags[@]}"}) ;;
    esac
  done
  ab+=("$(awk -v a="$n" -v b="$o" -v c="$o2" 'BEGIN { printf "%.3f", 2 * a / (b + c) }')")
  aa+=("$(awk -v a="$o2" -v b="$o" 'BEGIN { printf "%.3f", a / b }')")
  printf '%-6s %12s %12s %12s %8s %8s\n' "$r" "$n" "$o" "$o2" "${ab[-1]}" "${aa[-1]}"
done
echo "# medians over $rounds rounds: new/(mean of old, old_again) $(median "${ab[@]}"), old/old (A/A) $(median "${aa[@]}")" \
  "(A/A from $(printf '%s\n' "${aa[@]}" | sort -g | head -1) to $(printf '%s\n' "${aa[@]}" | sort -g | tail -1))"
