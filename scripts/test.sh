#!/usr/bin/env bash
# Installs what moat needs, builds everything, and runs the whole test suite (unit,
# integration against the real gateway and test upstream, the openai-npm end-to-end tests over
# HTTP and HTTPS, and the traffic benchmark's smoke scenario when ../shared/datasets exists);
# then, in a second build (clang, AddressSanitizer + UndefinedBehaviorSanitizer, libFuzzer
# instrumentation), the unit and integration tests again and every fuzz target for a bounded
# time. Extra arguments go to the first ctest run.
#   MOAT_FUZZ_SECONDS=60     time per fuzz target
#   MOAT_SANITIZERS=0        skip the sanitizer build and the fuzzing (quick local runs only;
#                            CI runs everything)
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
(cd test/e2e-node && npm ci --no-audit --no-fund --loglevel=error)

echo "== release build and tests"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build
# Timing-sensitive integration tests (timeouts, kill -9 under load) run one at a time.
ctest --test-dir build --output-on-failure --timeout 600 "$@"

if [[ "${MOAT_SANITIZERS:-1}" == "0" ]]; then
  echo "== sanitizer build and fuzzing skipped (MOAT_SANITIZERS=0)"
  exit 0
fi

echo "== ASan + UBSan build (clang, libFuzzer instrumentation)"
# -O1 and line tables only: a faster build whose reports still name files and lines. The
# benchmarks are left out (no test needs them).
CC=clang CXX=clang++ cmake -S . -B build-sanitize -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -gline-tables-only" -DMOAT_SANITIZE=ON -DMOAT_FUZZ=ON \
  -DMOAT_SKIP_DIRS="bench;apps/moat-bench" >/dev/null
cmake --build build-sanitize
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
echo "== unit and integration tests under ASan + UBSan"
# Under ASan the tests run 2-5x slower, and a timing assertion can miss under that load: a
# failed test gets one more run, and fails the build when it fails again. (The release run
# above has no retries.)
ctest --test-dir build-sanitize --output-on-failure --timeout 900 -L 'unit|integration' --repeat until-pass:2

echo "== fuzzing (${MOAT_FUZZ_SECONDS:-60} s per target)"
bash scripts/fuzz.sh build-sanitize "${MOAT_FUZZ_SECONDS:-60}"
