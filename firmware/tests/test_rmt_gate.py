"""The ESP32-S3's step driver (boards/esp32s3/board_steprmt.py) and its gates, against a model of the RMT.

No ESP32-S3 runs here (no emulator for it), so the driver's own code runs in CPython against a model of what
it drives: an RMT channel that plays one pulse train at a time on a microsecond clock (a train's length is
the sum of its half periods; wait_done() returns when it has left the pin), and the trigger and E-stop pins
as levels over that clock. The RMT cannot read a pin, so the driver reads the pins before it starts each
train: what must hold is that no train starts once the trigger is up or the E-stop pressed, so at most the
train already on the pin (<= 0.8 ms) follows the change, and that every step asked for is either on the pin
or given back by unsent().
"""

import importlib.util
import pathlib
import sys
import time
import types

import pytest

DRIVER = pathlib.Path(__file__).resolve().parents[1] / "boards" / "esp32s3" / "board_steprmt.py"
TRIGGER, ESTOP = 16, 17


class World:
    # the microsecond clock, the RMT's trains as they went out, the switches' levels over time
    def __init__(self):
        self.now = 0
        self.busy_until = 0
        self.trains: list[tuple[int, int, int]] = []  # (start us, end us, pulses)
        self.levels = {TRIGGER: [(0, 0)], ESTOP: [(0, 0)]}  # (from us, level): trigger held, E-stop up

    def set(self, pin, at_us, level):
        self.levels[pin].append((at_us, level))

    def level(self, pin):
        return [v for t, v in self.levels[pin] if t <= self.now][-1]

    def pulses_after(self, t_us):
        # pulses whose rising edge comes at or after t_us (a train's pulses evenly spread over it)
        n = 0
        for start, end, pulses in self.trains:
            period = (end - start) / pulses
            n += sum(1 for k in range(pulses) if start + k * period >= t_us)
        return n


def load_driver(world, monkeypatch):
    class Pin:
        OUT, IN, PULL_UP = 1, 0, 2

        def __init__(self, number, mode=None, pull=None, value=None):
            self.number = number

        def value(self, v=None):
            return world.level(self.number) if v is None else None

    class RMT:
        def __init__(self, channel, pin, clock_div):
            assert clock_div == 80  # 1 us a tick at 80 MHz: the trains are in microseconds

        def write_pulses(self, durations, level):
            assert world.now >= world.busy_until, "a train started over one still on the pin"
            length = sum(durations)
            world.trains.append((world.now, world.now + length, len(durations) // 2))
            world.busy_until = world.now + length
            world.now += 20  # the call itself

        def wait_done(self, timeout=0):
            world.now = max(world.now, world.busy_until)

    fake_time = types.ModuleType("time")
    fake_time.__dict__.update(vars(time))
    fake_time.sleep_us = lambda us: setattr(world, "now", world.now + us)
    monkeypatch.setitem(sys.modules, "esp32", types.SimpleNamespace(RMT=RMT))
    monkeypatch.setitem(sys.modules, "machine", types.SimpleNamespace(Pin=Pin))
    monkeypatch.setitem(sys.modules, "time", fake_time)
    spec = importlib.util.spec_from_file_location("board_steprmt_under_test", DRIVER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.RmtStepDir(4, 5, False, 0, TRIGGER, ESTOP)


def test_a_catch_up_stops_at_the_first_train_after_the_trigger_is_released(monkeypatch):
    # a pass handing over 300 steps (five trains of <= 64, back to back): the trigger let go inside the second
    world = World()
    drv = load_driver(world, monkeypatch)
    drv.gate = True
    world.set(TRIGGER, 1200, 1)
    drv.step(300)
    sent = sum(p for _, _, p in world.trains)
    assert [t[2] for t in world.trains] == [64, 64], "the train on the pin at the release ends; none starts after"
    assert sent + drv.unsent() == 300 and drv.unsent() == 0  # taken once
    assert world.pulses_after(1200) <= 64 and world.trains[-1][1] - 1200 <= 800  # <= one train, <= 0.8 ms


def test_the_e_stop_stops_every_move_and_the_trigger_only_the_plungers_push(monkeypatch):
    world = World()
    drv = load_driver(world, monkeypatch)
    drv.gate = drv.estop_gate = True
    world.set(TRIGGER, 0, 1)  # up: the push is held...
    drv.step(40)
    assert world.trains == [] and drv.unsent() == 40
    drv.step(-30)  # ...a suck-back is not (the trigger gates only + steps)
    assert [t[2] for t in world.trains] == [30] and drv.unsent() == 0
    world.set(ESTOP, world.now, 1)  # pressed: nothing moves, either way
    drv.step(-30)
    drv.step(10)
    assert len(world.trains) == 1 and drv.unsent() == -30 + 10


def test_with_the_gates_off_every_step_goes_out_whatever_the_switches(monkeypatch):
    # the boot's homing and the moves made in FAULT run with the gates off (the device sets them)
    world = World()
    drv = load_driver(world, monkeypatch)
    world.set(TRIGGER, 0, 1)
    world.set(ESTOP, 0, 1)
    drv.step(-150)
    assert sum(t[2] for t in world.trains) == 150 and drv.unsent() == 0


@pytest.mark.req("SR-215")
def test_an_esp32s3_plunger_stops_within_a_train_of_a_release_or_an_e_stop_however_late_the_loop(monkeypatch):
    # the loop stalled (a flash write: the CPU starts no train) with 2 ms of catch-up due, the pin changed at every
    # offset inside a train: never more than the train on the pin when it changed
    for pin in (TRIGGER, ESTOP):
        for offset in range(0, 900, 50):
            world = World()
            drv = load_driver(world, monkeypatch)
            drv.gate = drv.estop_gate = True
            drv.step(20)  # the pass before the stall
            change = world.now - 20 + offset
            world.set(pin, change, 1)
            world.now += 5000  # the stall
            drv.step(120)  # its catch-up
            after = world.pulses_after(change)
            assert after <= 20, (pin, offset, world.trains)
            assert sum(t[2] for t in world.trains) + drv.unsent() == 140
