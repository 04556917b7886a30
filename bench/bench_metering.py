"""Metering accuracy on the simulated board, against ground truth; printed, never asserted.

Issue #20's cases (parameters pinned over the seed's draw) and the model's defaults (docs/sim-model.md)
for BD 1/3/5/10 mL at 20/50 uL points and 1/2 uL nappage shots, each on a board with drawn imperfections
(seed printed), calibrated on the simulated balance, then again uncalibrated. Errors are ground truth
(volume that left the needle in the skin) vs the programmed volume; p99 and max of |error|; the record vs
the truth; the depth the needle tip reached vs programmed.

    python bench/bench_metering.py [--quick] [--points N] [--seed S] [--cases TEXT]
"""

from __future__ import annotations

import argparse
import dataclasses
import pathlib
import random
import statistics
import sys
import tempfile
import time

from mesoinject import boots
from mesoinject import program as programs
from mesoinject.balance import Balance
from mesoinject.calibrate import CalibrationError, calibrate
from mesoinject.client import Device
from mesoinject.link import LinkError
from mesoinject.records import RecordStore
from mesoinject.session import SessionRunner
from mesoprotocol import spec
from mesoinject.simulated import SimBoard
from mesosim import NEEDLE_FIT_S, VirtualOperator
from mesosim.harness import imperfections
from benchlib import percentile

PROGRAMS = programs.EXAMPLES
PLUNGER_STEPS_PER_MM = 3200


def step_nl(syringe: int) -> float:
    d_mm = spec.SYRINGES[syringe][1] / 1000
    return 3.14159265 * d_mm * d_mm / 4 / PLUNGER_STEPS_PER_MM * 1000


def needle_profile(prog) -> dict:
    # the model's needle resistance follows the program's needle (Poiseuille)
    return {"needle_gauge": prog.needle_gauge, "needle_length_mm": prog.needle_length_um / 1000}


LINE_TEST = False  # --line-test: each fresh syringe gets a line test (outlet capped) before its session


def line_test(board, device, store, prog) -> None:
    """The syringe's line test before its session (PROTOCOL.md "Line test"): the boot's RESET stored and
    acknowledged, the program CONFIGUREd, the outlet capped, the test, the cap off. The session's CONFIGURE then
    finds the same syringe: its measured compliance and the sensor's lag stay in force."""
    boots.store_held_reset(device, store)
    device.abort()
    device.configure(**prog.configure_fields())
    with board.capped():
        result = device.line_test()
    if not result.ok:
        raise RuntimeError(f"line test {result.outcome_name}")
    time.sleep(NEEDLE_FIT_S)  # the operator's time, the board's model running: not a synchronisation


def run_chunk(workdir, syringe, seed, profile, prog, n):
    """n points or shots on a fresh syringe of a board whose flash (calibration) is kept in workdir."""
    profile = dict(needle_profile(prog), **profile)
    with SimBoard(syringe=syringe, seed=seed, profile=profile, workdir=workdir) as board, \
            Device.open(board.url) as device, tempfile.TemporaryDirectory() as tmp:
        store = RecordStore(pathlib.Path(tmp) / "bench.db")
        if LINE_TEST:
            line_test(board, device, store, dataclasses.replace(prog, count=n))
        before = len(board.penetrations)
        with VirtualOperator(board, gap_s=0.02):
            outcome = SessionRunner(device, store).run(dataclasses.replace(prog, count=n), timeout_s=900)
        records = [r for r in store.deliveries(outcome.session_id) if r["kind"] in ("point", "shot")]
        store.close()
        return outcome, board.penetrations[before:], records


def measure(workdir, syringe, seed, profile, prog, total, firsts=None):
    """(penetrations, records) of `total` points or shots, over as many fresh syringes as that takes; firsts (a
    list): gets the index of each session's first point (its stopper's creep charges from what the prime left)."""
    if isinstance(profile, (int, float)):  # a play, as the cadence sweep passes it
        profile = {"play_um": profile}
    capacity = spec.syringe_capacity_nl(syringe)
    per_syringe = max(1, min(int(0.8 * (capacity - prog.prime_nl) / prog.volume_nl), 500))
    pens, records = [], []
    while len(pens) < total:
        outcome, got, recs = run_chunk(workdir, syringe, seed, profile, prog, min(per_syringe, total - len(pens)))
        if not outcome.completed:
            raise RuntimeError(f"bench program stopped: {outcome.outcome} {outcome.progress.alarms}")
        if firsts is not None and got:
            firsts.append(len(pens))
        pens += got
        records += recs
    return pens, records


def calibrate_board(workdir, syringe, seed, profile):
    """The bore calibrated on the simulated balance; the area factor, or the device's refusal as text - with each
    shot's estimate, balance reading and the model's truth, so a refusal says which shot stood apart and whose
    figure moved (issue #20: a spread refusal seen once, not reproduced in 50 calibrations)."""
    with SimBoard(syringe=syringe, seed=seed, profile=profile, workdir=workdir) as board, \
            Device.open(board.url) as device, tempfile.TemporaryDirectory() as tmp, \
            RecordStore(pathlib.Path(tmp) / "bench.db") as store:  # the boot's RESET, stored before it is acknowledged
        balance = Balance(board.balance.port)
        shots: list[str] = []
        last = [None]

        def shot(i, estimate, measured):  # the truth between two shots (the first one's holds the fill: "?")
            now, was = board.truth(), last[0]
            shots.append(f"{estimate}/{measured:.0f}/" + ("?" if was is None else
                         f"{now.air_nl - was.air_nl:.0f}/{was.content_nl - now.content_nl:.0f}/"
                         f"{now.forward_steps - was.forward_steps}"))
            last[0] = now
        try:
            return calibrate(device, balance, syringe=syringe, store=store, shots=6, on_shot=shot).new_ppm / 1e6
        except CalibrationError as e:
            return (f"{e} [shots, estimate/balance/true nL (the model's: out into the air/out of the syringe nL/"
                    f"plunger steps forward): {' '.join(shots)}]")
        finally:
            balance.close()


@dataclasses.dataclass
class Case:
    label: str
    syringe: int
    volume_ul: float
    nappage: bool = False
    profile: dict = dataclasses.field(default_factory=dict)  # pinned on top of the seed's draw
    flow_ul_s: int | None = None


def issue_cases() -> list[Case]:
    """The issue #20 table's cases (same parameters pinned), then the model's defaults."""
    bd1, bd3, bd5, bd10, terumo25 = 1, 2, 3, 4, 6
    cases = [
        Case("play 200 um", bd1, 50, profile={"play_um": 200}),
        Case("compliance 6 nL/kPa", bd1, 50, profile={"compliance_nl_per_kpa": 6.0}),
        Case("C 3 + tissue 4 kPa/uL", bd1, 50, profile={"compliance_nl_per_kpa": 3.0, "tissue_kpa_per_ul": 4.0}),
    ]
    for size in (bd3, bd5, bd10):
        cases.append(Case("C 0.06/mm2 (max)", size, 50, profile={"compliance_nl_per_kpa_mm2": 0.06}))
    for ul in (5, 10, 20):
        cases.append(Case("R 0.0016 @100 uL/s", bd1, ul, profile={"resistance_kpa_s_per_nl": 0.0016}, flow_ul_s=100))
    cases += [Case("nappage 2 uL", bd3, 2, nappage=True), Case("nappage 2 uL", terumo25, 2, nappage=True)]
    cases += [Case("bore +3 %", bd1, 50, profile={"diameter_error": 0.03}),
              Case("bore -3 %", bd1, 50, profile={"diameter_error": -0.03})]
    for size in (bd1, bd3, bd5, bd10):
        cases += [Case("defaults", size, 20), Case("defaults", size, 50)]
        cases += [Case("defaults nappage", size, ul, nappage=True) for ul in (1, 2)]
    return cases


def case_program(case, base_point, base_shot):
    if case.nappage:
        prog = dataclasses.replace(base_shot, syringe=case.syringe, volume_nl=int(case.volume_ul * 1000),
                                   flow_nl_s=100000)
    else:
        prog = dataclasses.replace(base_point, syringe=case.syringe, volume_nl=int(case.volume_ul * 1000), depth_um=2000)
    if case.flow_ul_s:
        prog = dataclasses.replace(prog, flow_nl_s=case.flow_ul_s * 1000)
    return prog


def case_row(case, seed, n, base_point, base_shot, calibrated):
    """One table row: p99 and max |error| of the volume that left the needle in the skin vs programmed."""
    name = f"{case.label}, {spec.SYRINGES[case.syringe][0]}, {'shot' if case.nappage else 'point'} {case.volume_ul:g} uL"
    prog = case_program(case, base_point, base_shot)
    quantum = step_nl(case.syringe)
    if prog.volume_nl < spec.MIN_DOSE_STEPS * quantum:
        return f"  {name:<52} refused by the device: below what it meters to 1 %"
    drawn = imperfections(seed, case.syringe)
    drawn.update(case.profile)
    bore = drawn["diameter_error"]
    with tempfile.TemporaryDirectory() as workdir:
        cal = calibrate_board(workdir, case.syringe, seed, dict(needle_profile(prog), **case.profile)) if calibrated else None
        if isinstance(cal, str):
            return f"  {name:<52} calibration refused: {cal}"
        firsts: list[int] = []
        pens, records = measure(workdir, case.syringe, seed, case.profile, prog, n, firsts)
    area = (1 + bore) ** 2
    errors = [(p.volume_nl - prog.volume_nl) / prog.volume_nl * 100 for p in pens]
    abs_e = [abs(e) for e in errors]
    # the record against the truth: what the device says it delivered
    rec_e = [abs(r["delivered_nl"] - p.volume_nl) / p.volume_nl * 100 for r, p in zip(records, pens)]
    depth = [abs(p.max_depth_um - prog.depth_um) for p in pens]
    flagged = sum(1 for r in records if r["flags"] & spec.FLAG_UNCALIBRATED)
    line = (f"  {name:<52} n={len(pens):<3} bore {bore * 100:+5.2f} % "
            + (f"cal x{cal:.4f} (true x{area:.4f}) " if calibrated else f"uncal (area x{area:.4f}) ")
            + f"mean {statistics.mean(errors):+6.2f} %  p99 |e| {percentile(abs_e, 99):5.2f} %  max {max(abs_e):5.2f} %")
    # a session's first point apart from the rest (issue #20: the stopper's creep charges from what the prime left)
    rest = [e for i, e in enumerate(abs_e) if i not in firsts]
    line += (f"  1st of session {statistics.mean(errors[i] for i in firsts):+5.2f} %"
             + (f", rest p99 {percentile(rest, 99):4.2f} %" if rest else ""))
    if not calibrated:  # what remains once the bore's own error is taken out
        net = [abs(p.volume_nl / (prog.volume_nl * area) - 1) * 100 for p in pens]
        line += f"  net of bore p99 {percentile(net, 99):5.2f} %"
    line += (f"  record vs truth p99 {percentile(rec_e, 99):5.2f} %  flagged uncal {flagged}/{len(records)}"
             f"  depth err p99 {percentile(depth, 99):.0f} um  reflux mean {statistics.mean(p.reflux_nl for p in pens):.1f} nL")
    return line


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a small sample (CI)")
    ap.add_argument("--points", type=int, help="points per case (default 40, quick 6)")
    ap.add_argument("--seed", type=int, help="imperfections seed (default: random, printed)")
    ap.add_argument("--session", type=int,
                    help="points in the cumulative-error session (default 1000; quick or 0: no cadence sweep nor session)")
    ap.add_argument("--cases", help="only the cases whose label contains this text")
    ap.add_argument("--only", choices=("calibrated", "uncalibrated"), help="one half of the table")
    ap.add_argument("--line-test", action="store_true",
                    help="a line test (outlet capped) on each fresh syringe before its points: the measured compliance")
    args = ap.parse_args()
    global LINE_TEST
    LINE_TEST = args.line_test
    n = args.points or (6 if args.quick else 40)
    seed = args.seed if args.seed is not None else random.randrange(1 << 31)
    base_point = programs.load(PROGRAMS / "point-by-point.toml")
    base_shot = programs.load(PROGRAMS / "nappage.toml")
    tests = " with line tests" if args.line_test else ""
    print(f"bench_metering{' (quick)' if args.quick else ''}{tests}: seed {seed} (replay with --seed {seed}), {n} per case; "
          "errors: volume out of the needle in the skin (ground truth) vs programmed; the model: docs/sim-model.md")
    cases = [Case("defaults", 1, 50)] if args.quick else issue_cases()
    if args.cases:
        cases = [c for c in cases if args.cases in c.label]
    lost = 0
    for calibrated in (True, False):
        if args.only and args.only != ("calibrated" if calibrated else "uncalibrated"):
            continue
        print("calibrated (6 balance shots):" if calibrated else "uncalibrated (the table's bore; records flagged):")
        for case in cases:
            try:
                print(case_row(case, seed, n, base_point, base_shot, calibrated), flush=True)
            except (LinkError, RuntimeError) as e:  # one row lost (a link given up under load): said, the table goes on
                print(f"  {case.label}, {spec.SYRINGES[case.syringe][0]}: row lost - {type(e).__name__}: {e}", flush=True)
                lost += 1
    if lost or (args.quick and not args.session) or args.session == 0:
        return 1 if lost else 0
    # nappage cadence sweep and a long session's cumulative error, on a calibrated BD 1 mL
    with tempfile.TemporaryDirectory() as workdir:
        calibrate_board(workdir, 1, seed, {})
        print("nappage cadence, 1 uL shots at 1 mm, BD 1 mL:")
        for hz in (1, 3, 6, 9, 12):
            prog = dataclasses.replace(base_shot, volume_nl=1000, depth_um=1000, cadence_mhz=hz * 1000,
                                       flow_nl_s=100000)
            pens, _ = measure(workdir, 1, seed, {}, prog, max(n, 12))
            t0 = [p.t0_us for p in pens]
            gaps = [b - a for a, b in zip(t0, t0[1:])]
            period = 1e6 / hz
            print(f"  {hz:>2}/s  n={len(pens):<4} mean cadence error {(period / statistics.mean(gaps) - 1) * 100:+.3f} %"
                  f"   p99 interval jitter {percentile([abs(g - period) for g in gaps], 99) / 1000:.2f} ms")
        total = args.session or 1000
        prog = dataclasses.replace(base_point, volume_nl=10000, depth_um=1000)
        pens, _ = measure(workdir, 1, seed, {}, prog, total)
        cumulative = sum(p.volume_nl for p in pens) / (prog.volume_nl * len(pens)) - 1
        print(f"cumulative error over a {len(pens)}-point session of 10 uL points: {cumulative * 100:+.3f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
