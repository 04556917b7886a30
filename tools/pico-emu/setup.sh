#!/usr/bin/env bash
# Install rp2040js (the emulated RP2040) exactly as package-lock.json pins it, into
# tools/pico-emu/node_modules (gitignored). Quick when nothing changed: a stamp holds the lockfile
# it was installed from. Without node/npm, or offline, it warns and the emulated-Pico tests skip.
set -euo pipefail
cd "$(dirname "$0")"
STAMP=node_modules/.installed-from-lock
if [ -f "$STAMP" ] && cmp -s package-lock.json "$STAMP"; then
  exit 0
fi
if ! command -v npm >/dev/null; then
  echo "warning: no npm (Node.js >= 18): the emulated-Pico tests will be skipped" >&2
  exit 0
fi
if npm ci --no-audit --no-fund --loglevel=error >&2; then
  cp package-lock.json "$STAMP"
else
  echo "warning: npm ci failed in tools/pico-emu: the emulated-Pico tests will be skipped" >&2
fi
