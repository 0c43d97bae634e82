#!/usr/bin/env bash
# Builds courier's release configuration and runs the bank example
# (examples/bank; the quickstart example until bank exists).
# Usage: ./scripts/bank.sh [example arguments...]   (from any directory)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/deps.sh

courier_ensure_packages

example=quickstart
if [[ -d examples/bank ]]; then
  example=bank
fi

cmake -S . -B build/release -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCOURIER_SANITIZE=
cmake --build build/release -j "${COURIER_JOBS:-2}" --target "$example"
echo "=== build/release/bin/${example} $*"
exec "build/release/bin/${example}" "$@"
