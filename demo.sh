#!/usr/bin/env bash
# The main job: set up, then run the point-by-point example program on a simulated
# board that runs the real MicroPython firmware; prints where the records went.
set -euo pipefail
cd "$(dirname "$0")"
source tools/venv.sh
mesoinject run point-by-point --sim --patient P-0042 --operator "Dr Demo" --yes "$@"
