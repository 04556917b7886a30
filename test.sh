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
python bench/bench_sim.py --quick
python bench/bench_faults.py --quick
python bench/bench_metering.py --quick
python bench/bench_link.py --quick
python bench/bench_torture.py --quick
python bench/bench_fuzz.py --quick
python bench/bench_heap.py
python bench/bench_console.py --quick
python bench/bench_pico_emu.py --quick  # the real firmware on the emulated Pico (skips without the binaries)
