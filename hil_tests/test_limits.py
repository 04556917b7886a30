"""Out-of-limit CONFIGUREs sent straight over the protocol: NACKed, and nothing changes."""

import pytest

from mesoinject.client import DeviceRefused
from mesoprotocol import spec

GOOD = dict(technique=spec.TECHNIQUE_POINT, syringe=1, needles=1, needle_length_um=4000, depth_um=3000,
            volume_nl=30000, count=20, cadence_mhz=0, flow_nl_s=50000)
NAPPAGE = dict(GOOD, technique=spec.TECHNIQUE_NAPPAGE, depth_um=1500, volume_nl=2000, count=40, cadence_mhz=6000)

# (what, changes, reason, field, limit)
BAD = [
    ("deeper than 4 mm", dict(GOOD, needle_length_um=13000, depth_um=4500), "LIMIT", "depth_um", 4000),
    ("deeper than the needle allows", dict(GOOD, depth_um=4000), "LIMIT", "depth_um", 3800),
    ("point above the ceiling", dict(GOOD, volume_nl=200000), "LIMIT", "volume_nl", spec.MAX_POINT_NL),
    ("nappage shot above the ceiling", dict(NAPPAGE, volume_nl=20000), "LIMIT", "volume_nl", spec.MAX_SHOT_NL),
    ("cadence above the ceiling", dict(NAPPAGE, cadence_mhz=25000), "LIMIT", "cadence_mhz", spec.MAX_CADENCE_MHZ),
    ("cadence the mechanics can't reach", dict(NAPPAGE, volume_nl=10000, flow_nl_s=5000), "INFEASIBLE",
     "cadence_mhz", 800000 // (2 * 1500 * 1000 // 50000 + 10000 * 1000 // 5000 + 2)),
    ("plunger faster than the ceiling", dict(GOOD, flow_nl_s=500000), "LIMIT", "flow_nl_s", spec.MAX_FLOW_NL_S),
    ("more than the syringe holds", dict(GOOD, count=400), "LIMIT", "count", 34),
    ("unknown technique", dict(GOOD, technique=77), "BAD_VALUE", "technique", 0),
    ("unknown syringe", dict(GOOD, syringe=200), "BAD_VALUE", "syringe", 0),
    ("too many needles", dict(GOOD, needles=40), "LIMIT", "needles", spec.MAX_NEEDLES),
]


@pytest.mark.parametrize("fields,reason,field,limit", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_out_of_limit_configure_is_nacked_and_changes_nothing(device, fields, reason, field, limit):
    before = device.status()
    with pytest.raises(DeviceRefused) as refused:
        device.configure(**fields)  # raw CONFIGURE: no host-side validation on this path
    e = refused.value
    assert (e.reason, e.field, e.limit) == (reason, field, limit)
    assert e.value == fields[field]
    after = device.status()
    assert after["state"] == before["state"] == spec.STATE_IDLE
    assert after["planned"] == before["planned"]
    with pytest.raises(DeviceRefused, match="BAD_STATE|in state IDLE"):
        device.arm()


def test_refused_reconfigure_keeps_the_program_in_force(device):
    device.configure(**GOOD)
    with pytest.raises(DeviceRefused):
        device.configure(**dict(GOOD, count=7, depth_um=4000))
    status = device.status()
    assert status["state"] == spec.STATE_CONFIGURED
    assert status["planned"] == GOOD["count"]


def test_prime_above_ceiling_is_refused(device, sim):
    device.configure(**GOOD)
    out_before = sim.truth().out_nl
    with pytest.raises(DeviceRefused) as refused:
        device.prime(spec.MAX_PRIME_NL + 1)
    assert refused.value.limit == spec.MAX_PRIME_NL
    assert sim.truth().out_nl == out_before


def test_commands_out_of_order_are_refused(device):
    with pytest.raises(DeviceRefused) as refused:
        device.prime(5000)
    assert refused.value.reason == "BAD_STATE"
    device.configure(**GOOD)
    with pytest.raises(DeviceRefused, match="allowed in PRIMED"):
        device.arm()  # never armed unprimed
