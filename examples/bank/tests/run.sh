#!/usr/bin/env bash
# Runs one test of `bank serve` (a Python script beside this one) against the
# bank binary: ./run.sh <script.py> <path/to/bank> [args...]. Installs what
# the tests need if it is missing (redis-cli, Debian's Python client for
# Redis), as the set-up commands do, then runs the script with Debian's
# python3, the one python3-redis belongs to.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "${here}/../../../scripts/deps.sh"
courier_ensure_packages redis-tools python3-redis >&2
script=$1
shift
exec /usr/bin/python3 "${here}/${script}" "$@"
