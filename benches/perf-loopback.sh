#!/usr/bin/env bash
# Where the server's time goes on loopback, by thread and by component: `perf record` (software
# clock, no hardware counters needed) on the server while wrk drives it as in throughput.sh,
# plain axum and the agent alternating, each sample's function sorted into a component
# (redaction, capture, OpenTelemetry SDK, encoding, allocator, memcpy, kernel, ...). What
# callgrind says in instructions, this says in CPU time per request, stalls included.
#
#   benches/perf-loopback.sh                  # 5 rounds x 2 variants x 4 s, ~1.5 min after the build
#   ROUNDS=1 VARIANTS="plain hypertrace otel-axum" benches/perf-loopback.sh
#   ALLOCATOR=jemalloc OUT=perf-loopback-jemalloc.json benches/perf-loopback.sh   # servers on jemalloc
#
# Needs `perf` (Debian: linux-perf) and permission to profile the server (perf_event_paranoid <= 2
# for one's own processes). Results: benches/results/perf-loopback.json and a table on stdout.
set -euo pipefail
cd "$(dirname "$0")"

DURATION="${DURATION:-4}"
WARMUP="${WARMUP:-2}"
ROUNDS="${ROUNDS:-5}"
CONNECTIONS="${CONNECTIONS:-32}"
VARIANTS="${VARIANTS:-plain hypertrace}"
FREQ="${FREQ:-4000}"
ALLOCATOR="${ALLOCATOR:-glibc}"
OUT="${OUT:-perf-loopback.json}"
PORT=18081
RECV_PORT=14318

command -v perf >/dev/null 2>&1 || { echo "perf-loopback: perf not found (apt-get install linux-perf)" >&2; exit 1; }
command -v wrk >/dev/null 2>&1 || { echo "perf-loopback: wrk not found (apt-get install wrk)" >&2; exit 1; }
cargo build --release --quiet --bin server --bin receiver --bin requests
bin="$PWD/target/release"
raw="$PWD/target/bench-raw/${OUT%.json}"
rm -rf "$raw" && mkdir -p "$raw" results

if [ "$(nproc)" -ge 2 ]; then server_cpu=(taskset -c 0); client_cpu=(taskset -c 1); else server_cpu=(); client_cpu=(); fi
"$bin/requests" --wrk-lua > "$raw/echo.lua"
SCRIPT=perf-loopback
. ./servers.sh

"${client_cpu[@]}" "$bin/receiver" "127.0.0.1:$RECV_PORT" > "$raw/receiver.log" 2>&1 &
pids+=("$!")
wait_listening "$raw/receiver.log"

for round in $(seq "$ROUNDS"); do
  for v in $VARIANTS; do
    log="$raw/server-$round-$v.log"
    "${preload[@]}" "${server_cpu[@]}" "$bin/server" "$v" "127.0.0.1:$PORT" "otlp=http://127.0.0.1:$RECV_PORT" > "$log" 2>&1 &
    spid=$!; pids+=("$spid")
    wait_listening "$log"
    "${client_cpu[@]}" wrk -t1 -c"$CONNECTIONS" -d"${WARMUP}s" -s "$raw/echo.lua" "http://127.0.0.1:$PORT" > /dev/null
    perf record -q -e cpu-clock -F "$FREQ" -p "$spid" -o "$raw/perf-$round-$v.data" -- sleep "$DURATION" 2> /dev/null &
    ppid=$!
    "${client_cpu[@]}" wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" -s "$raw/echo.lua" "http://127.0.0.1:$PORT" > "$raw/wrk-$round-$v.txt"
    wait "$ppid" || true
    kill -TERM "$spid"; wait "$spid" || true
    perf report -i "$raw/perf-$round-$v.data" --no-children --sort comm,sym -F sample,comm,sym -q --stdio 2> /dev/null \
      > "$raw/syms-$round-$v.txt"
    echo "  round $round  $(printf '%-12s' "$v") $(awk '/Requests\/sec/ {print $2}' "$raw/wrk-$round-$v.txt") req/s" >&2
  done
done

python3 - "$raw" "$ROUNDS" "$DURATION" "$FREQ" "$VARIANTS" "$ALLOCATOR" > "results/$OUT" <<'EOF'
import json, re, statistics, sys
raw, rounds, duration, freq, variants, allocator = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5].split(), sys.argv[6]

# The first rule that matches a sample's function names its component; `[k]` marks kernel code.
RULES = [
    ("kernel (TCP, scheduling, wake-ups)", r"^\[k\]"),
    ("body-field redaction", r"capture::redact::"),
    # The `floor` variant's own code (`src/floor.rs`) is sorted the same way.
    ("OTLP encoding", r"hypertrace_runtime::export::encode|TraceEncoder|packed::Packed::|hypertrace_benches::floor::(encode|kv_)"),
    ("capture: headers, bodies, attributes", r"hypertrace_runtime::(capture|http|span|propagation|filter)::|hypertrace_benches::floor::"),
    ("batch queue, export worker", r"hypertrace_runtime::export::"),
    ("OpenTelemetry SDK and API", r"opentelemetry"),
    ("gRPC client (tonic, h2)", r"^(tonic|h2|prost|tower)::|<(tonic|h2|prost|tower)::"),
    # glibc's malloc, and jemalloc's (`je_*`, `sdallocx`, its arenas, extents and caches).
    ("allocator", r"malloc|free|_int_|unlink_chunk|tcache|__rust_(alloc|dealloc|realloc)|__rdl_|^je_|sdallocx|arena_|extent_|\bbin_"),
    ("memcpy, memmove", r"mem(cpy|move|set)"),
]
OTHER = {"serving": "the application and its libraries (axum, hyper, serde, tokio, std)"}
def component(sym, thread):
    for name, rx in RULES:
        if re.search(rx, sym):
            return name
    return OTHER.get(thread, "other (std, tokio)")

def thread(comm):
    # The `floor` variant's threads are `floor-export` and `floor-grpc`.
    if comm.startswith(("hypertrace-exp", "floor-exp")): return "export"
    if comm.startswith(("hypertrace-grp", "hypertrace-otl", "floor-grpc")): return "gRPC runtime"
    return "serving"

out = {"allocator": allocator, "rounds": rounds, "duration_s": duration, "frequency_hz": freq, "variants": {}}
for v in variants:
    per_round = []
    for r in range(1, rounds + 1):
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", open(f"{raw}/wrk-{r}-{v}.txt").read()).group(1))
        requests = rps * duration
        cells = {}
        for line in open(f"{raw}/syms-{r}-{v}.txt"):
            m = re.match(r"\s*(\d+)\s+(\S+)\s+(\[.\])\s+(.*)", line)
            if not m:
                continue
            n, comm, kind, sym = int(m.group(1)), m.group(2), m.group(3), m.group(4).strip()
            t = thread(comm)
            key = (t, component(("[k] " if kind == "[k]" else "") + sym, t))
            # µs of CPU per request: samples / frequency is seconds.
            cells[key] = cells.get(key, 0.0) + n / freq * 1e6 / requests
        per_round.append((rps, cells))
    keys = sorted({k for _, c in per_round for k in c})
    out["variants"][v] = {
        "rps": statistics.median(r for r, _ in per_round),
        "us_per_request": {f"{t} / {c}": statistics.median(cells.get((t, c), 0.0) for _, cells in per_round) for t, c in keys},
        "rounds": [{"rps": r, "us_per_request": {f"{t} / {c}": x for (t, c), x in cells.items()}} for r, cells in per_round],
    }
# Against the first variant (plain): per component, the median over rounds of the difference with
# that round's plain run, which the machine's drift from one minute to the next hits less.
base = out["variants"].get(variants[0])
for v in variants[1:]:
    d = out["variants"][v]
    keys = set(d["us_per_request"]) | set(base["us_per_request"])
    d["difference_to_first"] = {
        k: statistics.median(r["us_per_request"].get(k, 0.0) - b["us_per_request"].get(k, 0.0)
                             for r, b in zip(d["rounds"], base["rounds"]))
        for k in keys
    }
    d["total_difference_to_first"] = statistics.median(
        sum(r["us_per_request"].values()) - sum(b["us_per_request"].values()) for r, b in zip(d["rounds"], base["rounds"]))
print(json.dumps(out, indent=1))
EOF
OUT="$OUT" python3 - <<'EOF'
import json, os
d = json.load(open("results/" + os.environ["OUT"]))
vs = list(d["variants"])
keys = sorted({k for v in vs for k in d["variants"][v]["us_per_request"]})
print(f"{'thread / component (µs CPU per request)':70}" + "".join(f"{v:>12}" for v in vs) + "".join(f"{'Δ ' + v:>14}" for v in vs[1:]))
for k in keys:
    print(f"{k:70}" + "".join(f"{d['variants'][v]['us_per_request'].get(k, 0):>12.2f}" for v in vs)
          + "".join(f"{d['variants'][v]['difference_to_first'].get(k, 0):>+14.2f}" for v in vs[1:]))
print(f"{'total':70}" + "".join(f"{sum(d['variants'][v]['us_per_request'].values()):>12.2f}" for v in vs)
      + "".join(f"{d['variants'][v]['total_difference_to_first']:>+14.2f}" for v in vs[1:]))
print(f"{'req/s (median)':62}" + "".join(f"{d['variants'][v]['rps']:>14.0f}" for v in vs))
EOF
