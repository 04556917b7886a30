"""Metering against the less friendly model (issue #20): real bores are up to 3 % off the table (area 6 %),
so calibration covers them and refuses beyond; until a syringe is calibrated its records say the volume is
an estimate, and the exports show it. (The model's ranges: docs/sim-model.md.)"""

import csv
import io

import pytest

from hil import load_program, run_with_operator
from mesoinject import exports
from mesoinject.balance import Balance
from mesoinject.calibrate import CalibrationError, calibrate
from mesoinject.client import Device
from mesoprotocol import spec

BORE_ERROR = 0.03  # the bore 3 % wider than the table's: area x 1.0609, outside the old +-5 % window
BEYOND = 0.045  # area x 1.092: another syringe, or a leak


def bored_board(request, bore):
    if request.config.getoption("--port"):
        pytest.skip("needs the simulated board and its simulated balance")
    from mesoinject.simulated import SimBoard

    return SimBoard(seed=request.config.sim_seed, profile={"diameter_error": bore})


def points(board, device, store, count=2):
    before = len(board.penetrations)
    outcome = run_with_operator(device, board, store, load_program("point-by-point", count=count))
    assert outcome.completed, outcome.progress.alarms
    rows = [r for r in store.deliveries(outcome.session_id) if r["kind"] == "point"]
    return outcome.session_id, rows, board.penetrations[before:]


@pytest.mark.req("SR-123", "SR-124")
def test_a_bore_3_percent_off_is_flagged_until_calibrated_then_meets_half_a_percent(request, store):
    with bored_board(request, BORE_ERROR) as board, Device.open(board.url) as device:
        session, rows, pens = points(board, device, store)
        assert all(r["flags"] & spec.FLAG_UNCALIBRATED for r in rows)
        errors = [p.volume_nl / r["programmed_nl"] - 1 for r, p in zip(rows, pens)]
        assert all(e == pytest.approx(0.0609, abs=0.01) for e in errors)  # the bore, and within 1 % the rest (#20)
        exported = list(csv.DictReader(io.StringIO(exports.export(store, "csv", session))))
        assert exported and all(row["calibrated"] == "no" for row in exported)

        balance = Balance(board.balance.port)
        try:
            result = calibrate(device, balance, syringe=1, store=store, shots=6)
        finally:
            balance.close()
        assert result.new_ppm == pytest.approx((1 + BORE_ERROR) ** 2 * 1e6, rel=0.002)

        session, rows, pens = points(board, device, store)
        assert not any(r["flags"] & spec.FLAG_UNCALIBRATED for r in rows)
        assert all(abs(p.volume_nl / r["programmed_nl"] - 1) < 0.005 for r, p in zip(rows, pens))
        exported = list(csv.DictReader(io.StringIO(exports.export(store, "csv", session))))
        assert exported and all(row["calibrated"] == "yes" for row in exported)


@pytest.mark.req("SR-124")
def test_a_bore_beyond_the_window_is_refused_and_says_why(request, store):
    with bored_board(request, BEYOND) as board, Device.open(board.url) as device:
        balance = Balance(board.balance.port)
        try:
            with pytest.raises(CalibrationError, match=r"outside x 0.92..1.08.*wrong syringe"):
                calibrate(device, balance, syringe=1, store=store, shots=6)
        finally:
            balance.close()
        assert device.hello().cal_ppm == 1000000  # the old factor stays
        # and the device itself refuses a factor beyond its window, naming the bound
        with pytest.raises(Exception, match="1080000"):
            device.calibrate(1, spec.MAX_CAL_PPM + 1)
