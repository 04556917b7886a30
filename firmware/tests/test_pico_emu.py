"""The Pico's step drivers on the real chip's firmware: the MicroPython RPI_PICO uf2 in an
emulated RP2040 (rp2040js, tools/pico-emu/), the project's image on its littlefs. STEP rising
edges are counted on the pins themselves, split by the DIR level at each edge, and must equal
the steps the firmware counted, move by move, on both axes. The unix-port sim cannot see this:
its board counts what the firmware asks for, not what a pin does.

Skips (with what to do) where the binaries, node or rp2040js are missing; see tools/pico-emu/.
"""

import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "tools" / "pico-emu"))
import picoemu  # noqa: E402

PLUNGER_STEP, PLUNGER_DIR, NEEDLE_STEP, NEEDLE_DIR = 2, 3, 4, 5  # boards/pico/board.py
AXIS_PIN = {"plunger": PLUNGER_STEP, "needle": NEEDLE_STEP}

# Runs on the emulated Pico, booted without main.py so the REPL is free. Each move
# goes through the board's drivers the way the firmware drives them; after it, wait_steps() and
# a "MARK name axis forward back" line: the steps the firmware issued each way (the runner
# snapshots the pin counts when it sees the line).
SCRIPT = r"""
import board, time
from mesofw import dosing
b = board.Board()
b.motors(True)
axes = {'plunger': dosing.Axis(b.plunger_step, 1), 'needle': dosing.Axis(b.needle_step, 1)}
steppers = {'plunger': b.plunger_step, 'needle': b.needle_step}

def mark(name, axis, counts):
    b.wait_steps()
    print('MARK', name, axis, sum(n for n in counts if n > 0), -sum(n for n in counts if n < 0))

def ticks(name, axis, counts):  # one step() call a 1 ms tick, counts as given
    for n in counts:
        b.feed_watchdog()
        steppers[axis](n)
        time.sleep_ms(1)
    mark(name, axis, counts)

def burst(name, axis, counts):  # back to back, as a loop catching up after a stall
    for n in counts:
        steppers[axis](n)
    mark(name, axis, counts)

def move(name, axis, target, rate):  # the firmware's Axis, ticked every 1 ms
    a = axes[axis]
    start = a.pos
    a.move_to(target, rate, time.ticks_us())
    while a.moving():
        b.feed_watchdog()
        a.tick(time.ticks_us())
        time.sleep_ms(1)
    mark(name, axis, (a.pos - start,))

ticks('ticks 1,3,5,18,50', 'plunger', (1, 3, 5, 18, 50))
move('plunger forward', 'plunger', 300, 18000)
move('plunger back', 'plunger', 100, 18000)
burst('plunger burst then reverse', 'plunger', (20, 20, 20, 20, 20, -37))
move('needle in', 'needle', 40, 5000)
move('needle out', 'needle', 0, 5000)
burst('needle burst then reverse', 'needle', (10, 10, 10, -30))
for i in range(5):
    b.needle_step(-1)
    b.wait_steps()
mark('needle single steps (homing)', 'needle', (-1,) * 5)
# a paced batch (5 steps standing for 8 ms: 6.4 ms of pulses) is still going out when the call returns; the
# board says so until its last pulse has left (the settle and the prime's compliance read wait for it)
b.plunger_step(5, 8000)
print('BUSY', b.plunger_busy())
b.wait_steps()
print('BUSY', b.plunger_busy())
b.motors(False)
"""


@pytest.mark.req("SR-045", "SR-165")
def test_step_pulses_on_the_pins_equal_the_steps_counted(pico_fs, tmp_path):
    run = picoemu.run_script(SCRIPT, pico_fs, tmp_path, watch={PLUNGER_STEP: PLUNGER_DIR, NEEDLE_STEP: NEEDLE_DIR},
                             timeout_s=150)
    assert run.code == 0, f"{run.error}\n{run.stdout}\n{run.stderr}"
    assert len(run.marks) == 8, run.stdout
    previous = {str(pin): [0, 0] for pin in AXIS_PIN.values()}
    failures = []
    for mark in run.marks:
        name, axis, forward, back = mark["name"].rsplit(" ", 3)
        for pin_axis, pin in AXIS_PIN.items():
            # DIR high is + (the axes' invert flags are False)
            low, high = (now - before for now, before in zip(mark["edges"][str(pin)], previous[str(pin)]))
            want = (int(back), int(forward)) if pin_axis == axis else (0, 0)
            if (low, high) != want:
                failures.append(f"{name}: {pin_axis} STEP pin had {high} pulses with DIR + and {low} with DIR -; "
                                f"the firmware issued {want[1]} + and {want[0]} -")
        previous = mark["edges"]
    assert not failures, "\n".join(failures)
    # SR-165: busy while a paced batch goes out, not once it is out
    assert [ln for ln in run.stdout.splitlines() if ln.startswith("BUSY")] == ["BUSY True", "BUSY False"], run.stdout


# The plunger's hardware gate (board_steppio.py): the CPU hands over 40 ms of pulses and then carries
# on as a loop that has not noticed anything (a flash erase, a collection) - it keeps handing over
# steps and never reads the trigger or the E-stop. The runner drives the pin the moment the board
# prints "MARK <name>"; only the PIO can stop the pulses after that. One boot: the trigger is
# released, pressed again, then the E-stop pressed. TRIGGER, ESTOP: pins 10, 11.
GATE_SCRIPT = r"""
import board, time
b = board.Board()
b.motors(True)

def feed_ms(ms, n):  # a tick's worth of steps each ms, as the loop would hand over
    for _ in range(ms):
        b.feed_watchdog()
        b.plunger_step(n)
        time.sleep_ms(1)

b.plunger_gate(True)
handed = lost = 0
for name in ('release', 'estop'):
    feed_ms(40, 20)
    print('MARK', name)
    feed_ms(40, 20)  # the loop unaware: 800 more steps handed over
    b.wait_steps()
    handed += 1600
    lost += b.plunger_unsent()  # since the last call
    print('MARK', 'press' if name == 'release' else 'end', handed - lost)
b.plunger_gate(False)
b.motors(False)
"""


@pytest.mark.req("SR-160")
def test_the_pio_stops_the_plunger_when_the_trigger_is_released_or_the_estop_pressed(pico_fs, tmp_path):
    run = picoemu.run_script(GATE_SCRIPT, pico_fs, tmp_path, watch={PLUNGER_STEP: PLUNGER_DIR},
                             inputs={10: 0, 11: 0, 12: 0, 13: 1},
                             on_mark={"release": {10: 1}, "press": {10: 0}, "estop": {11: 1}}, timeout_s=200)
    assert run.code == 0, f"{run.error}\n{run.stdout}\n{run.stderr}"
    assert [m["name"].split()[0] for m in run.marks] == ["release", "press", "estop", "end"], run.stdout
    edges = [sum(m["edges"][str(PLUNGER_STEP)]) for m in run.marks]
    failures = []
    for (change, settled), name in (((0, 1), "trigger release"), ((2, 3), "E-stop press")):
        before = edges[change] - (edges[change - 1] if change else 0)
        after = edges[settled] - edges[change]
        # before the change the gate let the ticks' pulses out (most of them: the USB line lags the print)
        if before < 400:
            failures.append(f"only {before} pulses before the {name}: the gate held them while it was open")
        # after it, not one pulse more than the one in flight, though 800 more steps were handed over
        if after > 1:
            failures.append(f"{after} STEP pulses after the {name} (800 handed over)")
        # and the firmware is told exactly which steps did not go out
        counted = int(run.marks[settled]["name"].split()[1])
        if counted != edges[settled]:
            failures.append(f"after the {name} the firmware counts {counted} steps, the pin made {edges[settled]}")
    assert not failures, "\n".join(failures)


def test_missing_binaries_skip_with_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setenv("MESOINJECT_MCU", str(tmp_path / "absent"))
    with pytest.raises(picoemu.Unavailable, match="MESOINJECT_MCU"):
        picoemu.locate()
    (tmp_path / "rp2").mkdir()  # a folder without the uf2
    monkeypatch.setenv("MESOINJECT_MCU", str(tmp_path))
    with pytest.raises(picoemu.Unavailable, match=r"lacks rp2/firmware-RPI_PICO-\*\.uf2"):
        picoemu.locate()


def test_the_sims_model_runs_in_cpython_on_the_chips_clock():
    # the emulated board's world is firmware/boards/sim/board_model.py itself, loaded in CPython with the
    # chip's clock as its `time` (no second model): a point pushed through it comes out on that clock
    import time

    import emuboard

    clock = emuboard.ChipClock()
    reports = []
    profile = {"plunger_steps_per_mm": 3200, "needle_steps_per_mm": 100, "diameter_um": 4780, "content_nl": 1e6}
    model = emuboard.load_model(clock).Model(profile, reports.append)
    assert sys.modules["time"] is time  # CPython's own again once the file's imports ran
    clock.now_us = (1 << 30) - 3000  # 3 ms before ticks_us wraps, as on the chip
    model.needle(200)
    for _ in range(10):  # 100 steps a ms, as the runner hands a tick's STEP edges over
        clock.now_us += 1000
        model.plunger(100)
    clock.now_us += 1_000_000
    model.advance(clock.ticks_us())
    model.needle(-200)
    pen = [r for r in reports if r["kind"] == "pen"]
    assert len(pen) == 1 and pen[0]["max_depth_um"] == 2000
    assert pen[0]["volume_nl"] == pytest.approx(1000 * model.nl_per_step, rel=1e-3)
    assert pen[0]["t1_us"] == clock.ticks_us() < 1_010_000  # wrapped, as the chip's ticks_us
