#!/usr/bin/env bash
# Measures W1 for every implementation at 1 and 2 threads and draws the plot
# the README shows: benchmarks/results/w1.json (the raw run) and
# benchmarks/results/w1.png (transfers per second by implementation and
# thread count, medians).
# Usage: benchmarks/plot_w1.sh [--repeat K] [--quick]   (from any directory)
# Installs cmake, g++, libasio-dev, catch2, gnuplot-nox, python3 and libcaf-dev
# (CAF 0.17, the optional baseline) if missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/deps.sh
courier_ensure_packages gnuplot-nox python3 libcaf-dev

repeat=5
extra=()
while (($#)); do
  case $1 in
    --repeat) repeat=$2; shift 2 ;;
    --quick) extra+=(--quick); shift ;;
    *) echo "usage: $0 [--repeat K] [--quick]" >&2; exit 2 ;;
  esac
done

cmake -S . -B build/bench -DCMAKE_BUILD_TYPE=Release -DCOURIER_BUILD_BENCHMARKS=ON \
  -DCOURIER_BUILD_TESTS=OFF -DCOURIER_BUILD_EXAMPLES=OFF >/dev/null
cmake --build build/bench -j2 --target courier_bench >/dev/null

out=benchmarks/results
build/bench/bin/courier_bench --workloads w1 --threads 1,2 --repeat "$repeat" \
  "${extra[@]}" --json >"$out/w1.json"

# One row per implementation: name, M/s with 1 thread, M/s with 2 threads
# ("-" where the implementation runs on one thread only).
python3 - "$out/w1.json" >"$out/w1.dat" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
rows = {}
for r in report["results"]:
    rows.setdefault(r["impl"], {})[r["threads"]] = r["median_ops_per_sec"] / 1e6
for impl, by_threads in rows.items():
    cells = [f"{by_threads[t]:.3f}" if t in by_threads else "-" for t in (1, 2)]
    print(impl, *cells)
PY

gnuplot <<GP
set terminal pngcairo size 900,500 font "sans,11" noenhanced
set output "$out/w1.png"
set title "W1 bank: 1000 accounts, 64 clients, transfers/s (median of $repeat), $(nproc) cores"
set ylabel "million transfers per second (log scale)"
set logscale y
set yrange [0.1:*]
set style data histogram
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set datafile missing "-"
set key top left
set grid ytics
plot "$out/w1.dat" using 2:xtic(1) title "1 thread", "" using 3 title "2 threads"
GP
echo "wrote $out/w1.json, $out/w1.dat and $out/w1.png"
