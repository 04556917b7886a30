"""Benchmarks on the simulated board; figures are printed, never asserted.

- STATUS round trip over the socket:// and pty ports (p50/p99)
- per-point volume error: recorded (firmware estimate) and programmed vs ground truth
- nappage cadence error from ground-truth needle entries

    python bench/bench_sim.py [--quick]
"""

from __future__ import annotations

import argparse
import dataclasses
import pathlib
import platform
import statistics
import sys
import tempfile
import time

from mesoinject import codec
from mesoinject import program as programs
from mesoinject.client import Device
from mesoinject.link import Link
from mesoinject.records import RecordStore
from mesoinject.session import SessionRunner
from mesoprotocol import spec
from mesoinject.simulated import SimBoard
from mesosim import VirtualOperator
from benchlib import percentile

PROGRAMS = programs.EXAMPLES


def round_trips(url: str, n: int) -> list[float]:
    link = Link(url)
    times = []
    try:
        for i in range(n):
            frame = codec.encode(spec.STATUS, i & 0xFF)
            t0 = time.perf_counter()
            reply = link.exchange(frame, i & 0xFF)
            times.append((time.perf_counter() - t0) * 1e6)
            if reply is None:
                raise RuntimeError("STATUS lost on the sim link")
    finally:
        link.close()
    return times


def run(board: SimBoard, prog: programs.Program):
    before = len(board.penetrations)
    with tempfile.TemporaryDirectory() as tmp, Device.open(board.url) as dev, VirtualOperator(board, gap_s=0.02):
        store = RecordStore(pathlib.Path(tmp) / "bench.db")
        outcome = SessionRunner(dev, store).run(prog, timeout_s=600)
        rows = [r for r in store.deliveries(outcome.session_id) if r["kind"] != "prime"]
        store.close()
    return outcome, rows, board.penetrations[before:]


def error_row(name, errors_pct):
    abs_err = [abs(e) for e in errors_pct]
    return f"  {name:<34} mean {statistics.mean(errors_pct):+8.4f} %   p99 |e| {percentile(abs_err, 99):7.4f} %   max {max(abs_err):7.4f} %"


def print_errors(what, prog, rows, truth):
    print(error_row(f"{what}recorded vs ground truth",
                    [(r["delivered_nl"] - p.volume_nl) / p.volume_nl * 100 for r, p in zip(rows, truth)]))
    print(error_row(f"{what}ground truth vs programmed",
                    [(p.volume_nl - prog.volume_nl) / prog.volume_nl * 100 for p in truth]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sample sizes (CI)")
    args = ap.parse_args()
    n_rtt, n_points, n_shots = (300, 10, 30) if args.quick else (2000, 30, 200)  # 30 x 30 uL fill a 1 mL syringe

    print(f"bench_sim{' (quick)' if args.quick else ''}: {platform.node()} {platform.machine()}, "
          f"Python {platform.python_version()}, {len(__import__('os').sched_getaffinity(0))} cpus")
    with SimBoard() as board:
        for name, url in (("socket://", board.url), ("pty", board.pty_path)):
            t = round_trips(url, n_rtt)
            print(f"STATUS round trip over {name:<9} n={n_rtt}: p50 {percentile(t, 50):6.0f} us   "
                  f"p99 {percentile(t, 99):6.0f} us   max {max(t):6.0f} us")

        prog = dataclasses.replace(programs.load(PROGRAMS / "point-by-point.toml"), count=n_points)
        outcome, rows, truth = run(board, prog)
        print(f"point-by-point: {prog.count} x {prog.volume_nl / 1000:g} uL ({prog.syringe_name}), {outcome.outcome}, "
              f"{len(truth)} needle entries")
        print_errors("", prog, rows, truth)

    nap = dataclasses.replace(programs.load(PROGRAMS / "nappage.toml"), count=n_shots)
    with SimBoard() as board:  # a fresh board and syringe: the points above used most of the first
        outcome, rows, truth = run(board, nap)
        period = 1e9 / nap.cadence_mhz
        intervals = [b.t0_us - a.t0_us for a, b in zip(truth, truth[1:])]
        mean_period = (truth[-1].t0_us - truth[0].t0_us) / (len(truth) - 1)
        print(f"nappage: {nap.count} shots x {nap.volume_nl / 1000:g} uL at {nap.cadence_mhz / 1000:g} Hz, "
              f"{outcome.outcome}, {len(truth)} needle entries")
        print(f"  cadence error (mean period)        {(period / mean_period - 1) * 100:+8.4f} %   "
              f"interval p99 |jitter| {percentile([abs(i - period) for i in intervals], 99):6.0f} us")
        print_errors("shot ", nap, rows, truth)
    return 0


if __name__ == "__main__":
    sys.exit(main())
