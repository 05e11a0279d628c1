#!/usr/bin/env bash
# Loopback throughput of the five variants.
#
#   benches/throughput.sh                 # 4 rounds x 5 variants x 6 s, ~3 min after the build
#   DURATION=5 ROUNDS=1 benches/throughput.sh
#   ALLOCATOR=jemalloc OUT=throughput-jemalloc.json benches/throughput.sh   # servers on jemalloc
#
# Each slot starts a fresh release server of one variant, warms it with wrk, then measures with wrk
# (requests/s, p50/p99 latency); variants alternate within each round so that drift in the machine
# hits them alike, and each variant's ratio to plain is the median over rounds of its ratio to the
# plain run of the same round (robust to a round disturbed by other work on the machine). The instrumented variants export OTLP/gRPC to `receiver` (our own OTLP receiver,
# which decodes every export) during the run.
#
# With 2+ CPUs the server runs alone on CPU 0 (its export thread included: what the agent costs
# lands on the server's CPU), wrk and the receiver on CPU 1. The server's CPU time over each run
# (all threads, from /proc) gives its utilisation and CPU µs per request: when the server is not
# saturated, the client side (wrk sharing CPU 1 with the receiver) limited that run, and the CPU per
# request is the fairer comparison. Whether the client side was the limit shows in the client
# core's own utilisation (from /proc/stat: wrk and the receiver together), reported next to the
# server's; RECEIVER_CPU=server moves the receiver to the server's CPU instead (then it is the
# server that shares its core), to see how much the placement matters; RECEIVER_NICE=19 runs the
# receiver at that niceness, so that wrk, on the same core, always runs first.
#
#   BODY_BYTES=65536 OUT=throughput-64k.json VARIANTS="plain hypertrace" benches/throughput.sh
#
# sends a JSON body of that size instead of 1 KiB (the cost's growth with the body).
# Results: benches/results/throughput.json.
set -euo pipefail
cd "$(dirname "$0")"

DURATION="${DURATION:-6}"
WARMUP="${WARMUP:-2}"
ROUNDS="${ROUNDS:-4}"
CONNECTIONS="${CONNECTIONS:-32}"
VARIANTS="${VARIANTS:-plain hypertrace hypertrace-disabled otel-axum tower-http hypertrace-unsampled}"
OUT="${OUT:-throughput.json}"
ALLOCATOR="${ALLOCATOR:-glibc}"
RECEIVER_CPU="${RECEIVER_CPU:-client}"
RECEIVER_NICE="${RECEIVER_NICE:-0}"
BODY_BYTES="${BODY_BYTES:-1024}"
export BODY_BYTES
PORT=18080
RECV_PORT=14317

if ! command -v wrk >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "throughput: installing wrk (Debian package)" >&2
    apt-get install -y -qq wrk >/dev/null || { apt-get update -qq >/dev/null && apt-get install -y -qq wrk >/dev/null; }
  fi
fi
command -v wrk >/dev/null 2>&1 || { echo "throughput: wrk not found (apt-get install wrk)" >&2; exit 1; }

cargo build --release --quiet --bin server --bin receiver --bin requests
bin="$PWD/target/release"
raw="$PWD/target/bench-raw/${OUT%.json}"
rm -rf "$raw" && mkdir -p "$raw" results

if [ "$(nproc)" -ge 2 ]; then
  server_cpu=(taskset -c 0); client_cpu=(taskset -c 1); pinning="server on CPU 0; wrk and receiver on CPU 1"
  receiver_cpu=("${client_cpu[@]}")
  if [ "$RECEIVER_CPU" = server ]; then
    receiver_cpu=("${server_cpu[@]}"); pinning="server and receiver on CPU 0; wrk on CPU 1"
  fi
else
  server_cpu=(); client_cpu=(); receiver_cpu=(); pinning="none (1 CPU)"
fi
# Busy and total ticks of CPU 1 (the client's core) so far, from /proc/stat.
client_core_ticks() { awk '$1 == "cpu1" {print $2 + $3 + $4 + $7 + $8, $2 + $3 + $4 + $5 + $6 + $7 + $8}' /proc/stat; }

"$bin/requests" --wrk-lua > "$raw/echo.lua"

SCRIPT=throughput
. ./servers.sh

# utime + stime of process $1, all threads, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

nice -n "$RECEIVER_NICE" "${receiver_cpu[@]}" "$bin/receiver" "127.0.0.1:$RECV_PORT" > "$raw/receiver.log" 2>&1 &
recv_pid=$!; pids+=("$recv_pid")
wait_listening "$raw/receiver.log"

echo "throughput: servers on ${ALLOCATOR}; ${ROUNDS} round(s) x [${VARIANTS}] x ${DURATION}s (+${WARMUP}s warm-up), ${CONNECTIONS} connections; pinning: ${pinning}" >&2
for round in $(seq "$ROUNDS"); do
  for v in $VARIANTS; do
    log="$raw/server-$round-$v.log"
    "${preload[@]}" "${server_cpu[@]}" "$bin/server" "$v" "127.0.0.1:$PORT" "otlp=http://127.0.0.1:$RECV_PORT" > "$log" 2>&1 &
    spid=$!; pids+=("$spid")
    wait_listening "$log"
    "${client_cpu[@]}" wrk -t1 -c"$CONNECTIONS" -d"${WARMUP}s" -s "$raw/echo.lua" "http://127.0.0.1:$PORT" > /dev/null
    cpu0=$(cpu_ticks "$spid"); rcpu0=$(cpu_ticks "$recv_pid"); read -r cbusy0 ctotal0 < <(client_core_ticks || echo "0 0")
    "${client_cpu[@]}" wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$raw/echo.lua" "http://127.0.0.1:$PORT" > "$raw/wrk-$round-$v.txt"
    # CPU time of the server (all its threads, export included) and of the receiver over the run.
    read -r cbusy1 ctotal1 < <(client_core_ticks || echo "0 0")
    echo "server_cpu_ticks $(( $(cpu_ticks "$spid") - cpu0 )) receiver_cpu_ticks $(( $(cpu_ticks "$recv_pid") - rcpu0 )) ticks_per_s $(getconf CLK_TCK) client_core_busy $(( cbusy1 - cbusy0 )) client_core_total $(( ctotal1 - ctotal0 ))" > "$raw/cpu-$round-$v.txt"
    kill -TERM "$spid"; wait "$spid" || true
    rps=$(awk '/Requests\/sec/ {print $2}' "$raw/wrk-$round-$v.txt")
    echo "  round $round  $(printf '%-20s' "$v") ${rps} req/s   $(tail -n1 "$log")" >&2
  done
done
kill -TERM "$recv_pid"; wait "$recv_pid" || true
tail -n1 "$raw/receiver.log" >&2

python3 - "$raw" "$ROUNDS" "$DURATION" "$CONNECTIONS" "$pinning" "$VARIANTS" "$ALLOCATOR" "$BODY_BYTES" > "results/$OUT" <<'EOF'
import json, re, sys, statistics
raw, rounds, duration, conns, pinning, variants, allocator = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6].split(), sys.argv[7]
body_bytes = int(sys.argv[8])
def ms(s):
    m = re.match(r'([\d.]+)(us|ms|s)$', s)
    v, u = float(m.group(1)), m.group(2)
    return v / 1000 if u == 'us' else v if u == 'ms' else v * 1000
out = {"allocator": allocator, "body_bytes": body_bytes, "duration_s": int(duration), "rounds": rounds, "connections": int(conns), "pinning": pinning,
       "receiver": open(f"{raw}/receiver.log").read().strip().splitlines()[-1], "variants": {}}
for v in variants:
    runs = []
    for r in range(1, rounds + 1):
        t = open(f"{raw}/wrk-{r}-{v}.txt").read()
        lat = dict(re.findall(r'^\s+(50|75|90|99)%\s+(\S+)$', t, re.M))
        errors = sum(int(x) for x in re.findall(r'Non-2xx or 3xx responses: (\d+)', t))
        errors += sum(int(x) for x in re.findall(r'(?:connect|read|write|timeout) (\d+)', t))
        srv = open(f"{raw}/server-{r}-{v}.log").read().strip().splitlines()[-1]
        cpu = open(f"{raw}/cpu-{r}-{v}.txt").read().split()
        cpu = dict(zip(cpu[::2], map(int, cpu[1::2])))
        rps = float(re.search(r'Requests/sec:\s+([\d.]+)', t).group(1))
        server_cpu_s = cpu["server_cpu_ticks"] / cpu["ticks_per_s"]
        runs.append({"rps": rps, "p50_ms": ms(lat["50"]), "p99_ms": ms(lat["99"]), "errors": errors, "server": srv,
                     "server_cpu_util": server_cpu_s / int(duration),
                     "server_cpu_us_per_request": server_cpu_s * 1e6 / (rps * int(duration)),
                     "receiver_cpu_util": cpu["receiver_cpu_ticks"] / cpu["ticks_per_s"] / int(duration),
                     "client_core_util": cpu["client_core_busy"] / cpu["client_core_total"] if cpu.get("client_core_total") else None})
    out["variants"][v] = {
        "rps": statistics.median(x["rps"] for x in runs),
        "p50_ms": statistics.median(x["p50_ms"] for x in runs),
        "p99_ms": statistics.median(x["p99_ms"] for x in runs),
        "errors": sum(x["errors"] for x in runs),
        "server_cpu_util": statistics.median(x["server_cpu_util"] for x in runs),
        "server_cpu_us_per_request": statistics.median(x["server_cpu_us_per_request"] for x in runs),
        "receiver_cpu_util": statistics.median(x["receiver_cpu_util"] for x in runs),
        "client_core_util": statistics.median(x["client_core_util"] or 0 for x in runs),
        "runs": runs,
    }
plain = out["variants"].get("plain")
for v in out["variants"].values():
    # Per round, against the plain run of the same round; then the median over rounds.
    v["ratio_to_plain"] = statistics.median(r["rps"] / p["rps"] for r, p in zip(v["runs"], plain["runs"])) if plain else None
print(json.dumps(out, indent=1))
EOF
OUT="$OUT" python3 - <<'EOF'
import json
d = json.load(open("results/" + __import__("os").environ["OUT"]))
print(f"{'variant':22}{'req/s':>10}{'ratio':>8}{'p50 ms':>9}{'p99 ms':>9}{'server CPU':>11}{'µs CPU/req':>11}{'receiver':>9}{'CPU 1':>7}")
for k, v in d["variants"].items():
    print(f"{k:22}{v['rps']:>10.0f}{v['ratio_to_plain']:>8.3f}{v['p50_ms']:>9.3f}{v['p99_ms']:>9.3f}"
          f"{v['server_cpu_util'] * 100:>10.0f}%{v['server_cpu_us_per_request']:>11.1f}"
          f"{v['receiver_cpu_util'] * 100:>8.0f}%{v['client_core_util'] * 100:>6.0f}%")
EOF
