#!/usr/bin/env bash
# Installs the `rotel` OpenTelemetry collector (PyPI wheel with a bundled binary) into .venv/ at
# the repository root, and prints the path of the binary. Idempotent: a second run only checks.
#
#   scripts/install-collector.sh            # install (or check) and print the binary path
#   ROTEL_VERSION=0.0.1a15 scripts/...      # pin another version
#
# tests/e2e_collector.rs finds the binary there (or in $ROTEL_BIN).
set -euo pipefail
cd "$(dirname "$0")/.."

# rotel publishes pre-releases only; pin the one the tests were written against.
version="${ROTEL_VERSION:-0.0.1a15}"
python="${PYTHON:-}"
if [ -z "$python" ]; then
  for p in python3.11 python3; do
    if command -v "$p" >/dev/null 2>&1; then python="$p"; break; fi
  done
fi
[ -n "$python" ] || { echo "install-collector: python3 not found" >&2; exit 1; }

find_bin() { ls .venv/lib/python3*/site-packages/rotel/rotel-agent 2>/dev/null | head -n1; }

bin="$(find_bin || true)"
if [ -n "$bin" ] && [ -x "$bin" ] && .venv/bin/python -c "import importlib.metadata as m, sys; sys.exit(m.version('rotel') != '$version')" 2>/dev/null; then
  echo "install-collector: rotel $version already installed" >&2
else
  if [ ! -x .venv/bin/python ]; then
    echo "install-collector: creating .venv with $python" >&2
    "$python" -m venv .venv
  fi
  echo "install-collector: pip install rotel==$version" >&2
  .venv/bin/python -m pip install --disable-pip-version-check --no-input --quiet "rotel==$version"
  bin="$(find_bin || true)"
fi
[ -n "$bin" ] || { echo "install-collector: rotel-agent not found under .venv after install" >&2; exit 1; }
chmod +x "$bin" 2>/dev/null || true
"$bin" --version >/dev/null 2>&1 || "$bin" --help >/dev/null 2>&1 || { echo "install-collector: $bin does not run" >&2; exit 1; }
echo "$(pwd)/$bin"
