#!/usr/bin/env bash
# Installs what moat needs, builds it, and runs `moat serve` on the embedded defaults:
# the built-in model (trained from the Debian `fortunes` package on first run), SQLite under
# ./var, listening on 127.0.0.1:8080. Prints a demo API key on first run.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build --target moat
MOAT=./build/apps/moat/moat
CONFIG=${MOAT_CONFIG:-config/moat.toml}

mkdir -p var
if [[ ! -f var/model.bin ]]; then
  echo "training the built-in model from /usr/share/games/fortunes ..."
  "$MOAT" model train --out var/model.bin
fi
if [[ ! -f var/demo.key ]]; then
  "$MOAT" account show demo --config "$CONFIG" >/dev/null 2>&1 ||
    "$MOAT" account create demo --tier verified --config "$CONFIG" >/dev/null
  (umask 077 && "$MOAT" key create --account demo --label demo --config "$CONFIG" 2>/dev/null > var/demo.key)
  echo "demo API key (also in var/demo.key): $(cat var/demo.key)"
fi
echo "try: curl http://127.0.0.1:8080/v1/chat/completions -H \"Authorization: Bearer \$(cat var/demo.key)\" \\"
echo "       -H 'Content-Type: application/json' -d '{\"model\":\"moat-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"Tell me a fortune\"}]}'"
exec "$MOAT" serve --config "$CONFIG"
