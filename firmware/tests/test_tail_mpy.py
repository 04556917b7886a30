"""The prime's compliance estimate on issue #20's soft lines, on the MicroPython unix port
(firmware/tests/mpy_tail.py): the tail read per control pass says nothing once passes are 4 ms apart (the
stopper-area prior, 10x under a 6 nL/kPa line, then stood: -2.4 % on a 50 uL point), and was off by the
sensor's unknown lag; read densely (compliance.Probe.tail) it holds within 15 % at any pass rate."""

import pathlib

import pytest

HERE = pathlib.Path(__file__).parent


@pytest.fixture(scope="module")
def results(run_mpy):
    return run_mpy(HERE / "mpy_tail.py")


def _errors(row, key):
    return [None if e is None else e / row["c_pl"] - 1 for e in row[key]]


NOMINAL_LAG_US = 900  # the probe's idea of the sensor's lag (the sim board's PRESSURE_LAG_US)


@pytest.mark.req("SR-181")
def test_a_soft_line_is_measured_from_a_densely_read_tail(results):
    # every prime gives an estimate; taking off the one error the probe cannot see, the sensor's lag L against
    # the nominal Ln (second order in the moments' estimate: (L - Ln) L / tau^2, compliance.py), each is
    # within 20 % and their mean over 8 primes within 6 %
    for row in results["cases"]:
        tau, lag = row["tau_us"], row["lag_us"]
        bias = (lag - NOMINAL_LAG_US) * lag / tau ** 2
        errors = _errors(row, "dense")
        assert all(e is not None and abs(e - bias) <= 0.2 for e in errors), (tau, lag, errors)
        assert abs(sum(errors) / len(errors) - bias) <= 0.06, (tau, lag, errors)


@pytest.mark.req("SR-181")
def test_a_tail_read_once_a_pass_said_nothing_or_scattered(results):
    # the old probe (one read a pass) on the same lines: with 4 ms passes (a loaded board) mostly no estimate,
    # the stopper-area prior standing (~0.6 nL/kPa for 6); at 1 ms passes a scatter the dense read does not have
    loaded = [e for row in results["cases"] for e in _errors(row, "loaded")]
    assert sum(e is None for e in loaded) > len(loaded) // 2
    per_pass = [e for row in results["cases"] for e in _errors(row, "per_pass")]
    assert sum(e is None or abs(e) > 0.25 for e in per_pass) >= 10


@pytest.mark.req("SR-182")
def test_the_dense_read_allocates_nothing(results):
    # read with the heap locked (a MemoryError on any allocation), and it read the tail
    assert results["heap"]["allocated"] is False
    assert results["heap"]["j16_us"] > 0


@pytest.mark.req("SR-182")
def test_the_e_stop_ends_a_dense_read_and_leaves_no_estimate(results):
    assert results["no_estop"] is not None
    assert results["estop"] is None


@pytest.mark.req("SR-182")
def test_a_read_that_lost_the_cpu_while_the_line_fell_still_measures_it(results):
    # 8 ms without a read while the line falls (a chord there overstates the area: +23 % on this line);
    # a gap over the split itself leaves no estimate (the last or the prior stands):
    # within 10 % of the same prime read without the gap
    for k, est in enumerate(results["stalled"]):
        plain = results["unstalled"][k // 2]
        assert est is not None and abs(est / plain - 1) <= 0.1, (k, est, plain)


@pytest.mark.req("SR-205")
def test_a_line_faster_than_the_sensor_lag_keeps_the_prior_whatever_its_noise(results):
    # issue #20: test_calibration's BD 1 mL line (1.03 nL/kPa, tau 0.5 ms) behind a 1.28 ms sensor, 40 primes at
    # 1 kPa of noise. Its tail cannot tell the line from the lag: the moments' tau scatters about ~1 ms, and the
    # old threshold (1.5 ms) took its furthest reads as a line 3-4x too soft - every point of the session then
    # topped up by the difference (+0.3-0.7 %). Every prime must say nothing (the stopper-area prior stands) or be
    # near the truth.
    estimates = results["unresolved"]
    assert all(e is None or abs(e / 1030 - 1) <= 0.5 for e in estimates), estimates


@pytest.mark.req("SR-211")
def test_a_primes_zero_is_read_finely_enough_for_every_prime_to_hold(results):
    # issue #20: a prime's 6 ms tail is read for ~30 ms above the zero the prime took as it started; an error
    # b in that zero (32 reads: +-0.1 kPa at 0.56 kPa of noise) weighs on the tail's first moment as b t^2 / 2,
    # and the level the rest is extrapolated from (16 reads) half as much again: one prime in 60 of the BD 10 mL
    # line read +20 %, and the session's points all top up by it. Every prime of 60 within 15 % of the truth
    # (less the lag's bias), their mean within 4 %.
    for row in results["from_zero"]:
        tau, lag = row["tau_us"], row["lag_us"]
        bias = (lag - NOMINAL_LAG_US) * lag / tau ** 2
        errors = [None if e is None else e / row["c_pl"] - 1 - bias for e in row["est"]]
        assert all(e is not None and abs(e) <= 0.15 for e in errors), (tau, lag, sorted(errors, key=abs)[-3:])
        assert abs(sum(errors) / len(errors)) <= 0.04, (tau, lag, sum(errors) / len(errors))
