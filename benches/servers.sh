# Shared by the scripts that start bench servers (throughput.sh, perf-loopback.sh, memory.sh):
# sourced, with $SCRIPT set to the script's name for its messages.

# The servers' allocator: glibc's malloc, or jemalloc preloaded (Debian's libjemalloc2), as
# $ALLOCATOR says; start a server as "${preload[@]}" <command>.
preload=()
if [ "${ALLOCATOR:-glibc}" = jemalloc ]; then
  jemalloc=$(ls /usr/lib/*/libjemalloc.so.2 2>/dev/null | head -n1 || true)
  [ -n "$jemalloc" ] || { echo "$SCRIPT: libjemalloc.so.2 not found (apt-get install libjemalloc2)" >&2; exit 1; }
  preload=(env "LD_PRELOAD=$jemalloc")
fi

# Processes to kill on exit: add each one's PID.
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

# Waits for "listening" on the first line of $1 (a log file), at most 10 s.
wait_listening() {
  for _ in $(seq 100); do
    grep -q '^listening' "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "$SCRIPT: no 'listening' in $1" >&2; cat "$1" >&2; return 1
}
