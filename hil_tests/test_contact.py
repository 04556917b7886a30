"""Skin contact (issue 17): a dose starts only with the gun on the skin - a single needle's contact switch
closed, a multi-needle head's vacuum at the program's level - and a dose whose contact is lost stops in
the control pass that finds it, recorded partial with FLAG_CONTACT_LOST. Boards of their own: lifting
the gun leaves the other suites' board alone."""

import pytest

from hil import drain, wait_state
from mesoinject.client import Device
from mesoprotocol import spec

pytestmark = pytest.mark.sim_only  # boards of its own, driven through the simulator's control channel

SINGLE, FIVE = 1, 6
SLOW_POINT = dict(technique=spec.TECHNIQUE_POINT, syringe=1, head=SINGLE, vacuum_kpa=0, needle_length_um=4000,
                  depth_um=2000, volume_nl=40000, count=10, cadence_mhz=0, flow_nl_s=20000)  # 2 s points
VACUUM_POINT = dict(SLOW_POINT, head=FIVE, vacuum_kpa=40, volume_nl=5 * 8000)


def board_with(head, request):
    from mesoinject.simulated import SimBoard

    return SimBoard(head=head, seed=request.config.sim_seed, profile={"diameter_error": 0.0})


@pytest.fixture(scope="module")
def single(request):
    with board_with(SINGLE, request) as b:
        yield b


@pytest.fixture(scope="module")
def multi(request):
    with board_with(FIVE, request) as b:
        yield b


def armed(board, program: dict, prime_nl: int):
    dev = Device.open(board.url)
    dev.hello()
    dev.abort()
    board.set_contact(True)
    dev.configure(**program)
    if dev.status()["state"] == spec.STATE_CONFIGURED:
        dev.prime(prime_nl)
        assert wait_state(dev, {spec.STATE_PRIMED, spec.STATE_FAULT}) == spec.STATE_PRIMED
    dev.arm()
    drain(dev)
    return dev


def flowing(dev, board, nl: float = 2000) -> None:
    """Poll (the heartbeat) until the point has pushed nl out of the syringe."""
    start = board.truth().content_nl
    while start - board.truth().content_nl < nl:
        dev.status()


def delivery(dev) -> dict:
    while True:
        dev.status()
        e = dev.next_event(0.05)
        if e is not None and e.type == spec.DELIVERY:
            return e.fields


@pytest.mark.req("SR-105")
def test_no_point_starts_off_the_skin_and_it_starts_once_on_it(single):
    dev = armed(single, SLOW_POINT, 2000)
    try:
        single.set_contact(False)
        steps = single.truth().forward_steps
        single.set_trigger(True)
        for _ in range(30):  # the control loop sees the press, pass after pass, and gives nothing
            assert dev.status()["state"] == spec.STATE_ARMED
        assert single.truth().forward_steps == steps
        single.set_contact(True)  # on the skin, trigger still held: the point runs
        d = delivery(dev)
        assert d["flags"] & spec.FLAG_PARTIAL == 0 and d["delivered_nl"] > 0.98 * SLOW_POINT["volume_nl"]
    finally:
        single.set_trigger(False)
        single.set_contact(True)
        dev.close()


@pytest.mark.req("SR-105")
def test_contact_lost_mid_point_stops_the_plunger_at_once_and_is_recorded(single):
    dev = armed(single, SLOW_POINT, 2000)
    try:
        single.set_trigger(True)
        flowing(dev, single)
        single.set_contact(False)  # the gun lifted off the skin mid-point
        edge = single.last_input
        assert edge is not None and edge.kind == "contact"
        d = delivery(dev)
        assert d["flags"] & (spec.FLAG_CONTACT_LOST | spec.FLAG_PARTIAL) == spec.FLAG_CONTACT_LOST | spec.FLAG_PARTIAL
        assert d["delivered_nl"] < SLOW_POINT["volume_nl"] / 2
        # ground truth: not one plunger step forward after the contact edge (the pass reads it before stepping)
        assert single.truth().forward_steps == edge.forward_steps
        single.set_trigger(False)
        assert wait_state(dev, {spec.STATE_ARMED, spec.STATE_FAULT}) == spec.STATE_ARMED  # no alarm: lift, press again
    finally:
        single.set_trigger(False)
        single.set_contact(True)
        dev.close()


@pytest.mark.req("SR-104", "SR-105")
def test_a_vacuum_head_doses_at_the_programs_vacuum_records_it_and_stops_when_the_seal_breaks(multi):
    multi.fit_head(FIVE)
    dev = armed(multi, VACUUM_POINT, spec.HEADS[FIVE][4] + 5000)
    try:
        multi.set_trigger(True)
        d = delivery(dev)
        assert d["flags"] & spec.FLAG_PARTIAL == 0
        assert d["vacuum_kpa"] >= VACUUM_POINT["vacuum_kpa"]  # the least vacuum held through the point, recorded
        assert multi.head_truth().vacuum_kpa < spec.MAX_VACUUM_KPA + spec.VACUUM_HYST_KPA  # the pump regulates it
        multi.set_trigger(False)
        assert wait_state(dev, {spec.STATE_ARMED, spec.STATE_FAULT}) == spec.STATE_ARMED
        multi.set_trigger(True)
        flowing(dev, multi)
        multi.set_contact(False)  # the seal breaks: the vacuum leaks away in a few ms
        d = delivery(dev)
        assert d["flags"] & spec.FLAG_CONTACT_LOST and d["flags"] & spec.FLAG_PARTIAL
        assert d["delivered_nl"] < VACUUM_POINT["volume_nl"] / 2
    finally:
        multi.set_trigger(False)
        multi.set_contact(True)
        dev.close()


@pytest.mark.req("SR-105")
def test_contact_lost_while_the_flash_stalls_the_firmware_adds_no_step(slow):
    from test_slow_flash import stop_at_an_erase

    with Device.open(slow.url) as dev:
        dev.hello()
        dev.abort()
        drain(dev)
        try:
            pens = len(slow.penetrations)
            edge = stop_at_an_erase(dev, slow, "contact 0")  # the gun lifted as a journal write erases a block
            assert edge.flash_busy  # the case this test is about: the firmware stalled when contact went
            slow.wait(lambda: len(slow.penetrations) > pens, 10, "needle retraction")
            assert slow.truth().forward_steps == edge.forward_steps  # not one step after the edge
            assert wait_state(dev, {spec.STATE_ARMED, spec.STATE_FAULT}) == spec.STATE_ARMED
        finally:
            slow.set_trigger(False)
            slow.set_contact(True)
            dev.abort()
