"""The VirtualDevice against the simulated board: a 20-point session (the point-by-point example,
SessionRunner.run, the trigger worked by mesosim's VirtualOperator), start-up and session wall time.
Figures are printed, never asserted.

    python bench/bench_virtual.py [--quick]     # --quick: the virtual device only
"""

from __future__ import annotations

import argparse
import pathlib
import tempfile
import time

from mesoinject import program as programs
from mesoinject.client import Device
from mesoinject.records import RecordStore
from mesoinject.session import SessionRunner
from mesoinject.simulated import SimBoard
from mesoinject.virtual import VirtualDevice
from mesosim import VirtualOperator


def session(make, poll_s: float) -> tuple[float, float, str, int]:
    prog = programs.load(programs.EXAMPLES / "point-by-point.toml")
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, make() as board, Device.open(board.url) as dev:
        t1 = time.perf_counter()
        store = RecordStore(pathlib.Path(tmp) / "bench.db")
        with VirtualOperator(board, gap_s=0) as op:
            out = SessionRunner(dev, store, poll_s=poll_s).run(prog, timeout_s=300)
        t2 = time.perf_counter()
        if op.error:
            raise op.error
        points = len([r for r in store.deliveries(out.session_id) if r["kind"] != "prime"])
        store.close()
    return t1 - t0, t2 - t1, out.outcome, points


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="the virtual device only (CI)")
    args = ap.parse_args()
    rows = [("virtual", VirtualDevice, 0.1), ("virtual", VirtualDevice, 0.02)]
    if not args.quick:
        rows += [("sim", SimBoard, 0.1)]
    print("bench_virtual: 20-point session (point-by-point example), wall time")
    for name, make, poll_s in rows:
        start, run, outcome, points = session(make, poll_s)
        print(f"  {name:<8} poll {poll_s * 1000:3.0f} ms: start {start:5.2f} s, session {run:6.2f} s ({outcome}, {points} points)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
