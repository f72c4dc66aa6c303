#!/usr/bin/env bash
# Gateway load benchmark: one command that measures, against the same moat-test-upstream and in
# one run, the upstream called directly, moat, nginx as a plain reverse proxy and Portkey's
# open-source AI gateway; non-streaming and streaming; added latency p50/p99 at a fixed rate
# (open loop, sse_load) and maximum throughput (closed loop, wrk). See README.md for the method.
#
# Usage: bench/gateway/run.sh            (from anywhere; about 3 minutes)
# Environment (all optional):
#   MOAT_BUILD_DIR   build directory to use (default <repo>/build-bench; built here if needed)
#   MOAT_SKIP_BUILD  1: use the binaries already in the build directory as they are
#   MOAT_BIN         benchmark this moat binary instead of the build directory's
#   RATE             open-loop request rate for the latency rows (default 1000 req/s)
#   LAT_SECONDS      measured seconds per latency row (default 8, plus 1 s warm-up)
#   LOW_RATE         a second, lower open-loop rate every target can sustain (default 200;
#                    0 skips it), measured for LOW_LAT_SECONDS (default 5)
#   TPUT_SECONDS     seconds per wrk throughput row (default 5, plus a 1 s warm-up)
#   WRK_CONNECTIONS  wrk connections (default 64); WRK_THREADS (default 2)
#   MOAT_THREADS     moat's [server] threads and nginx's worker_processes (default 2)
#   TOKENS           completion tokens per request (default 16); streaming sends one event each
#   TARGETS          subset of "direct moat nginx portkey" (default all four)
#   BENCH_NICE       if set (e.g. -10, needs root), every process this script starts runs at that
#                    nice value: on a machine shared with builds it cuts scheduler noise from p99
#   MOAT_EXTRA_TOML  TOML appended to moat's config (e.g. "[detection]\nenabled = false" to see
#                    what the detection engine costs)
#   RESULTS          where to write the markdown table (default $OUT/gateway-bench.md if $OUT is
#                    set, else the run's temp dir); never inside the repository
# Every server listens on 127.0.0.1 only and is stopped on exit.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
BUILD_DIR="${MOAT_BUILD_DIR:-$ROOT/build-bench}"
RATE="${RATE:-1000}"
LOW_RATE="${LOW_RATE:-200}"
LOW_LAT_SECONDS="${LOW_LAT_SECONDS:-5}"
LAT_SECONDS="${LAT_SECONDS:-8}"
TPUT_SECONDS="${TPUT_SECONDS:-5}"
WRK_CONNECTIONS="${WRK_CONNECTIONS:-64}"
WRK_THREADS="${WRK_THREADS:-2}"
MOAT_THREADS="${MOAT_THREADS:-2}"
TOKENS="${TOKENS:-16}"
TARGETS="${TARGETS:-direct moat nginx portkey}"

NICE=()
[[ -n "${BENCH_NICE:-}" ]] && NICE=(nice -n "$BENCH_NICE")
log() { echo "[gateway-bench] $*" >&2; }
die() { log "error: $*"; exit 1; }

for tool in wrk nginx curl python3 cmake; do
  command -v "$tool" >/dev/null || die "$tool is missing (MOAT_BENCH_DEPS=1 scripts/install-deps.sh)"
done

# ---- build ---------------------------------------------------------------------------------
# Colleagues' folders may be mid-edit: a failed (re)configure or build is only fatal when the
# binaries this run needs do not exist yet.
if [[ "${MOAT_SKIP_BUILD:-0}" == 1 ]]; then
  log "MOAT_SKIP_BUILD=1: using the binaries in $BUILD_DIR as they are"
elif [[ ! -f "$BUILD_DIR/CMakeCache.txt" ]]; then
  log "configuring $BUILD_DIR"
  cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$BUILD_DIR.configure.log" 2>&1 \
    || log "warning: configure failed (see $BUILD_DIR.configure.log)"
else
  # Picks up bench/gateway when the cache predates it.
  cmake -S "$ROOT" -B "$BUILD_DIR" >"$BUILD_DIR/bench-configure.log" 2>&1 \
    || log "warning: re-configure failed (see $BUILD_DIR/bench-configure.log); using the existing build files"
fi
if [[ "${MOAT_SKIP_BUILD:-0}" != 1 ]]; then
  log "building moat, moat-test-upstream, sse_load in $BUILD_DIR"
  cmake --build "$BUILD_DIR" -j2 --target moat moat-test-upstream sse_load >"$BUILD_DIR/bench-build.log" 2>&1 \
    || log "warning: build failed (see $BUILD_DIR/bench-build.log); using existing binaries if present"
fi
MOAT="${MOAT_BIN:-$BUILD_DIR/apps/moat/moat}"
UPSTREAM="$(find "$BUILD_DIR" -type f -name moat-test-upstream -perm -u+x | head -n1)"
SSE_LOAD="$BUILD_DIR/bench/gateway/sse_load"
[[ -x "$MOAT" && -x "$UPSTREAM" && -x "$SSE_LOAD" ]] || die "build outputs missing in $BUILD_DIR"

# ---- Portkey (npm) ---------------------------------------------------------------------------
PORTKEY_ENTRY="$HERE/node_modules/@portkey-ai/gateway/build/start-server.js"
PORTKEY_SKIP=""
if [[ " $TARGETS " == *" portkey "* && ! -f "$PORTKEY_ENTRY" ]]; then
  log "installing @portkey-ai/gateway into $HERE/node_modules (npm ci)"
  if ! (cd "$HERE" && npm ci --no-audit --no-fund --ignore-scripts >/dev/null 2>&1); then
    PORTKEY_SKIP="npm ci failed (offline or registry unreachable)"
  fi
fi
if [[ " $TARGETS " == *" portkey "* && -z "$PORTKEY_SKIP" ]]; then
  command -v node >/dev/null || PORTKEY_SKIP="node is not installed"
fi

# ---- processes -----------------------------------------------------------------------------
WORK="$(mktemp -d /tmp/moat-gateway-bench.XXXXXX)"
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK/moat-data" "$WORK/nginx/tmp"  # the audit log of every benchmark request
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_port_file() {  # file, pid, name
  local i
  for i in $(seq 1 150); do
    [[ -s "$1" ]] && { head -n1 "$1" | tr -d '[:space:]'; return 0; }
    kill -0 "$2" 2>/dev/null || die "$3 exited early; see $WORK/$3.log"
    sleep 0.1
  done
  die "$3 did not start within 15 s; see $WORK/$3.log"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

log "work dir $WORK"
"${NICE[@]}" "$UPSTREAM" --host 127.0.0.1 --port 0 --port-file "$WORK/upstream.port" --threads 2 \
  >"$WORK/upstream.log" 2>&1 &
PIDS+=($!)
UP_PORT="$(wait_port_file "$WORK/upstream.port" "$!" upstream)"
log "upstream on 127.0.0.1:$UP_PORT"

declare -A PORT HDRS
PORT[direct]="$UP_PORT"
HDRS[direct]=""

if [[ " $TARGETS " == *" moat "* ]]; then
  mkdir -p "$WORK/moat-data"
  cat >"$WORK/moat.toml" <<EOF
[server]
listen = "127.0.0.1:0"
threads = $MOAT_THREADS
[storage]
data_dir = "$WORK/moat-data"
[[models]]
name = "test-model"
backend = "upstream"
base_url = "http://127.0.0.1:$UP_PORT"
EOF
  if [[ -n "${MOAT_EXTRA_TOML:-}" ]]; then printf '%b\n' "$MOAT_EXTRA_TOML" >>"$WORK/moat.toml"; fi
  "$MOAT" account create bench --tier enterprise --config "$WORK/moat.toml" >"$WORK/moat-admin.log" 2>&1 \
    || die "moat account create failed: $(cat "$WORK/moat-admin.log")"
  MOAT_KEY="$("$MOAT" key create --account bench --config "$WORK/moat.toml" 2>>"$WORK/moat-admin.log" \
    | sed '/^[[:space:]]*$/d' | tail -n1)"
  [[ -n "$MOAT_KEY" ]] || die "moat key create printed no key; see $WORK/moat-admin.log"
  "${NICE[@]}" "$MOAT" serve --config "$WORK/moat.toml" --port-file "$WORK/moat.port" >"$WORK/moat.log" 2>&1 &
  PIDS+=($!)
  PORT[moat]="$(wait_port_file "$WORK/moat.port" "$!" moat)"
  HDRS[moat]="Authorization: Bearer $MOAT_KEY"
  log "moat ($MOAT) on 127.0.0.1:${PORT[moat]} ($MOAT_THREADS threads)"
fi

if [[ " $TARGETS " == *" nginx "* ]]; then
  mkdir -p "$WORK/nginx/logs" "$WORK/nginx/tmp"
  NGINX_PORT="$(free_port)"
  cat >"$WORK/nginx/nginx.conf" <<EOF
daemon off;
worker_processes $MOAT_THREADS;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $WORK/nginx/tmp/body;
  proxy_temp_path $WORK/nginx/tmp/proxy;
  upstream llm { server 127.0.0.1:$UP_PORT; keepalive 128; }
  server {
    listen 127.0.0.1:$NGINX_PORT;
    keepalive_requests 1000000;
    location / {
      proxy_pass http://llm;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }
  }
}
EOF
  "${NICE[@]}" nginx -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" -e "$WORK/nginx/logs/error.log" \
    >"$WORK/nginx.log" 2>&1 &
  PIDS+=($!)
  for i in $(seq 1 50); do
    curl -s -o /dev/null "http://127.0.0.1:$NGINX_PORT/health" && break
    kill -0 "${PIDS[-1]}" 2>/dev/null || die "nginx exited; see $WORK/nginx.log"
    sleep 0.1
  done
  PORT[nginx]="$NGINX_PORT"
  HDRS[nginx]=""
  log "nginx on 127.0.0.1:$NGINX_PORT ($MOAT_THREADS workers)"
fi

if [[ " $TARGETS " == *" portkey "* && -z "$PORTKEY_SKIP" ]]; then
  PORTKEY_PORT_FILE="$WORK/portkey.port" NODE_ENV=production \
    "${NICE[@]}" node --import "$HERE/portkey_shim.mjs" "$PORTKEY_ENTRY" --headless \
    >"$WORK/portkey.log" 2>&1 &
  PIDS+=($!)
  PORT[portkey]="$(wait_port_file "$WORK/portkey.port" "$!" portkey)"
  HDRS[portkey]=$'x-portkey-provider: openai\nx-portkey-custom-host: http://127.0.0.1:'"$UP_PORT"$'/v1\nAuthorization: Bearer bench-unused'
  log "portkey on 127.0.0.1:${PORT[portkey]} (node, one process)"
fi

ACTIVE=()
for t in direct moat nginx portkey; do
  [[ " $TARGETS " == *" $t "* || "$t" == direct ]] && [[ -n "${PORT[$t]:-}" ]] && ACTIVE+=("$t")
done

# ---- request bodies -------------------------------------------------------------------------
PROMPT="Summarise the following paragraph in one sentence. The gateway sits between clients and \
an OpenAI-compatible model server; it checks keys, applies quotas, records an audit trail and \
passes completions back, streaming them token by token when the client asks for a stream."
printf '{"model":"test-model","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"%s"}],"max_tokens":%d,"stream":false}' \
  "$PROMPT" "$TOKENS" >"$WORK/body-plain.json"
printf '{"model":"test-model","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"%s"}],"max_tokens":%d,"stream":true,"stream_options":{"include_usage":true}}' \
  "$PROMPT" "$TOKENS" >"$WORK/body-stream.json"

header_args() {  # prints one "-H\nvalue" pair per header of target $1, for mapfile
  local flag="$2" line
  [[ -z "${HDRS[$1]}" ]] && return 0
  while IFS= read -r line; do printf '%s\n%s\n' "$flag" "$line"; done <<<"${HDRS[$1]}"
}

# ---- smoke check: one request per target and mode must succeed --------------------------------
for t in "${ACTIVE[@]}"; do
  mapfile -t H < <(header_args "$t" -H)
  for mode in plain stream; do
    out="$WORK/smoke-$t-$mode.txt"
    code="$(curl -sS -o "$out" -w '%{http_code}' "${H[@]}" -H 'Content-Type: application/json' \
      --data-binary "@$WORK/body-$mode.json" "http://127.0.0.1:${PORT[$t]}/v1/chat/completions")" || code=000
    if [[ "$code" != 200 ]] || { [[ $mode == stream ]] && ! grep -q '\[DONE\]' "$out"; }; then
      die "$t ($mode) smoke request failed: HTTP $code: $(head -c 400 "$out")"
    fi
  done
done
log "smoke requests OK for: ${ACTIVE[*]}"

# ---- measurements ----------------------------------------------------------------------------
RAW="$WORK/raw.jsonl"
: >"$RAW"
# Waits (at most 60 s) until moat has written the audit records of the previous row: a
# throughput row leaves tens of thousands queued, and their writing would otherwise load the
# machine under the next row's measurement (the upstream's own row included).
settle() {
  [[ -n "${PORT[moat]:-}" ]] || return 0
  local depth i
  for ((i = 0; i < 600; i++)); do
    depth="$(curl -s -m 2 "http://127.0.0.1:${PORT[moat]}/metrics" | awk '$1 == "moat_audit_queue_depth" {print $2}')"
    [[ "$depth" == 0 ]] && return 0
    sleep 0.1
  done
  log "moat's audit queue did not drain in 60 s (depth ${depth:-unknown}); measuring anyway"
}
# moat's detection time so far: "<sum seconds> <count>" of moat_detection_duration_seconds.
judge_totals() {
  curl -s -m 2 "http://127.0.0.1:${PORT[moat]}/metrics" |
    awk '$1 == "moat_detection_duration_seconds_sum" {s = $2} $1 == "moat_detection_duration_seconds_count" {c = $2}
         END {print (s == "" ? 0 : s), (c == "" ? 0 : c)}'
}
lat_row() {  # target mode rate seconds
  settle
  local t="$1" mode="$2" rate="$3" seconds="$4" extra=() judge_before=""
  mapfile -t H < <(header_args "$t" --header)
  [[ $mode == stream ]] && extra=(--stream)
  [[ $t == moat ]] && judge_before="$(judge_totals)"
  local line
  line="$(timeout $((seconds + 40)) "${NICE[@]}" "$SSE_LOAD" --port "${PORT[$t]}" --body-file "$WORK/body-$mode.json" \
    --rate "$rate" --duration "$seconds" --warmup 1 --overrun 5 --connections 64 --label "$t" \
    "${H[@]}" "${extra[@]}")" || true
  [[ -n "$line" ]] || line="{\"label\":\"$t\",\"failed\":true}"
  if [[ -n "$judge_before" ]]; then
    # The engine's own time per request judged during the row (warm-up included).
    line="$(python3 -c 'import json, sys
row = json.loads(sys.argv[1])
s0, c0 = map(float, sys.argv[2].split()); s1, c1 = map(float, sys.argv[3].split())
if c1 > c0:
    row["judged"] = int(c1 - c0)
    row["judge_mean_us"] = round((s1 - s0) / (c1 - c0) * 1e6, 1)
print(json.dumps(row))' "$line" "$judge_before" "$(judge_totals)")"
  fi
  echo "{\"kind\":\"latency\",\"rate\":$rate,\"mode\":\"$mode\",\"result\":$line}" >>"$RAW"
  log "latency $mode $t at $rate req/s: $line"
}
tput_row() {  # target mode
  settle
  local t="$1" mode="$2" out
  mapfile -t H < <(header_args "$t" -H)
  local url="http://127.0.0.1:${PORT[$t]}/v1/chat/completions"
  BENCH_BODY_FILE="$WORK/body-$mode.json" timeout 30 "${NICE[@]}" wrk -t "$WRK_THREADS" -c "$WRK_CONNECTIONS" \
    -d 1s -s "$HERE/post.lua" "${H[@]}" "$url" >/dev/null 2>&1 || true   # warm-up
  out="$(BENCH_BODY_FILE="$WORK/body-$mode.json" timeout $((TPUT_SECONDS + 30)) "${NICE[@]}" wrk -t "$WRK_THREADS" \
    -c "$WRK_CONNECTIONS" -d "${TPUT_SECONDS}s" -s "$HERE/post.lua" "${H[@]}" "$url" 2>&1)" || true
  python3 - "$t" "$mode" "$out" >>"$RAW" <<'EOF'
import json, re, sys
t, mode, out = sys.argv[1:4]
m = re.search(r"Requests/sec:\s*([0-9.]+)", out)
bad = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", out)
err = re.search(r"Socket errors:(.*)", out)
print(json.dumps({"kind": "throughput", "mode": mode, "result": {
    "label": t, "rps": float(m.group(1)) if m else None,
    "non2xx": int(bad.group(1)) if bad else 0,
    "socket_errors": err.group(1).strip() if err else ""}}))
EOF
  log "throughput $mode $t: $(tail -n1 "$RAW")"
}

START=$SECONDS
LOAD_START="$(cut -d' ' -f1-3 /proc/loadavg)"
for mode in plain stream; do
  for t in "${ACTIVE[@]}"; do lat_row "$t" "$mode" "$RATE" "$LAT_SECONDS"; done
  if (( LOW_RATE > 0 )); then
    for t in "${ACTIVE[@]}"; do lat_row "$t" "$mode" "$LOW_RATE" "$LOW_LAT_SECONDS"; done
  fi
  for t in "${ACTIVE[@]}"; do tput_row "$t" "$mode"; done
done
log "measurements took $((SECONDS - START)) s"

# ---- report ---------------------------------------------------------------------------------
if [[ -z "${RESULTS:-}" ]]; then
  if [[ -n "${OUT:-}" ]]; then RESULTS="$OUT/gateway-bench.md"; else RESULTS="$WORK/gateway-bench.md"; fi
fi
mkdir -p "$(dirname "$RESULTS")"
MOAT_REV="$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)"
RATES=("$RATE")
(( LOW_RATE > 0 )) && RATES+=("$LOW_RATE")
python3 "$HERE/report.py" --raw "$RAW" --rates "${RATES[@]}" \
  --lat-seconds "$LAT_SECONDS s at $RATE req/s, $LOW_LAT_SECONDS s at $LOW_RATE req/s" \
  --tput-seconds "$TPUT_SECONDS" --wrk "$WRK_THREADS/$WRK_CONNECTIONS" --threads "$MOAT_THREADS" \
  --tokens "$TOKENS" --rev "$MOAT_REV" --portkey-skip "$PORTKEY_SKIP" --load-start "$LOAD_START" --nice "${BENCH_NICE:-0}" >"$RESULTS"
cat "$RESULTS"
log "table written to $RESULTS (raw results: $RAW)"
