"""Each nappage shot's rounding to whole plunger steps (issue #20: 2 uL on a BD 3 mL is 108.7 steps of
18.4 nL; spending the carried remainder made every third shot 108 steps, -0.64 %, past the 0.5 % per-shot
target), on the MicroPython unix port (firmware/tests/mpy_shot_rounding.py)."""

import pathlib

import pytest

HERE = pathlib.Path(__file__).parent
TOL = 0.004  # dosing.DOSE_TOL_PL_PER_NL: 4 pL per nL


@pytest.fixture(scope="module")
def results(run_mpy):
    return run_mpy(HERE / "mpy_shot_rounding.py")


@pytest.fixture(scope="module")
def rows(results):
    return results["rows"]


@pytest.mark.req("SR-183")
def test_each_shot_is_within_its_tolerance_or_half_a_step(rows):
    for row in rows:
        worst, _ = row["dose"]
        allowed = max(TOL * row["nl"] * 1000, row["pl_per_step"] // 2)
        assert abs(worst) <= allowed, row


@pytest.mark.req("SR-183")
def test_spending_the_remainder_put_a_2_ul_shot_past_half_a_percent(rows):
    # the old rounding on the case, BD 3 mL uncalibrated: -0.64 %; now within 0.4 %
    bd3 = next(r for r in rows if r["syringe"] == 2 and r["ppm"] == 1000000 and r["nl"] == 2000)
    assert bd3["carried"][0] / 2e6 < -0.005
    assert abs(bd3["dose"][0]) / 2e6 <= TOL


@pytest.mark.req("SR-183")
def test_the_session_total_stays_exact_where_the_step_allows_and_drifts_within_the_tolerance_elsewhere(rows):
    for row in rows:
        carried_total = row["carried"][1]
        dose_total = row["dose"][1]
        assert abs(carried_total) <= row["pl_per_step"] // 2 + 1  # the carry: exact to half a step
        # per dose first: the session is off by at most the tolerance per shot (300 shots)
        assert abs(dose_total) <= 300 * max(TOL * row["nl"] * 1000, row["pl_per_step"] // 2), row
        if TOL * row["nl"] * 1000 >= row["pl_per_step"]:  # a step well inside the tolerance: nothing changed
            assert dose_total == carried_total, row


@pytest.mark.req("SR-183")
def test_a_shots_top_up_rounds_on_its_own_and_keeps_the_shot_within_its_bound(results):
    # issue #20, nappage 2 uL on a calibrated BD 3 mL (x0.944): the top-up rounded with the session's carried
    # remainder took a whole step off one shot in ~26 (-0.67 % on the model's ground truth, bench_metering
    # --seed 2071); rounded on its own, a shot is off by its dose's bound plus half a step at most
    for row in results["topups"]:
        allowed = max(TOL * row["nl"] * 1000, row["pl_per_step"] // 2) + row["pl_per_step"] // 2 + 1
        assert abs(row["near"]) <= allowed, row
    bd3 = next(r for r in results["topups"] if r["syringe"] == 2 and r["ppm"] == 944000 and r["nl"] == 2000
               and r["stored_nl"] == 10)
    assert bd3["carried"] / 2e6 < -0.005  # the old rounding: past the 0.5 % per-shot target
    assert abs(bd3["near"]) / 2e6 <= 0.005


@pytest.mark.req("SR-189")
def test_a_shots_top_up_is_rounded_with_its_dose_so_the_shot_is_off_by_half_a_step_at_most(results):
    # issue #20: rounded apart, a shot's dose and its top-up each erred up to half a step and could err the
    # same way (a whole step: 0.9 % of a 2 uL shot on a 2.5-3 mL syringe); rounded as one (Metering.steps_topup)
    # a shot is off by half a step at most - or by its dose's own tolerance where the top-up (never negative)
    # cannot take that back - and never further than the separate rounding put it
    for row in results["topups"]:
        bound = max(TOL * row["nl"] * 1000, row["pl_per_step"] // 2) + 1
        assert abs(row["joint"]) <= bound, row
        assert abs(row["joint"]) <= abs(row["near"]), row
    apart = [r for r in results["topups"] if abs(r["near"]) > max(TOL * r["nl"] * 1000, r["pl_per_step"] // 2) + 1]
    assert apart  # the separate rounding broke that bound (the rows the joint one fixed)
