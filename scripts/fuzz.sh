#!/usr/bin/env bash
# Runs every libFuzzer target of a MOAT_FUZZ build for a bounded time, starting from its seed
# corpus (fuzz/corpus/<target>, read only; new inputs go to <build>/fuzz-work/<target>).
# Prints executions per target; exits non-zero when a target finds a crash, leak, sanitizer
# report or timeout (the reproducer is left in <build>/fuzz-artifacts/).
#   scripts/fuzz.sh BUILD_DIR [SECONDS_PER_TARGET]
set -euo pipefail
cd "$(dirname "$0")/.."

build=${1:?usage: scripts/fuzz.sh BUILD_DIR [SECONDS_PER_TARGET]}
seconds=${2:-60}
# One input may take at most this long, and the process this much memory.
per_input_timeout_s=10
rss_limit_mb=2048

mkdir -p "$build/fuzz-artifacts"
summary=()
status=0
for seeds in fuzz/corpus/*/; do
  target=$(basename "$seeds")
  bin="$build/fuzz/${target}_fuzzer"
  [[ -x "$bin" ]] || { echo "fuzz: $bin is missing (configure with -DMOAT_FUZZ=ON)" >&2; exit 1; }
  work="$build/fuzz-work/$target"
  mkdir -p "$work"
  log="$build/fuzz-artifacts/$target.log"
  echo "fuzz: $target for ${seconds}s"
  if "$bin" -max_total_time="$seconds" -timeout="$per_input_timeout_s" -rss_limit_mb="$rss_limit_mb" \
       -print_final_stats=1 -artifact_prefix="$build/fuzz-artifacts/$target-" "$work" "$seeds" \
       >"$log" 2>&1; then
    result=ok
  else
    result=FAILED
    status=1
    tail -n 60 "$log" >&2
  fi
  execs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | tail -n1 | grep -oE '[0-9]+$' || echo 0)
  rate=$(grep -oE 'stat::average_exec_per_sec: *[0-9]+' "$log" | tail -n1 | grep -oE '[0-9]+$' || echo 0)
  summary+=("$(printf '%-16s %12s executions %8s/s  %s' "$target" "$execs" "$rate" "$result")")
done
echo "fuzz summary (${seconds}s per target):"
printf '  %s\n' "${summary[@]}"
exit $status
