"""Out-of-limit CONFIGUREs sent straight over the protocol: NACKed, and nothing changes."""

import pytest

from mesoinject.client import DeviceRefused
from mesoprotocol import spec

GOOD = dict(technique=spec.TECHNIQUE_POINT, syringe=1, head=1, vacuum_kpa=0, needle_length_um=4000, depth_um=3000,
            volume_nl=30000, count=20, cadence_mhz=0, flow_nl_s=50000)
NAPPAGE = dict(GOOD, technique=spec.TECHNIQUE_NAPPAGE, depth_um=1500, volume_nl=2000, count=40, cadence_mhz=6000)

# (what, changes, reason, field, limit)
BAD = [
    ("deeper than 4 mm", dict(GOOD, head=3, needle_length_um=13000, depth_um=4500), "LIMIT", "depth_um", 4000),
    ("deeper than the needle allows", dict(GOOD, depth_um=4000), "LIMIT", "depth_um", 3800),
    ("point above the ceiling", dict(GOOD, volume_nl=200000), "LIMIT", "volume_nl", spec.MAX_POINT_NL),
    ("nappage shot above the ceiling", dict(NAPPAGE, volume_nl=20000), "LIMIT", "volume_nl", spec.MAX_SHOT_NL),
    ("cadence above the ceiling", dict(NAPPAGE, cadence_mhz=25000), "LIMIT", "cadence_mhz", spec.MAX_CADENCE_MHZ),
    ("cadence the mechanics can't reach", dict(NAPPAGE, volume_nl=10000, flow_nl_s=5000), "INFEASIBLE",
     "cadence_mhz", 800000 // (2 * 1500 * 1000 // 50000 + 10000 * 1000 // 5000 + spec.SHOT_SETTLE_MS + 2)),
    ("plunger faster than the ceiling", dict(GOOD, flow_nl_s=500000), "LIMIT", "flow_nl_s", spec.MAX_FLOW_NL_S),
    ("more than the syringe holds", dict(GOOD, count=400), "LIMIT", "count", spec.syringe_capacity_nl(1) // 30000),
    ("unknown technique", dict(GOOD, technique=77), "BAD_VALUE", "technique", 0),
    ("unknown syringe", dict(GOOD, syringe=200), "BAD_VALUE", "syringe", 0),
    ("unknown head", dict(GOOD, head=40), "BAD_VALUE", "head", 0),
    ("a needle length the head does not have", dict(GOOD, needle_length_um=13000), "INFEASIBLE", "needle_length_um", 4000),
    ("a 5-needle cycle above the ceiling per needle", dict(GOOD, head=6, vacuum_kpa=40, volume_nl=250001, count=1),
     "LIMIT", "volume_nl", 5 * spec.MAX_POINT_NL),
    ("nappage on a multi-needle head", dict(NAPPAGE, head=6, vacuum_kpa=40), "INFEASIBLE", "head", 1),
    ("a multi-needle head without vacuum", dict(GOOD, head=6, volume_nl=100000, count=1), "LIMIT", "vacuum_kpa",
     spec.MIN_VACUUM_KPA),
    ("vacuum above the device's limit", dict(GOOD, head=6, vacuum_kpa=80, volume_nl=100000, count=1), "LIMIT",
     "vacuum_kpa", spec.MAX_VACUUM_KPA),
    ("vacuum on a single needle (it has a contact switch)", dict(GOOD, vacuum_kpa=30), "INFEASIBLE", "vacuum_kpa", 0),
]


@pytest.mark.req("SR-001", "SR-002", "SR-003", "SR-004", "SR-006", "SR-008", "SR-010", "SR-011", "SR-012", "SR-015", "SR-082")
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


@pytest.mark.req("SR-015")
def test_refused_reconfigure_keeps_the_program_in_force(device):
    # CONFIGURED, or PRIMED on a board whose syringe an earlier test primed (a board kept across modules)
    configured = device.configure(**GOOD)["state"]
    assert configured in (spec.STATE_CONFIGURED, spec.STATE_PRIMED)
    with pytest.raises(DeviceRefused):
        device.configure(**dict(GOOD, count=7, depth_um=4000))
    status = device.status()
    assert status["state"] == configured
    assert status["planned"] == GOOD["count"]


@pytest.mark.req("SR-013")
@pytest.mark.parametrize("volume_nl, limit", [(spec.MAX_PRIME_NL + 1, spec.MAX_PRIME_NL),
                                              (spec.MIN_VOLUME_NL - 1, spec.MIN_VOLUME_NL), (0, spec.MIN_VOLUME_NL)])
def test_prime_outside_its_range_is_refused_by_the_device(device, sim_or_none, volume_nl, limit):
    configured = device.configure(**GOOD)["state"]
    out_before = sim_or_none and sim_or_none.truth().out_nl
    with pytest.raises(DeviceRefused) as refused:
        device.prime(volume_nl)
    assert (refused.value.reason, refused.value.limit) == ("LIMIT", limit)
    assert device.status()["state"] == configured  # nothing started
    if sim_or_none:  # and nothing moved
        assert sim_or_none.truth().out_nl == out_before


@pytest.mark.req("SR-016")
def test_commands_out_of_order_are_refused(device):
    with pytest.raises(DeviceRefused) as refused:
        device.prime(5000)
    assert refused.value.reason == "BAD_STATE"
    if device.configure(**GOOD)["state"] == spec.STATE_PRIMED:
        return  # a board kept across modules whose syringe an earlier test primed: ARM is right there
    with pytest.raises(DeviceRefused, match="allowed in PRIMED"):
        device.arm()  # never armed unprimed


@pytest.mark.sim_only  # cuts the sim board's power
@pytest.mark.req("SR-014")
def test_device_settings_lower_limits_and_survive_a_reset(device, sim):
    device.settings(max_depth_um=3000, max_point_nl=40000)
    with pytest.raises(DeviceRefused) as refused:
        device.configure(**dict(GOOD, depth_um=3500))
    assert (refused.value.field, refused.value.limit) == ("depth_um", 3000)
    sim.power_cut(off_s=0.1)
    limits = device.hello().limits
    assert (limits["max_depth_um"], limits["max_point_nl"]) == (3000, 40000)
    device.abort()  # acknowledge the reset
    device.settings(**{row[0]: row[2] for row in spec.SETTINGS_TABLE})  # back to defaults


@pytest.mark.req("SR-014")
@pytest.mark.parametrize("name,value,limit", [("max_point_nl", spec.CEIL_POINT_NL + 1, spec.CEIL_POINT_NL),
                                              ("max_depth_um", 4100, spec.MAX_DEPTH_UM),
                                              ("link_timeout_ms", 50, spec.MIN_LINK_TIMEOUT_MS)])
def test_settings_cannot_pass_the_hard_ceilings(device, name, value, limit):
    with pytest.raises(DeviceRefused) as refused:
        device.settings(**{name: value})
    assert (refused.value.reason, refused.value.field, refused.value.limit) == ("LIMIT", name, limit)


@pytest.mark.req("SR-014")
def test_settings_only_while_idle(device):
    device.configure(**GOOD)
    with pytest.raises(DeviceRefused, match="allowed in IDLE"):
        device.settings(max_depth_um=2000)


@pytest.mark.req("SR-007")
def test_session_cap_holds_across_re_arms_until_a_new_session(device, sim):
    # issue 15 row 2: ARM from COMPLETE three times gave 300 uL under a 100 uL cap
    from hil import wait_state
    from mesosim import VirtualOperator

    cap = 100000
    device.settings(max_session_nl=cap)
    try:
        fields = dict(GOOD, volume_nl=20000, count=5)
        device.configure(session=4242, **fields)
        device.prime(5000)
        assert wait_state(device, {spec.STATE_PRIMED, spec.STATE_FAULT}) == spec.STATE_PRIMED
        before = sim.truth()
        device.arm()
        with VirtualOperator(sim, gap_s=0.02):
            assert wait_state(device, {spec.STATE_COMPLETE, spec.STATE_FAULT}, timeout=30) == spec.STATE_COMPLETE
        # the same program again, under the same session: refused, by ARM and by a re-CONFIGURE
        with pytest.raises(DeviceRefused) as refused:
            device.arm()
        assert (refused.value.reason, refused.value.limit) == ("LIMIT", cap)
        assert refused.value.value > cap
        with pytest.raises(DeviceRefused) as refused:
            device.configure(session=4242, **fields)
        assert (refused.value.reason, refused.value.field, refused.value.limit) == ("LIMIT", "count", 0)
        after = sim.truth()
        into_skin = (after.out_nl - after.air_nl) - (before.out_nl - before.air_nl)
        assert into_skin == pytest.approx(cap, rel=0.02)
        # a new session tag opens a new session: the cap starts again
        assert device.configure(session=4243, **fields)["state"] == spec.STATE_PRIMED
        device.arm()
    finally:
        device.abort()
        device.settings(**{row[0]: row[2] for row in spec.SETTINGS_TABLE})
