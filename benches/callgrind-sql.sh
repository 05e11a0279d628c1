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

N="${N:-2000}"
command -v valgrind >/dev/null 2>&1 || { echo "callgrind-sql: valgrind not found (apt-get install valgrind)" >&2; exit 1; }
bin=$(cargo bench --features sql --bench sql --no-run --message-format=json 2>/dev/null \
  | python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "sql" and m.get("executable"):
        print(m["executable"])')
[ -x "$bin" ] || { echo "callgrind-sql: the sql bench did not build" >&2; exit 1; }
out="$PWD/target/callgrind-sql"
rm -rf "$out" && mkdir -p "$out"

ir() { # variant n -> "main other": Ir of the thread that runs the queries, and of all others
  # The export thread frees every span (as in callgrind.sh): under callgrind, where the spans would
  # otherwise be freed depends on when it lets that thread run.
  HT_RUSTAGENT_FREE_SPANS_WHERE_SERVED=false SQL_COUNT="$1 $2" valgrind --tool=callgrind --separate-threads=yes \
    --callgrind-out-file="$out/$1.$2.out" "$bin" > /dev/null 2> "$out/$1.$2.log" \
    || { cat "$out/$1.$2.log" >&2; exit 1; }
  python3 - "$out/$1.$2.out" <<'PY'
import glob, re, sys
main = other = 0
for f in glob.glob(sys.argv[1] + "-*"):
    text = open(f).read()
    ir = int(re.search(r'^(?:summary|totals):\s+(\d+)', text, re.M).group(1))
    if re.search(r'^thread:\s+1$', text, re.M):
        main += ir
    else:
        other += ir
print(main, other)
PY
}

rows=()
for v in a-plain b-hypertrace c-hypertrace-disabled; do
  rows+=("$v" $(ir "$v" 0) $(ir "$v" "$N"))
done
python3 - "$N" "${rows[@]}" <<'EOF'
import sys
n = int(sys.argv[1])
args = sys.argv[2:]
base = None
print(f"instructions per query ({n} queries; the query's thread, the other threads):")
for i in range(0, len(args), 5):
    name = args[i]
    m0, o0, mn, on = (int(x) for x in args[i + 1:i + 5])
    m, o = (mn - m0) / n, (on - o0) / n
    if base is None:
        base = (m, o)
    print(f"  {name:<24} query thread {m:9.0f} ({m - base[0]:+7.0f})   other threads {o:8.0f} ({o - base[1]:+7.0f})   total {m + o - base[0] - base[1]:+7.0f}")
EOF
