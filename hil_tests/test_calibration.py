"""Gravimetric calibration against the simulated balance: a bore 1.5 % off the table is found and fixed."""

import pytest

from hil import load_program, run_with_operator
from mesoinject.balance import Balance, BalanceError
from mesoinject.calibrate import CalibrationError, calibrate
from mesoinject.client import Device
from mesoprotocol import spec

pytestmark = pytest.mark.sim_only  # calibrates simulated boards of its own against their simulated balance

BORE_ERROR = 0.015  # the syringe's real bore is 1.5 % wider than the table says
TRUE_PPM = round((1 + BORE_ERROR) ** 2 * 1e6)


@pytest.fixture(scope="module")
def bored(request):
    from mesoinject.simulated import SimBoard

    with SimBoard(seed=request.config.sim_seed, profile={"diameter_error": BORE_ERROR}) as board:
        with Device.open(board.url) as device:
            balance = Balance(board.balance.port)
            yield board, device, balance
            balance.close()


def point_errors(board, device, store):
    before = len(board.penetrations)
    outcome = run_with_operator(device, board, store, load_program("point-by-point", count=4))
    rows = [r for r in store.deliveries(outcome.session_id) if r["kind"] == "point"]
    return [pen.volume_nl / row["delivered_nl"] - 1 for row, pen in zip(rows, board.penetrations[before:])]


def tau_us(p):
    """The line's time constant the firmware's moments give (compliance.Probe._moments, before its checks)."""
    s, m0, m1, lag = p["s_split16"], p["j16_us"], p["m1"] * 2048, p["lag_us"]
    if s <= 0 or m0 <= 0:
        return None
    tau0 = m0 // s - lag
    if tau0 > 0 and p["p_end16"] > 0:
        m0, m1 = m0 + p["p_end16"] * tau0, m1 + p["p_end16"] * tau0 * (p["t_end_us"] + tau0)
    return (m1 - lag * m0) // (m0 - lag * s) if m0 > lag * s else None


def primes(board, since):
    """The primes' compliance estimates since probe `since` (the last one's in force for the points after it),
    each beside the model's truth: what a session's points all off together would come from (issue #20)."""
    return "; ".join(
        f"prime {i}: est {p['est_pl']} pL/kPa (in force {p['in_force_pl']}, true {p['true_pl']}) from tau "
        f"{tau_us(p)} us (true {p['true_tau_us']}), lag {p['lag_us']} (true {p['true_lag_us']}), ps "
        f"{p['ps16'] / 16:.1f} kPa, p1 {p['p1']}, pushed {p['pushed_nl']} nL, I {p['i_kpa_us']}, M0 {p['j16_us']}, "
        f"M1 {p['m1']}, s_split {p['s_split16'] / 16:.1f}, read {p['t_end_us']} us to {p['p_end16'] / 16:.1f} kPa, "
        f"host waited {p['waited_us']} / took {p['taken_us']} us"
        for i, p in enumerate(board.probes[since:], since))


@pytest.mark.req("SR-043", "SR-206")
def test_calibration_finds_the_bore_and_points_then_meet_half_a_percent(bored, store):
    board, device, balance = bored
    since = len(board.probes)
    uncalibrated = point_errors(board, device, store)
    assert all(e == pytest.approx(TRUE_PPM / 1e6 - 1, abs=0.005) for e in uncalibrated), \
        (uncalibrated, primes(board, since))  # the bore error shows

    result = calibrate(device, balance, syringe=1, store=store, shots=6)
    assert result.new_ppm == pytest.approx(TRUE_PPM, rel=0.002)
    reported = board.probes[since:]  # every prime (the calibration's fill and its 6 shots) reported its estimate
    assert len(reported) >= 7 and all(p["true_pl"] > 0 and p["pushed_nl"] > 0 for p in reported), reported
    assert device.hello().cal_ppm == result.new_ppm

    calibrated = point_errors(board, device, store)
    assert all(abs(e) < 0.005 for e in calibrated), (calibrated, primes(board, since))


@pytest.mark.req("SR-043")
def test_the_factor_survives_a_power_cut(bored):
    board, device, _ = bored
    stored = device.hello().cal_ppm
    board.power_cut(0.1)
    device.hello()
    device.abort()
    device.configure(technique=1, syringe=1, head=1, vacuum_kpa=0, needle_length_um=4000, depth_um=2000, volume_nl=20000,
                     count=1, cadence_mhz=0, flow_nl_s=20000)
    assert device.hello().cal_ppm == stored != 1000000


@pytest.mark.req("SR-043")
def test_a_balance_that_stops_answering_aborts_and_keeps_the_old_factor(bored, store):
    board, device, balance = bored
    before = device.hello().cal_ppm
    board.balance.mute = True
    balance.serial.timeout = 0.5  # the module's balance: its port opens to one program at a time
    try:
        with pytest.raises(BalanceError, match="did not answer"):
            calibrate(device, balance, syringe=1, store=store, shots=3)
    finally:
        board.balance.mute = False
        balance.serial.timeout = 15.0
    assert device.hello().cal_ppm == before


@pytest.mark.req("SR-043")
def test_a_noisy_balance_gives_a_poor_fit_that_is_refused(bored, store):
    board, device, balance = bored
    before = device.hello().cal_ppm
    board.balance.noise_g = 0.0005  # 0.5 mg of noise on 20 mg shots
    try:
        with pytest.raises(CalibrationError, match="disagree"):
            calibrate(device, balance, syringe=1, store=store, shots=4)
    finally:
        board.balance.noise_g = 5e-6
    assert device.hello().cal_ppm == before


@pytest.mark.req("SR-043")
def test_a_balance_in_the_wrong_unit_is_refused(bored, store):
    board, device, balance = bored
    board.balance.unit = "ct"
    try:
        with pytest.raises(BalanceError, match="'ct'"):
            calibrate(device, balance, syringe=1, store=store, shots=3)
    finally:
        board.balance.unit = "g"


@pytest.mark.req("SR-043", "SR-080")
def test_a_calibration_stopped_by_an_alarm_names_it_and_keeps_the_old_factor(bored, store):
    board, device, balance = bored
    before = device.hello().cal_ppm

    def block_the_needle(i, estimate, measured):
        if i == 1:
            board.occlude(1000.0)  # the next shot pushes against a blocked needle

    try:
        with pytest.raises(CalibrationError) as stopped:
            calibrate(device, balance, syringe=1, store=store, shots=3, on_shot=block_the_needle)
    finally:
        board.occlude(1.0)
    assert stopped.value.alarm == spec.ALARM_OCCLUSION
    assert "ALARM OCCLUSION: line pressure reached" in str(stopped.value) and "Next: withdraw" in str(stopped.value)
    device.abort()  # clear the fault for the module's other tests
    assert device.hello().cal_ppm == before


@pytest.mark.req("SR-207")
def test_a_restart_a_calibration_sees_first_is_stored_on_the_session_it_cut_short(bored, store):
    # a session's host loses the device while it waits ARMED, then its power is cut: the first host to talk to it
    # again is a calibration. Before, calibrate() acknowledged the boot's RESET with ABORT and stored nothing of
    # it: the session's record never said a power cut ended it.
    from mesoinject import outcomes
    from mesoinject.session import SessionRunner

    board, device, balance = bored
    runner = SessionRunner(device, store)
    runner.begin(load_program("point-by-point", count=3))
    runner.prime()
    runner.arm()
    cut_short = runner.current_session_id()
    runner.finish("interrupted", retry=False, alarm="LINK LOST")  # the host stops listening; the device stays ARMED
    board.power_cut(0.1)  # waits for the boot

    calibrate(device, balance, syringe=1, store=store, shots=3)

    boot = device.hello().boot_count
    resets = [(a["detail"], a["boot_count"]) for a in store.alarms(cut_short)
              if a["code"] == "RESET" and a["boot_count"] != runner.start_boot]  # not the one found at its start
    assert resets == [(spec.RESET_POWER_ON, boot)]  # stored once, with its cause, before it was acknowledged
    assert outcomes.stopping_alarm(store.alarms(cut_short), store.session(cut_short)["boot_count"]) == "RESET"
