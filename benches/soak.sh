#!/usr/bin/env bash
# Soak: the demo server (examples/server.rs) under a fixed request rate for a fixed time, exporting
# OTLP/gRPC to a real collector (rotel, blackhole exporter), its RSS sampled every few seconds.
# Not part of CI (it runs for minutes). RSS must stay flat after the warm-up.
#
#   benches/soak.sh                          # 600 s at 200 requests/s, RSS every 5 s
#   DURATION=120 RATE=100 benches/soak.sh    # shorter
#   PROFILE=release benches/soak.sh          # the demo server built with --release
#
# Everything listens on 127.0.0.1 (free ports), rotel's data goes nowhere, both processes are
# stopped by PID at the end (or on Ctrl-C). Results: benches/results/soak.json and soak.csv
# (seconds, RSS KiB, requests so far, failures so far).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${DURATION:-600}"
RATE="${RATE:-200}"
SAMPLE="${SAMPLE:-5}"
WARMUP="${WARMUP:-60}"
PROFILE="${PROFILE:-debug}"
OUT_DIR="benches/results"
mkdir -p "$OUT_DIR"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

rotel="$(scripts/install-collector.sh)"
if [ "$PROFILE" = release ]; then
  cargo build --quiet --release --example server
  server_bin=target/release/examples/server
else
  cargo build --quiet --example server
  server_bin=target/debug/examples/server
fi

tmp="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

grpc_port="$(free_port)"
http_port="$(free_port)"
"$rotel" start --otlp-grpc-endpoint "127.0.0.1:$grpc_port" --otlp-http-endpoint "127.0.0.1:$http_port" \
  --exporter blackhole --pid-file "$tmp/rotel.pid" --log-file "$tmp/rotel.log" >"$tmp/rotel.out" 2>&1 &
pids+=("$!")

app_port="$(free_port)"
DEMO_ADDR="127.0.0.1:$app_port" HT_SERVICE_NAME=soak RUST_LOG=warn \
  HT_REPORTING_ENDPOINT="http://127.0.0.1:$grpc_port" \
  "$server_bin" >"$tmp/server.out" 2>"$tmp/server.err" &
server_pid="$!"
pids+=("$server_pid")

python3 - "$app_port" "$server_pid" "$DURATION" "$RATE" "$SAMPLE" "$WARMUP" "$OUT_DIR" "$tmp/server.err" "$PROFILE" <<'PY'
import http.client, json, sys, threading, time

port, pid, duration, rate, sample, warmup = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6])
out_dir, server_err, profile = sys.argv[7], sys.argv[8], sys.argv[9]

def rss_kib():
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")

deadline = time.time() + 30
while True:
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5); c.request("GET", "/"); c.getresponse().read(); break
    except OSError:
        if time.time() > deadline: sys.exit("soak: the demo server did not come up")
        time.sleep(0.2)

THREADS = 4
counts = {"sent": 0, "failed": 0}
lock = threading.Lock()
stop = threading.Event()
body = json.dumps({"name": "soak", "pad": "x" * 4096})

def client(k):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    interval = THREADS / rate
    nxt = time.monotonic()
    i = k
    while not stop.is_set():
        i += THREADS
        try:
            if i % 2:
                conn.request("POST", "/json", body, {"content-type": "application/json", "authorization": "Bearer soak"})
            else:
                conn.request("GET", f"/users/{i}")
            r = conn.getresponse(); r.read()
            ok = r.status == 200
        except OSError:
            ok = False
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        with lock:
            counts["sent"] += 1
            counts["failed"] += 0 if ok else 1
        nxt += interval
        time.sleep(max(0.0, nxt - time.monotonic()))

threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(THREADS)]
start = time.monotonic()
for t in threads: t.start()
rows = []
while time.monotonic() - start < duration:
    time.sleep(sample)
    with lock:
        rows.append((round(time.monotonic() - start, 1), rss_kib(), counts["sent"], counts["failed"]))
    print(f"soak: {rows[-1][0]:7.1f} s  RSS {rows[-1][1]} KiB  requests {rows[-1][2]}  failed {rows[-1][3]}", flush=True)
stop.set()
for t in threads: t.join(timeout=15)

with open(f"{out_dir}/soak.csv", "w") as f:
    f.write("seconds,rss_kib,requests,failed\n")
    for r in rows: f.write(",".join(map(str, r)) + "\n")

after = [r for r in rows if r[0] >= warmup] or rows
xs = [r[0] for r in after]; ys = [r[1] for r in after]
mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
var = sum((x - mx) ** 2 for x in xs)
slope = (sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / var * 60) if var else 0.0
drops = [l.strip() for l in open(server_err) if "spans dropped so far" in l]
summary = {
    "duration_s": duration, "rate_per_s": rate, "profile": profile, "warmup_s": warmup,
    "requests": counts["sent"], "failed": counts["failed"],
    "achieved_rate_per_s": round(counts["sent"] / duration, 1),
    "rss_kib_first": rows[0][1], "rss_kib_after_warmup_min": min(ys), "rss_kib_after_warmup_max": max(ys),
    "rss_kib_final": rows[-1][1], "rss_slope_kib_per_min_after_warmup": round(slope, 1),
    "drop_lines": drops[-1:] ,
}
with open(f"{out_dir}/soak.json", "w") as f: json.dump(summary, f, indent=1)
print("soak:", json.dumps(summary))
PY
echo "soak: the agent's lines on the server's stderr (last 5):"
grep hypertrace "$tmp/server.err" | tail -n 5 || true
