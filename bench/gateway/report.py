#!/usr/bin/env python3
"""Turns run.sh's raw results (one JSON object a line) into the markdown tables it prints.

Added latency = the target's percentile minus the direct upstream's same percentile, both
measured in the same run with the same client at the same rate.
"""
import argparse
import json
import os
import platform
import time


def load(path):
    lat, tput = {}, {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            row = json.loads(line)
            if row["kind"] == "latency":
                lat[(row["rate"], row["mode"], row["result"]["label"])] = row["result"]
            else:
                tput[(row["mode"], row["result"]["label"])] = row["result"]
    return lat, tput


def fmt(v, digits=2):
    return "n/a" if v is None else f"{v:.{digits}f}"


def added(row, base, field):
    if not row or not base or row.get("failed") or base.get("failed"):
        return None
    return row.get(field, 0) - base.get(field, 0)


def errors(row):
    if not row or row.get("failed"):
        return "run failed"
    n = row.get("errors", 0) + row.get("bad_status", 0) + row.get("bad_body", 0)
    text = str(n)
    if n and row.get("first_error"):
        text += f" ({row['first_error'][:60]})"
    if row.get("unsent"):
        text += f", {row['unsent']} not sent (target fell behind)"
    return text


def tput_cell(t):
    if not t or t.get("rps") is None:
        return "n/a"
    cell = f"{t['rps']:.0f}"
    if t.get("non2xx"):
        cell += f" ({t['non2xx']} non-2xx)"
    if t.get("socket_errors"):
        cell += f" (socket errors: {t['socket_errors']})"
    return cell


def tables(lat, tput, targets, names, rate, tokens, with_tput):
    """Markdown lines of the non-streaming and streaming tables for one open-loop rate."""
    out = []
    base = lat.get((rate, "plain", "direct"))
    out.append(f"## Non-streaming (POST /v1/chat/completions), latency at {rate} req/s")
    out.append("")
    out.append("| target | p50 ms | p99 ms | added p50 ms | added p99 ms | achieved req/s | errors |"
               + (" max req/s (wrk) |" if with_tput else ""))
    out.append("|---|---:|---:|---:|---:|---:|---|" + ("---:|" if with_tput else ""))
    for t in targets:
        r = lat.get((rate, "plain", t)) or {"failed": True}
        ok = not r.get("failed")
        out.append("| " + " | ".join([
            names[t],
            fmt(r.get("total_p50_ms")) if ok else "n/a",
            fmt(r.get("total_p99_ms")) if ok else "n/a",
            "-" if t == "direct" else fmt(added(r, base, "total_p50_ms")),
            "-" if t == "direct" else fmt(added(r, base, "total_p99_ms")),
            fmt(r.get("achieved_rps"), 0) if ok else "n/a",
            errors(r),
        ] + ([tput_cell(tput.get(("plain", t)))] if with_tput else [])) + " |")
    out.append("")

    base = lat.get((rate, "stream", "direct"))
    out.append(f"## Streaming (stream: true, {tokens} events + usage + [DONE]), latency at {rate} req/s")
    out.append("")
    out.append("| target | TTFT p50 ms | TTFT p99 ms | total p50 ms | total p99 ms "
               "| added TTFT p50 / p99 ms | added total p50 / p99 ms | achieved req/s | errors |"
               + (" max req/s (wrk) |" if with_tput else ""))
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---|" + ("---:|" if with_tput else ""))
    for t in targets:
        r = lat.get((rate, "stream", t)) or {"failed": True}
        ok = not r.get("failed")
        pair = lambda f50, f99: "-" if t == "direct" else (
            f"{fmt(added(r, base, f50))} / {fmt(added(r, base, f99))}")
        out.append("| " + " | ".join([
            names[t],
            fmt(r.get("ttft_p50_ms")) if ok else "n/a",
            fmt(r.get("ttft_p99_ms")) if ok else "n/a",
            fmt(r.get("total_p50_ms")) if ok else "n/a",
            fmt(r.get("total_p99_ms")) if ok else "n/a",
            pair("ttft_p50_ms", "ttft_p99_ms"),
            pair("total_p50_ms", "total_p99_ms"),
            fmt(r.get("achieved_rps"), 0) if ok else "n/a",
            errors(r),
        ] + ([tput_cell(tput.get(("stream", t)))] if with_tput else [])) + " |")
    out.append("")
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--raw", required=True)
    ap.add_argument("--rates", type=int, nargs="+", required=True,
                    help="open-loop rates measured; the first is the target rate")
    ap.add_argument("--lat-seconds", required=True)
    ap.add_argument("--tput-seconds", required=True)
    ap.add_argument("--wrk", required=True)
    ap.add_argument("--threads", required=True)
    ap.add_argument("--tokens", required=True)
    ap.add_argument("--rev", default="unknown")
    ap.add_argument("--portkey-skip", default="")
    ap.add_argument("--load-start", default="")
    ap.add_argument("--nice", default="0")
    a = ap.parse_args()
    lat, tput = load(a.raw)
    targets = [t for t in ["direct", "moat", "nginx", "portkey"]
               if any(k[2] == t for k in lat)]
    a.rate = float(a.rates[0])
    names = {"direct": "upstream direct", "moat": "moat", "nginx": "nginx (proxy_pass)",
             "portkey": "Portkey gateway"}

    out = []
    out.append("# Gateway load benchmark")
    out.append("")
    out.append(f"- moat revision {a.rev}; {time.strftime('%Y-%m-%d %H:%M:%S %Z')}; "
               f"{platform.node()}, {os.cpu_count()} CPUs; load average at start "
               f"{a.load_start or 'n/a'}, at end {open('/proc/loadavg').read().split()[:3]}")
    out.append(f"- latency: sse_load open loop at {' and '.join(map(str, a.rates))} req/s "
               f"({a.lat_seconds}) "
               f"(+1 s warm-up), measured from each request's due time; "
               f"throughput: wrk -t/-c {a.wrk}, {a.tput_seconds} s, closed loop")
    out.append(f"- {a.tokens} completion tokens per request (streaming: one SSE event per token); "
               f"moat [server] threads = {a.threads}, nginx worker_processes = {a.threads}, "
               "Portkey = one node process; upstream = moat-test-upstream --threads 2; "
               f"nice {a.nice} for every process")
    if a.portkey_skip:
        out.append(f"- Portkey not measured: {a.portkey_skip}")
    out.append("")

    for rate in a.rates:
        out.extend(tables(lat, tput, targets, names, rate, a.tokens, rate == a.rates[0]))
    lat_all = lat
    lat = {(mode, t): r for (rate, mode, t), r in lat.items() if rate == a.rates[0]}

    # The targets (added p99 < 1 ms at the target rate; lower overhead than Portkey), stated as
    # pass/fail from this run's numbers.
    m = lat.get(("plain", "moat"))
    b = lat.get(("plain", "direct"))
    if m and b and not m.get("failed"):
        p99 = added(m, b, "total_p99_ms")
        rate_ok = m.get("achieved_rps", 0) >= 0.95 * a.rate
        verdict = "met" if p99 is not None and p99 < 1.0 and rate_ok else "NOT met"
        out.append(f"- Target \"moat added p99 < 1 ms at {a.rate:.0f} req/s\": {verdict} "
                   f"(added p99 {fmt(p99)} ms, achieved {fmt(m.get('achieved_rps'), 0)} req/s)")
    pk = lat.get(("plain", "portkey"))
    if m and pk and b and not pk.get("failed") and not m.get("failed"):
        checks = []
        for mode in ("plain", "stream"):
            mm, pp, bb = lat.get((mode, "moat")), lat.get((mode, "portkey")), lat.get((mode, "direct"))
            for f in ("total_p50_ms", "total_p99_ms"):
                checks.append((mode, f, added(mm, bb, f), added(pp, bb, f)))
        lower = all(x is not None and y is not None and x < y for _, _, x, y in checks)
        tp_m, tp_p = tput.get(("plain", "moat")), tput.get(("plain", "portkey"))
        out.append(f"- Target \"lower overhead than Portkey's gateway\": "
                   f"{'met' if lower else 'NOT met'} (added p50/p99, both modes: " +
                   ", ".join(f"{mode} {f.split('_')[1]} {fmt(x)} vs {fmt(y)}"
                             for mode, f, x, y in checks) +
                   (f"; max req/s {tput_cell(tp_m)} vs {tput_cell(tp_p)}" if tp_m and tp_p else "") +
                   ")")
    # The detection engine's own time (moat_detection_duration_seconds, scraped around each of
    # moat's latency rows): how much of moat's added latency is the engine judging the request.
    for (rate, mode, t), r in sorted(lat_all.items()):
        if t == "moat" and r.get("judge_mean_us") is not None:
            out.append(f"- moat's detection engine, {'streaming' if mode == 'stream' else 'non-streaming'} row at "
                       f"{rate:.0f} req/s: {r['judged']} requests judged, {r['judge_mean_us']:.1f} us each on "
                       f"average (moat_detection_duration_seconds)")
    print("\n".join(out))


if __name__ == "__main__":
    main()
