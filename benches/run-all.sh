#!/usr/bin/env bash
# The one command that reproduces BENCHMARKS.md:
#
#   benches/run-all.sh
#
# Builds the bench package (release; ~4 min from scratch on 2 cores), then runs, in order:
#   1. the in-process criterion bench, each variant in its own process, with glibc's malloc and
#      again with jemalloc preloaded              (benches/benches/overhead.rs, ~2 x 1 min)
#   1a. the same request paired with plain axum in one process, alternating blocks, glibc and
#      jemalloc                                    (src/bin/inprocess_ab.rs, ~2 x 2.5 min)
#   2. instruction counts under callgrind          (benches/callgrind.sh, ~2 min)
#   3. loopback throughput with wrk, glibc then jemalloc servers  (benches/throughput.sh, ~4.5 min)
#   3a. the same loopback run under `perf record`, time per thread and component, glibc then
#      jemalloc servers                            (benches/perf-loopback.sh, ~2 x 1.5 min; skipped without perf)
#   3b. the gRPC layers per unary call against tower-http's TraceLayer for gRPC
#                                                  (benches/benches/grpc.rs, ~2 min)
#   4. peak RSS for 1 GiB up and down, glibc then jemalloc        (benches/memory.sh, ~30 s)
# and writes benches/results/*.json, benches/results/chart.svg and the tables of BENCHMARKS.md
# (benches/report.py). Wall-clock numbers need a quiet machine: the load average is recorded at the
# start of each phase with the CPU other processes use, and a warning is printed when that is above
# 20% (QUIET_WAIT=600 waits up to 10 min per phase for it to drop).
#
# Needs: cargo, python3, valgrind, curl, wrk and libjemalloc2 (all but cargo installed with apt-get
# when missing and run as root; without jemalloc its passes are skipped).
set -euo pipefail
cd "$(dirname "$0")"

# Before each phase: the 1-min load average (which still counts the previous phase's own work) and
# the CPU that other processes use over 2 s while none of ours runs (the better sign of a quiet
# machine; 100% = one core).
# PHASES="criterion throughput" runs only those (of: criterion paired callgrind throughput perf grpc memory); the
# report then combines them with the results already in benches/results/.
PHASES="${PHASES:-criterion paired callgrind throughput perf grpc memory}"
want() { [[ " $PHASES " == *" $1 "* ]]; }
# QUIET_WAIT=600 waits up to that many seconds per phase for other processes to use < 20% CPU.
QUIET_WAIT="${QUIET_WAIT:-0}"
others_cpu() { top -bn2 -d2 | awk '/^top -/ {n++} n == 2 && $1 ~ /^[0-9]+$/ && $9 + 0 > 0 {s += $9} END {printf "%.0f", s}'; }
loads=()
phase() {
  local l busy waited=0
  busy=$(others_cpu)
  while [ "$busy" -gt 20 ] && [ "$waited" -lt "$QUIET_WAIT" ]; do
    sleep 10; waited=$((waited + 12)); busy=$(others_cpu)
  done
  l=$(cut -d' ' -f1 /proc/loadavg)
  loads+=("$1=load ${l}, others ${busy}% CPU")
  echo "== $1 (load average $l; other processes ${busy}% CPU)" >&2
  if [ "$busy" -gt 20 ]; then
    echo "   warning: other processes use ${busy}% CPU: wall-clock numbers will be noisy (instruction counts are not)" >&2
  fi
}

for tool in cargo python3 valgrind curl; do
  if ! command -v "$tool" >/dev/null 2>&1 && [ "$tool" != cargo ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "run-all: installing $tool (Debian package)" >&2
    apt-get install -y -qq "$tool" >/dev/null 2>&1 || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq "$tool" >/dev/null 2>&1; } || true
  fi
  command -v "$tool" >/dev/null 2>&1 || { echo "run-all: $tool not found" >&2; exit 1; }
done

# jemalloc for the second in-process pass and the second throughput pass (see BENCHMARKS.md: with
# glibc's malloc, freeing spans on the export thread contends for the arena lock).
jemalloc=$(ls /usr/lib/*/libjemalloc.so.2 2>/dev/null | head -n1 || true)
if [ -z "$jemalloc" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  apt-get install -y -qq libjemalloc2 >/dev/null 2>&1 || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq libjemalloc2 >/dev/null 2>&1; } || true
  jemalloc=$(ls /usr/lib/*/libjemalloc.so.2 2>/dev/null | head -n1 || true)
fi
[ -n "$jemalloc" ] || echo "run-all: libjemalloc.so.2 not found: the jemalloc passes are skipped" >&2

echo "== build" >&2
cargo build --release --quiet --bins
bench_exe=$(cargo bench --bench overhead --no-run --message-format=json 2>/dev/null \
  | python3 -c 'import json,sys; print([j["executable"] for j in map(json.loads, sys.stdin) if j.get("reason") == "compiler-artifact" and j.get("executable") and j["target"]["name"] == "overhead"][-1])')

# Each variant in its own process: the heap a variant leaves behind does not slow the next one.
criterion_pass() { # $1: output dir, then an optional `env LD_PRELOAD=...`
  local home=$1; shift
  rm -rf "$home"
  for v in plain hypertrace hypertrace-disabled otel-axum tower-http hypertrace-unsampled; do
    CRITERION_HOME="$home" VARIANTS="$v" "$@" "$bench_exe" --bench 2>&1 \
      | { grep -vE '^\s*$|^(Warming|Collecting|Analyzing|Benchmarking|Found|  [0-9]+ \([0-9.]+%\))' >&2 || true; }
  done
}
if want criterion; then
  phase criterion
  criterion_pass "$PWD/target/criterion"
  if [ -n "$jemalloc" ]; then
    phase criterion-jemalloc
    criterion_pass "$PWD/target/criterion-jemalloc" env "LD_PRELOAD=$jemalloc"
  fi
fi
if want paired; then
  phase paired
  ./target/release/inprocess_ab "${PAIRS:-60}" > results/paired.json
  if [ -n "$jemalloc" ]; then
    phase paired-jemalloc
    LD_PRELOAD="$jemalloc" ./target/release/inprocess_ab "${PAIRS:-60}" > results/paired-jemalloc.json
  fi
fi
if want callgrind; then
  phase callgrind
  ./callgrind.sh
fi
if want throughput; then
  phase throughput
  ./throughput.sh
  if [ -n "$jemalloc" ]; then
    phase throughput-jemalloc
    ALLOCATOR=jemalloc OUT=throughput-jemalloc.json ROUNDS=2 VARIANTS="plain hypertrace otel-axum tower-http" ./throughput.sh
  fi
fi
if want perf; then
  if command -v perf >/dev/null 2>&1; then
    phase perf
    ./perf-loopback.sh || echo "run-all: perf-loopback failed (perf_event_paranoid?); its table is left out" >&2
    if [ -n "$jemalloc" ]; then
      phase perf-jemalloc
      ALLOCATOR=jemalloc OUT=perf-loopback-jemalloc.json ./perf-loopback.sh || echo "run-all: perf-loopback (jemalloc) failed" >&2
    fi
  else
    echo "run-all: perf not found: the loopback time by component (table 2a) is skipped" >&2
  fi
fi
if want grpc; then
  phase grpc
  # The gRPC layers against tower-http's TraceLayer: results/grpc.json (its interleaved run).
  cargo bench --quiet --bench grpc 2>&1 | { grep -E '^(grpc-unary|interleaved|  )' >&2 || true; }
fi
if want memory; then
  phase memory
  ./memory.sh
  if [ -n "$jemalloc" ]; then
    ALLOCATOR=jemalloc OUT=memory-jemalloc.json ./memory.sh
  fi
fi

python3 - "${loads[@]}" > results/machine.json.new <<'EOF'
import json, os, platform, subprocess, sys, datetime
try:
    previous = json.load(open("results/machine.json")).get("load", {})
except (OSError, ValueError):
    previous = {}
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
mem = next((l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal")), "0")
print(json.dumps({
    "date": datetime.date.today().isoformat(),
    "cpu": cpu,
    "nproc": os.cpu_count(),
    "mem": f"{int(mem) / 1048576:.0f} GiB RAM",
    "kernel": platform.release(),
    "rustc": subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip(),
    "load": {**previous, **dict(a.split("=", 1) for a in sys.argv[1:])},
}, indent=1))
EOF
mv results/machine.json.new results/machine.json
python3 report.py
echo "run-all: done; see BENCHMARKS.md and benches/results/" >&2
