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
            assert device.hello().limits["max_session_nl"] == plan.total_nl
            runner.prime()
            runner.arm()
            assert runner.watch(30) == "complete"
            # step 2 asked with one point more than the plan has left: the device says how many fit
            over = dict(plan.steps[1].program.configure_fields(), count=3)
            with pytest.raises(DeviceRefused) as refused:
                device.configure(session=runner.session_tag, **over)
            assert (refused.value.reason, refused.value.field, refused.value.limit) == ("LIMIT", "count", 2)
            runner.next_step(plan.steps[1])
            runner.arm()
            assert runner.watch(30) == "complete"
            # the whole plan given: a re-ARM of the same session would pass the cap
            with pytest.raises(DeviceRefused) as refused:
                device.arm()
            assert (refused.value.reason, refused.value.limit) == ("LIMIT", plan.total_nl)
        finally:
            runner.finish("complete")
            assert runner.restore_cap()
    assert op.error is None, op.error
    after = sim.truth()
    into_skin = (after.out_nl - after.air_nl) - (before.out_nl - before.air_nl)
    assert into_skin == pytest.approx(plan.total_nl, rel=0.02)
    assert device.hello().limits["max_session_nl"] == setting  # the device's own setting again
    zones = {row["zone"]: row["delivered_nl"] for row in store.zone_totals(runner.current_session_id())}
    assert zones.keys() == {"forehead", "cheeks"}
    assert sum(zones.values()) == pytest.approx(into_skin, rel=0.02)
    assert device.status()["state"] == spec.STATE_IDLE
