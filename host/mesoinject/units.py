"""Display units: the protocol's integer wire units as a clinician reads them.

The wire carries integers (nL, um, mHz, nL/s: PROTOCOL.md); program.py converts a program's
quantities to them once, with pint. Everything shown to a person goes back through here, so a
quantity has one display unit and one scale wherever it appears (CLI, console, reports).
"""

from __future__ import annotations

# quantity -> (display unit, wire units per display unit)
VOLUME = ("uL", 1000)   # nL on the wire
LENGTH = ("mm", 1000)   # um
CADENCE = ("Hz", 1000)  # mHz
FLOW = ("uL/s", 1000)   # nL/s

# the console form's quantity inputs and the display unit each is typed in
FORM = {"volume": VOLUME, "depth": LENGTH, "needle_length": LENGTH, "cadence": CADENCE, "flow_rate": FLOW,
        "prime_volume": VOLUME}


def value(wire: int, quantity: tuple[str, int]) -> float:
    """A wire integer in its display unit, as a number (30000 nL -> 30.0)."""
    return wire / quantity[1]


def text(wire: int, quantity: tuple[str, int], digits: int | None = None) -> str:
    """A wire integer with its display unit: '30 uL', or '30.000 uL' with digits=3."""
    number = value(wire, quantity)
    return f"{number:.{digits}f} {quantity[0]}" if digits is not None else f"{number:g} {quantity[0]}"


def ul(nl: int) -> float:
    return value(nl, VOLUME)


def mm(um: int) -> float:
    return value(um, LENGTH)


def hz(mhz: int) -> float:
    return value(mhz, CADENCE)


def ul_s(nl_s: int) -> float:
    return value(nl_s, FLOW)
