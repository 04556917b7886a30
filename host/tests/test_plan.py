"""Treatment plans: parsing and refusals (each naming the step), the shipped literature plans, and a
two-zone plan on the VirtualDevice (records carry step and zone; the plan total is the device's cap)."""

import threading

import pytest

from mesoinject import plan as plans
from mesoinject import program as programs
from mesoinject import zones
from mesoinject.client import DeviceRefused
from mesoinject.records import RecordStore
from mesoinject.session import SessionRunner
from mesoprotocol import spec
from virtual_rig import operator

TWO_ZONES = {
    "name": "Two zones", "drug": "lidocaine 1%", "syringe": "BD 1 mL", "needle": {"gauge": 30, "length": "4 mm"},
    "steps": [
        {"zone": "forehead", "technique": "point-by-point", "volume_per_point": "20 uL", "points": 2, "depth": "2 mm"},
        {"zone": "cheeks", "technique": "point-by-point", "volume_per_point": "30 uL", "total": "0.09 mL",
         "depth": "3 mm"},
    ],
}


def with_step(n, **changes):
    steps = [dict(s) for s in TWO_ZONES["steps"]]
    steps[n].update(changes)
    for key, value in list(steps[n].items()):
        if value is None:
            del steps[n][key]
    return {**TWO_ZONES, "steps": steps}


@pytest.mark.req("SR-145")
@pytest.mark.parametrize("path", sorted(plans.EXAMPLES.glob("*.toml")), ids=lambda p: p.name)
def test_shipped_plans_load_and_fit_the_hard_ceilings(path):
    plan = plans.load(path)
    plan.check_limits(programs.CEILINGS)
    assert all(s.zone.id in zones.ZONES for s in plan.steps)
    assert plan.total_nl >= plan.steps_nl


@pytest.mark.req("SR-145")
def test_a_plan_is_steps_of_programs_in_wire_units():
    plan = plans.parse(TWO_ZONES)
    assert [(s.number, s.zone.id, s.program.volume_nl, s.program.count, s.program.depth_um) for s in plan.steps] == [
        (1, "forehead", 20000, 2, 2000), (2, "cheeks", 30000, 3, 3000)]  # the cheeks' 0.09 mL total is 3 points
    assert plan.steps[1].program.drug == "lidocaine 1%"  # shared keys reach every step
    assert plan.total_nl == plan.steps_nl == 130000  # no total given: the steps' sum is the cap


@pytest.mark.req("SR-146")
@pytest.mark.parametrize("data,field,words", [
    (with_step(1, zone="elbow"), "step 2: zone", "not a zone; known zones: face"),
    (with_step(0, volume_per_point="20 kg"), "step 1 (forehead): volume_per_point", "not a volume"),
    (with_step(0, depth="2"), "step 1 (forehead): depth", "no unit"),
    (with_step(0, depth="2**3 mm"), "step 1 (forehead): depth", "not a quantity"),
    (with_step(1, total="0.1 mL"), "step 2 (cheeks): total", "not a whole number of 30 uL points"),
    (with_step(1, points=3), "step 2 (cheeks): total", "not both"),
    ({**TWO_ZONES, "total": "0.1 mL"}, "total", "less than its steps add up to (130 uL)"),
    ({**TWO_ZONES, "colour": "red"}, "colour", "not a key of a plan"),
    ({**TWO_ZONES, "steps": []}, "steps", "at least one [[steps]]"),
])
def test_a_bad_plan_names_the_step_and_field(data, field, words):
    with pytest.raises(plans.PlanError) as e:
        plans.parse(data)
    assert e.value.field == field
    assert words in str(e.value)


@pytest.mark.req("SR-146")
def test_a_plan_over_the_session_cap_or_a_step_over_a_limit_is_refused_before_sending():
    limits = dict(programs.DEFAULT_LIMITS, max_session_nl=100000)
    with pytest.raises(plans.PlanError, match=r"total: 130 uL is above the device's session limit of 100 uL"):
        plans.parse(TWO_ZONES).check_limits(limits)
    deep = plans.parse(with_step(1, depth="3.9 mm"))
    with pytest.raises(plans.PlanError, match=r"step 2 \(cheeks\): depth: 3.9 mm is deeper than 3.8 mm"):
        deep.check_limits(programs.DEFAULT_LIMITS)
    big = plans.load("lumbar-pain-100ul")  # 0.1 mL points: within the ceiling, not the 50 uL default
    with pytest.raises(plans.PlanError, match=r"step 1 \(lumbar\): volume_per_point: 100 uL is above the limit of 50 uL"
                                             r" \(the device's max_point_nl setting; .* an engineer may raise it"):
        big.check_limits(programs.DEFAULT_LIMITS)
    big.check_limits(dict(programs.DEFAULT_LIMITS, max_point_nl=100000))  # a device set for it takes it


# ---- on the VirtualDevice: the real firmware ------------------------------------------------------

@pytest.mark.req("SR-147")
def test_a_two_zone_plan_records_step_and_zone_and_leaves_the_setting_alone(vdev, device, tmp_path):
    plan = plans.parse(TWO_ZONES)
    cap_before = device.hello().limits["max_session_nl"]
    store = RecordStore(tmp_path / "r.db")
    asked = []
    stop = threading.Event()
    worker = threading.Thread(target=operator, args=(vdev, stop), daemon=True)
    worker.start()
    try:
        out = SessionRunner(device, store, poll_s=0.02).run_plan(
            plan, patient_ref="P-1", before_step=lambda step: asked.append(step.zone.id), timeout_s=30)
    finally:
        stop.set()
        worker.join(5)
    assert out.outcome == "complete", out.progress.alarms
    assert asked == ["forehead", "cheeks"]  # the operator confirmed each zone before it ran
    points = [r for r in store.deliveries(out.session_id) if r["kind"] != "prime"]
    assert [(r["plan_step"], r["zone"], r["point"]) for r in points] == [
        (1, "forehead", 0), (1, "forehead", 1), (2, "cheeks", 0), (2, "cheeks", 1), (2, "cheeks", 2)]
    totals = {t["zone"]: t for t in store.zone_totals(out.session_id)}
    assert totals.keys() == {"forehead", "cheeks"}
    for zone in totals:
        assert totals[zone]["delivered_nl"] == sum(r["delivered_nl"] for r in points if r["zone"] == zone)
    step_nl = spec.pl_per_step(1, 3200) / 1000
    assert abs(totals["forehead"]["delivered_nl"] - 40000) <= 2 * step_nl
    assert abs(totals["cheeks"]["delivered_nl"] - 90000) <= 3 * step_nl
    session = store.session(out.session_id)
    assert session["program_name"] == "Two zones" and session["planned"] == 5
    assert out.progress.done == 5
    assert device.hello().limits["max_session_nl"] == cap_before  # the plan's cap was the session's, not the setting
    store.close()


@pytest.mark.req("SR-148")
def test_the_device_holds_the_plan_total_as_its_session_cap(vdev, device, tmp_path):
    """A host that tries to give more than the plan total in the plan's session is refused by the device,
    and so is one that tries to raise the session's cap; the device's own setting is never touched."""
    plan = plans.parse(TWO_ZONES)
    cap_before = device.hello().limits["max_session_nl"]
    store = RecordStore(tmp_path / "r.db")
    runner = SessionRunner(device, store, poll_s=0.02)
    runner.begin(plan.steps[0].program, patient_ref="P-1", plan=plan)
    over = dict(plan.steps[1].program.configure_fields(), count=5)  # 150 uL: over the 130 uL cap
    try:
        assert device.hello().limits["max_session_nl"] == cap_before  # the cap is the session's: no SETTINGS
        with pytest.raises(DeviceRefused) as refused:
            device.configure(session=runner.session_tag, session_cap_nl=plan.total_nl, **over)
        assert (refused.value.reason, refused.value.field, refused.value.limit) == ("LIMIT", "count", 4)
        # a later CONFIGURE of the session may not raise the cap, nor drop it (0): the field and the cap in force
        for raised in (plan.total_nl + 1, 0):
            with pytest.raises(DeviceRefused) as refused:
                device.configure(session=runner.session_tag, session_cap_nl=raised, **over)
            assert (refused.value.reason, refused.value.field, refused.value.value, refused.value.limit) == (
                "LIMIT", "session_cap_nl", raised, plan.total_nl)
            assert "session_cap_nl" in str(refused.value)
        # lowering it is fine, and the lower cap then holds for the rest of the session
        step2 = plan.steps[1].program.configure_fields()  # 90 uL
        device.configure(session=runner.session_tag, session_cap_nl=100000, **step2)
        with pytest.raises(DeviceRefused) as refused:
            device.configure(session=runner.session_tag, session_cap_nl=plan.total_nl, **step2)
        assert (refused.value.field, refused.value.limit) == ("session_cap_nl", 100000)
    finally:
        runner.finish("aborted")
    # the plan stopped with no give-back step (as after a lost link): the setting was never changed...
    assert device.hello().limits["max_session_nl"] == cap_before
    # ...and the cap ends with its session: a new session may take what the plan's could not
    assert device.configure(**over)["state"] in (spec.STATE_CONFIGURED, spec.STATE_PRIMED)
    store.close()


@pytest.mark.req("SR-172")
def test_one_drug_a_channel_and_a_step_of_the_other_channel_needs_a_flush_prime():
    plan = plans.load("two-drugs")
    step1, step2 = plan.steps
    assert (step1.program.channel, step2.program.channel) == (1, 2)
    assert step1.flush_nl(None) == 0 and step2.flush_nl(step2) == 0  # no change of drug: no flush
    # the other channel's drug in the path: FLUSH_VOLUMES dead volumes of the head, or the step's prime if more
    assert step2.flush_nl(step1) == max(step2.program.prime_nl, spec.FLUSH_VOLUMES * step2.program.dead_volume_nl)
    data = plans.programs.read(plans.find("two-drugs"))
    data["steps"][1]["channel"] = 1  # hyaluronic acid from the syringe that holds lidocaine
    with pytest.raises(plans.PlanError) as refused:
        plans.parse(data)
    assert refused.value.field == "step 2 (forehead): drug"
    assert "one drug a channel" in str(refused.value) and "channel 2" in str(refused.value)
