"""Trigger release / E-stop while the flash stalls the CPU, on the emulated Pico (flash.mjs): the worst
case the firmware itself avoids (device.py lets the plunger's pulses out before it writes the journal).

A loop hands the step PIO 4 words of pulses (its queue: 3.2 ms of them) and then erases a 4 KB sector
(the filesystem's last block: the image is small, littlefs has not used it), which stalls the core
~45 ms (400 ms at maximum timing). The runner sets the pins of "MARK <kind> i" and,
RELEASE_INTO_ERASE_US into the next erase, releases the trigger or presses the E-stop (a "flash-pin"
event). Kinds "trigger" and "estop": the plunger delivering (its trigger gate on); "prime": the plunger
with only the E-stop gate (a prime, a take-up, a suck-back: the trigger up throughout), "needle": the
needle axis with its E-stop gate, "needle-in": going in while delivering, the trigger released; "free"
without any gate, for contrast: the queued pulses then go on after the release. Used by
firmware/tests/test_pico_emu_flash.py (asserted) and bench/bench_pico_emu.py (timed).
"""

from __future__ import annotations

import dataclasses
import pathlib

import picoemu

TRIGGER, ESTOP, PLUNGER_STEP, PLUNGER_DIR, NEEDLE_STEP, NEEDLE_DIR = 10, 11, 2, 3, 4, 5  # boards/pico/board.py
STEP_PIN = {"plunger": PLUNGER_STEP, "needle": NEEDLE_STEP}
RELEASE_INTO_ERASE_US = 500  # the queue still going out (handing it over took ~1 ms of Python)
TICKS = 8  # single steps a ms before the burst
WORDS, STEPS_PER_WORD = 4, 5  # 5 pulses over 0.8 ms a word (board_steppio.SPREAD_US)
# kind: (axis, trigger gate, E-stop gate, pins at the mark, the pin changed in the erase)
KINDS = {"trigger": ("plunger", True, True, {TRIGGER: 0, ESTOP: 0}, {TRIGGER: 1}),
         "estop": ("plunger", True, True, {TRIGGER: 0, ESTOP: 0}, {ESTOP: 1}),
         "prime": ("plunger", False, True, {TRIGGER: 1, ESTOP: 0}, {ESTOP: 1}),
         "needle": ("needle", False, True, {TRIGGER: 1, ESTOP: 0}, {ESTOP: 1}),
         "needle-in": ("needle", True, True, {TRIGGER: 0, ESTOP: 0}, {TRIGGER: 1}),
         "free": ("plunger", False, False, {TRIGGER: 0, ESTOP: 0}, {TRIGGER: 1})}

SCRIPT = r"""
import board, rp2, time
b = board.Board()
b.motors(True)
f = rp2.Flash()
blk = f.ioctl(4, 0) - 1
for kind, axis, gated, estop_gated in KINDS:
    b.plunger_gate(gated)
    b.estop_gate(estop_gated)
    step, unsent = (b.plunger_step, b.plunger_unsent) if axis == 'plunger' else (b.needle_step, b.needle_unsent)
    for i in range(N):
        print('MARK', kind, i)
        for _ in range(TICKS):  # the loop's ticks; meanwhile the runner sets the pins (the USB line lags)
            b.feed_watchdog()
            step(1)
            time.sleep_ms(1)
        b.wait_steps()
        lost = unsent()  # the ticks' steps a pin still set from the cycle before kept back (the USB line lags)
        for _ in range(WORDS):
            step(STEPS, SPAN)
        f.ioctl(6, blk)  # the core stalls here; the runner changes the pin during it
        b.wait_steps()
        print('MARK after', kind, i, unsent(), lost)
b.plunger_gate(False)
b.estop_gate(False)
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
    axis: str = "plunger"
    issued: int = 0  # steps this cycle handed over in all (its ticks and its burst) less what it was told were kept back


def pins_vs_counted(samples: list[Sample], run: picoemu.Run) -> dict[str, tuple[int, int]]:
    """Per axis: (STEP pulses on its pin over the run, steps the firmware counted): equal when every step the
    gates kept off the pin was reported back."""
    return {axis: (sum(run.edges[str(pin)]), sum(x.issued for x in samples if x.axis == axis))
            for axis, pin in STEP_PIN.items()}


def run(tmp: pathlib.Path, n: int, kinds: tuple[str, ...] = tuple(KINDS), timing: str = "typ",
        timeout_s: float = 600, span_us: int = 1000, into_erase_us: int = RELEASE_INTO_ERASE_US
        ) -> tuple[list[Sample], picoemu.Run]:
    """n cycles of each kind in one boot. span_us: the move time each word stands for (board.plunger_step's paced
    batches: spread over 80 % of it; 8000, the paced gap, makes each word 6.4 ms and the queue 25.6 ms)."""
    fs = picoemu.build_fs("pico", tmp / "busy-gate.img", without=("main.py",))
    script = (SCRIPT.replace("range(N)", f"range({n})").replace("KINDS", repr(tuple((k, *KINDS[k][:3]) for k in kinds)))
              .replace("range(WORDS)", f"range({WORDS})").replace("range(TICKS)", f"range({TICKS})")
              .replace("STEPS, SPAN)", f"{STEPS_PER_WORD}, {span_us})"))
    flash = picoemu.Flash(timing=timing, events=True,
                          on_flash={k: (KINDS[k][4], into_erase_us) for k in kinds})
    result = picoemu.run_script(script, fs, tmp, watch={PLUNGER_STEP: PLUNGER_DIR, NEEDLE_STEP: NEEDLE_DIR},
                                inputs={TRIGGER: 1, ESTOP: 0, 12: 0, 13: 1},
                                on_mark={k: KINDS[k][3] for k in kinds}, timeout_s=timeout_s, flash=flash)
    if result.code:
        raise AssertionError(f"flash-busy gate script failed: {result.error}\n{result.stdout}\n{result.stderr}")
    pins = [e for e in result.events if e["event"] == "flash-pin"]
    erases = {e["start_us"]: e["edges"] for e in result.events if e["event"] == "flash" and e["op"] == "erase"}
    afters = [m for m in result.marks if m["name"].startswith("after ")]
    if len(pins) != len(afters) or len(afters) != n * len(kinds):
        raise AssertionError(f"{len(pins)} pin changes in an erase, {len(afters)} cycles ended, {n * len(kinds)} run:"
                             f"\n{result.stdout}")
    samples = []
    for p, m in zip(pins, afters):
        _, kind, _, unsent, lost = m["name"].split()
        pin = str(STEP_PIN[KINDS[kind][0]])
        at_change = sum(p["edges"][pin])
        samples.append(Sample(kind, p["pins_set_us"] < p["erase_start_us"] + p["busy_us"],
                              at_change - sum(erases[p["erase_start_us"]][pin]), sum(m["edges"][pin]) - at_change,
                              max(0, m["last_edge_us"].get(pin, 0) - p["pins_set_us"]), int(unsent),
                              WORDS * STEPS_PER_WORD, KINDS[kind][0],
                              TICKS + WORDS * STEPS_PER_WORD - int(unsent) - int(lost)))
    return samples, result
