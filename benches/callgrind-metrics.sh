#!/usr/bin/env bash
# Instructions per request that the HTTP server metrics add, counted by callgrind: the metrics
# bench's `GET /users/{id}` with metrics off and on, N requests and none, each after the same
# warm-up. Per request = (Ir(side, N) - Ir(side, 0)) / N, for the thread that serves the requests
# and for the others (the span export) apart; "added" = on - off.
#
#   benches/callgrind-metrics.sh            # N=2000, ~2 min
#   N=500 benches/callgrind-metrics.sh
set -euo pipefail
cd "$(dirname "$0")"
. ./callgrind-common.sh

N="${N:-2000}"
bin=$(bench_executable metrics)
out="$PWD/target/callgrind-metrics"
rm -rf "$out" && mkdir -p "$out"

ir() { # side n -> "main other": Ir of the thread that serves the requests, and of all others
  HT_BENCH_REQUESTS="$1 $2" callgrind_ir "$out/$1.$2" "$bin"
}

off0=$(ir off 0); offn=$(ir off "$N"); on0=$(ir on 0); onn=$(ir on "$N")
python3 - "$N" $off0 $offn $on0 $onn <<'EOF'
import sys
n = int(sys.argv[1])
off0m, off0o, offnm, offno, on0m, on0o, onnm, onno = (int(x) for x in sys.argv[2:])
off, on = (offnm - off0m) / n, (onnm - on0m) / n
offo, ono = (offno - off0o) / n, (onno - on0o) / n
print(f"instructions per GET /users/{{id}} ({n} requests):")
print(f"  serving thread: metrics off {off:.0f}, on {on:.0f}, added {on - off:.0f}")
print(f"  other threads (span export, metric reader): off {offo:.0f}, on {ono:.0f}, added {ono - offo:.0f}")
EOF
