#!/usr/bin/env bash
# Every test: board images type-checked against their MicroPython stubs, golden vectors on both
# codecs, firmware on the MicroPython unix port, host library and CLI, HIL suites on a simulated
# board; then each benchmark in its quick mode (figures printed; a lost or doubled record fails).
set -euo pipefail
cd "$(dirname "$0")"
source tools/venv.sh
tools/typecheck.sh  # board images against their MicroPython stubs (mypy)
tools/pico-emu/setup.sh  # rp2040js for the emulated-Pico tests (npm ci, pinned; skipped without node)
python -m pytest "$@"
# The firmware on the 32-bit unix port (31-bit small ints and ticks wrapping at 2^30, as on the
# RP2040), its ticks started 5 s before the wrap: every firmware test (the VM's), and the HIL suites
# that dose, stop and journal (the rest add little the 64-bit run does not: link, auth, console);
# the torture run again without the skew (it matches records to the truth by a board clock that
# the skew restarts at every boot). About 3 minutes on 2 cores. Skipped, saying how to get the
# binary, where the shared mcu/ folder is absent (harness.unix32_binary).
MPY32="$(python -c 'from mesosim.harness import unix32_binary; print(unix32_binary() or "")')"
if [ -n "$MPY32" ]; then
  MESOINJECT_MICROPYTHON="$MPY32" MICROPY_TICKS_WRAP_S=5 python -m pytest -q -k "not typecheck" firmware/tests \
    hil_tests/test_dosing.py hil_tests/test_stops.py hil_tests/test_journal.py hil_tests/test_limits.py
  MESOINJECT_MICROPYTHON="$MPY32" python -m pytest -q hil_tests/test_journal.py -k torture
else
  echo "32-bit tier skipped: $(python -c 'from mesosim.harness import UNIX32_HOWTO; print(UNIX32_HOWTO)')" >&2
fi
python bench/bench_sim.py --quick
python bench/bench_faults.py --quick
python bench/bench_metering.py --quick
python bench/bench_link.py --quick
python bench/bench_torture.py --quick
python bench/bench_fuzz.py --quick
python bench/bench_heap.py
python bench/bench_console.py --quick
python bench/bench_pico_emu.py --quick  # the real firmware on the emulated Pico (skips without the binaries)
