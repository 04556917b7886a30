"""The blocked-needle watch (firmware/mesofw/needles.py) on the MicroPython unix port, on synthetic
dispenses read through a gauge sensor's noise and quantum (firmware/tests/mpy_needles.py)."""

import pathlib

import pytest

HERE = pathlib.Path(__file__).parent


@pytest.fixture(scope="module")
def results(run_mpy):
    return run_mpy(HERE / "mpy_needles.py")


@pytest.mark.req("SR-170")
def test_the_flow_figure_is_the_line_without_the_wheals(results):
    mean, flow = results["figures"]
    assert flow == pytest.approx(12 * 16, rel=0.04)  # the line at t = 0: 12 kPa of flow pressure
    assert mean == pytest.approx(22 * 16, rel=0.04)  # flow + the wheals' mean back-pressure (20 kPa / 2)


@pytest.mark.req("SR-170")
def test_a_clean_session_raises_no_alarm(results):
    assert results["clean5"] is None and results["clean9"] is None


@pytest.mark.req("SR-170")
def test_a_needle_blocked_from_the_first_point_is_caught_by_the_flow_figure_against_the_prime_on_5_needles(results):
    assert results["first5"][:2] == [1, 1]  # its flow figure, confirmed by the second point
    # 9 needles: the flow figure's scatter (+-10 %) is wider than their threshold (5.2 %): not judged, the
    # blocked first point is the mean's baseline (the documented miss)
    assert results["first9"] is None


@pytest.mark.req("SR-170")
def test_a_rise_under_twice_the_threshold_alarms_only_when_the_next_point_confirms_it(results):
    assert results["one_off"] is None  # one point 8 % up (9 needles: threshold 5.2 %), then clean
    assert results["two_in_a_row"][0] == 2  # at the second such point


@pytest.mark.req("SR-170")
def test_a_needle_blocking_mid_session_is_caught_at_the_point_it_blocks(results):
    assert results["mid5"][0] == 3  # +25 %: at once
    assert results["mid9"][0] == 4  # +12.5 %: confirmed by the next point


@pytest.mark.req("SR-170")
def test_the_watch_allocates_nothing_and_leaves_short_shots_alone(results):
    assert results["no_allocation"] is True  # heap locked over the longest dispense judged
    assert results["shot"] is False
