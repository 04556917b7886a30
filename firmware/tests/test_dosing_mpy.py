"""Dosing maths and hard limits, run on the MicroPython unix port."""

import json
import pathlib

import pytest

from mesoprotocol import spec

HERE = pathlib.Path(__file__).parent
OK = [1, 1, 1, 4000, 3000, 30000, 20, 0, 50000, 0, 1, 7, 0]  # the point-by-point example program
NAP = [2, 1, 1, 4000, 1500, 2000, 40, 6000, 50000, 0, 1, 7, 0]  # the nappage example program


def with_(base, **changes):
    names = [n for n, _ in spec.MESSAGES[spec.CONFIGURE][1]]
    cfg = list(base)
    for k, v in changes.items():
        cfg[names.index(k)] = v
    return cfg


# (config, expected (reason, field, value, limit) or None)
LIMIT_CASES = [
    (OK, None),
    (NAP, None),
    (with_(OK, depth_um=4100, head=3, needle_length_um=13000), (spec.NACK_LIMIT, 5, 4100, 4000)),  # 30G 13 mm
    (with_(OK, depth_um=3900), (spec.NACK_LIMIT, 5, 3900, 3800)),  # 4 mm needle minus margin
    (with_(OK, depth_um=100), (spec.NACK_LIMIT, 5, 100, spec.MIN_DEPTH_UM)),
    (with_(OK, volume_nl=50001), (spec.NACK_LIMIT, 6, 50001, 50000)),
    (with_(NAP, volume_nl=10001), (spec.NACK_LIMIT, 6, 10001, 10000)),
    (with_(OK, technique=3, count=1, volume_nl=20001), (spec.NACK_LIMIT, 6, 20001, 20000)),
    (with_(OK, technique=3, volume_nl=10000, count=2), (spec.NACK_LIMIT, 7, 2, 1)),
    (with_(OK, count=0), (spec.NACK_LIMIT, 7, 0, 1)),
    (with_(OK, count=40), (spec.NACK_LIMIT, 7, 40, spec.syringe_capacity_nl(1) // 30000)),  # > 1 mL syringe
    (with_(OK, flow_nl_s=100001), (spec.NACK_LIMIT, 9, 100001, 100000)),
    # needle heads (spec.HEADS): the head's own needle length, the per-point limits per needle, no nappage
    (with_(OK, head=99), (spec.NACK_BAD_VALUE, 3, 99, 0)),
    (with_(OK, needle_length_um=6000), (spec.NACK_INFEASIBLE, 4, 6000, 4000)),  # the 30G 4 mm head's needle is 4 mm
    (with_(OK, head=2, needle_length_um=6000, depth_um=4000), None),  # 30G 6 mm: 4 mm deep is allowed
    (with_(OK, head=6, vacuum_kpa=40, volume_nl=150000, count=1), None),  # 5 needles x 30 uL in one cycle
    (with_(OK, head=6, vacuum_kpa=40, volume_nl=250001, count=1), (spec.NACK_LIMIT, 6, 250001, 250000)),  # > 50 uL a needle
    (with_(OK, head=7, vacuum_kpa=40, volume_nl=4000, count=1), (spec.NACK_LIMIT, 6, 4000, 9 * spec.MIN_VOLUME_NL)),
    (with_(NAP, head=6, vacuum_kpa=40), (spec.NACK_INFEASIBLE, 3, 6, 1)),  # a multi-needle head works cycle by cycle
    # skin contact: a multi-needle head holds the skin by vacuum within the device's limit; a single needle by its switch
    (with_(OK, head=6, volume_nl=150000, count=1), (spec.NACK_LIMIT, 10, 0, spec.MIN_VACUUM_KPA)),
    (with_(OK, head=6, vacuum_kpa=61, volume_nl=150000, count=1), (spec.NACK_LIMIT, 10, 61, spec.MAX_VACUUM_KPA)),
    (with_(OK, vacuum_kpa=40), (spec.NACK_INFEASIBLE, 10, 40, 0)),
    (with_(OK, technique=9), (spec.NACK_BAD_VALUE, 1, 9, 0)),
    (with_(OK, syringe=99), (spec.NACK_BAD_VALUE, 2, 99, 0)),
    (with_(OK, session=0), (spec.NACK_BAD_VALUE, 12, 0, 0)),  # every record must name its session
    # two drugs: a program names syringe channel 1 or 2 (spec.CHANNELS)
    (with_(NAP, channel=2), None),
    (with_(OK, channel=0), (spec.NACK_BAD_VALUE, 11, 0, spec.CHANNELS)),
    (with_(OK, channel=3), (spec.NACK_BAD_VALUE, 11, 3, spec.CHANNELS)),
        # the session's own cap (a plan total) bounds the program like max_session_nl: the largest count that fits
    (with_(OK, session_cap_nl=600000), None),
    (with_(OK, session_cap_nl=500000), (spec.NACK_LIMIT, 7, 20, 500000 // 30000)),
    (with_(OK, session_cap_nl=spec.MAX_SESSION_NL + 1), (spec.NACK_LIMIT, 13, spec.MAX_SESSION_NL + 1, spec.MAX_SESSION_NL)),
    # a continued session ([program, total so far, cap in force]): its cap may be lowered, never raised nor dropped
    ([with_(OK, count=10, session_cap_nl=700000), 300000, 700000], None),
    ([with_(OK, count=12, session_cap_nl=650000), 300000, 700000], (spec.NACK_LIMIT, 7, 12, 350000 // 30000)),
    ([with_(OK, count=10, session_cap_nl=700001), 300000, 700000], (spec.NACK_LIMIT, 13, 700001, 700000)),
    ([with_(OK, count=10, session_cap_nl=0), 300000, 700000], (spec.NACK_LIMIT, 13, 0, 700000)),
    ([with_(OK, count=10), 300000, 0], None),  # no cap in force: max_session_nl alone
    ([with_(OK, count=10, session_cap_nl=200000), 300000, 0], (spec.NACK_LIMIT, 7, 10, 0)),  # lowered below the total
    (with_(OK, cadence_mhz=5000), (spec.NACK_BAD_VALUE, 8, 5000, 0)),
    (with_(NAP, cadence_mhz=spec.MAX_CADENCE_MHZ + 1), (spec.NACK_LIMIT, 8, spec.MAX_CADENCE_MHZ + 1, spec.MAX_CADENCE_MHZ)),
    (with_(NAP, syringe=3, volume_nl=1000), (spec.NACK_LIMIT, 6, 1000, spec.MIN_DOSE_STEPS * 35697 // 1000)),  # 1 uL from 5 mL
    (with_(NAP, volume_nl=10000, flow_nl_s=10000), (spec.NACK_INFEASIBLE, 8, 6000, 800000 // (60 + 1000 + spec.SHOT_SETTLE_MS + 2))),
]


@pytest.fixture(scope="module")
def results(run_mpy, tmp_path_factory):
    # cases go in a file: the unix port crashes on a command-line argument >= 256 bytes
    cases = tmp_path_factory.mktemp("limits") / "cases.json"
    cases.write_text(json.dumps([c for c, _ in LIMIT_CASES]))
    return run_mpy(HERE / "mpy_dosing.py", cases)


@pytest.mark.req("SR-162")
def test_a_move_never_reverses_on_a_clock_that_steps_back(results):
    # the simulated board's clock stepped back 1.15 ms under load: the suck-back's Axis then sent 35 steps forward
    # (its due count fell below what it had sent), the stopper crossed its play and pushed 18 steps into the air,
    # and the next point's record counted them (test_journal, 1 run in ~100 with CPU hogs)
    steps = results["clock_back"]
    assert sum(steps) == -448 and all(n < 0 for n in steps), steps


@pytest.mark.req("SR-040")
def test_metering_has_no_cumulative_drift(results):
    # 1000 points of 30 uL: the carried remainder keeps the total within one step
    for row in results["drift"]:
        assert abs(row["error_pl"]) <= row["pl_per_step"] // 2 + 1, row


@pytest.mark.req("SR-162")
def test_a_move_behind_its_loop_says_how_far(results):
    # passes 5 ms apart: the move's clock takes 2 ms of each (no catch-up burst, never faster than commanded),
    # so 1 s of move takes 2.5 s and lag_ms, what STATUS_REPLY and the stuck-trigger hold count, is the 1.5 s lost
    lag = results["lag"]
    assert lag["steps"] == 10000
    assert lag["late_steps"] <= 30  # at most 2 ms of steps a pass at 10 steps/ms (the first: 3, move_to's head start)
    assert lag["lag_ms"] == lag["elapsed_ms"] - 1000 == 1500


@pytest.mark.req("SR-200", "SR-162")
def test_a_paced_move_keeps_its_rate_through_late_passes(results):
    # a driver that spreads each batch over its span (the Pico's PIO): 5 ms passes lose nothing (2 ms axes lost
    # 1.5 s above); 10 ms passes lose the 2 ms past the 8 ms paced gap, each. No batch holds more steps than its
    # span at the commanded 10 steps/ms (the first: move_to's 1 ms head start), and the spans add up to the move
    for gap_us, lag_each_ms in ((5000, 0), (10000, 2)):
        run = results[f"paced_lag_{gap_us}"]
        batches = run["batches"]
        assert sum(n for n, _ in batches) == 10000
        assert all(n <= span * 10 // 1000 for n, span in batches), batches
        assert all(span <= 1000 + 8000 for _, span in batches)
        assert run["lag_ms"] == run["elapsed_ms"] - 1000 == lag_each_ms * len(batches)


@pytest.mark.req("SR-040")
def test_pl_per_step_matches_geometry(results):
    # BD 1 mL, 4.78 mm bore, 1/3200 mm per microstep: 5.608 nL per step
    bd_1ml = next(row for row in results["drift"] if row["syringe"] == 1)
    assert bd_1ml["pl_per_step"] == 5608


@pytest.mark.req("SR-041")
def test_device_and_host_syringe_maths_agree(results):
    # one integer formula in spec.py: the device (MicroPython, float32 on rp2/esp32) and the host
    # (CPython) get the same capacity and pL per step, so their checks agree at a limit
    for code, ppm, capacity, pl in results["syringe_maths"]:
        assert (capacity, pl) == (spec.syringe_capacity_nl(code, ppm), spec.pl_per_step(code, 3200, ppm)), (code, ppm)
    assert len(results["syringe_maths"]) == 5 * len(spec.SYRINGES)


@pytest.mark.req("SR-041")
def test_syringe_maths_is_integer_only():
    # the float pi once gave capacities 1-2 nL apart in single (device) and double (host) precision:
    # no float constant and no true division in the formula
    import ast
    import inspect

    for fn in (spec.syringe_capacity_nl, spec.pl_per_step):
        tree = ast.parse(inspect.getsource(fn))
        floats = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, float)]
        divisions = [n for n in ast.walk(tree) if isinstance(n, ast.BinOp) and isinstance(n.op, ast.Div)]
        assert not floats and not divisions, fn.__name__


@pytest.mark.req("SR-001", "SR-002", "SR-003", "SR-004", "SR-005", "SR-006", "SR-008", "SR-010", "SR-011", "SR-012")
@pytest.mark.parametrize("index", range(len(LIMIT_CASES)))
def test_configure_limits(results, index):
    expected = LIMIT_CASES[index][1]
    assert results["limits"][index] == (list(expected) if expected else None)
