#!/usr/bin/env bash
# Instructions per query that `hypertrace::sqlx` adds, counted by callgrind: the sql bench's
# `SELECT $1::int4` with `fetch_one` on one connection to a real PostgreSQL server
# (scripts/start-databases.sh postgres, or DATABASE_URL), N queries and none of each variant, each
# after the same 50 warm-up queries. Per query = (Ir(variant, N) - Ir(variant, 0)) / N, for the
# thread that runs the queries and for the others (the span export) apart; the server's own work
# is another process and is not counted.
#
#   benches/callgrind-sql.sh            # N=2000, ~3 min after the build
#   N=500 benches/callgrind-sql.sh
set -euo pipefail
cd "$(dirname "$0")"
. ./callgrind-common.sh

N="${N:-2000}"
bin=$(bench_executable sql --features sql)
out="$PWD/target/callgrind-sql"
rm -rf "$out" && mkdir -p "$out"

ir() { # variant n -> "main other": Ir of the thread that runs the queries, and of all others
  # The export thread frees every span (as in callgrind.sh): under callgrind, where the spans would
  # otherwise be freed depends on when it lets that thread run.
  HT_RUSTAGENT_FREE_SPANS_WHERE_SERVED=false SQL_COUNT="$1 $2" callgrind_ir "$out/$1.$2" "$bin"
}

rows=()
for v in a-plain b-hypertrace c-hypertrace-disabled; do
  rows+=("$v" $(ir "$v" 0) $(ir "$v" "$N"))
done
callgrind_report "$N" "query" "query thread" "other threads" "${rows[@]}"
