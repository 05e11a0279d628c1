#!/usr/bin/env bash
# Peak RSS while streaming 1 GiB up and 1 GiB down through the plain and the instrumented handler
#
#   benches/memory.sh            # ~30 s after the build
#   MIB=256 benches/memory.sh    # a smaller transfer
#   ALLOCATOR=jemalloc OUT=memory-jemalloc.json benches/memory.sh   # servers on jemalloc
#
# Each case gets a fresh server. After a warm-up (small requests, a 4 MiB upload and download, so
# that buffers and the export pipeline exist), the peak RSS is reset to the current RSS
# (`echo 5 > /proc/PID/clear_refs`); then one transfer; growth = VmHWM after - VmRSS before.
# Upload: `curl -T -` (chunked, `content-type: application/json`, so the agent captures it) into a
# handler that reads the body frame by frame. Download: a handler streaming 64 KiB frames as
# `application/json`. The instrumented server exports into the in-process OTLP-encoding exporter.
# Results: benches/results/memory.json.
set -euo pipefail
cd "$(dirname "$0")"

MIB="${MIB:-1024}"
VARIANTS="${VARIANTS:-plain hypertrace}"
OUT="${OUT:-memory.json}"
ALLOCATOR="${ALLOCATOR:-glibc}"
PORT=18090
BODY_MAX_SIZE_BYTES=131072 # the default data_capture.body_max_size_bytes, which the server uses

command -v curl >/dev/null 2>&1 || { echo "memory: curl not found" >&2; exit 1; }
cargo build --release --quiet --bin server
raw="$PWD/target/bench-raw/${OUT%.json}"
SCRIPT=memory
. ./servers.sh
rm -rf "$raw" && mkdir -p "$raw" results

spid=""
trap '[ -n "$spid" ] && kill "$spid" 2>/dev/null || true' EXIT
kib() { awk -v k="$1" '$1 == k":" {print $2}' "/proc/$spid/status"; }
url="http://127.0.0.1:$PORT"

results=()
for v in $VARIANTS; do
  for dir in upload download; do
    log="$raw/server-$v-$dir.log"
    "${preload[@]}" target/release/server "$v" "127.0.0.1:$PORT" encode > "$log" 2>&1 &
    spid=$!
    for _ in $(seq 100); do grep -q '^listening' "$log" 2>/dev/null && break; sleep 0.1; done
    for _ in 1 2 3; do curl -sf -X POST -H 'content-type: application/json' -d '{"warm":1}' "$url/echo" > /dev/null; done
    head -c $((4 << 20)) /dev/zero | curl -sf -T - -X POST -H 'content-type: application/json' "$url/upload" > /dev/null
    curl -sf "$url/download?mib=4" > /dev/null
    sleep 0.3
    echo 5 > "/proc/$spid/clear_refs"
    before=$(kib VmRSS)
    start=$(date +%s.%N)
    if [ "$dir" = upload ]; then
      got=$(head -c $((MIB << 20)) /dev/zero | curl -sf -T - -X POST -H 'content-type: application/json' "$url/upload")
      [ "$got" = "{\"bytes\":$((MIB << 20))}" ] || { echo "memory: upload answered $got" >&2; exit 1; }
    else
      got=$(curl -sf "$url/download?mib=$MIB" | wc -c)
      [ "$got" = $((MIB << 20)) ] || { echo "memory: download gave $got bytes" >&2; exit 1; }
    fi
    secs=$(echo "$(date +%s.%N) - $start" | bc)
    sleep 0.2
    peak=$(kib VmHWM)
    kill -TERM "$spid"; wait "$spid" || true; spid=""
    exported=$(tail -n1 "$log")
    echo "  $(printf '%-12s %-9s' "$v" "$dir") RSS before ${before} KiB, peak ${peak} KiB, growth $((peak - before)) KiB, ${secs}s   ${exported}" >&2
    results+=("$v $dir $before $peak $secs")
  done
done

python3 - "$MIB" "$BODY_MAX_SIZE_BYTES" "$ALLOCATOR" "${results[@]}" > "results/$OUT" <<'EOF'
import json, sys
mib, limit, allocator = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
out = {"allocator": allocator, "mib": mib, "body_max_size_bytes": limit, "target_growth_kib": (2 * limit + (1 << 20)) // 1024, "cases": {}}
for line in sys.argv[4:]:
    v, d, before, peak, secs = line.split()
    out["cases"].setdefault(v, {})[d] = {"rss_before_kib": int(before), "peak_kib": int(peak),
        "growth_kib": int(peak) - int(before), "seconds": float(secs), "mib_per_s": mib / float(secs)}
print(json.dumps(out, indent=1))
EOF
