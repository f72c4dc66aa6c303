#!/usr/bin/env bash
# Installs every Debian 12 package moat needs to build, test and benchmark.
# Idempotent: packages already present are skipped by apt-get.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config git ca-certificates python3
  libboost1.81-dev libboost-json1.81-dev
  libsodium-dev libsqlite3-dev sqlite3 libssl-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libcli11-dev libtomlplusplus-dev libfmt-dev libxxhash-dev zlib1g-dev
  fortunes-min fortunes
  curl openssl
  # The sanitizer build and the libFuzzer targets (scripts/test.sh, scripts/fuzz.sh).
  clang-14 clang libclang-rt-14-dev llvm-14
)
# Node.js runs the end-to-end test with the official openai client. Use the machine's own
# node/npm when present (some images ship a newer one that conflicts with Debian's npm).
if ! command -v npm >/dev/null 2>&1; then
  PACKAGES+=(nodejs npm)
fi
if [[ "${MOAT_BENCH_DEPS:-0}" == "1" ]]; then
  PACKAGES+=(wrk hey nginx-light hyperfine ccache python3 linux-perf)
fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if (( ${#missing[@]} )); then
  SUDO=""
  [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
