#!/usr/bin/env bash
# Every test: board images type-checked against their MicroPython stubs, golden vectors on both
# codecs, firmware on the MicroPython unix port, host library and CLI, HIL suites on a simulated
# board; then each benchmark in its quick mode (figures printed; a lost or doubled record fails).
set -euo pipefail
cd "$(dirname "$0")"
source tools/venv.sh
ruff check .  # host, tests, benches, tools (pyproject [tool.ruff]; the firmware is checked by typecheck.sh)
mypy  # the host packages' type hints (pyproject [tool.mypy])
tools/typecheck.sh  # board images against their MicroPython stubs (mypy)
tools/pico-emu/setup.sh  # rp2040js for the emulated-Pico tests (npm ci, pinned; skipped without node)
# Each run writes its tests' outcomes and requirement ids (@pytest.mark.req) for tools/trace.py.
TRACE=build/trace
rm -f "$TRACE"/*.json
# Two workers, a test file each at a time (--dist loadfile: a file's board fixtures stay in one process);
# most HIL time is a board's real time, not CPU: 6.7 min instead of 10 on 2 cores. `-n 0` runs it serially.
python -m pytest -n 2 --dist loadfile --req-report "$TRACE/pytest.json" "$@" || {
  status=$?  # the trace report still shows what failed, against which requirement
  python tools/trace.py "$TRACE/pytest.json" --html build/trace.html >/dev/null 2>&1 || true
  echo "trace report: build/trace.html" >&2
  exit $status
}
# The firmware on the 32-bit unix port (31-bit small ints and ticks wrapping at 2^30, as on the
# RP2040), its ticks started 5 s before the wrap: every firmware test (the VM's), and the HIL suites
# that dose, stop and journal (the rest add little the 64-bit run does not: link, auth, console);
# the torture run and the power-cut record time again without the skew (they match records to the truth by a board clock that
# the skew restarts at every boot). About 3 minutes on 2 cores. Skipped, saying how to get the
# binary, where the shared mcu/ folder is absent (harness.unix32_binary).
# The emulated-Pico tests (*pico_emu*) run once, above: their chip is 32-bit whatever the host runs.
MPY32="$(python -c 'from mesosim.harness import unix32_binary; print(unix32_binary() or "")')"
if [ -n "$MPY32" ]; then
  MESOINJECT_MICROPYTHON="$MPY32" MICROPY_TICKS_WRAP_S=5 python -m pytest -q -n 2 --dist loadfile -k "not typecheck and not pico_emu" firmware/tests \
    hil_tests/test_dosing.py hil_tests/test_stops.py hil_tests/test_journal.py hil_tests/test_limits.py \
    --req-report "$TRACE/pytest-32.json"
  MESOINJECT_MICROPYTHON="$MPY32" python -m pytest -q hil_tests/test_journal.py -k "torture or first_checkpoint" \
    --req-report "$TRACE/pytest-32-torture.json"
else
  echo "32-bit tier skipped: $(python -c 'from mesosim.harness import UNIX32_HOWTO; print(UNIX32_HOWTO)')" >&2
fi
# The HIL suites on the chip's own firmware: the RPI_PICO MicroPython build in an emulated RP2040, its world
# the sim's model driven by the STEP/DIR pins (tools/pico-emu/emuboard.py): one point against that ground
# truth (and pins = steps counted), two 50 uL points in a row (the heartbeat on the chip's clock, the release
# between points, no pulse with the drivers off: test_pins), one trigger release. One boot for all; 75-90 s of
# CPU measured before the two points, which add ~25 s (over the 60 s wanted: the trigger release alone is
# ~45 s; the emulator runs
# at 0.05-0.25x real time). All of it: python -m pytest hil_tests --mesoinject-board pico-emu. Skipped, saying
# how to get the binaries, where ../shared/mcu is absent (picoemu.Unavailable).
python -m pytest -q hil_tests/test_pins.py hil_tests/test_stops.py::test_trigger_release_stops_within_the_point \
  --mesoinject-board pico-emu --req-report "$TRACE/pytest-pico-emu.json"
# The risk file against these runs: every requirement verified by a passing test, every hazard's
# control by a test, no unknown id, PROTOCOL.md's limits tables equal to spec.py, docs/soup.md current
# (docs/requirements.yaml, docs/hazards.yaml; README "Risk management"). Writes build/trace.html.
python tools/trace.py "$TRACE/pytest.json" "$TRACE/pytest-32.json" "$TRACE/pytest-32-torture.json" \
  "$TRACE/pytest-pico-emu.json" --html build/trace.html
python bench/bench_sim.py --quick
python bench/bench_faults.py --quick
python bench/bench_cadence.py --quick  # nappage jitter at 6/9/12 Hz, and what filled each long gap between passes
python bench/bench_heads.py --quick  # needle heads: dead volume, per-needle split, a blocked needle
python bench/bench_metering.py --quick
python bench/bench_accuracy.py --quick  # the shot-accuracy report of this build: build/accuracy/accuracy-BUILD.html
python bench/bench_link.py --quick
python bench/bench_torture.py --quick --flash untimed  # CI time: timed flash doubles it (71 s), guarantees the same
python bench/bench_fuzz.py --quick
python bench/bench_heap.py --per-module  # FITS in 192K on both ports, and the heap each module holds
python bench/bench_virtual.py --quick  # the virtual device's 20-point session (the sim's is in the full run)
python bench/bench_console.py --quick
python bench/bench_lab.py --quick  # labgrid: coordinator + exporter on loopback, 2 sims, 2 places locked by 2 pytest runs
python bench/bench_pico_emu.py --quick  # the real firmware on the emulated Pico (skips without the binaries)
echo "trace report: build/trace.html (requirements -> tests -> results; hazards -> controls -> tests)"
