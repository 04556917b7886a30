"""Torture: no delivery lost or counted twice, against the simulated board's ground truth.

Nappage sessions run back to back on one simulated board while the link corrupts a
fraction of its frames, the host's cable is pulled at random moments and the power
is cut while the needle is in the skin. A virtual operator works the trigger, swaps
the syringe when it runs empty and acknowledges faults; the host reconnects and
carries on. Afterwards every needle entry the model saw is matched (by board clock)
with the records in the SQLite store. Printed, never asserted (test_torture.py asserts
the quick run).

    python bench/bench_torture.py [--quick] [--deliveries N] [--disconnects N] [--power-cuts N]
                                  [--noise RATE] [--seed S]
"""

from __future__ import annotations

import argparse
import bisect
import collections
import dataclasses
import pathlib
import random
import sys
import tempfile
import threading
import time

from mesoinject import program as programs
from mesoinject import sync
from mesoinject.client import Device, DeviceRefused
from mesoinject.link import LinkError
from mesoinject.records import RecordStore
from mesoinject.session import DeviceInFault, SessionRunner
from mesoprotocol import spec
from mesoinject.simulated import SimBoard
from mesosim import LinkFaults, VirtualOperator
from mesosim.harness import ticks_diff

PROGRAMS = programs.EXAMPLES
SYRINGE = 1  # BD 1 mL: 1 uL shots meter to 1 % (a 3 mL syringe needs at least 1.8 uL)
SHOT = dict(syringe=SYRINGE, volume_nl=1000, depth_um=1000, cadence_mhz=10000, flow_nl_s=50000, prime_nl=2000)
TRACE_NL = 20  # a needle entry with less than this left the syringe in it is not a delivery
EXACT_NL = 50  # a record vs the truth: the line's stored volume, unknown to the firmware
CHECKPOINT_NL = min(spec.JOURNAL_CHECKPOINT_NL, SHOT["volume_nl"] // 4)  # a power cut loses up to one interval


@dataclasses.dataclass
class Result:
    seed: int
    penetrations: int
    records: int
    lost: int
    duplicated: int
    out_of_tolerance: int
    partial: int
    power_lost: int
    worst_partial_nl: float
    recorded_nl: int
    truth_nl: float
    corrupted_frames: int
    disconnects: int
    power_cuts: int
    interruptions: dict
    seconds: float


class Chaos(threading.Thread):
    """Pulls the cable and cuts the power at drawn needle-entry counts."""

    def __init__(self, board: SimBoard, rng: random.Random, n: int, disconnects: int, power_cuts: int):
        super().__init__(name="chaos", daemon=True)
        self.board = board
        self.rng = rng
        span = range(10, max(11, n - 5))
        plan = [(i, "cable") for i in rng.sample(span, disconnects)] + [(i, "power") for i in rng.sample(span, power_cuts)]
        self.plan = sorted(plan)
        self.done = collections.Counter()
        self.stop = threading.Event()

    def _while_dispensing(self) -> None:
        # returns while the plunger pushes with the needle in the skin (or after 5 s)
        b = self.board
        deadline = time.monotonic() + 5
        before = b.truth()
        while time.monotonic() < deadline:
            now = b.truth()
            if now.depth_um > 0 and now.content_nl < before.content_nl:
                return
            before = now

    def run(self) -> None:
        b = self.board
        for at, what in self.plan:
            while len(b.penetrations) < at:
                if self.stop.wait(0.01):
                    return
            if what == "power":
                self._while_dispensing()
                time.sleep(self.rng.uniform(0, 0.015))  # somewhere in the shot's 20 ms of dispensing
                b.power_cut(off_s=0.2)
            else:
                b.set_link("cut")
                self.stop.wait(self.rng.uniform(0.05, 1.5))  # short ones retransmit; long ones lose the link
                b.set_link("ok")
            self.done[what] += 1


UNTIMED_FLASH = {"flash_erase_ms": 0, "flash_page_us": 0}


def run(n: int, disconnects: int, power_cuts: int, noise: float, seed: int, workdir: pathlib.Path,
        timed_flash: bool = True) -> Result:
    """timed_flash False: the board's flash takes no time (records' guarantees do not depend on it: a write's
    bytes are on the image before its busy time, so a cut lands between writes either way; twice as fast)."""
    rng = random.Random(seed)
    base = programs.load(PROGRAMS / "nappage.toml")
    store = RecordStore(workdir / "records.db")
    interruptions: collections.Counter = collections.Counter()
    t0 = time.monotonic()
    profile = {"diameter_error": 0.0, **({} if timed_flash else UNTIMED_FLASH)}
    with SimBoard(syringe=SYRINGE, seed=seed, profile=profile, workdir=workdir / "board") as board:
        board.set_link_faults(LinkFaults(flip=noise, seed=seed))
        chaos = Chaos(board, rng, n, disconnects, power_cuts)
        chaos.start()
        with VirtualOperator(board, gap_s=0.05) as op:
            while len(board.penetrations) < n:
                try:
                    with Device.open(board.url) as dev:
                        _recover(dev, board)
                        shots = max(1, min(500, n - len(board.penetrations)))
                        program = dataclasses.replace(base, count=shots, **SHOT)
                        SessionRunner(dev, store).run(program, timeout_s=shots / 5 + 30)
                except (LinkError, DeviceInFault, DeviceRefused, RuntimeError, TimeoutError) as e:
                    interruptions[type(e).__name__] += 1
            chaos.stop.set()
            chaos.join()
        assert op.error is None, op.error
        corrupted = board.faults.counts["flipped"]
        board.set_link_faults(None)
        with Device.open(board.url) as dev:  # whatever the last interruption left on the device
            dev.hello()
            sync.drain(dev, store)
        penetrations = list(board.penetrations)
    seconds = time.monotonic() - t0
    rows = [r for r in store.deliveries() if r["kind"] != "prime"]
    store.close()
    return _compare(seed, penetrations, rows, corrupted, chaos.done, interruptions, seconds)


def _recover(dev: Device, board: SimBoard) -> None:
    """The operator's part after an interruption: swap an empty syringe, clear the fault."""
    dev.hello()
    status = dev.status()
    if status["state"] == spec.STATE_FAULT and status["alarm"] != spec.ALARM_RESET:
        if status["alarm"] == spec.ALARM_SYRINGE_EMPTY:
            board.set_content(spec.syringe_capacity_nl(SYRINGE))
        dev.abort()
    elif status["state"] not in (spec.STATE_IDLE, spec.STATE_FAULT):
        dev.abort()


def _compare(seed, penetrations, rows, corrupted, done, interruptions, seconds) -> Result:
    # a record's device time (ms, the board clock) falls inside its needle entry: both on the board's
    # ticks_ms (its ticks_us wraps apart from it on a 32-bit port). The clock runs on across the
    # simulated board's reboots unless MICROPY_TICKS_WRAP_S restarts it at every boot.
    matched = collections.defaultdict(list)
    unmatched_records = 0
    starts = [p.t1_ms - ticks_diff(p.t1_us, p.t0_us) // 1000 for p in penetrations]
    for r in rows:
        i = _entry_at(starts, penetrations, r["device_time_ms"])
        if i is None:
            unmatched_records += r["delivered_nl"] > TRACE_NL
            if r["delivered_nl"] > TRACE_NL:
                print(f"  no needle entry for record {r['record_id']:#x}: {r['delivered_nl']} nL flags {r['flags']:#x}",
                      file=sys.stderr)
        else:
            matched[i].append(r)
    lost = duplicated = bad = partial = power_lost = 0
    worst = 0.0
    for i, p in enumerate(penetrations):
        records = matched.get(i, [])
        if not records:
            lost += p.volume_nl > TRACE_NL
            if p.volume_nl > TRACE_NL:
                near = [(r["record_id"], r["device_time_ms"], r["delivered_nl"], r["flags"]) for r in rows
                        if abs(r["device_time_ms"] - p.t1_ms) < 1000]
                print(f"  no record for entry {i}: {p.volume_nl:.0f} nL, {starts[i]}..{p.t1_ms} ms; records near: {near}",
                      file=sys.stderr)
            continue
        duplicated += len(records) - 1
        r = records[0]
        err = r["delivered_nl"] - p.volume_nl
        if r["flags"] & spec.FLAG_PARTIAL:
            partial += 1
            worst = max(worst, abs(err))
            print(f"  partial: entry {i} truth {p.volume_nl:.0f} nL, record {r['delivered_nl']} nL flags {r['flags']:#x}",
                  file=sys.stderr)
        tolerance = CHECKPOINT_NL + EXACT_NL if r["flags"] & spec.FLAG_POWER_LOST else max(EXACT_NL, 0.01 * p.volume_nl)
        power_lost += bool(r["flags"] & spec.FLAG_POWER_LOST)
        if abs(err) > tolerance:
            bad += 1
            print(f"  out of tolerance: entry {i} truth {p.volume_nl:.0f} nL, record {r['record_id']:#x} "
                  f"{r['delivered_nl']} nL flags {r['flags']:#x} ({len(records)} records)", file=sys.stderr)
    return Result(seed, len(penetrations), len(rows), lost + unmatched_records, duplicated, bad, partial, power_lost,
                  worst, sum(r["delivered_nl"] for r in rows), sum(p.volume_nl for p in penetrations), corrupted,
                  done["cable"], done["power"], dict(interruptions), seconds)


def _entry_at(starts, penetrations, t_ms):
    i = bisect.bisect_right(starts, t_ms + 1) - 1  # +1, -1: the two clocks' millisecond edges differ
    if i >= 0 and starts[i] - 1 <= t_ms <= penetrations[i].t1_ms + 2:
        return i
    return None


def report(r: Result) -> None:
    print(f"torture (seed {r.seed}): {r.penetrations} needle entries, {r.records} records, {r.seconds:.0f} s")
    print(f"  chaos: {r.corrupted_frames} frames corrupted, {r.disconnects} cable pulls, {r.power_cuts} power cuts; "
          f"host-side interruptions {r.interruptions}")
    print(f"  lost {r.lost}, duplicated {r.duplicated}, out of tolerance {r.out_of_tolerance}")
    print(f"  partial points {r.partial} (power lost {r.power_lost}), worst partial error {r.worst_partial_nl:.0f} nL")
    print(f"  recorded {r.recorded_nl / 1000:.3f} uL vs truth {r.truth_nl / 1000:.3f} uL "
          f"({(r.recorded_nl - r.truth_nl) / r.truth_nl * 100:+.3f} %)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a short run (CI): 300 shots, 3 cable pulls, 2 power cuts")
    ap.add_argument("--deliveries", type=int, help="needle entries (default 10000)")
    ap.add_argument("--disconnects", type=int, help="cable pulls (default 50)")
    ap.add_argument("--power-cuts", type=int, help="power cuts mid-point (default 20)")
    ap.add_argument("--noise", type=float, default=0.01, help="fraction of frames corrupted (default 0.01)")
    ap.add_argument("--seed", type=int, help="default: random, printed")
    ap.add_argument("--flash", choices=("typical", "untimed"), default="typical",
                    help="the board's flash timing (default typical datasheet timing; untimed: twice as fast, CI)")
    args = ap.parse_args()
    n = args.deliveries or (300 if args.quick else 10000)
    disconnects = args.disconnects if args.disconnects is not None else (3 if args.quick else 50)
    cuts = args.power_cuts if args.power_cuts is not None else (2 if args.quick else 20)
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    with tempfile.TemporaryDirectory(prefix="torture-") as d:
        result = run(n, disconnects, cuts, args.noise, seed, pathlib.Path(d), args.flash == "typical")
    report(result)
    return 0 if not (result.lost or result.duplicated or result.out_of_tolerance) else 1


if __name__ == "__main__":
    sys.exit(main())
