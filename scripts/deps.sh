# Sourced by scripts/test.sh and scripts/bank.sh (not executable on its own).
# Installs the Debian packages courier's build needs, only if one is missing.

# Extra package names given as arguments are ensured too. The bank example's
# binary parses its command line with CLI11 and writes JSON with
# nlohmann-json; its journal keeps records in SQLite; valgrind runs the
# bank.memcheck test, which fails without it in the plain build.
courier_ensure_packages() {
  local packages=(cmake g++ libasio-dev catch2 libcli11-dev nlohmann-json3-dev libsqlite3-dev
    valgrind "$@")
  if ! command -v dpkg >/dev/null 2>&1; then
    echo "deps: no dpkg (not Debian/Ubuntu); assuming ${packages[*]} are provided" >&2
    return 0
  fi
  local missing=() p
  for p in "${packages[@]}"; do
    if ! dpkg -s "$p" 2>/dev/null | grep -q '^Status: install ok installed'; then
      missing+=("$p")
    fi
  done
  if ((${#missing[@]} == 0)); then
    return 0
  fi
  echo "deps: installing ${missing[*]}" >&2
  local sudo=()
  if [[ $(id -u) -ne 0 ]]; then
    sudo=(sudo)
  fi
  "${sudo[@]}" apt-get update
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends "${missing[@]}"
}
