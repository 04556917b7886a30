"""Stopping: ABORT, trigger release and link loss stop the plunger; the partial point is recorded."""

import time

import pytest

from hil import alarm_said, drain, prime_and_arm, seconds, wait_event, wait_state
from mesoinject.client import DeviceRefused
from mesoprotocol import spec

SLOW_POINT = dict(technique=spec.TECHNIQUE_POINT, syringe=1, head=1, vacuum_kpa=0, needle_length_um=4000, depth_um=2000,
                  volume_nl=50000, count=5, cadence_mhz=0, flow_nl_s=5000)  # 10 s per point
# a partial point's record vs the volume that left the needle: the line's stored volume
# (compliance x pressure, unknown to the firmware) still flows while the needle retracts
PARTIAL_NL = 50


def start_slow_point(device, sim, flowing_nl=3000):
    """Arm, press the trigger, and return once this much has left the needle."""
    device.configure(**SLOW_POINT)
    prime_and_arm(device)
    start = sim.truth().out_nl
    pens = len(sim.penetrations)
    sim.set_trigger(True)
    # the firmware samples the trigger on its next control tick: a STATUS answered before it may
    # still say ARMED, so the point has started when the device says so, not when the pin changed
    wait_state(device, {spec.STATE_DELIVERING}, timeout=5)
    deadline = time.monotonic() + seconds(5)  # the board's 5 s on the host's clock (an emulator is slower)
    while sim.truth().out_nl - start < flowing_nl:  # each truth() is a round trip to the board
        state = device.status()["state"]  # and the link heartbeat
        assert state == spec.STATE_DELIVERING, "%s, %s" % (spec.STATE_NAMES[state], alarm_said(device))
        assert time.monotonic() < deadline, "the plunger never started"
    return start, pens


def partial_delivery(device, seen=None):
    while True:
        e = wait_event(device, spec.DELIVERY, seen=seen)
        if e.fields["kind"] != spec.KIND_PRIME:
            return e.fields


@pytest.mark.req("SR-025")
def test_abort_stops_delivery_and_records_the_partial_point(device, sim):
    start, pens = start_slow_point(device, sim)
    assert device.abort()["state"] == spec.STATE_IDLE
    at_ack = sim.truth().last_step_us
    record = partial_delivery(device)
    sim.wait(lambda: len(sim.penetrations) > pens, 5, "needle retraction")
    pen = sim.penetrations[-1]
    assert record["flags"] & spec.FLAG_PARTIAL and record["flags"] & spec.FLAG_ABORTED
    assert record["delivered_nl"] < SLOW_POINT["volume_nl"]
    assert record["delivered_nl"] == pytest.approx(pen.volume_nl, abs=PARTIAL_NL)
    assert sim.truth().last_step_us == at_ack  # the plunger made no step after the ACK
    assert sim.truth().depth_um == 0
    sim.set_trigger(False)


@pytest.mark.req("SR-020")
def test_trigger_release_stops_within_the_point(device, sim):
    start_slow_point(device, sim)
    pens = len(sim.penetrations)
    sim.set_trigger(False)
    record = partial_delivery(device)
    sim.wait(lambda: len(sim.penetrations) > pens, 5, "needle retraction")
    assert record["flags"] & spec.FLAG_TRIGGER_RELEASED
    assert record["delivered_nl"] == pytest.approx(sim.penetrations[-1].volume_nl, abs=PARTIAL_NL)
    assert wait_state(device, {spec.STATE_ARMED}) == spec.STATE_ARMED  # back to armed, one point used
    assert device.status()["done"] == 1


@pytest.mark.req("SR-022")
def test_link_loss_stops_delivery_and_raises_an_alarm(device, sim):
    _, pens = start_slow_point(device, sim)
    seen = []
    # the host stops talking: the device must stop by itself after link_timeout_ms
    alarm = wait_event(device, spec.ALARM, timeout=5, seen=seen)
    assert alarm.fields["code"] == spec.ALARM_LINK_LOST
    assert alarm.fields["detail"] > spec.LINK_TIMEOUT_MS
    records = [e.fields for e in seen + drain(device) if e.type == spec.DELIVERY and e.fields["kind"] != spec.KIND_PRIME]
    assert len(records) == 1 and records[0]["flags"] & spec.FLAG_FAULT
    status = device.status()
    assert status["state"] == spec.STATE_FAULT and status["alarm"] == spec.ALARM_LINK_LOST
    sim.wait(lambda: len(sim.penetrations) > pens, 5, "needle retraction")
    last_step = sim.truth().last_step_us
    assert device.status()["state"] == spec.STATE_FAULT
    assert sim.truth().last_step_us == last_step  # still stopped, trigger still held
    # only a new handshake re-opens the device
    with pytest.raises(DeviceRefused, match="HELLO_FIRST"):
        device.abort()
    device.hello()
    assert device.abort()["state"] == spec.STATE_IDLE
    sim.set_trigger(False)


@pytest.mark.req("SR-025")
def test_emergency_stop_faults_and_needs_abort(device, sim):
    start_slow_point(device, sim)
    sim.set_estop(True)
    seen = []
    alarm = wait_event(device, spec.ALARM, seen=seen)
    assert alarm.fields["code"] == spec.ALARM_ESTOP
    records = [e.fields for e in seen if e.type == spec.DELIVERY and e.fields["kind"] != spec.KIND_PRIME]
    assert len(records) == 1 and records[0]["flags"] & spec.FLAG_FAULT  # recorded before the alarm
    sim.set_trigger(False)
    sim.set_estop(False)
    assert device.status()["state"] == spec.STATE_FAULT  # stays stopped after release
    assert device.abort()["state"] == spec.STATE_IDLE


@pytest.mark.req("SR-028")
def test_pause_stops_and_resume_rearms(device, sim):
    start_slow_point(device, sim)
    assert device.pause()["state"] == spec.STATE_PAUSED
    record = partial_delivery(device)
    assert record["flags"] & spec.FLAG_ABORTED
    sim.set_trigger(False)
    assert device.resume()["state"] == spec.STATE_ARMED


@pytest.mark.req("SR-016")
def test_trigger_held_while_arming_does_not_fire(device, sim):
    device.configure(**SLOW_POINT)
    sim.set_trigger(True)
    prime_and_arm(device)
    primed = sim.truth()
    # for a while nothing may start while the trigger stays held (polling keeps the link alive)...
    quiet_until = time.monotonic() + seconds(0.3)
    while time.monotonic() < quiet_until:
        assert device.status()["state"] == spec.STATE_ARMED
        device.next_event(0.01)
    assert sim.truth().last_step_us == primed.last_step_us
    # ...and a fresh press does start the point
    sim.set_trigger(False)
    sim.set_trigger(True)
    assert wait_state(device, {spec.STATE_DELIVERING, spec.STATE_FAULT}) == spec.STATE_DELIVERING
    sim.set_trigger(False)


@pytest.mark.req("SR-028")
def test_resume_after_pausing_the_last_point_gives_no_extra_point(device, sim):
    device.configure(**dict(SLOW_POINT, count=1))
    prime_and_arm(device)
    pens = len(sim.penetrations)
    start = sim.truth().out_nl
    sim.set_trigger(True)
    while sim.truth().out_nl - start < 1000:
        device.status()
    device.pause()
    sim.set_trigger(False)
    sim.wait(lambda: len(sim.penetrations) > pens, 5, "needle retraction")
    device.resume()
    sim.set_trigger(True)  # a press after the program's only point was used
    assert wait_state(device, {spec.STATE_COMPLETE}) == spec.STATE_COMPLETE
    sim.set_trigger(False)
    assert len(sim.penetrations) == pens + 1
