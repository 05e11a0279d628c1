# Shared by benches/callgrind-metrics.sh, callgrind-sql.sh and callgrind-grpc.sh (sourced, not run).

# bench_executable NAME [CARGO ARGS...]: builds the bench NAME (`cargo bench --no-run`) and prints
# the path of its executable. Fails, saying why, when valgrind is missing or the bench did not
# build: `bin=$(bench_executable NAME)` then stops a script run with `set -e`.
bench_executable() {
  local name="$1" script="${0##*/}" exe
  shift
  command -v valgrind >/dev/null 2>&1 || { echo "${script%.sh}: valgrind not found (apt-get install valgrind)" >&2; return 1; }
  exe=$(cargo bench --bench "$name" "$@" --no-run --message-format=json 2>/dev/null \
    | python3 -c 'import json, sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == sys.argv[1] and m.get("executable"):
        print(m["executable"])' "$name")
  [ -x "$exe" ] || { echo "${script%.sh}: the $name bench did not build" >&2; return 1; }
  echo "$exe"
}

# callgrind_ir OUT BIN [SPLIT]: runs BIN under callgrind, one profile per thread (OUT.out-*, its
# stderr in OUT.log), with the environment the caller gives it, and prints two counts of
# instructions: without SPLIT, thread 1's and the other threads'; with SPLIT (a regex), all the
# threads' and those of the threads whose profile matches it.
callgrind_ir() {
  local out="$1" bin="$2" split="${3:-}"
  valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file="$out.out" "$bin" \
    > /dev/null 2> "$out.log" || { cat "$out.log" >&2; return 1; }
  python3 - "$out.out" "$split" <<'PY'
import glob, re, sys
prefix, split = sys.argv[1], sys.argv[2]
first = second = 0
for f in glob.glob(prefix + "-*"):
    text = open(f).read()
    ir = int(re.search(r'^(?:summary|totals):\s+(\d+)', text, re.M).group(1))
    if split:
        first += ir
        second += ir if re.search(split, text) else 0
    elif re.search(r'^thread:\s+1$', text, re.M):
        first += ir
    else:
        second += ir
print(first, second)
PY
}

# callgrind_report N WHAT FIRST SECOND [VARIANT IR0_FIRST IR0_SECOND IRN_FIRST IRN_SECOND]...:
# per WHAT (a request, a query, a call) = (Ir(N) - Ir(0)) / N for each variant and each of the two
# counts callgrind_ir printed (named FIRST and SECOND), each next to the first variant's.
callgrind_report() {
  python3 - "$@" <<'PY'
import sys
n, what, first, second = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
rows = sys.argv[5:]
base = None
print(f"instructions per {what} ({n} of them; {first}, {second}), and over the first variant:")
for i in range(0, len(rows), 5):
    name = rows[i]
    a0, b0, an, bn = (int(x) for x in rows[i + 1:i + 5])
    a, b = (an - a0) / n, (bn - b0) / n
    if base is None:
        base = (a, b)
    print(f"  {name:<24} {first} {a:9.0f} ({a - base[0]:+8.0f}, x{a / base[0]:.3f})"
          f"   {second} {b:8.0f} ({b - base[1]:+8.0f})")
PY
}
