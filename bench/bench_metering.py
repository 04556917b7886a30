"""Metering accuracy on the simulated board, against ground truth; printed, never asserted.

For each syringe x backlash: a board with drawn imperfections (seed printed), its
bore calibrated on the simulated balance, then points and nappage shots of each
volume. Errors are ground truth (volume that left the needle in the skin) vs the
programmed volume; the quantisation limit is one microstep's volume.

    python bench/bench_metering.py [--quick] [--points N] [--seed S]
"""

from __future__ import annotations

import argparse
import dataclasses
import pathlib
import random
import statistics
import sys
import tempfile

from mesoinject import program as programs
from mesoinject.balance import Balance
from mesoinject.calibrate import calibrate
from mesoinject.client import Device
from mesoinject.records import RecordStore
from mesoinject.session import SessionRunner
from mesoprotocol import spec
from mesoinject.simulated import SimBoard
from mesosim import VirtualOperator
from mesosim.harness import imperfections
from benchlib import percentile

PROGRAMS = programs.EXAMPLES
PLUNGER_STEPS_PER_MM = 3200


def step_nl(syringe: int) -> float:
    d_mm = spec.SYRINGES[syringe][1] / 1000
    return 3.14159265 * d_mm * d_mm / 4 / PLUNGER_STEPS_PER_MM * 1000


def run_chunk(workdir, syringe, seed, play_um, prog, n):
    """n points or shots on a fresh syringe of a board whose flash (calibration) is kept in workdir."""
    profile = {"play_um": play_um}
    with SimBoard(syringe=syringe, seed=seed, profile=profile, workdir=workdir) as board, \
            Device.open(board.url) as device, tempfile.TemporaryDirectory() as tmp:
        store = RecordStore(pathlib.Path(tmp) / "bench.db")
        before = len(board.penetrations)
        with VirtualOperator(board, gap_s=0.02):
            outcome = SessionRunner(device, store).run(dataclasses.replace(prog, count=n), timeout_s=900)
        store.close()
        return outcome, board.penetrations[before:]


def measure(workdir, syringe, seed, play_um, prog, total):
    capacity = spec.syringe_capacity_nl(syringe)
    per_syringe = max(1, min(int(0.8 * (capacity - prog.prime_nl) / prog.volume_nl), 500))
    pens = []
    while len(pens) < total:
        outcome, got = run_chunk(workdir, syringe, seed, play_um, prog, min(per_syringe, total - len(pens)))
        if not outcome.completed:
            raise RuntimeError(f"bench program stopped: {outcome.outcome} {outcome.progress.alarms}")
        pens += got
    return pens


def row(label, prog, pens, quantum_nl):
    errors = [(p.volume_nl - prog.volume_nl) / prog.volume_nl * 100 for p in pens]
    abs_e = [abs(e) for e in errors]
    depth = max(abs(p.max_depth_um - prog.depth_um) for p in pens) / 1000
    line = (f"  {label:<18} n={len(pens):<4} mean {statistics.mean(errors):+7.3f} %  p99 |e| {percentile(abs_e, 99):6.3f} %"
            f"  max {max(abs_e):6.3f} %  quantum {quantum_nl / prog.volume_nl * 100:6.3f} %  depth err <= {depth:.3f} mm")
    if prog.technique == "nappage":
        t0 = [p.t0_us for p in pens[: min(len(pens), prog.count)]]
        gaps = [b - a for a, b in zip(t0, t0[1:])]
        period = 1e9 / prog.cadence_mhz
        mean = statistics.mean(gaps)
        line += (f"\n  {'':<18} cadence {prog.cadence_mhz / 1000:g}/s: mean error {(period / mean - 1) * 100:+.3f} %,"
                 f" p99 interval jitter {percentile([abs(g - period) for g in gaps], 99) / 1000:.2f} ms")
    return line


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a small sample (CI)")
    ap.add_argument("--points", type=int, help="points per volume (default 200, quick 10)")
    ap.add_argument("--seed", type=int, help="imperfections seed (default: random, printed)")
    ap.add_argument("--session", type=int, help="points in the cumulative-error session (default 1000, quick 100)")
    args = ap.parse_args()
    n = args.points or (8 if args.quick else 200)
    seed = args.seed if args.seed is not None else random.randrange(1 << 31)
    syringes = (1,) if args.quick else (1, 2, 3, 4)  # BD 1, 3, 5 and 10 mL
    plays = (60,) if args.quick else (20, 100)
    point_volumes = (10, 30, 50) if args.quick else (10, 20, 30, 50)
    shot_volumes = (1, 2, 5)
    base_point = programs.load(PROGRAMS / "point-by-point.toml")
    base_shot = programs.load(PROGRAMS / "nappage.toml")
    print(f"bench_metering{' (quick)' if args.quick else ''}: seed {seed} (replay with --seed {seed}), "
          f"{n} per volume; errors are ground truth vs programmed")
    for syringe in syringes:
        for play in plays:
            bore = imperfections(seed)["diameter_error"]
            with tempfile.TemporaryDirectory() as workdir:
                with SimBoard(syringe=syringe, seed=seed, profile={"play_um": play}, workdir=workdir) as board, \
                        Device.open(board.url) as device:
                    balance = Balance(board.balance.port)
                    cal = calibrate(device, balance, syringe=syringe, shots=6)
                    balance.close()
                print(f"{spec.SYRINGES[syringe][0]}, play (backlash + breakaway) {play} um, bore {bore * 100:+.2f} % "
                      f"-> calibrated area x {cal.new_ppm / 1e6:.5f} (true x {(1 + bore) ** 2:.5f})")
                quantum = step_nl(syringe)
                for ul in point_volumes:
                    prog = dataclasses.replace(base_point, syringe=syringe, volume_nl=ul * 1000, depth_um=2000)
                    print(row(f"point {ul} uL", prog, measure(workdir, syringe, seed, play, prog, n), quantum))
                for ul in shot_volumes:
                    if ul * 1000 < spec.MIN_DOSE_STEPS * quantum:
                        print(f"  nappage shot {ul} uL   refused by the device: below what a {spec.SYRINGES[syringe][0]} "
                              "meters to 1 %")
                        continue
                    prog = dataclasses.replace(base_shot, syringe=syringe, volume_nl=ul * 1000, flow_nl_s=100000)
                    print(row(f"nappage shot {ul} uL", prog, measure(workdir, syringe, seed, play, prog, n), quantum))
    # nappage cadence sweep and a long session's cumulative error, on a calibrated BD 1 mL
    with tempfile.TemporaryDirectory() as workdir:
        with SimBoard(syringe=1, seed=seed, workdir=workdir) as board, Device.open(board.url) as device:
            balance = Balance(board.balance.port)
            calibrate(device, balance, syringe=1, shots=6)
            balance.close()
        print("nappage cadence, 1 uL shots at 1 mm, BD 1 mL:")
        for hz in (1, 3, 6, 9, 12):
            prog = dataclasses.replace(base_shot, volume_nl=1000, depth_um=1000, cadence_mhz=hz * 1000,
                                       flow_nl_s=100000)
            pens = measure(workdir, 1, seed, imperfections(seed)["play_um"], prog, max(n, 12))
            t0 = [p.t0_us for p in pens]
            gaps = [b - a for a, b in zip(t0, t0[1:])]
            period = 1e6 / hz
            print(f"  {hz:>2}/s  n={len(pens):<4} mean cadence error {(period / statistics.mean(gaps) - 1) * 100:+.3f} %"
                  f"   p99 interval jitter {percentile([abs(g - period) for g in gaps], 99) / 1000:.2f} ms")
        total = args.session or (100 if args.quick else 1000)
        prog = dataclasses.replace(base_point, volume_nl=10000, depth_um=1000)
        pens = measure(workdir, 1, seed, imperfections(seed)["play_um"], prog, total)
        cumulative = sum(p.volume_nl for p in pens) / (prog.volume_nl * len(pens)) - 1
        print(f"cumulative error over a {len(pens)}-point session of 10 uL points: {cumulative * 100:+.3f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
