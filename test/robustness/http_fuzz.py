#!/usr/bin/env python3
"""Robustness test: random and malformed HTTP and JSON against the real gateway.

Starts moat-test-upstream and `moat serve` (paths from MOAT_BIN / MOAT_TEST_UPSTREAM_BIN),
sends a seeded stream of hostile requests for FUZZ_SECONDS (default 10): garbage bytes,
broken JSON, wrong types for every OpenAI field, hostile Content-Length / Transfer-Encoding,
unknown models and the builtin model. Passes when the gateway never dies, answers every parsed
request with an HTTP status (never a 5xx of its own making), still serves /healthz, drains on
SIGTERM, and `moat audit verify` accepts the chain.
"""
import json, os, random, signal, socket, subprocess, sys, tempfile, time

MOAT = os.environ["MOAT_BIN"]
UPSTREAM = os.environ["MOAT_TEST_UPSTREAM_BIN"]
MODEL = os.environ.get("MOAT_TEST_MODEL", "")
SECONDS = float(os.environ.get("FUZZ_SECONDS", "10"))


def wait_port(path, proc):
    for _ in range(300):
        if os.path.exists(path) and open(path).read().strip():
            return int(open(path).read())
        if proc.poll() is not None:
            sys.exit(f"{proc.args[0]} exited with {proc.returncode}")
        time.sleep(0.05)
    sys.exit(f"timed out waiting for {path}")


def send(port, raw, timeout=2.0):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(raw)
        data = b""
        while len(data) < (1 << 20):
            try:
                chunk = s.recv(65536)
            except (socket.timeout, ConnectionResetError):
                break
            if not chunk:
                break
            data += chunk
        return data
    finally:
        s.close()


def main():
    d = tempfile.mkdtemp(prefix="moat-fuzz-")
    up = subprocess.Popen([UPSTREAM, "--port", "0", "--port-file", f"{d}/up.port"], stderr=subprocess.DEVNULL)
    up_port = wait_port(f"{d}/up.port", up)
    builtin = f'\n[[models]]\nname = "mini"\nbackend = "builtin"\nmodel_path = "{MODEL}"\ngeneration_threads = 1\n' if MODEL and os.path.exists(MODEL) else ""
    cfg = f"{d}/moat.toml"
    with open(cfg, "w") as f:
        f.write(f"""[server]
listen = "127.0.0.1:0"
threads = 2
max_body_bytes = 65536
header_timeout_ms = 500
body_timeout_ms = 500
[storage]
data_dir = "{d}/var"
[limits.verified]
key_rpm = 0
[[models]]
name = "test-model"
base_url = "http://127.0.0.1:{up_port}"
{builtin}""")
    subprocess.run([MOAT, "account", "create", "fuzz", "--tier", "verified", "-c", cfg], check=True, stdout=subprocess.DEVNULL)
    key = subprocess.run([MOAT, "key", "create", "--account", "fuzz", "-c", cfg], check=True, capture_output=True, text=True).stdout.strip()
    log = open(f"{d}/moat.log", "w")
    gw = subprocess.Popen([MOAT, "serve", "-c", cfg, "--port-file", f"{d}/port"], stdout=log, stderr=log)
    port = wait_port(f"{d}/port", gw)

    rnd = random.Random(int(os.environ.get("FUZZ_SEED", "7")))
    vals = [None, True, 1, -1, 0, 1e308, -1e308, "x", "", [], {}, [1, "a"], {"a": 1}, 2**70, "\u00ff", "A" * 5000]
    keys = ["model", "messages", "prompt", "stream", "max_tokens", "temperature", "top_p", "n", "stop", "logprobs",
            "top_logprobs", "seed", "user", "stream_options", "logit_bias", "top_k", "max_completion_tokens"]

    def body():
        b = {"model": rnd.choice(["test-model", "mini", "nope", 5, None]), "messages": [{"role": "user", "content": "hello"}]}
        for _ in range(rnd.randint(0, 6)):
            b[rnd.choice(keys)] = rnd.choice(vals)
        if rnd.random() < 0.3:
            b["messages"] = rnd.choice(vals)
        s = json.dumps(b)
        if rnd.random() < 0.2:
            i = rnd.randrange(len(s))
            s = s[:i] + rnd.choice(["{", "}", "\"", "\\", "\x00", "\xff", ""]) + s[i + 1:]
        return s.encode("utf-8", "surrogatepass")

    statuses, gateway_5xx, n = {}, 0, 0
    t0 = time.time()
    while time.time() - t0 < SECONDS:
        n += 1
        r = rnd.random()
        if r < 0.7:
            b = body()
            path = rnd.choice(["/v1/chat/completions", "/v1/completions"])
            out = send(port, f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
                             f"Content-Length: {len(b)}\r\nConnection: close\r\n\r\n".encode() + b)
        elif r < 0.85:
            out = send(port, bytes(rnd.getrandbits(8) for _ in range(rnd.randint(1, 3000))), 1.0)
        else:
            cl = rnd.choice(["abc", "-5", "99999999999999999999", "10"])
            te = rnd.choice(["chunked", "gzip", "x"])
            out = send(port, f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: {cl}\r\n"
                             f"Transfer-Encoding: {te}\r\n\r\n5\r\nhello\r\nZZ\r\n".encode(), 1.0)
        st = out[9:12].decode(errors="replace") if out.startswith(b"HTTP/1.1 ") else "closed"
        statuses[st] = statuses.get(st, 0) + 1
        if st.startswith("5") and b'"upstream_error"' not in out:
            gateway_5xx += 1
        if gw.poll() is not None:
            sys.exit(f"FAIL: gateway died (exit {gw.returncode}) after {n} requests; see {d}/moat.log")
    print(f"{n} hostile requests in {SECONDS:.0f} s; statuses {dict(sorted(statuses.items()))}")
    health = send(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    failures = []
    if b" 200 " not in health[:20]:
        failures.append("healthz did not answer 200 after the fuzz")
    if gateway_5xx:
        failures.append(f"{gateway_5xx} gateway-made 5xx answers")
    gw.send_signal(signal.SIGTERM)
    if gw.wait(timeout=30) != 0:
        failures.append(f"gateway exited with {gw.returncode} on SIGTERM")
    up.kill()
    v = subprocess.run([MOAT, "audit", "verify", "-c", cfg], capture_output=True, text=True)
    print(v.stdout.strip())
    if v.returncode != 0:
        failures.append("audit verify failed: " + v.stdout + v.stderr)
    for f in failures:
        print("FAIL:", f)
    print(f"{0 if failures else 1} passed, {len(failures) and 1} failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
