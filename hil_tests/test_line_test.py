"""The line test (LINE_TEST, PROTOCOL.md §5 "Line test") on simulated boards: the syringe's outlet capped, one
pressure step held. What it measures against the model's truth, and that it leaves the line as it found it."""

from __future__ import annotations

import math
import threading

import pytest

from hil import drain, wait_event, wait_state
from mesoinject.client import Device, DeviceRefused
from mesoprotocol import spec

pytestmark = pytest.mark.sim_only  # caps the outlet and reads the truth through a simulated board's control channel

BD_1, BD_3, BD_10 = 1, 2, 4
POINT = dict(technique=spec.TECHNIQUE_POINT, head=1, vacuum_kpa=0, needle_length_um=4000, depth_um=3000,
             volume_nl=20000, count=5, cadence_mhz=0, flow_nl_s=50000)


def configure(dev: Device, syringe: int) -> int:
    return dev.configure(syringe=syringe, **POINT)["state"]


def fresh(dev: Device, sim, code: int | None = None) -> int:
    """A new syringe in the clamp (another than the one before: code, or BD 1 / BD 3 in turn), configured: not
    primed, as a line test's is; its code."""
    if code is None:
        code = BD_3 if sim.syringe == BD_1 else BD_1
    elif code == sim.syringe:  # the device takes the same code for the same syringe: another one first
        fresh(dev, sim)
    sim.load_syringe(code)
    assert configure(dev, code) == spec.STATE_CONFIGURED
    return code


def true_line(board) -> dict:
    """The model's line as board_model.Model builds it from the board's profile: its compliance (pL/kPa: per mm^2
    of stopper face x the face, unless one is pinned), the sensor's lag (us), the creep's share and time constant."""
    p = board.profile
    area_mm2 = math.pi * p["diameter_um"] ** 2 / 4e6
    per_mm2 = 0.0 if "compliance_nl_per_kpa" in p else p.get("compliance_nl_per_kpa_mm2", 0.0)
    c_nl = per_mm2 * area_mm2 if per_mm2 else p.get("compliance_nl_per_kpa", 1.0)
    return {"pl": c_nl * 1000, "lag_us": p.get("sensor_lag_ms", 0.0) * 1000, "creep_share": p.get("creep_share", 0.0),
            "creep_ms": p.get("creep_ms", 500)}


@pytest.fixture
def dev(rig, sim):
    """The module's board, its outlet open, IDLE, no events pending."""
    with Device.open(rig.url) as d:
        if rig.clock is not None:
            d.clock = rig.clock
        d.hello()
        d.abort()
        drain(d)
        yield d
        sim.cap(False)
        sim.set_estop(False)
        d.abort()


def test_a_capped_outlet_keeps_what_the_plunger_pushes_and_open_again_lets_it_out(dev, sim):
    # the cap (BoardControls.cap) itself: a prime into it is an occlusion with nothing out; uncapped it primes
    fresh(dev, sim)
    before = sim.truth()
    sim.cap(True)
    dev.prime(5000)
    seen: list = []
    assert wait_state(dev, {spec.STATE_FAULT, spec.STATE_PRIMED}, seen=seen) == spec.STATE_FAULT
    alarms = [e.fields for e in seen + drain(dev) if e.type == spec.ALARM]
    assert alarms and alarms[0]["code"] == spec.ALARM_OCCLUSION, alarms
    assert sim.truth().out_nl - before.out_nl < 0.01  # nL: nothing passed the cap
    sim.cap(False)
    dev.abort()
    fresh(dev, sim)
    dev.prime(5000)
    assert wait_state(dev, {spec.STATE_FAULT, spec.STATE_PRIMED}) == spec.STATE_PRIMED
    assert sim.truth().out_nl - before.out_nl > 4000


def figures(r) -> str:
    return (f"{r.outcome_name}: lag {r.lag_us} us, C {r.compliance_pl} pL/kPa, creep {r.creep_permille} permille "
            f"over {r.creep_ms} ms, step {r.step_kpa:.1f} kPa, peak {r.peak_kpa} kPa")


LINES = [(BD_1, 0), (BD_3, 1), (BD_10, 2), (BD_1, 3)]  # (syringe, seed offset): stopper areas 17-157 mm^2


@pytest.mark.req("SR-217")
@pytest.mark.parametrize("syringe, offset", LINES, ids=[f"{spec.SYRINGES[s][0]}-seed+{o}" for s, o in LINES])
def test_the_line_test_measures_lag_compliance_and_creep_apart(request, tmp_path, syringe, offset):
    from mesoinject.simulated import SimBoard

    seed = request.config.sim_seed + offset
    with SimBoard(syringe=syringe, seed=seed, profile={"diameter_error": 0.0}, workdir=tmp_path) as board, \
            Device.open(board.url) as dev:
        dev.hello()
        dev.abort()
        assert configure(dev, syringe) == spec.STATE_CONFIGURED
        truth = true_line(board)
        board.cap(True)
        before = board.truth()
        result = dev.line_test()
        said = f"seed {seed}: {figures(result)}; truth {truth}"
        assert result.ok and result.syringe == syringe, said
        assert result.compliance_pl == pytest.approx(truth["pl"], rel=0.02), said
        # the lag scatters ~+-0.2 ms whatever its size (0.3 ms lags: -164..+184 us on 8 boards): the noise on a few
        # reads of its approach; 0 when those reads did not fall as an exponential (CI once read 1736 us for a 593
        # us lag before that check): not measured, the board's nominal stands
        if result.lag_us:
            assert result.lag_us == pytest.approx(truth["lag_us"], rel=0.25, abs=300), said
        assert result.creep_share == pytest.approx(truth["creep_share"], abs=0.03), said
        # the creep's own time constant (a capped line falls faster by 1 + its share, which the device takes back);
        # the loosest figure: three 400 ms blocks of a fall slower than the hold (the model's 200-1000 ms)
        assert result.creep_ms == pytest.approx(truth["creep_ms"], rel=0.5), said
        assert spec.LINE_ONSET_KPA < result.step_kpa <= result.peak_kpa <= spec.LINE_MAX_KPA, said
        assert wait_state(dev, {spec.STATE_CONFIGURED}) == spec.STATE_CONFIGURED
        after = board.truth()
        assert after.pressure_kpa < 2 and after.out_nl == before.out_nl, (after, said)  # backed off, nothing out

        # the device meters with them: the next prime's probe has them in force, not its own estimate
        board.cap(False)
        probes = len(board.probes)
        dev.prime(5000)
        assert wait_state(dev, {spec.STATE_PRIMED, spec.STATE_FAULT, spec.STATE_CONFIGURED}) == spec.STATE_PRIMED
        board.wait(lambda: len(board.probes) > probes, 2, "the prime's compliance report")
        probe = board.probes[-1]
        assert probe["in_force_pl"] == result.compliance_pl, (probe, said)
        assert not result.lag_us or probe["lag_us"] == result.lag_us, (probe, said)  # (0: the nominal stands)


@pytest.mark.req("SR-218")
@pytest.mark.parametrize("syringe", [BD_1, BD_3, BD_10], ids=lambda code: spec.SYRINGES[code][0])
def test_an_open_outlet_is_found_open_and_left_as_it_was(dev, sim, syringe):
    # a larger stopper's take-up pushes a flow pressure past the onset through the open needle
    fresh(dev, sim, syringe)
    before = sim.truth()
    result = dev.line_test()
    assert result.outcome == spec.LINE_OPEN, figures(result)
    assert (result.lag_us, result.compliance_pl, result.creep_permille, result.creep_ms) == (0, 0, 0, 0)
    assert wait_state(dev, {spec.STATE_CONFIGURED}) == spec.STATE_CONFIGURED
    after = sim.truth()
    assert after.pressure_kpa < 2 and after.penetrations == before.penetrations, after
    assert after.content_nl == pytest.approx(before.content_nl, abs=0.01), after  # the pusher back where it began


@pytest.mark.req("SR-218")
@pytest.mark.xfail(strict=True, reason="linetest.py's take-up reaches past the pusher's slack whatever the play: past "
                   "the play an open outlet lets it out until a flow's pressure reads as the onset (seeds 11-12: BD 1 mL "
                   "2.26-2.33 uL, BD 3 mL 68-98 nL, BD 5 mL 132-155 nL, BD 10 mL 139-172 nL; the back-off draws it "
                   "back into the needle, the model's tip_nl)")
def test_an_open_outlet_pushes_nothing_out_of_the_needle(dev, sim):
    fresh(dev, sim, BD_1)
    before = sim.truth()
    assert dev.line_test().outcome == spec.LINE_OPEN
    assert sim.truth().out_nl - before.out_nl < 1  # nL


def when_held(sim, kpa: float, act, given_up: threading.Event) -> threading.Thread:
    """act() once the model's line holds kpa (the test's step reached), from a thread of its own: the caller's
    thread waits in Device.line_test, polling as the host does (given_up: the test ended first; no act)."""
    def watch() -> None:
        while sim.truth().pressure_kpa < kpa:
            if given_up.is_set():
                return
        act()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


@pytest.mark.req("SR-218")
def test_an_abort_mid_test_stops_it_backed_off_and_idle(dev, sim):
    fresh(dev, sim)
    sim.cap(True)
    before = sim.truth()
    dev.command(spec.LINE_TEST)
    seen: list = []
    while sim.truth().pressure_kpa < spec.LINE_STEP_KPA / 2:  # in the hold
        assert dev.status()["state"] == spec.STATE_PRIMING
    assert dev.abort()["state"] == spec.STATE_IDLE
    result = wait_event(dev, spec.LINE_RESULT, seen=seen).fields
    assert result["outcome"] == spec.LINE_STOPPED and result["compliance_pl"] == result["lag_us"] == 0, result
    assert wait_state(dev, {spec.STATE_IDLE}) == spec.STATE_IDLE
    after = sim.truth()
    assert after.pressure_kpa < 2 and after.out_nl == before.out_nl, after


@pytest.mark.req("SR-218")
def test_an_estop_mid_test_stops_it_backed_off_with_its_alarm(dev, sim):
    fresh(dev, sim)
    sim.cap(True)
    ended = threading.Event()
    pressing = when_held(sim, spec.LINE_STEP_KPA / 2, lambda: sim.set_estop(True), ended)
    try:
        result = dev.line_test()
    finally:
        ended.set()
        pressing.join()
    assert result.outcome == spec.LINE_STOPPED and [c for c, _ in result.alarms] == [spec.ALARM_ESTOP], figures(result)
    assert dev.status()["state"] == spec.STATE_FAULT
    sim.wait(lambda: sim.truth().pressure_kpa < 2, 2, "the line's pressure relieved")


@pytest.mark.req("SR-218")
def test_a_line_test_outside_configured_or_of_another_syringe_is_refused(dev, sim):
    forward = sim.truth().forward_steps
    with pytest.raises(DeviceRefused) as refused:  # IDLE
        dev.line_test()
    assert (refused.value.reason, refused.value.limit) == ("BAD_STATE", 1 << spec.STATE_CONFIGURED)
    code = fresh(dev, sim)
    sim.fail_clamp_sensor(0)  # the clamp reads no syringe
    try:
        with pytest.raises(DeviceRefused) as refused:
            dev.line_test()
        assert (refused.value.reason, refused.value.value) == ("SYRINGE", code)
    finally:
        sim.fail_clamp_sensor(None)
    assert sim.truth().forward_steps == forward  # nothing moved
    dev.prime(5000)
    assert wait_state(dev, {spec.STATE_PRIMED, spec.STATE_FAULT, spec.STATE_CONFIGURED}) == spec.STATE_PRIMED
    with pytest.raises(DeviceRefused) as refused:  # PRIMED: a primed line has its needle on, no cap
        dev.line_test()
    assert refused.value.reason == "BAD_STATE" and refused.value.state == "PRIMED"


# A soft, creeping BD 10 mL line into a stiff wheal (issue #20's "C 0.06/mm2" row on seed 2071: 190 kPa at the end
# of a 50 uL point): the stopper's creep takes ~150-240 nL of each point that never leaves the needle (0.3-0.5 %)
CREEPING = {"diameter_error": 0.0, "compliance_nl_per_kpa_mm2": 0.06, "creep_share": 0.2, "creep_ms": 600,
            "tissue_kpa_per_ul": 3.8}


@pytest.mark.req("SR-219")
def test_after_a_line_test_the_points_get_back_what_the_stopper_creep_took(request, tmp_path):
    import dataclasses

    from mesoinject import program
    from mesoinject.records import RecordStore
    from mesoinject.session import SessionRunner
    from mesoinject.simulated import SimBoard
    from mesosim import VirtualOperator

    prog = dataclasses.replace(program.load(program.EXAMPLES / "point-by-point.toml"), syringe=BD_10, volume_nl=50000,
                               depth_um=2000, count=6)
    seed = request.config.sim_seed
    with SimBoard(syringe=BD_10, seed=seed, profile=CREEPING, workdir=tmp_path) as board, \
            Device.open(board.url) as dev, RecordStore(tmp_path / "records.db") as store:
        dev.hello()
        dev.abort()
        dev.configure(**prog.configure_fields())
        with board.capped():
            result = dev.line_test()
        truth = true_line(board)
        assert result.ok and result.creep_share == pytest.approx(truth["creep_share"], abs=0.03), figures(result)
        with VirtualOperator(board, gap_s=0.02):
            outcome = SessionRunner(dev, store).run(prog, timeout_s=300)
        assert outcome.completed, outcome
        pens = board.penetrations[-prog.count:]
        records = [r for r in store.deliveries(outcome.session_id) if r["kind"] == "point"]
    said = [f"{p.volume_nl:.1f} nL (creep {p.creep_nl:.1f}), record {r['delivered_nl']}" for p, r in zip(pens, records)]
    assert len(pens) == len(records) == prog.count, said
    assert all(p.creep_nl > 0.0025 * prog.volume_nl for p in pens), said  # the creep took more than the target's half
    errors = [p.volume_nl / prog.volume_nl - 1 for p in pens]
    # each point within 0.35 % (uncompensated: the first -0.64 %, the rest -0.25..-0.42 %), their mean within 0.15 %
    assert all(abs(e) <= 0.0035 for e in errors), said
    assert abs(sum(errors) / len(errors)) <= 0.0015, said
    # and no record counts the creep's take as delivered, nor takes it off twice (each +-0.15 %): within 0.4 % (the
    # records' own spread on these lines, -0.29..+0.07 % over seeds 1-4, is the line's leftover at the plateau)
    assert all(abs(r["delivered_nl"] / p.volume_nl - 1) <= 0.004 for p, r in zip(pens, records)), said
