"""How long the host goes quiet during a session on the simulated board; figures are printed, never asserted.

The device stops on LINK_LOST after link_timeout_ms (500 ms) without a session command from the controlling host.
Per run: the longest gap between the session runner's own session commands (what the device heard before the
heartbeat thread), the longest gap between any of them, heartbeat included (what it hears now), the heartbeat's
POLLs, and how the run ended. Run it beside CPU hogs (`yes > /dev/null`) to see a loaded host.

    python bench/bench_host_silence.py [--runs 3] [--points 6] [--stall-ms 0]   (one BD 1 mL syringe: runs x points x 30 uL < 1 mL)
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import pathlib
import tempfile
import threading
import time

from mesoinject import program as programs
from mesoinject.client import Device
from mesoinject.records import RecordStore
from mesoinject.session import SessionRunner
from mesoinject.simulated import SimBoard
from mesoprotocol import spec
from mesosim import VirtualOperator


def gaps_of(times: list[float]) -> float:
    return max((b - a for a, b in zip(times, times[1:])), default=0.0)


def one_run(board: SimBoard, points: int, stall_s: float) -> dict:
    sent: list[tuple[float, bool]] = []  # (host time, sent by the heartbeat thread)

    with tempfile.TemporaryDirectory() as tmp, Device.open(board.url) as dev:
        authenticated = dev._authenticated

        def recorded(msg_type, fields, retry=True):
            sent.append((time.monotonic(), threading.current_thread().name == "mesoinject-heartbeat"))
            return authenticated(msg_type, fields, retry)

        dev._authenticated = recorded
        store = RecordStore(pathlib.Path(tmp) / "bench.db", busy_timeout_s=0.1)
        stalled = []

        def show(progress):  # a slow screen once, if asked: the CLI's own pause
            if stall_s and progress.done and not stalled:
                stalled.append(1)
                time.sleep(stall_s)

        prog = dataclasses.replace(programs.load(programs.EXAMPLES / "point-by-point.toml"), count=points)
        runner = SessionRunner(dev, store, on_progress=show)
        with VirtualOperator(board, gap_s=0.02):
            outcome = runner.run(prog, timeout_s=600)
        store.close()
    armed = [t for t, _ in sent]
    own = [t for t, beat in sent if not beat]
    return {"outcome": outcome.words, "own_gap_ms": gaps_of(own) * 1e3, "any_gap_ms": gaps_of(armed) * 1e3,
            "beats": sum(beat for _, beat in sent), "error": runner.heartbeat.error, "link_lost": any(a == spec.ALARM_LINK_LOST
                                                                     for a, _ in outcome.progress.alarms)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--points", type=int, default=6)
    ap.add_argument("--stall-ms", type=float, default=0.0, help="hold the runner up this long once (a slow screen)")
    args = ap.parse_args()
    with SimBoard() as board:
        for i in range(args.runs):
            r = one_run(board, args.points, args.stall_ms / 1000)
            print(f"run {i + 1}: load {os.getloadavg()[0]:.1f}  runner's own longest gap {r['own_gap_ms']:.0f} ms  "
                  f"device's longest silence {r['any_gap_ms']:.0f} ms  heartbeat POLLs {r['beats']}  "
                  f"LINK_LOST {r['link_lost']}  ({r['outcome']})" + (f"  heartbeat error: {r['error']}" if r["error"] else ""))


if __name__ == "__main__":
    main()
