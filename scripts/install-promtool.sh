#!/usr/bin/env bash
# Installs `promtool`, the Prometheus project's checker of the text exposition format, into .tools/
# at the repository root, and prints the path of the binary. Idempotent: a second run only checks.
#
#   scripts/install-promtool.sh        # install (or check) and print the binary path
#
# It comes from Debian's `prometheus` package, unpacked rather than installed: only promtool is
# needed, and installing the package would also set up (and might start) a Prometheus server.
# tests/metrics.rs finds the binary there (or in $PROMTOOL, or on PATH).
set -euo pipefail
cd "$(dirname "$0")/.."

bin=.tools/bin/promtool
if [ -x "$bin" ] && "$bin" --version >/dev/null 2>&1; then
  echo "install-promtool: $("$bin" --version 2>&1 | head -n1)" >&2
  echo "$(pwd)/$bin"
  exit 0
fi
command -v apt-get >/dev/null 2>&1 || { echo "install-promtool: apt-get not found (Debian or Ubuntu needed)" >&2; exit 1; }
command -v dpkg-deb >/dev/null 2>&1 || { echo "install-promtool: dpkg-deb not found" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
download() { (cd "$work" && apt-get download prometheus >/dev/null 2>&1); }
if ! download; then
  echo "install-promtool: apt-get update (the package lists were missing or stale)" >&2
  apt-get update -qq >/dev/null
  download || { echo "install-promtool: apt-get download prometheus failed" >&2; exit 1; }
fi
deb="$(ls "$work"/prometheus_*.deb | head -n1)"
dpkg-deb -x "$deb" "$work/x"
mkdir -p .tools/bin
cp "$work/x/usr/bin/promtool" "$bin"
chmod +x "$bin"
"$bin" --version >/dev/null 2>&1 || { echo "install-promtool: $bin does not run" >&2; exit 1; }
echo "install-promtool: $("$bin" --version 2>&1 | head -n1) from $(basename "$deb")" >&2
echo "$(pwd)/$bin"
