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
. ./callgrind-common.sh

N="${N:-2000}"
VARIANTS="${VARIANTS:-a-plain b-hypertrace c-disabled d-tower-http}"
bin=$(bench_executable grpc)
out="$PWD/target/callgrind-grpc"
rm -rf "$out" && mkdir -p "$out"

ir() { # variant n -> "all export": Ir of every thread, and of the export threads
  # The export thread frees every span (as in callgrind.sh): under callgrind, where the spans would
  # otherwise be freed depends on when it lets that thread run. The export threads: the agent's
  # batch worker, or the SDK's BatchSpanProcessor thread.
  HT_RUSTAGENT_FREE_SPANS_WHERE_SERVED=false GRPC_COUNT="$1 $2" callgrind_ir "$out/$1.$2" "$bin" \
    'export::batch::run_worker|BatchSpanProcessor::get_spans_and_export'
}

rows=()
for v in $VARIANTS; do
  rows+=("$v" $(ir "$v" 0) $(ir "$v" "$N"))
done
callgrind_report "$N" "unary call" "all threads" "export threads" "${rows[@]}"
