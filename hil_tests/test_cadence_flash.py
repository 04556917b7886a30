"""Nappage with the board's flash at its typical datasheet time (a 4 KB erase 45 ms, a page 0.6 ms;
the CPU stalled meanwhile, as on an RP2040): the shots keep their cadence because their records go
to the journal's append area (page programs) and reach their cells after the burst, and a power cut
before that loses none of them.

Intervals are the model's needle entries (its clock); the cadence is their median, so a shot the
host machine's scheduler made late does not decide it (bench/bench_cadence.py has the figures).
"""

import os
import statistics
import time

import pytest

from hil import drain, load_program, prime_and_arm, run_with_operator, wait_state
from mesoinject import sync
from mesoinject.client import Device
from mesoprotocol import spec
from mesosim.harness import ticks_diff

from test_stops import PARTIAL_NL

pytestmark = pytest.mark.sim_only  # times a simulated board's flash

TYPICAL = {"flash_erase_ms": 45, "flash_page_us": 600}  # board_flash.py's TYPICAL_*: set here, not inherited
# bench_cadence's shots: 1 uL at 1 mm, fast enough for 12 Hz; here at 9 Hz (the old journal reached ~5.5 Hz)
SHOTS = dict(cadence_mhz=9000, volume_nl=1000, depth_um=1000, flow_nl_s=80000)
TOLERANCE = 0.02


@pytest.fixture(scope="module")
def timed(request, tmp_path_factory):
    from mesoinject.simulated import SimBoard

    with SimBoard(seed=request.config.sim_seed, workdir=tmp_path_factory.mktemp("timedflash"),
                  profile={"diameter_error": 0.0, **TYPICAL}) as board:
        yield board


@pytest.fixture
def dev(timed):
    with Device.open(timed.url) as d:
        d.hello()
        d.abort()
        drain(d)
        yield d
        timed.set_trigger(False)
        d.abort()


def erases_between(sim, a_us, b_us):
    return sum(1 for t in sim.erase_times if ticks_diff(t, a_us) >= 0 and ticks_diff(b_us, t) > 0)


@pytest.mark.req("SR-188", "SR-185")
def test_a_9_hz_burst_keeps_its_cadence_with_the_flash_timed(dev, timed, store):
    program = load_program("nappage", count=16, **SHOTS)
    before = len(timed.penetrations)
    outcome = run_with_operator(dev, timed, store, program)
    assert outcome.completed, outcome.progress.alarms
    truth = timed.penetrations[before:]
    assert len(truth) == 16
    intervals = [ticks_diff(b.t0_us, a.t0_us) for a, b in zip(truth, truth[1:])]
    period_us = 1e9 / program.cadence_mhz
    median = statistics.median(intervals)
    print(f"9 Hz, flash timed: median interval {median / 1000:.1f} ms (period {period_us / 1000:.1f} ms), "
          f"intervals {[round(i / 1000, 1) for i in intervals]} ms")
    assert abs(median - period_us) <= period_us / spec.CADENCE_SLACK_DIV
    # no block erased from the first needle entry to the last: the shots' records cost page programs
    assert erases_between(timed, truth[0].t0_us, truth[-1].t0_us) == 0
    shots = [r for r in store.deliveries(outcome.session_id) if r["kind"] == "shot"]
    assert len(shots) == 16
    for row, pen in zip(shots, truth):
        assert row["delivered_nl"] == pytest.approx(pen.volume_nl, rel=TOLERANCE)


@pytest.mark.req("SR-186", "SR-050")
@pytest.mark.skipif(bool(os.environ.get("MICROPY_TICKS_WRAP_S")),
                    reason="erases are placed by board clock, which MICROPY_TICKS_WRAP_S restarts at every simulated boot")
def test_a_power_cut_mid_burst_loses_no_shot_whose_record_was_not_yet_in_its_cell(dev, timed, store):
    program = load_program("nappage", count=60, **SHOTS)
    dev.configure(**program.configure_fields())
    prime_and_arm(dev, 2000)
    wait_state(dev, {spec.STATE_ARMED})
    pens = len(timed.penetrations)
    timed.set_trigger(True)
    wait_state(dev, {spec.STATE_DELIVERING}, timeout=5)  # the firmware takes the trigger on its next tick
    deadline = time.monotonic() + 10
    while len(timed.penetrations) - pens < 5:  # five shots delivered and more coming (the heartbeat kept)
        assert dev.status()["state"] == spec.STATE_DELIVERING
        assert time.monotonic() < deadline, "the burst never got going"
    first = timed.penetrations[pens].t0_us
    cut_at = len(timed.penetrations)
    timed.power_cut(off_s=0.3)  # returns once the board has booted again
    timed.set_trigger(False)
    dev.hello()  # answered after the boot homed the needle (app.py) and replayed the journal
    timed.truth()  # a control round trip: every needle entry the board reported before it is in
    # erases between the first shot's entry and the cut (the last entry before it)
    cut_erases = erases_between(timed, first, timed.penetrations[cut_at - 1].t1_us)
    assert dev.status()["state"] == spec.STATE_FAULT  # the RESET alarm: the board did reboot
    sync.drain(dev, store)
    assert dev.status()["unacked"] == 0
    # the needle entries of the burst (the boot measures the depth axis's play a few um past its home switch)
    truth = [p for p in timed.penetrations[pens:] if p.max_depth_um > SHOTS["depth_um"] / 10]
    shots = sorted((r for r in store.deliveries() if r["kind"] == "shot"), key=lambda r: r["record_id"])
    # the case this test is about: the shots' records were in the append area only (nothing settled yet)
    assert cut_erases == 0
    # every needle entry of the burst has its record, once (the one the cut caught: partial, power-lost)
    assert len(shots) == len(truth) >= 5
    for row, pen in zip(shots, truth):
        if row["partial"]:
            assert row["delivered_nl"] <= pen.volume_nl + PARTIAL_NL
        else:
            assert row["delivered_nl"] == pytest.approx(pen.volume_nl, rel=TOLERANCE)
    assert sum(1 for r in shots if r["partial"]) <= 1
