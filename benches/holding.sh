#!/usr/bin/env bash
# What holding finished spans until their export costs the request, in-process: the table of
# "Holding the span until export" in BENCHMARKS.md.
#
#   benches/holding.sh             # ROUNDS=2 PAIRS=30, glibc then jemalloc (when installed); ~12 min
#
# The capture-everything `POST /echo` paired with plain axum (`inprocess_ab`, as table 1a), the
# spans after their end:
#   default    queued, redacted and encoded on the export thread (what the agent does)
#   dropped    freed at their end on the serving thread (`HT_RUSTAGENT_MAX_QUEUE_SIZE=1`)
#   ring:16    kept on the serving thread, the last 16, never exported
#   ring:512   the same, the last 512 (a batch)
#   encoded:512  encoded to OTLP on the serving thread, their `SpanData` freed at once, the last
#                512 encodings kept there
# The last three need code the agent does not ship: `holding.patch` is applied to a copy of this
# checkout (a git worktree under target/), and its `inprocess_ab` built there. Nothing here
# changes the checkout.
set -euo pipefail
cd "$(dirname "$0")"

ROUNDS="${ROUNDS:-2}"
PAIRS="${PAIRS:-30}"
root="$(git rev-parse --show-toplevel)"
src="$PWD/target/holding-src"

git -C "$root" worktree remove --force "$src" 2>/dev/null || rm -rf "$src"
git -C "$root" worktree add --detach --quiet "$src" HEAD
trap 'git -C "$root" worktree remove --force "$src"' EXIT
git -C "$src" apply "$PWD/holding.patch"
# The registry crates are shared with this package's own builds; the workspace crates are built
# again from the patched copy (a different path, so a different package).
out="$PWD/target/holding"
(cd "$src/benches" && CARGO_TARGET_DIR="$out" cargo build --release --quiet --bin inprocess_ab)
bin="$out/release/inprocess_ab"

jemalloc=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2
allocators=(glibc)
[ -e "$jemalloc" ] && allocators+=(jemalloc)
configs=("default|HT_DIAG_HOLD=" "dropped|HT_RUSTAGENT_MAX_QUEUE_SIZE=1" "ring:16|HT_DIAG_HOLD=ring:16"
  "ring:512|HT_DIAG_HOLD=ring:512" "encoded:512|HT_DIAG_HOLD=encoded:512")
for alloc in "${allocators[@]}"; do
  pre=()
  [ "$alloc" = jemalloc ] && pre=("LD_PRELOAD=$jemalloc")
  for round in $(seq "$ROUNDS"); do
    # Each round starts one configuration later: no configuration is always the first.
    n=${#configs[@]}
    for i in $(seq 0 $((n - 1))); do
      c="${configs[$(((i + round - 1) % n))]}"
      name="${c%%|*}"; var="${c#*|}"
      line=$(env "${pre[@]}" "$var" "$bin" "$PAIRS" hypertrace 2>&1 >/dev/null | tail -1)
      printf '%-9s round %s  %-12s %s\n' "$alloc" "$round" "$name" "$(grep -o '×[0-9.]* (×[0-9.]* … ×[0-9.]*)' <<<"$line" || echo "failed: $line")"
    done
  done
done
