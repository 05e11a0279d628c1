#!/usr/bin/env bash
# Installs Python gRPC (grpcio, and grpcio-tools for its bundled protoc) from PyPI into .venv/ at
# the repository root, for tests/grpc_python.rs: a client not written in Rust calling the tonic
# server. Prints the venv's python. Idempotent: a second run only checks.
#
#   scripts/install-grpcio.sh                 # install (or check) and print the python path
#   GRPCIO_VERSION=1.85.1 scripts/...         # pin another version
set -euo pipefail
cd "$(dirname "$0")/.."

version="${GRPCIO_VERSION:-1.85.1}"
python="${PYTHON:-}"
if [ -z "$python" ]; then
  for p in python3.11 python3; do
    if command -v "$p" >/dev/null 2>&1; then python="$p"; break; fi
  done
fi
[ -n "$python" ] || { echo "install-grpcio: python3 not found" >&2; exit 1; }

check() {
  .venv/bin/python - "$version" <<'PY' 2>/dev/null
import sys, importlib.metadata as m
import grpc, grpc_tools.protoc  # noqa: F401
sys.exit(0 if m.version("grpcio") == sys.argv[1] and m.version("grpcio-tools") == sys.argv[1] else 1)
PY
}

if [ -x .venv/bin/python ] && check; then
  echo "install-grpcio: grpcio $version already installed" >&2
else
  if [ ! -x .venv/bin/python ]; then
    echo "install-grpcio: creating .venv with $python" >&2
    "$python" -m venv .venv
  fi
  echo "install-grpcio: pip install grpcio==$version grpcio-tools==$version" >&2
  .venv/bin/python -m pip install --disable-pip-version-check --no-input --quiet \
    "grpcio==$version" "grpcio-tools==$version"
  check || { echo "install-grpcio: grpcio $version does not import after install" >&2; exit 1; }
fi
echo "$(pwd)/.venv/bin/python"
