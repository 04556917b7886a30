"""What the benches share: percentiles, and a device made ready to deliver."""

from __future__ import annotations

from mesoinject.client import Device
from mesoprotocol import spec


def percentile(values, q):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q / 100 * (len(s) - 1))))]


def armed(dev: Device, program: dict, prime_nl: int = 2000) -> None:
    """Abort whatever runs, configure `program`, prime unless still primed, arm; events drained."""
    dev.hello()
    dev.abort()
    dev.configure(**program)
    if dev.status()["state"] == spec.STATE_CONFIGURED:
        dev.prime(prime_nl)
        while dev.status()["state"] == spec.STATE_PRIMING:  # each poll is the link's heartbeat
            dev.next_event(0.02)  # wakes on the PRIMED event
    dev.arm()
    while dev.next_event(0) is not None:
        pass
