"""Host behaviour against the VirtualDevice: the real firmware on a virtual clock, no physics.

Protocol behaviour only (records, NACKs, states, the link); physics and faults are the sim's (hil_tests/).
"""

import dataclasses
import threading

import pytest

from mesoinject import program as programs
from mesoinject import sync
from mesoinject.client import Device, DeviceRefused
from mesoinject.records import RecordStore
from mesoinject.session import SessionRunner
from mesoprotocol import spec
from virtual_rig import operator

POINT = dict(technique=spec.TECHNIQUE_POINT, syringe=1, head=1, vacuum_kpa=0, needle_length_um=4000, depth_um=3000,
             volume_nl=30000, count=20, cadence_mhz=0, flow_nl_s=50000)


def test_a_sessions_records_are_stored_once(vdev, device, tmp_path):
    prog = dataclasses.replace(programs.load(programs.EXAMPLES / "point-by-point.toml"), count=3)
    store = RecordStore(tmp_path / "r.db")
    stop = threading.Event()
    worker = threading.Thread(target=operator, args=(vdev, stop), daemon=True)
    worker.start()
    try:
        out = SessionRunner(device, store, poll_s=0.02).run(prog, timeout_s=30)
    finally:
        stop.set()
        worker.join(5)
    assert out.outcome == "complete"
    points = [r for r in store.deliveries(out.session_id) if r["kind"] != "prime"]
    assert [r["point"] for r in points] == [0, 1, 2]
    step_nl = spec.pl_per_step(1, 3200) / 1000  # each point within a microstep, the remainder carried on
    assert all(abs(r["delivered_nl"] - 30000) <= step_nl for r in points)
    assert abs(sum(r["delivered_nl"] for r in points) - 90000) <= step_nl
    # the device has nothing left to send, and a second sync stores nothing twice
    again = sync.drain(device, store)
    assert again.stored == 0
    assert len(store.deliveries(out.session_id)) == len(points) + 1  # and the prime
    store.close()


def test_a_finger_on_the_trigger_is_timed_on_the_real_clock(vdev, device, tmp_path):
    # The virtual clock runs ahead of the real one while the firmware only waits for the host; a trigger held
    # past its point is a person's, and 0.3 s of it must be 0.3 s for the firmware too. On the clock that ran
    # ahead it was seconds: TRIGGER_STUCK (the point + 2 s), as a loaded CI host's operator thread once made it.
    prog = dataclasses.replace(programs.load(programs.EXAMPLES / "point-by-point.toml"), count=2)
    store = RecordStore(tmp_path / "r.db")
    stop = threading.Event()
    worker = threading.Thread(target=operator, args=(vdev, stop, 0.3), daemon=True)
    worker.start()
    try:
        out = SessionRunner(device, store, poll_s=0.02).run(prog, timeout_s=30)
    finally:
        stop.set()
        worker.join(5)
    assert out.outcome == "complete", out.progress.alarms
    assert [r["point"] for r in store.deliveries(out.session_id) if r["kind"] != "prime"] == [0, 1]
    store.close()


def test_a_point_over_the_limit_is_nacked_and_changes_nothing(device):
    before = device.status()
    with pytest.raises(DeviceRefused) as refused:
        device.configure(**dict(POINT, volume_nl=200000))
    assert (refused.value.reason, refused.value.field, refused.value.limit) == ("LIMIT", "volume_nl", spec.MAX_POINT_NL)
    after = device.status()
    assert after["state"] == before["state"] == spec.STATE_IDLE
    assert after["planned"] == before["planned"]


def wait_state(dev, states, polls=2000):
    for _ in range(polls):  # each poll lets the virtual clock run up to the link timeout
        state = dev.status()["state"]
        if state in states:
            return state
        dev.next_event(0.005)
    raise AssertionError(f"still {spec.STATE_NAMES[state]}")


def test_pause_stops_a_point_and_resume_rearms(vdev, device):
    device.configure(**dict(POINT, flow_nl_s=5000))  # 6 s a point: several polls
    device.prime(5000)
    assert wait_state(device, {spec.STATE_PRIMED, spec.STATE_FAULT}) == spec.STATE_PRIMED
    device.arm()
    start = vdev.truth()
    vdev.press_trigger()
    assert wait_state(device, {spec.STATE_DELIVERING}) == spec.STATE_DELIVERING
    while vdev.truth().out_nl - start.out_nl < 8000:  # the plunger under way, past the take-up of its play
        device.status()
    assert device.pause()["state"] == spec.STATE_PAUSED
    vdev.release_trigger()
    records = []
    while (e := device.next_event(0.2)) is not None:
        if e.type == spec.DELIVERY and e.fields["kind"] != spec.KIND_PRIME:
            records.append(e.fields)
    assert len(records) == 1 and records[0]["flags"] & spec.FLAG_ABORTED
    assert 0 < records[0]["delivered_nl"] < 30000
    while device.status()["depth_um"]:  # the needle out (and the anti-drip suck-back)...
        device.next_event(0.005)
    moved = vdev.truth()
    for _ in range(5):  # ...then, paused, nothing moves
        device.status()
    assert vdev.truth().plunger_steps == moved.plunger_steps
    assert device.resume()["state"] == spec.STATE_ARMED


def test_a_host_reconnects_after_closing_and_the_device_kept_its_state(vdev):
    with Device.open(vdev.url) as first:
        first.hello()
        first.abort()
        state = first.configure(**POINT)["state"]  # CONFIGURED, or PRIMED if the syringe still is
        counter = first.hello().auth_counter
    with Device.open(vdev.url) as again:
        identity = again.hello()
        assert identity.auth_counter >= counter
        assert again.status()["state"] == state
        again.configure(**dict(POINT, count=5))  # a signed command on the new connection
        assert again.status()["planned"] == 5
        again.abort()
