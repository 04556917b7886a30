"""The line test (mesofw/linetest.py) on the MicroPython unix port (firmware/tests/mpy_linetest.py): a capped line
with the sim's imperfections - the pusher's play, a stopper's compliance and creep, a sensor with a lag, noise, a
1 kPa quantum and an offset - gives its compliance, the sensor's lag and the creep; an open line, a leak and a stop
are told apart; the plunger always ends where it began, the line released."""

import pathlib

import pytest

HERE = pathlib.Path(__file__).parent


@pytest.fixture(scope="module")
def results(run_mpy):
    return run_mpy(HERE / "mpy_linetest.py")


@pytest.mark.req("SR-216")
def test_a_capped_line_gives_its_compliance_lag_and_creep(results):
    # BD 1 mL stiff to soft, BD 3 mL, BD 10 mL; lags 0.3-1.5 ms; sensor noise 0.3-1 kPa
    for row in results["cases"] + [results["late"]]:
        assert row["outcome"] == 0, row
        assert row["c_pl"] == pytest.approx(row["c_true"], rel=0.02), row
        assert row["lag_us"] == pytest.approx(row["lag_true"], rel=0.15), row
    for row in results["cases"]:
        assert row["creep_permille"] == pytest.approx(row["share_true"] * 1000, abs=15), row
        assert row["creep_ms"] == pytest.approx(row["creep_true"], rel=0.2), row
    lags = [abs(r["lag_us"] / r["lag_true"] - 1) for r in results["cases"]]
    assert sum(lags) / len(lags) < 0.06, lags  # the mean error; the worst: a 0.3 ms lag in blocks of 4 reads


@pytest.mark.req("SR-216")
def test_the_test_never_pushes_past_its_ceiling_and_ends_where_it_began(results):
    for row in results["cases"] + [results[k] for k in ("late", "open", "open_outlet", "leak", "estop", "abort", "no_creep")]:
        assert row["true_peak"] <= 150, row  # LINE_MAX_KPA
        assert row["pos"] == 0 and row["end_kpa"] < 0.5, row  # every step pushed backed off, the line released


@pytest.mark.req("SR-216")
def test_an_open_line_a_leak_and_a_stop_are_told_apart(results):
    assert results["open"]["outcome"] == 1 and results["open"]["c_pl"] == 0  # LINE_OPEN: nothing caps the line
    outlet = results["open_outlet"]
    # no cap on the outlet: OPEN once the pusher has gone its reach - its slack (300 steps here, as far as the gap),
    # half again for a worn lead screw (150) and the onset's room on the softest stopper (8 kPa x 18 mm2 x 400
    # pL/kPa/mm2: 10 steps, and one) - what the stopper moved within it went out
    assert outlet["outcome"] == 1 and outlet["out_nl"] <= (150 + 11) * 5.66 + 0.01, outlet
    assert results["leak"]["outcome"] == 2  # LINE_LEAK: the hold fell further than any stopper creeps
    for stopped in ("estop", "abort"):
        row = results[stopped]
        assert row["outcome"] == 3 and row["c_pl"] == 0 and row["lag_us"] == 0, row  # LINE_STOPPED, no figures
    assert results["no_creep"]["outcome"] == 0 and results["no_creep"]["creep_permille"] <= 10
