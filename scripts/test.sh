#!/usr/bin/env bash
# courier's full check, as run by CI (.ci/run): installs missing Debian
# packages, checks formatting, then builds with -Werror and runs ctest in
#   build/tsan     ThreadSanitizer
#   build/asan     AddressSanitizer + UndefinedBehaviorSanitizer
#   build/release  RelWithDebInfo, plus compile-fail and consumer tests (last)
# Usage: ./scripts/test.sh   (from any directory)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/deps.sh

jobs=${COURIER_JOBS:-2}

# The tests of `bank serve` drive it with redis-cli and Debian's Python
# client for Redis; one counts its disk flushes with strace.
courier_ensure_packages redis-tools python3-redis strace

# --- formatting ---------------------------------------------------------------
if command -v clang-format >/dev/null 2>&1; then
  dirs=()
  for d in include tests examples benchmarks; do
    [[ -d $d ]] && dirs+=("$d")
  done
  files=()
  if ((${#dirs[@]})); then
    mapfile -t files < <(find "${dirs[@]}" -type f \
      \( -name '*.hpp' -o -name '*.cpp' -o -name '*.h' -o -name '*.cc' \) | sort)
  fi
  if ((${#files[@]})); then
    clang-format --dry-run --Werror "${files[@]}"
    echo "format: ${#files[@]} files match .clang-format"
  fi
else
  echo "format: clang-format not installed, formatting check skipped"
fi

# --- builds ---------------------------------------------------------------------
# build_and_test <build dir> <cmake -D options...>
build_and_test() {
  local dir=$1
  shift
  echo "=== ${dir}"
  cmake -S . -B "$dir" -DCOURIER_WERROR=ON "$@"
  cmake --build "$dir" -j "$jobs"
  ctest --test-dir "$dir" --output-on-failure --no-label-summary -j "$jobs"
}

# Sanitizer builds: -O1 -g with assertions kept (no -DNDEBUG).
sanitizer_flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g")

(
  export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$PWD/tests/tsan.supp"
  build_and_test build/tsan "${sanitizer_flags[@]}" -DCOURIER_SANITIZE=thread
)
(
  export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
  build_and_test build/asan "${sanitizer_flags[@]}" -DCOURIER_SANITIZE=address
)
# Last, so that its ctest summary ends the output.
build_and_test build/release -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCOURIER_SANITIZE= \
  -DCOURIER_BUILD_BENCHMARKS=ON
