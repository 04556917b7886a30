"""Needle heads as identified hardware (issue 17): the head's ID resistor, not the program, says what is
on the gun; a dry head's prime fills its dead volume; a multi-needle head splits each point over its
needles, and a blocked needle is detected by the line pressure and recorded. A board of its own (a
5-needle head on it), so fitting and blocking heads leaves the other suites' board alone."""

import time

import pytest

from hil import FIRST_PRIME_EXTRA_NL, alarm_said, drain, wait_event, wait_state
from mesoinject.client import Device, DeviceRefused
from mesoprotocol import spec

pytestmark = pytest.mark.sim_only  # boards of its own, driven through the simulator's control channel

SINGLE, FIVE, NINE = 1, 6, 7  # spec.HEADS codes
POINT = dict(technique=spec.TECHNIQUE_POINT, syringe=1, depth_um=2000, count=4, cadence_mhz=0, flow_nl_s=100000)


def program(head: int, per_needle_nl: int = 20000) -> dict:
    needles, length = spec.HEADS[head][1], spec.HEADS[head][3]
    return dict(POINT, head=head, needle_length_um=length, volume_nl=per_needle_nl * needles,
                vacuum_kpa=40 if needles > 1 else 0)


@pytest.fixture(scope="module")
def board(request):
    """A board with the 5-needle head on it."""
    from mesoinject.simulated import SimBoard

    with SimBoard(head=FIVE, seed=request.config.sim_seed, profile={"diameter_error": 0.0}) as b:
        yield b


@pytest.fixture
def dev(board):
    with Device.open(board.url) as d:
        d.hello()
        d.abort()
        drain(d)
        yield d
        board.set_trigger(False)
        board.fail_head_id(None)
        d.abort()


def polled_event(dev, msg_type: int, seen: list, timeout: float = 10.0):
    """The next event of msg_type, polling meanwhile (the controlling host's heartbeat)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        dev.status()
        e = dev.next_event(0.05)
        if e is None:
            continue
        if e.type == msg_type:
            return e
        seen.append(e)
    raise TimeoutError(f"no {spec.MESSAGES[msg_type][0]} within {timeout} s")


def primed_and_armed(dev, board, head: int, **changes) -> None:
    """A dry `head` fitted, configured, its dead volume primed, armed."""
    board.fit_head(head)
    dev.configure(**dict(program(head), **changes))
    dev.prime(spec.HEADS[head][4] + 5000)
    assert wait_state(dev, {spec.STATE_PRIMED, spec.STATE_FAULT}) == spec.STATE_PRIMED, alarm_said(dev)
    dev.arm()
    drain(dev)


def give_point(dev, board, seen: list):
    """The operator presses for one point and lets go once it is recorded: its DELIVERY."""
    board.set_trigger(True)
    delivery = polled_event(dev, spec.DELIVERY, seen)
    board.set_trigger(False)
    wait_state(dev, {spec.STATE_ARMED, spec.STATE_COMPLETE, spec.STATE_FAULT}, seen=seen)
    return delivery


@pytest.mark.req("SR-100")
@pytest.mark.parametrize("named, reading_mv", [(SINGLE, None), (NINE, None), (FIVE, 3300), (FIVE, 0)],
                         ids=["single-named", "9-needle-named", "no-head", "shorted-id"])
def test_a_head_other_than_the_one_fitted_is_refused(dev, board, named, reading_mv):
    board.fit_head(FIVE)
    if reading_mv is not None:
        board.fail_head_id(reading_mv)  # nothing on the gun (the pull-up), or a short: no head's band
    out_before = board.truth().out_nl
    with pytest.raises(DeviceRefused) as refused:
        dev.configure(**program(named))
    e = refused.value
    assert (e.reason, e.field, e.value) == ("HEAD", "head", named)
    assert spec.head_fitted(e.limit) == (FIVE if reading_mv is None else 0)  # the ID it read, in the NACK
    assert dev.status()["state"] == spec.STATE_IDLE
    assert board.truth().out_nl == out_before


@pytest.mark.req("SR-102")
def test_a_dry_heads_prime_must_fill_its_dead_volume_and_does(dev, board):
    board.fit_head(FIVE)
    dev.configure(**program(FIVE))
    with pytest.raises(DeviceRefused) as refused:
        dev.prime(10000)
    assert (refused.value.reason, refused.value.value, refused.value.limit) == ("LIMIT", 10000, 45000)
    assert board.head_truth().fill_nl == 0
    dev.prime(50000)
    seen: list = []
    assert wait_state(dev, {spec.STATE_PRIMED, spec.STATE_FAULT}, seen=seen) == spec.STATE_PRIMED
    prime = next(e for e in seen + drain(dev) if e.type == spec.DELIVERY)
    assert prime.fields["kind"] == spec.KIND_PRIME and prime.fields["point"] == FIVE  # recorded as the head's fill
    truth = board.head_truth()
    assert truth.fill_nl == pytest.approx(spec.HEADS[FIVE][4], abs=1)  # the head table's dead volume, filled
    # the rest went out of the needles, plus what the first prime's play may push (hil.py: the worst case, as
    # test_dosing and test_link bound it; 1500 nL here failed at 6533 in CI)
    assert sum(truth.needles_nl) < 5000 + FIRST_PRIME_EXTRA_NL


@pytest.mark.req("SR-100")
def test_a_head_taken_off_mid_session_stops_dosing(dev, board):
    primed_and_armed(dev, board, FIVE)
    board.fail_head_id(3300)  # the head comes off: the ID pin reads the pull-up
    alarm = wait_event(dev, spec.ALARM)
    assert (alarm.fields["code"], alarm.fields["detail"]) == (spec.ALARM_HEAD, 3300)
    assert wait_state(dev, {spec.STATE_FAULT}) == spec.STATE_FAULT
    out_before = board.truth().out_nl
    board.set_trigger(True)
    assert dev.status()["state"] == spec.STATE_FAULT
    board.set_trigger(False)
    assert board.truth().out_nl == out_before


@pytest.mark.req("SR-101", "SR-103")
def test_a_point_splits_over_the_needles_and_a_blocked_needle_is_detected_and_recorded(dev, board):
    primed_and_armed(dev, board, FIVE)
    seen: list = []
    pens = len(board.needle_volumes)
    for _ in range(2):  # the head's baseline, then a clean point that must not alarm
        delivery = give_point(dev, board, seen)
        pens += 1
        board.wait(lambda n=pens: len(board.needle_volumes) >= n, 5, "the point's penetration")
        per_needle = board.needle_volumes[-1]
        assert sum(per_needle) == pytest.approx(delivery.fields["delivered_nl"], rel=0.03)
        for v in per_needle:  # each needle within the spread of one lot of needles (+-8 % conductance)
            assert v == pytest.approx(delivery.fields["delivered_nl"] / 5, rel=0.12)
    assert not [e for e in seen if e.type == spec.ALARM]
    board.block_needle(2, 1000)
    blocked_point = give_point(dev, board, seen)
    alarm = next(e for e in seen + drain(dev) if e.type == spec.ALARM)
    assert alarm.fields["code"] == spec.ALARM_NEEDLE_BLOCKED and alarm.fields["record_id"] != 0  # journalled
    assert dev.status()["state"] == spec.STATE_FAULT
    board.wait(lambda: len(board.needle_volumes) >= pens + 1, 5, "the blocked point's penetration")
    needles = board.needle_volumes[-1]
    assert needles[2] < 0.01 * max(needles)  # ground truth: the blocked needle gave (almost) nothing...
    assert sum(needles) == pytest.approx(blocked_point.fields["delivered_nl"], rel=0.03)  # ...the others took it


def narrowest(board, head: int) -> int:
    """The needle of a head fit_head put on the board with the least conductance: blocking it raises the
    line least (the drawn spread: mesosim.heads)."""
    from mesosim.heads import needle_conductances

    g = needle_conductances(spec.HEADS[head][1], board.seed)
    return min(range(len(g)), key=lambda i: g[i])


def points_until_alarm(dev, board, most: int, seen: list) -> int | None:
    """Give up to `most` points; the index of the one after which an alarm came (None: none did)."""
    for k in range(most):
        give_point(dev, board, seen)
        if dev.status()["state"] == spec.STATE_FAULT:
            if not any(e.type == spec.ALARM for e in seen):  # journalled once its point closed: it may follow
                seen.append(polled_event(dev, spec.ALARM, seen))
            return k
    return None


@pytest.fixture
def board3(request):
    """A board of its own with a BD 3 mL syringe: a 9-needle session of a prime and 6 points is 0.6 mL."""
    from mesoinject.simulated import SimBoard

    with SimBoard(syringe=2, head=FIVE, seed=request.config.sim_seed, profile={"diameter_error": 0.0}) as b, \
            Device.open(b.url) as d:
        d.hello()
        d.abort()
        yield b, d
        b.set_trigger(False)


@pytest.mark.req("SR-170", "SR-175")
@pytest.mark.parametrize("head, clean", [(NINE, 3)], ids=["9-needle-mid-session"])
def test_a_fully_blocked_narrowest_needle_is_caught_within_three_points(board3, head, clean):
    # `clean` points raise no alarm (a false one fails here, naming the board's seed); then the narrowest
    # needle blocked (+10-12.5 % on 9 needles, past the 5.2 % threshold), caught by the mean against theirs,
    # confirmed by the next point. (Blocked from the first point: the first two points' average flow figure
    # against the prime's, 10 of 10 boards for one needle of 9 on two seed sets under load, the threshold 3.3-4.1
    # sd from both the clean and the blocked averages (bench_heads; 6 of 10 before the model's clock was fixed and
    # the average used, 9 of 10 before its sensor's filter and the figure's lag and floors); two needles failed 1
    # of 3 runs with two CPU hogs - a starved simulator leaves the prime too few steady reads for a reference - so not asserted here;
    # firmware/tests/test_needles_mpy.py holds the logic.)
    board, dev = board3
    # 10 uL a needle: a 9-needle point of 0.9 s (a loaded simulator stretches it; TRIGGER_STUCK is at +2 s)
    primed_and_armed(dev, board, head, count=clean + 4, volume_nl=10000 * spec.HEADS[head][1], syringe=2)
    seen: list = []
    for _ in range(clean):
        give_point(dev, board, seen)
    seen += drain(dev)
    assert not [e for e in seen if e.type == spec.ALARM], f"a false alarm on a clean point (seed {board.seed})"
    board.block_needle(narrowest(board, head), 1000)
    assert points_until_alarm(dev, board, 3, seen) is not None
    alarm = next(e for e in seen if e.type == spec.ALARM)
    assert alarm.fields["code"] == spec.ALARM_NEEDLE_BLOCKED and alarm.fields["record_id"] != 0  # journalled
    assert dev.status()["state"] == spec.STATE_FAULT


@pytest.mark.req("SR-192")
def test_a_head_blocked_before_its_prime_is_refused_as_a_reference(dev, board):
    # three needles of five blocked before the prime: the line 2.5x a clear head's, past the head table's
    # highest (the most viscous drug, the narrowest lot) whatever the board's drug - the prime is no reference:
    # ALARM NEEDLE_BLOCKED as it ends, journalled, FAULT (the old device took it and judged the points by it)
    board.fit_head(FIVE)
    for needle in (0, 1, 2):
        board.block_needle(needle, 1000)
    try:
        dev.configure(**program(FIVE))
        dev.prime(spec.HEADS[FIVE][4] + 5000)
        seen: list = []
        assert wait_state(dev, {spec.STATE_PRIMED, spec.STATE_FAULT}, seen=seen) == spec.STATE_FAULT
        alarm = next((e for e in seen if e.type == spec.ALARM), None) or polled_event(dev, spec.ALARM, seen)
        assert alarm.fields["code"] == spec.ALARM_NEEDLE_BLOCKED and alarm.fields["record_id"] != 0
        assert alarm.fields["detail"] * 16 > spec.head_prime_max16(FIVE, POINT["flow_nl_s"])  # kPa past the table
    finally:
        for needle in (0, 1, 2):
            board.block_needle(needle, 1)


@pytest.mark.req("SR-192")
def test_the_clearest_worst_head_primes_below_the_table():
    # the table's corner: the most viscous drug it is for, every needle 8 % narrow - a clear head: no alarm
    from mesoinject.simulated import SimBoard

    with SimBoard(head=NINE, seed=17, profile={"diameter_error": 0.0, "viscosity_mpa_s": 2.0,
                                               "head_g": [0.92] * 9}) as b, Device.open(b.url) as d:
        d.hello()
        d.abort()
        d.configure(**program(NINE, per_needle_nl=10000))
        d.prime(spec.HEADS[NINE][4] + 5000)
        seen: list = []
        assert wait_state(d, {spec.STATE_PRIMED, spec.STATE_FAULT}, seen=seen) == spec.STATE_PRIMED, alarm_said(d)
