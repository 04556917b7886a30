"""Gravimetric calibration of a syringe's bore, as labs calibrate pumps.

Shots are dispensed with the needle out into a vessel on an analytical balance;
mass / density is the volume that really came out. The ratio to the device's own
estimate, over all shots, corrects the bore area stored on the device.
"""

from __future__ import annotations

import dataclasses
import statistics
import time

from mesoprotocol import spec

from . import alarms, boots
from .balance import Balance
from .client import Device
from .records import RecordStore

MAX_SPREAD = 0.005  # shot-to-shot ratios must agree to 0.5 % (relative stdev)


class CalibrationError(Exception):
    """The fit is not trustworthy; nothing was stored. alarm: the ALARM_* that stopped it, if one did."""

    def __init__(self, message: str, alarm: int = 0):
        super().__init__(message)
        self.alarm = alarm


@dataclasses.dataclass
class Calibration:
    syringe: int
    shots: list[tuple[int, float]]  # (device estimate nL, measured nL)
    old_ppm: int
    new_ppm: int
    spread: float  # relative stdev of the per-shot ratios

    @property
    def effective_diameter_um(self) -> float:
        return spec.SYRINGES[self.syringe][1] * (self.new_ppm / 1e6) ** 0.5

    def summary(self) -> str:
        name, diameter = spec.SYRINGES[self.syringe][:2]
        return (f"{name}: bore area x {self.new_ppm / 1e6:.5f} (was x {self.old_ppm / 1e6:.5f}), effective "
                f"diameter {self.effective_diameter_um / 1000:.4f} mm (table {diameter / 1000:.3f} mm); "
                f"{len(self.shots)} shots, ratio spread {self.spread * 100:.3f} %")


def calibrate(device: Device, balance: Balance, *, syringe: int, store: RecordStore, shot_nl: int = 20000,
              shots: int = 8, density_g_ml: float = 1.0, flow_nl_s: int = 20000, on_shot=None,
              on_restart=None) -> Calibration:
    """store: where a restart the device holds (its RESET, not acknowledged yet) is stored before this acknowledges
    it (boots.py): a restart a calibration is the first to see stays on the record (a store that fails raises
    RecordStoreError, the device left as it was)."""
    restart = boots.store_held_reset(device, store)  # HELLO first, as every connection's first word
    if restart:
        if on_restart:
            on_restart(restart)  # the operator hears of it whatever the calibration's outcome
        device.abort()  # acknowledge the boot, now that it is on the record
    device.configure(technique=spec.TECHNIQUE_POINT, syringe=syringe, head=1, vacuum_kpa=0, needle_length_um=4000,
                     depth_um=1000, volume_nl=shot_nl, count=1, cadence_mhz=0, flow_nl_s=flow_nl_s)
    old_ppm = device.hello().cal_ppm
    _prime(device, shot_nl)  # fill the needle and take up the mechanism's play
    balance.zero()
    last = 0.0
    results = []
    for i in range(shots):
        estimate = _prime(device, shot_nl)
        mass = balance.weigh()
        measured_nl = (mass - last) / density_g_ml * 1e6
        last = mass
        results.append((estimate, measured_nl))
        if on_shot:
            on_shot(i + 1, estimate, measured_nl)
    ratios = [m / e for e, m in results]
    if min(ratios) <= 0:
        raise CalibrationError("the balance saw no fluid: is the needle over the vessel, the syringe filled?")
    spread = statistics.stdev(ratios) / statistics.mean(ratios) if len(ratios) > 1 else 1.0
    if spread > MAX_SPREAD:
        raise CalibrationError(f"shots disagree by {spread * 100:.2f} % (limit {MAX_SPREAD * 100:g} %): the balance is "
                               "unstable or air is in the line; prime again and repeat. The old factor stays.")
    new_ppm = round(old_ppm * sum(m for _, m in results) / sum(e for e, _ in results))
    if not spec.MIN_CAL_PPM <= new_ppm <= spec.MAX_CAL_PPM:
        raise CalibrationError(f"the fit says the bore's area is x {new_ppm / 1e6:.4f} of the table's, outside "
                               f"x {spec.MIN_CAL_PPM / 1e6:g}..{spec.MAX_CAL_PPM / 1e6:g} (a real bore is within 3 % of "
                               "its maker's): wrong syringe, wrong density, or a leak. The old factor stays.")
    device.calibrate(syringe, new_ppm)
    return Calibration(syringe, results, old_ppm, new_ppm, spread)


def _prime(device: Device, volume_nl: int) -> int:
    """Dispense with the needle out; return the device's estimate from its DELIVERY record."""
    device.prime(volume_nl)
    estimate = alarm = None
    deadline = time.monotonic() + 60
    while True:
        event = device.next_event(0.05)
        if event is not None and event.type == spec.DELIVERY and event.fields["kind"] == spec.KIND_PRIME:
            estimate = event.fields["delivered_nl"]
        if event is not None and event.type == spec.ALARM:
            alarm = event
        status = device.status()  # also the link heartbeat
        state = status["state"]
        if state != spec.STATE_PRIMING and estimate is not None:
            return estimate
        if state == spec.STATE_FAULT:
            raise CalibrationError(f"the shot did not complete: {_alarm_of(device, status['alarm'], alarm)}",
                                   status["alarm"])
        if state not in (spec.STATE_PRIMING, spec.STATE_PRIMED) or time.monotonic() > deadline:
            raise CalibrationError(f"the shot did not complete: device is {spec.STATE_NAMES[state]}")


def _alarm_of(device: Device, code: int, event) -> str:
    """The alarm that stopped the device, with its detail from its ALARM event (seen, or on its way)."""
    until = time.monotonic() + 2
    while not (event is not None and event.type == spec.ALARM and event.fields["code"] == code):
        if time.monotonic() > until:
            name, _, todo = alarms.describe(code, 0)
            return f"ALARM {name}. Next: {todo}."
        event = device.next_event(0.1)
    return alarms.explain(code, event.fields["detail"])
