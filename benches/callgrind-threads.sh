#!/usr/bin/env bash
# Instructions per request on each thread of the agent, the OTLP/gRPC send included: the
# `hypertrace` variant's requests (in-process, as in callgrind.sh) with every span exported by
# OTLP/gRPC to `receiver` (a separate process, not counted), under callgrind, N requests and none.
# Per request = (Ir(N) - Ir(0)) / N for: the serving thread (over plain axum's, same count), the
# batch processor's export thread (encoding), and the agent's export runtime (tonic, h2, the
# socket writes). Under callgrind the threads run one at a time, so batches may be smaller than
# on a real server (the receiver's count of export requests is printed).
#
#   benches/callgrind-threads.sh          # N=1000, ~3 min
set -euo pipefail
cd "$(dirname "$0")"

N="${N:-1000}"
WARMUP="${WARMUP:-50}"
command -v valgrind >/dev/null 2>&1 || { echo "callgrind-threads: valgrind not found (apt-get install valgrind)" >&2; exit 1; }
cargo build --release --quiet --bin requests --bin receiver
out="$PWD/target/callgrind-threads"
rm -rf "$out" && mkdir -p "$out"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
target/release/receiver "127.0.0.1:$port" > "$out/receiver.log" 2>&1 &
receiver=$!
trap 'kill "$receiver" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do grep -q listening "$out/receiver.log" 2>/dev/null && break; sleep 0.1; done
grep -q listening "$out/receiver.log" || { cat "$out/receiver.log" >&2; exit 1; }

run() { # variant n
  # Spans freed by the export thread, as in callgrind.sh (the split would depend on scheduling).
  HT_RUSTAGENT_FREE_SPANS_WHERE_SERVED=false BENCH_OTLP="http://127.0.0.1:$port" \
    valgrind --tool=callgrind --separate-threads=yes \
    --callgrind-out-file="$out/$1.$2.out" target/release/requests "$1" "$WARMUP" "$2" \
    > /dev/null 2> "$out/$1.$2.log" || { cat "$out/$1.$2.log" >&2; exit 1; }
}
for v in plain hypertrace; do run "$v" 0; run "$v" "$N"; done
kill -TERM "$receiver"; wait "$receiver" 2>/dev/null || true
trap - EXIT

python3 - "$out" "$N" <<'PY'
import glob, re, sys
out, n = sys.argv[1], int(sys.argv[2])
def threads(v, k):
    """Ir per thread class: serving (thread 1), export (the batch processor's), grpc (the rest)."""
    got = {"serving": 0, "export": 0, "grpc": 0}
    for f in glob.glob(f"{out}/{v}.{k}.out-*"):
        text = open(f, errors="replace").read()
        ir = int(re.search(r'^(?:summary|totals):\s+(\d+)', text, re.M).group(1))
        if re.search(r'^thread:\s+1$', text, re.M):
            got["serving"] += ir
        elif "run_worker" in text:
            got["export"] += ir
        else:
            got["grpc"] += ir
    return got
plain = {c: (threads("plain", n)[c] - threads("plain", 0)[c]) / n for c in ("serving", "export", "grpc")}
ht = {c: (threads("hypertrace", n)[c] - threads("hypertrace", 0)[c]) / n for c in ("serving", "export", "grpc")}
print(f"instructions per request, hypertrace with OTLP/gRPC export ({n} requests):")
print(f"  serving thread:   {ht['serving']:,.0f} (plain axum {plain['serving']:,.0f}: +{ht['serving'] - plain['serving']:,.0f})")
print(f"  export thread:    {ht['export']:,.0f}")
print(f"  export runtime (tonic, h2, socket): {ht['grpc']:,.0f}")
total = ht['serving'] - plain['serving'] + ht['export'] + ht['grpc']
print(f"  total over plain: {total:,.0f} (x{(plain['serving'] + total) / plain['serving']:.3f})")
PY
tail -2 "$out/receiver.log"
