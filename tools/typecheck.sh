#!/usr/bin/env bash
# Type-check each board's image (firmware, protocol spec, board code) with mypy against
# that port's MicroPython stubs: sim -> unix, pico -> rp2, esp32s3 -> esp32. A CPython-only
# module or API in board code fails it. Arguments go to tools/typecheck.py (--help).
#
# mypy and the stubs live in their own env (.typecheck/, or $MESOINJECT_TYPECHECK_ENV),
# never in .venv: the stubs replace the standard library and would break the host tools.
set -euo pipefail
cd "$(dirname "$0")/.."

ENV_DIR="${MESOINJECT_TYPECHECK_ENV:-$PWD/.typecheck}"
MYPY="mypy==2.4.1"
STDLIB="micropython-stdlib-stubs==1.29.0.post2"
STUBS="unix=micropython-unix-stubs==1.29.0.post1
rp2=micropython-rp2-rpi-pico-stubs==1.29.0.post1
esp32=micropython-esp32-esp32-generic-s3-stubs==1.29.0.post1"  # port=package (bash 3: no arrays)
WANT="$MYPY $STDLIB "$STUBS
STAMP="$ENV_DIR/installed"
if [ ! -x "$ENV_DIR/venv/bin/mypy" ] || [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
  echo "setting up $ENV_DIR (mypy and the MicroPython stubs) ..." >&2
  rm -rf "$ENV_DIR"
  python3 -m venv "$ENV_DIR/venv"
  "$ENV_DIR/venv/bin/python" -m pip install --quiet "$MYPY" >&2
  for entry in $STUBS; do
    port="${entry%%=*}"
    "$ENV_DIR/venv/bin/python" -m pip install --quiet --no-deps --target "$ENV_DIR/stubs/$port" "${entry#*=}" \
      "$STDLIB" >&2
    "$ENV_DIR/venv/bin/python" tools/typecheck.py --make-typeshed "$ENV_DIR/stubs/$port" "$ENV_DIR/typeshed/$port"
  done
  echo "$WANT" > "$STAMP"
fi
exec "$ENV_DIR/venv/bin/python" tools/typecheck.py --env "$ENV_DIR" "$@"
