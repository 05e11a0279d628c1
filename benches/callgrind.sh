#!/usr/bin/env bash
# Instructions per request of each variant, counted by callgrind: stable where
# wall-clock time on a shared 2-core machine is not.
#
#   benches/callgrind.sh                   # N=2000 requests per variant, ~2 min
#   N=500 VARIANTS="plain hypertrace" benches/callgrind.sh
#
# For each variant, `requests <variant> WARMUP N` and the empty run `requests <variant> WARMUP 0`
# run under callgrind; per request = (Ir(N) - Ir(0)) / N. Both runs flush every span through the
# OTLP-encoding exporter before they exit, so the count holds the whole cost: the request path (the
# thread that serves the request) and the export (the batch processor's thread), reported apart.
# Results: benches/results/callgrind.json; the raw profiles stay in target/callgrind/ for
# `callgrind_annotate`.
set -euo pipefail
cd "$(dirname "$0")"

N="${N:-2000}"
WARMUP="${WARMUP:-50}"
VARIANTS="${VARIANTS:-plain hypertrace hypertrace-disabled otel-axum tower-http hypertrace-unsampled}"

command -v valgrind >/dev/null 2>&1 || { echo "callgrind: valgrind not found (apt-get install valgrind)" >&2; exit 1; }
cargo build --release --quiet --bin requests
out="$PWD/target/callgrind"
rm -rf "$out" && mkdir -p "$out" results

for v in $VARIANTS; do
  for n in 0 "$N"; do
    # `--fair-sched=yes`: valgrind runs one thread at a time, and by default lets the serving
    # thread run long stretches before the export thread gets its turn, so the agent's record
    # pool, which the export thread refills, runs dry (most requests then take a new record, as
    # no two-core run does). Round-robin turns keep the threads closer to running side by side.
    # Exported spans freed by the export thread: under callgrind the threads run one at a time,
    # and which thread frees them (`rustagent.free_spans_where_served`) would otherwise depend on
    # when valgrind lets the export thread run, moving instructions between the two columns.
    HT_RUSTAGENT_FREE_SPANS_WHERE_SERVED=false \
    valgrind --tool=callgrind --fair-sched=yes --separate-threads=yes --callgrind-out-file="$out/$v.$n.out" \
      target/release/requests "$v" "$WARMUP" "$n" > /dev/null 2> "$out/$v.$n.log" \
      || { cat "$out/$v.$n.log" >&2; exit 1; }
  done
  echo "  callgrind: $v done ($(grep -o 'variant=.*' "$out/$v.$N.log"))" >&2
done

python3 - "$out" "$N" "$WARMUP" "$VARIANTS" > results/callgrind.json <<'EOF'
import glob, json, re, sys
out, n, warmup, variants = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4].split()
def totals(v, k):
    """Ir of the main thread (serves the requests) and of all other threads (export)."""
    main = other = 0
    for f in glob.glob(f"{out}/{v}.{k}.out-*"):
        text = open(f).read()
        ir = int(re.search(r'^(?:summary|totals):\s+(\d+)', text, re.M).group(1))
        if re.search(r'^thread:\s+1$', text, re.M):
            main += ir
        else:
            other += ir
    return main, other
res = {"n": n, "warmup": warmup, "variants": {}}
for v in variants:
    m0, o0 = totals(v, 0)
    m1, o1 = totals(v, n)
    log = [l for l in open(f"{out}/{v}.{n}.log").read().splitlines() if "variant=" in l][-1]
    info = dict(re.findall(r'(\S+)=(\S+)', log))
    res["variants"][v] = {
        "request_path": (m1 - m0) / n,
        "export": (o1 - o0) / n,
        "total": (m1 + o1 - m0 - o0) / n,
        "span_attributes": int(info.get("span.attributes", 0)),
        "span_events": int(info.get("span.events", 0)),
        "otlp_bytes_per_span": int(info.get("encoded.bytes_per_span", 0)),
    }
base = res["variants"].get("plain")
for r in res["variants"].values():
    if base:
        r["overhead"] = r["total"] - base["total"]
        r["ratio_to_plain"] = r["total"] / base["total"]
print(json.dumps(res, indent=1))
EOF
python3 - <<'EOF'
import json
d = json.load(open("results/callgrind.json"))
print(f"{'variant':22}{'request path':>14}{'export':>10}{'total':>10}{'overhead':>10}{'ratio':>8}")
for k, v in d["variants"].items():
    print(f"{k:22}{v['request_path']:>14.0f}{v['export']:>10.0f}{v['total']:>10.0f}{v.get('overhead', 0):>10.0f}{v.get('ratio_to_plain', 0):>8.3f}")
EOF
