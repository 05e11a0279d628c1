#!/usr/bin/env bash
# The floor of capturing everything, on loopback (BENCHMARKS.md, "The floor, measured").
#
#   benches/floor.sh            # ~6 min after the build
#
# Runs throughput.sh (wrk, OTLP/gRPC export to the receiver, server on CPU 0) with the `floor`
# variant (benches/src/floor.rs: the same data as `hypertrace`, recorded with only the work it
# needs) next to plain axum and the agent, then with one of the floor's pieces switched off at a
# time, then the floor's and the agent's batches at 512 spans (the OpenTelemetry SDK's default)
# instead of 64. Results: benches/results/floor-*.json, and a table on stdout.
set -euo pipefail
cd "$(dirname "$0")"
ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-5}"
export ROUNDS DURATION

run() { local out=$1; shift; env "$@" OUT="$out" ./throughput.sh >&2; }

run floor-all.json VARIANTS="plain floor hypertrace"
for piece in HEADERS BODIES REDACT SEND; do
  run "floor-no-${piece,,}.json" VARIANTS="plain floor" "FLOOR_${piece}=0"
done
run floor-batch512.json VARIANTS="plain floor hypertrace" FLOOR_BATCH=512 HT_RUSTAGENT_MAX_EXPORT_BATCH_SIZE=512

python3 - <<'EOF'
import json
rows = [
    ("floor-all", "everything (batches of 64)"),
    ("floor-no-headers", "headers off (`FLOOR_HEADERS=0`)"),
    ("floor-no-bodies", "bodies off (`FLOOR_BODIES=0`)"),
    ("floor-no-redact", "body-field redaction off (`FLOOR_REDACT=0`)"),
    ("floor-no-send", "encoded, not sent (`FLOOR_SEND=0`)"),
    ("floor-batch512", "everything, batches of 512"),
]
print("| run | variant | requests/s × plain | server CPU µs/request | plain's | difference | × plain |")
print("|---|---|---:|---:|---:|---:|---:|")
for name, what in rows:
    d = json.load(open(f"results/{name}.json"))["variants"]
    p = d["plain"]["server_cpu_us_per_request"]
    for v in ("floor", "hypertrace"):
        if v in d:
            c = d[v]["server_cpu_us_per_request"]
            print(f"| {what} | {v} | {d[v]['ratio_to_plain']:.3f} | {c:.1f} | {p:.1f} | {c - p:+.1f} | {c / p:.2f} |")
EOF
