"""The host held up mid-session (issue #20: LINK_LOST at load 9 from the CLI's own pauses), on the simulated board.

The device's 500 ms link timeout is not loosened: the session runner's heartbeat thread (mesoinject.heartbeat)
sends the POLL while the runner is stuck storing or drawing, and stops once the runner has not been seen for
its stall bound, so a host that is really gone still stops the device.
"""

from __future__ import annotations

import time

import pytest

from hil import load_program, wait_event
from mesoinject.records import RecordStore
from mesoinject.session import SessionRunner
from mesoprotocol import spec
from mesosim import VirtualOperator

STALL_S = 0.7  # longer than the device's 500 ms link timeout


def _stall(cpu: bool) -> None:
    # what a loaded host does to the runner: a disk sync it waits in (the GIL let go), or Python work that
    # keeps the interpreter busy (drawing the screen, parsing units: the GIL switched every 5 ms)
    if not cpu:
        time.sleep(STALL_S)
        return
    end = time.monotonic() + STALL_S
    while time.monotonic() < end:
        pass


class StallingStore(RecordStore):
    """A record store whose first stored point holds the runner up STALL_S (an fsync on a loaded disk), the device
    ARMED for the next one (its link watched; the prime's record comes while it is PRIMED, not watched)."""

    stalls = 0

    def add_delivery(self, session_id, serial, f, **where):
        new = super().add_delivery(session_id, serial, f, **where)
        if f["kind"] == spec.KIND_POINT and not self.stalls:
            self.stalls += 1
            _stall(cpu=False)
        return new


@pytest.mark.sim_only  # the virtual operator works the sim board's trigger
@pytest.mark.req("SR-193")
@pytest.mark.parametrize("where", ["store", "screen"])
def test_a_host_held_up_past_the_link_timeout_mid_session_does_not_lose_the_link(device, sim, tmp_path, where):
    # before the heartbeat thread: LINK_LOST after the first point, the device stopped the session
    store = StallingStore(tmp_path / "records.db") if where == "store" else RecordStore(tmp_path / "records.db")
    shown = []

    def show(progress):
        if where == "screen" and progress.done and not shown:  # the first point given, the device ARMED
            shown.append(progress.records)
            _stall(cpu=True)

    runner = SessionRunner(device, store, on_progress=show)
    try:
        with VirtualOperator(sim, gap_s=0.02) as op:
            outcome = runner.run(load_program("point-by-point", count=2), timeout_s=60)
        assert op.error is None, op.error
        stalled = store.stalls if where == "store" else len(shown)
        assert stalled == 1  # the runner was held up once, past the device's link timeout
        assert outcome.progress.alarms == [], outcome.words
        assert outcome.outcome == "complete"
        assert device.beats >= 1  # the heartbeat stood in for the runner's late polls
        assert len([r for r in store.deliveries(outcome.session_id) if r["kind"] == "point"]) == 2
    finally:
        store.close()


@pytest.mark.sim_only
@pytest.mark.req("SR-194")
def test_a_runner_that_stops_polling_still_lets_the_device_stop_on_its_link_timeout(device, sim, store):
    # the heartbeat keeps the device only while the runner shows it is alive: a runner stuck for good (a deadlock)
    # is a host that is gone, and the device stops by itself as before
    runner = SessionRunner(device, store)
    runner.heartbeat.stall_s = 0.3  # the bound, short for the test (STALL_S in use)
    runner.begin(load_program("point-by-point", count=2))
    runner.prime()
    runner.arm()
    runner.step()  # the runner's last sign of life
    alarm = wait_event(device, spec.ALARM, timeout=10)  # the runner never polls again; nothing else is sent
    assert alarm.fields["code"] == spec.ALARM_LINK_LOST
    assert runner.heartbeat.error is None  # it stopped on its bound, not on an error
    device.hello()
    runner.finish("fault")
