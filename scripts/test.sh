#!/usr/bin/env bash
# Installs what moat needs, builds everything, and runs the whole test suite (unit,
# integration against the real gateway and test upstream, the openai-npm end-to-end test, and
# the traffic benchmark's smoke scenario when ../shared/datasets exists).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
(cd test/e2e-node && npm ci --no-audit --no-fund --loglevel=error)
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build
# Timing-sensitive integration tests (timeouts, kill -9 under load) run one at a time.
ctest --test-dir build --output-on-failure --timeout 600 "$@"
