"""The line test (LINE_TEST, PROTOCOL.md §5 "Line test") on simulated boards: the syringe's outlet capped, one
pressure step held. What it measures against the model's truth, and that it leaves the line as it found it."""

from __future__ import annotations

import math

import pytest

from hil import drain, wait_state
from mesoinject.client import Device
from mesoprotocol import spec

pytestmark = pytest.mark.sim_only  # caps the outlet and reads the truth through a simulated board's control channel

BD_1, BD_3, BD_10 = 1, 2, 4
POINT = dict(technique=spec.TECHNIQUE_POINT, head=1, vacuum_kpa=0, needle_length_um=4000, depth_um=3000,
             volume_nl=20000, count=5, cadence_mhz=0, flow_nl_s=50000)


def configure(dev: Device, syringe: int) -> int:
    return dev.configure(syringe=syringe, **POINT)["state"]


def true_line(board) -> dict:
    """The model's line as board_model.Model builds it from the board's profile: its compliance (pL/kPa: per mm^2
    of stopper face x the face, unless one is pinned), the sensor's lag (us), the creep's share and time constant."""
    p = board.profile
    area_mm2 = math.pi * p["diameter_um"] ** 2 / 4e6
    per_mm2 = 0.0 if "compliance_nl_per_kpa" in p else p.get("compliance_nl_per_kpa_mm2", 0.0)
    c_nl = per_mm2 * area_mm2 if per_mm2 else p.get("compliance_nl_per_kpa", 1.0)
    return {"pl": c_nl * 1000, "lag_us": p.get("sensor_lag_ms", 0.0) * 1000, "creep_share": p.get("creep_share", 0.0),
            "creep_ms": p.get("creep_ms", 500)}


@pytest.fixture
def dev(rig, sim):
    """The module's board, its outlet open, IDLE, no events pending."""
    with Device.open(rig.url) as d:
        if rig.clock is not None:
            d.clock = rig.clock
        d.hello()
        d.abort()
        drain(d)
        yield d
        sim.cap(False)
        sim.set_estop(False)
        d.abort()


def test_a_capped_outlet_keeps_what_the_plunger_pushes_and_open_again_lets_it_out(dev, sim):
    # the cap (BoardControls.cap) itself: a prime into it is an occlusion with nothing out; uncapped it primes
    assert configure(dev, sim.syringe) in (spec.STATE_CONFIGURED, spec.STATE_PRIMED)
    before = sim.truth()
    sim.cap(True)
    dev.prime(5000)
    seen: list = []
    assert wait_state(dev, {spec.STATE_FAULT, spec.STATE_PRIMED}, seen=seen) == spec.STATE_FAULT
    alarms = [e.fields for e in seen + drain(dev) if e.type == spec.ALARM]
    assert alarms and alarms[0]["code"] == spec.ALARM_OCCLUSION, alarms
    assert sim.truth().out_nl - before.out_nl < 0.01  # nL: nothing passed the cap
    sim.cap(False)
    dev.abort()
    configure(dev, sim.syringe)
    dev.prime(5000)
    assert wait_state(dev, {spec.STATE_FAULT, spec.STATE_PRIMED}) == spec.STATE_PRIMED
    assert sim.truth().out_nl - before.out_nl > 4000
