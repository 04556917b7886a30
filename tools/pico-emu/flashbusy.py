"""Trigger release / E-stop while the flash stalls the CPU, on the emulated Pico (flash.mjs): the worst
case the firmware itself avoids (device.py lets the plunger's pulses out before it writes the journal).

A loop hands the step PIO 4 words of plunger pulses (its queue: 3.2 ms of them) and then erases a
4 KB sector (the filesystem's last block: the image is small, littlefs has not used it), which
stalls the core ~45 ms (400 ms at maximum timing). The runner presses the trigger at "MARK <kind> i"
and, RELEASE_INTO_ERASE_US into the next erase, releases it or presses the E-stop (a "flash-pin"
event). Kinds "trigger" and "estop" run with the plunger's PIO gate on; "free" without it, for
contrast: the queued pulses then go on after the release. Used by
firmware/tests/test_pico_emu_flash.py (asserted) and bench/bench_pico_emu.py (timed).
"""

from __future__ import annotations

import dataclasses
import pathlib

import picoemu

TRIGGER, ESTOP, PLUNGER_STEP, PLUNGER_DIR = 10, 11, 2, 3  # boards/pico/board.py
RELEASE_INTO_ERASE_US = 500  # the queue still going out (handing it over took ~1 ms of Python)
WORDS, STEPS_PER_WORD = 4, 5  # 5 pulses over 0.8 ms a word (board_steppio.SPREAD_US)
# kind: (gated, pins at the mark: trigger pressed, E-stop released; the pin changed in the erase)
KINDS = {"trigger": (True, {TRIGGER: 0, ESTOP: 0}, {TRIGGER: 1}),
         "estop": (True, {TRIGGER: 0, ESTOP: 0}, {ESTOP: 1}),
         "free": (False, {TRIGGER: 0, ESTOP: 0}, {TRIGGER: 1})}

SCRIPT = r"""
import board, rp2, time
b = board.Board()
b.motors(True)
f = rp2.Flash()
blk = f.ioctl(4, 0) - 1
for kind, gated in KINDS:
    b.plunger_gate(gated)
    for i in range(N):
        print('MARK', kind, i)
        for _ in range(8):  # the loop's ticks; meanwhile the runner presses the trigger (the USB line lags)
            b.feed_watchdog()
            b.plunger_step(1)
            time.sleep_ms(1)
        b.wait_steps()
        b.plunger_unsent()
        for _ in range(WORDS):
            b.plunger_step(STEPS)
        f.ioctl(6, blk)  # the core stalls here; the runner changes the pin during it
        b.wait_steps()
        print('MARK after', kind, i, b.plunger_unsent())
b.plunger_gate(False)
b.motors(False)
"""


@dataclasses.dataclass
class Sample:
    kind: str
    in_erase: bool  # the pin changed while the erase still stalled the core
    before: int  # STEP pulses from the erase's start to the pin change: the PIO runs while the CPU cannot
    after: int  # STEP pulses after the pin change
    late_us: int  # emulated us from the pin change to the last STEP pulse after it (0: none after it)
    unsent: int  # steps the firmware was told did not go out
    handed: int  # steps handed to the PIO in the burst before the erase


def run(tmp: pathlib.Path, n: int, kinds: tuple[str, ...] = tuple(KINDS), timing: str = "typ",
        timeout_s: float = 600) -> tuple[list[Sample], picoemu.Run]:
    """n cycles of each kind in one boot."""
    fs = picoemu.build_fs("pico", tmp / "busy-gate.img", without=("main.py",))
    script = (SCRIPT.replace("range(N)", f"range({n})").replace("KINDS", repr(tuple((k, KINDS[k][0]) for k in kinds)))
              .replace("range(WORDS)", f"range({WORDS})").replace("STEPS)", f"{STEPS_PER_WORD})"))
    flash = picoemu.Flash(timing=timing, events=True,
                          on_flash={k: (KINDS[k][2], RELEASE_INTO_ERASE_US) for k in kinds})
    result = picoemu.run_script(script, fs, tmp, watch={PLUNGER_STEP: PLUNGER_DIR},
                                inputs={TRIGGER: 1, ESTOP: 0, 12: 0, 13: 1},
                                on_mark={k: KINDS[k][1] for k in kinds}, timeout_s=timeout_s, flash=flash)
    if result.code:
        raise AssertionError(f"flash-busy gate script failed: {result.error}\n{result.stdout}\n{result.stderr}")
    pin = str(PLUNGER_STEP)
    pins = [e for e in result.events if e["event"] == "flash-pin"]
    erases = {e["start_us"]: sum(e["edges"][pin]) for e in result.events if e["event"] == "flash" and e["op"] == "erase"}
    afters = [m for m in result.marks if m["name"].startswith("after ")]
    if len(pins) != len(afters) or len(afters) != n * len(kinds):
        raise AssertionError(f"{len(pins)} pin changes in an erase, {len(afters)} cycles ended, {n * len(kinds)} run:"
                             f"\n{result.stdout}")
    samples = []
    for p, m in zip(pins, afters):
        _, kind, _, unsent = m["name"].split()
        at_change = sum(p["edges"][pin])
        samples.append(Sample(kind, p["pins_set_us"] < p["erase_start_us"] + p["busy_us"],
                              at_change - erases[p["erase_start_us"]], sum(m["edges"][pin]) - at_change,
                              max(0, m["last_edge_us"].get(pin, 0) - p["pins_set_us"]), int(unsent),
                              WORDS * STEPS_PER_WORD))
    return samples, result
