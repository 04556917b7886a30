"""Recorded volumes against a balance: runs unchanged on the simulated board (its simulated balance)
and on a real board with --balance PORT (the needle over a cup on an analytical balance)."""

import pytest

from hil import drain, wait_state
from mesoprotocol import spec

SHOT_NL = 20000
SHOTS = 5
DENSITY_MG_PER_UL = 1.0  # water
RESOLUTION_MG = 0.1


@pytest.mark.req("SR-042")
def test_primed_volumes_match_the_balance(device, scale):
    device.configure(technique=spec.TECHNIQUE_POINT, syringe=1, head=1, vacuum_kpa=0, needle_length_um=4000, depth_um=2000,
                     volume_nl=SHOT_NL, count=1, cadence_mhz=0, flow_nl_s=20000)
    device.prime(SHOT_NL)  # the first prime also takes up the mechanism's play: not weighed
    wait_state(device, {spec.STATE_PRIMED})
    scale.zero()
    records = []
    for _ in range(SHOTS):
        device.prime(SHOT_NL)
        seen = []
        wait_state(device, {spec.STATE_PRIMED}, seen=seen)
        seen += drain(device)  # the STATUS that saw PRIMED came after the prime's DELIVERY
        records += [e.fields["delivered_nl"] for e in seen if e.type == spec.DELIVERY]
    weighed_ul = scale.weigh() * 1000 / DENSITY_MG_PER_UL  # g -> mg = uL
    recorded_ul = sum(records) / 1000
    assert len(records) == SHOTS
    # every record within 1 % of what the balance saw, over the run (the balance resolves 0.1 mg)
    assert abs(recorded_ul - weighed_ul) <= 0.01 * weighed_ul + RESOLUTION_MG
