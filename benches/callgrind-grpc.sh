#!/usr/bin/env bash
# Instructions per unary call of the gRPC bench (benches/benches/grpc.rs), counted by callgrind:
# client and server in one process, both ends' layers, every thread (the runtime's workers, the
# agent's or the SDK's export thread). N calls and none of each variant, each after the same 50
# warm-up calls; per call = (Ir(variant, N) - Ir(variant, 0)) / N, all threads, and the threads
# other than the runtime's apart.
#
#   benches/callgrind-grpc.sh            # N=2000, ~3 min after the build
#   N=500 VARIANTS="a-plain b-hypertrace" benches/callgrind-grpc.sh
#   HT_DATA_CAPTURE_RPC_BODY_REQUEST=false benches/callgrind-grpc.sh   # HT_* apply to the agent
set -euo pipefail
cd "$(dirname "$0")"

N="${N:-2000}"
VARIANTS="${VARIANTS:-a-plain b-hypertrace c-disabled d-tower-http}"
command -v valgrind >/dev/null 2>&1 || { echo "callgrind-grpc: valgrind not found (apt-get install valgrind)" >&2; exit 1; }
bin=$(cargo bench --bench grpc --no-run --message-format=json 2>/dev/null \
  | python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "grpc" and m.get("executable"):
        print(m["executable"])')
[ -x "$bin" ] || { echo "callgrind-grpc: the grpc bench did not build" >&2; exit 1; }
out="$PWD/target/callgrind-grpc"
rm -rf "$out" && mkdir -p "$out"

ir() { # variant n -> "all export": Ir of every thread, and of the export threads
  # The export thread frees every span (as in callgrind.sh): under callgrind, where the spans would
  # otherwise be freed depends on when it lets that thread run.
  HT_RUSTAGENT_FREE_SPANS_WHERE_SERVED=false GRPC_COUNT="$1 $2" valgrind --tool=callgrind \
    --separate-threads=yes --callgrind-out-file="$out/$1.$2.out" "$bin" > /dev/null 2> "$out/$1.$2.log" \
    || { cat "$out/$1.$2.log" >&2; exit 1; }
  python3 - "$out/$1.$2.out" <<'PY'
import glob, re, sys
total = export = 0
for f in glob.glob(sys.argv[1] + "-*"):
    text = open(f).read()
    ir = int(re.search(r'^(?:summary|totals):\s+(\d+)', text, re.M).group(1))
    total += ir
    # The agent's batch worker, or the SDK's BatchSpanProcessor thread.
    if re.search(r'export::batch::run_worker|BatchSpanProcessor::get_spans_and_export', text):
        export += ir
print(total, export)
PY
}

rows=()
for v in $VARIANTS; do
  rows+=("$v" $(ir "$v" 0) $(ir "$v" "$N"))
done
python3 - "$N" "${rows[@]}" <<'EOF'
import sys
n = int(sys.argv[1])
args = sys.argv[2:]
base = None
print(f"instructions per unary call ({n} calls; all threads, of which the export thread):")
for i in range(0, len(args), 5):
    name = args[i]
    t0, e0, tn, en = (int(x) for x in args[i + 1:i + 5])
    t, e = (tn - t0) / n, (en - e0) / n
    if base is None:
        base = t
    print(f"  {name:<16} all threads {t:9.0f} ({t - base:+8.0f}, x{t / base:.3f})   export thread {e:8.0f}")
EOF
