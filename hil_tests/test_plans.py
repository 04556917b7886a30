"""A treatment plan's total is held by the device: a host that tries to give more is refused (NACK),
and the patient receives no more than the plan total (the simulated board's ground truth)."""

import pytest

from mesoinject import plan as plans
from mesoinject.client import DeviceRefused
from mesoinject.session import SessionRunner
from mesoprotocol import spec

TWO_ZONES = {
    "name": "Two zones", "drug": "lidocaine 1%", "syringe": "BD 1 mL", "needle": {"gauge": 30, "length": "4 mm"},
    "steps": [
        {"zone": "forehead", "technique": "point-by-point", "volume_per_point": "20 uL", "points": 2, "depth": "2 mm"},
        {"zone": "cheeks", "technique": "point-by-point", "volume_per_point": "20 uL", "points": 2, "depth": "3 mm"},
    ],
}


@pytest.mark.req("SR-148")
def test_the_device_refuses_a_host_that_tries_to_pass_the_plan_total(device, sim, store):
    from mesosim import VirtualOperator

    plan = plans.parse(TWO_ZONES)  # 4 x 20 uL: the device's cap for this session is 80 uL
    setting = device.hello().limits["max_session_nl"]
    runner = SessionRunner(device, store, poll_s=0.05)
    before = sim.truth()
    with VirtualOperator(sim, gap_s=0.02) as op:
        runner.begin(plan.steps[0].program, patient_ref="P-1", plan=plan)
        try:
            assert device.hello().limits["max_session_nl"] == setting  # the plan's cap is the session's (CONFIGURE)
            runner.prime()
            runner.arm()
            assert runner.watch(30) == "complete"
            # step 2 asked with one point more than the plan has left: the device says how many fit
            over = dict(plan.steps[1].program.configure_fields(), count=3)
            with pytest.raises(DeviceRefused) as refused:
                device.configure(session=runner.session_tag, session_cap_nl=plan.total_nl, **over)
            assert (refused.value.reason, refused.value.field, refused.value.limit) == ("LIMIT", "count", 2)
            # ...nor may the host raise the session's cap to make it fit: the NACK names the field and the cap
            with pytest.raises(DeviceRefused) as refused:
                device.configure(session=runner.session_tag, session_cap_nl=plan.total_nl + 20000, **over)
            assert (refused.value.reason, refused.value.field, refused.value.limit) == (
                "LIMIT", "session_cap_nl", plan.total_nl)
            runner.next_step(plan.steps[1])
            runner.arm()
            assert runner.watch(30) == "complete"
            # the whole plan given: a re-ARM of the same session would pass the cap
            with pytest.raises(DeviceRefused) as refused:
                device.arm()
            assert (refused.value.reason, refused.value.limit) == ("LIMIT", plan.total_nl)
        finally:
            runner.finish("complete")
    assert op.error is None, op.error
    after = sim.truth()
    into_skin = (after.out_nl - after.air_nl) - (before.out_nl - before.air_nl)
    assert into_skin == pytest.approx(plan.total_nl, rel=0.02)
    assert device.hello().limits["max_session_nl"] == setting  # the device's own setting, never changed
    zones = {row["zone"]: row["delivered_nl"] for row in store.zone_totals(runner.current_session_id())}
    assert zones.keys() == {"forehead", "cheeks"}
    assert sum(zones.values()) == pytest.approx(into_skin, rel=0.02)
    # the plan ends as any program does: no ABORT, no SETTINGS from the host to undo a cap
    assert device.status()["state"] == spec.STATE_COMPLETE


@pytest.mark.req("SR-148")
def test_a_host_that_dies_mid_plan_leaves_no_lowered_setting(device, sim, store):
    """The host stops between steps without finishing anything (as if killed): the device keeps its own
    max_session_nl, the plan's session still refuses what would pass the total, and a new session is free."""
    from mesosim import VirtualOperator

    plan = plans.parse(TWO_ZONES)
    setting = device.hello().limits["max_session_nl"]
    runner = SessionRunner(device, store, poll_s=0.05)
    with VirtualOperator(sim, gap_s=0.02) as op:
        runner.begin(plan.steps[0].program, patient_ref="P-1", plan=plan)
        runner.prime()
        runner.arm()
        assert runner.watch(30) == "complete"
    assert op.error is None, op.error
    tag = runner.session_tag
    del runner  # the host is gone: no finish, no give-back of any kind
    assert device.hello().limits["max_session_nl"] == setting
    # whoever comes next cannot pass the dead host's plan in its session (the cap is the device's)...
    over = dict(plan.steps[1].program.configure_fields(), count=3)
    with pytest.raises(DeviceRefused) as refused:
        device.configure(session=tag, session_cap_nl=plan.total_nl, **over)
    assert (refused.value.reason, refused.value.field, refused.value.limit) == ("LIMIT", "count", 2)
    # ...and a new session is bound by the device's setting alone
    assert device.configure(**over)["state"] in (spec.STATE_CONFIGURED, spec.STATE_PRIMED)
    device.abort()
