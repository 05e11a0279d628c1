#!/usr/bin/env bash
# Stops the servers that scripts/start-databases.sh started (by the PIDs it recorded in
# .databases/pids) and deletes their throw-away data directories and .databases/.
# Safe to call when nothing runs (e.g. from an EXIT trap).
set -uo pipefail
cd "$(dirname "$0")/.."
state="$(pwd)/.databases"

[ -d "$state" ] || exit 0
if [ -f "$state/pids" ]; then
  while read -r name pid; do
    [ -n "${pid:-}" ] || continue
    if kill -0 "$pid" 2>/dev/null; then
      # SIGTERM: PostgreSQL's "smart" shutdown waits for clients; SIGINT is its "fast" one.
      if [ "$name" = postgres ]; then kill -INT "$pid" 2>/dev/null; else kill -TERM "$pid" 2>/dev/null; fi
      for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
      done
      if kill -0 "$pid" 2>/dev/null; then
        echo "stop-databases: $name (pid $pid) still running after 10 s; killing it" >&2
        kill -KILL "$pid" 2>/dev/null
      fi
    fi
    echo "stop-databases: $name (pid $pid) stopped" >&2
  done <"$state/pids"
fi
if [ -f "$state/dir" ]; then
  dir="$(cat "$state/dir")"
  case "$dir" in
  */hypertrace-databases.*) rm -rf "$dir" ;;
  esac
fi
rm -rf "$state"
