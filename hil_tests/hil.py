"""Helpers shared by the HIL suites (the fixtures live in conftest.py)."""

from __future__ import annotations

import dataclasses

from mesoinject import program as programs
from mesoinject.client import Device
from mesoinject.session import SessionRunner
from mesoprotocol import spec

PROGRAMS = programs.EXAMPLES
WORST_ERASE_MS = 400  # conftest's `slow` board: the flash at its datasheet worst (a 4 KB erase, a 256 B page)
WORST_PAGE_US = 800
# The first prime after power-up takes up the worst case the firmware's own suck-back leaves (the play, 120 um,
# and the anti-drip draw, 20 um, on every board), pushing up to this much more into the air than it counts (BD 1 mL)
FIRST_PRIME_EXTRA_NL = 3.14159 / 4 * spec.SYRINGES[1][1] ** 2 * (120 + 20) / 1e6  # um^3 = fL -> nL
# a board slower than real time (--mesoinject-board pico-emu: the emulator runs at 0.05-0.25x): every wait
# on the host's clock below lasts this many times longer (conftest.py sets it); each ends when its
# condition holds, so it costs nothing on a board that keeps up
SLOWDOWN = 1.0
POLL_S = 0.05  # wait_state's STATUS period, the board's time


def seconds(s: float) -> float:
    """A wait of s seconds of the board's time, on the host's clock (x SLOWDOWN)."""
    return s * SLOWDOWN


def drain(dev: Device) -> list:
    """Every event already received, in order."""
    events = []
    while (e := dev.next_event(0)) is not None:
        events.append(e)
    return events


def wait_event(dev: Device, msg_type: int, timeout: float = 5.0, seen: list | None = None):
    """Block until an event of msg_type arrives, within timeout s of the board's time (dev.clock); other events
    go to `seen`."""
    deadline = dev.clock() + timeout
    while True:
        e = dev.next_event_by(deadline)
        if e is None:
            raise TimeoutError(f"no {spec.MESSAGES[msg_type][0]} event within {timeout} s of the board's time")
        if e.type == msg_type:
            return e
        if seen is not None:
            seen.append(e)


def load_program(name: str, **changes) -> programs.Program:
    return dataclasses.replace(programs.load(PROGRAMS / f"{name}.toml"), **changes)


def run_with_operator(dev, sim, store, program):
    """Run a program to the end with the virtual operator working the trigger."""
    from mesosim import VirtualOperator

    with VirtualOperator(sim, gap_s=0.02) as op:
        runner = SessionRunner(dev, store)
        outcome = runner.run(program, timeout_s=seconds(120))
    assert op.error is None, op.error
    return outcome


def wait_state(dev: Device, states: set[int], timeout: float = 10.0, seen: list | None = None) -> int:
    """Poll STATUS (the heartbeat the link watchdog needs) until the state is in `states`, within timeout s of
    the board's time (dev.clock: an emulated board's moves take their own time however slowly it runs).

    Between polls (every POLL_S of the board's time: an emulated board is not flooded) it blocks on the event
    queue, so it wakes as soon as anything happens.
    """
    deadline = dev.clock() + timeout
    while (state := dev.status()["state"]) not in states:
        if dev.clock() > deadline:
            raise TimeoutError(f"device still {spec.STATE_NAMES[state]} after {timeout} s of the board's time")
        e = dev.next_event_by(min(dev.clock() + POLL_S, deadline))
        if e is not None and seen is not None:
            seen.append(e)
    return state


def prime_and_arm(dev, volume_nl=5000):
    """CONFIGURED -> PRIMED -> ARMED."""
    dev.prime(volume_nl)
    state = wait_state(dev, {spec.STATE_PRIMED, spec.STATE_CONFIGURED, spec.STATE_FAULT})
    assert state == spec.STATE_PRIMED, "the prime ended in %s, %s" % (spec.STATE_NAMES[state], alarm_said(dev))
    dev.arm()


def alarm_said(dev: Device) -> str:
    """The device's alarm and overrun counters, for a failure message."""
    s = dev.status()
    name = (spec.ALARM_NAMES[s["alarm"]] or "none") if s["alarm"] < len(spec.ALARM_NAMES) else str(s["alarm"])
    return "alarm %s; %d overruns, worst pass %d us" % (name, s["overruns"], s["worst_pass_us"])
