"""Nappage cadence on the simulated board, from the model's needle entries; printed, never asserted.

Bursts of nappage shots at 6, 9 and 12 Hz, each run a session as a clinic runs it (SessionRunner:
signed polls, records stored and acknowledged, the virtual operator holding the trigger). For every
run the intervals between needle entries (the model's clock) against the programmed period: jitter
p99 per cadence over all runs, the count of intervals more than 5 ms off (target 0), and for each such
outlier what the board reported around it (a flash erase begun, the loop's overrun count and worst pass
from STATUS), so a stall can be told apart: the firmware's own pass (GC, flash) or the host machine's.

    python bench/bench_cadence.py [--quick] [--runs N] [--shots N] [--flash typical|slow|untimed]
"""

from __future__ import annotations

import argparse
import os
import dataclasses
import pathlib
import platform
import sys
import tempfile

from mesoinject import program as programs
from mesoinject.client import Device
from mesoinject.records import RecordStore
from mesoinject.session import DeviceInFault, SessionRunner
from mesoinject.simulated import SimBoard
from mesosim import VirtualOperator
from mesosim.harness import ticks_diff
from benchlib import percentile

CADENCES_HZ = (6, 9, 12)
OUTLIER_US = 5000
SHOT_NL = 1000  # 1 uL shots (BD 1 mL meters them to 1 %): 12 Hz fits the cadence ceiling at 1 mm
DEPTH_UM = 1000
FLOW_NL_S = 80000  # 12 Hz of 1 uL shots at 1 mm needs 66.7 uL/s (a shot in 80 % of its period)
FLASH = {"untimed": {"flash_erase_ms": 0, "flash_page_us": 0},
         "typical": {"flash_erase_ms": 45, "flash_page_us": 600},  # board_flash.py's TYPICAL_*
         "slow": {"flash_erase_ms": 400, "flash_page_us": 800}}


@dataclasses.dataclass
class Run:
    hz: int
    intervals_us: list
    erases: int
    overruns: int
    worst_pass_us: int
    outliers: list  # (shot index, interval us, erases begun during the interval, the board's gaps in it)


def one_run(board: SimBoard, base: programs.Program, hz: int, shots: int) -> Run:
    prog = dataclasses.replace(base, cadence_mhz=hz * 1000, count=shots, volume_nl=SHOT_NL, depth_um=DEPTH_UM,
                               flow_nl_s=FLOW_NL_S)
    before = len(board.penetrations)
    erases0 = board.erases
    with tempfile.TemporaryDirectory() as tmp, Device.open(board.url) as dev:
        s0 = dev.status()
        with VirtualOperator(board, gap_s=0.02):
            store = RecordStore(pathlib.Path(tmp) / "bench.db")
            SessionRunner(dev, store).run(prog, timeout_s=120)
            store.close()
        s1 = dev.status()
    pens = board.penetrations[before:]
    period = 1_000_000 // hz
    # within the burst only: the first entry follows the slack take-up, each later one a period on
    intervals = [ticks_diff(b.t0_us, a.t0_us) for a, b in zip(pens, pens[1:])]
    outliers = []
    for i, iv in enumerate(intervals):
        if abs(iv - period) > OUTLIER_US:
            a, b = pens[i].t0_us, pens[i + 1].t0_us
            during = sum(1 for t in board.erase_times if ticks_diff(t, a) >= 0 and ticks_diff(b, t) > 0)
            gaps = [g for g in board.gaps if ticks_diff(g["t_us"], a) >= 0 and ticks_diff(b, g["t_us"] - g["us"]) > 0]
            outliers.append((i + 1, iv, during, gaps))
    return Run(hz, intervals, board.erases - erases0, s1["overruns"] - s0["overruns"], s1["worst_pass_us"], outliers)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2 runs of 8 shots per cadence (CI, < 30 s)")
    ap.add_argument("--runs", type=int, help="runs per cadence (default 20)")
    ap.add_argument("--shots", type=int, help="shots per run (default 20)")
    ap.add_argument("--hz", type=int, nargs="+", choices=CADENCES_HZ, help="only these cadences (default all)")
    ap.add_argument("--nice", type=int, default=0,
                    help="run the board's process at this niceness (negative needs root): shows which outliers the "
                         "host machine's other load caused (they go) and which the firmware did (they stay)")
    ap.add_argument("--flash", choices=sorted(FLASH), default="typical",
                    help="the board's flash timing (default typical: the W25Q16JV datasheet's, board_flash.py)")
    args = ap.parse_args()
    runs = args.runs or (2 if args.quick else 20)
    cpu0 = _cpu_times()
    shots = args.shots or (8 if args.quick else 20)
    base = programs.load(programs.EXAMPLES / "nappage.toml")
    print(f"bench_cadence{' (quick)' if args.quick else ''}: {runs} runs x {shots} shots of {SHOT_NL / 1000:g} uL at "
          f"{'/'.join(map(str, args.hz or CADENCES_HZ))} Hz, flash {args.flash}; {platform.node()}, "
          f"{len(os.sched_getaffinity(0))} cpus, load {os.getloadavg()[0]:.1f}, board nice {args.nice}")
    print(f"{'cadence':>8} {'mean Hz':>8} {'p50 |jit|':>10} {'p99 |jit|':>10} {'max |jit|':>10} {'> 5 ms':>7} "
          f"{'runs with':>10} {'erases/shot':>12} {'overruns':>9} {'worst pass':>11}")
    all_outliers = []
    gaps: list = []
    lost: list = []  # (hz, run, the device's alarm): a run the device refused, faulted since the last one
    for hz in args.hz or CADENCES_HZ:
        period = 1_000_000 // hz
        rs = []
        while len(rs) + sum(1 for h, _, _ in lost if h == hz) < runs:
            with SimBoard(syringe=1, profile=FLASH[args.flash]) as board:  # a board (and its 1 mL) per cadence
                if args.nice:
                    os.setpriority(os.PRIO_PROCESS, board._process._proc.pid, args.nice)  # type: ignore[union-attr]
                try:
                    while len(rs) + sum(1 for h, _, _ in lost if h == hz) < runs:
                        rs.append(one_run(board, base, hz, shots))
                except DeviceInFault as e:  # (LINK_LOST: this script silent too long between runs at high load)
                    lost.append((hz, len(rs), str(e).split(":")[0]))  # the rest on a fresh board
                gaps += board.gaps
        if not rs:
            print(f"{hz:>6}Hz every run lost")
            continue
        jit = [abs(iv - period) for r in rs for iv in r.intervals_us]
        total = sum(sum(r.intervals_us) for r in rs)
        mean_hz = 1e6 * sum(len(r.intervals_us) for r in rs) / total if total else 0.0
        n_out = sum(len(r.outliers) for r in rs)
        print(f"{hz:>6}Hz {mean_hz:8.3f} {percentile(jit, 50) / 1000:8.2f}ms {percentile(jit, 99) / 1000:8.2f}ms "
              f"{max(jit) / 1000:8.2f}ms {n_out:7d} {sum(bool(r.outliers) for r in rs):>7d}/{len(rs)} "
              f"{sum(r.erases for r in rs) / (len(rs) * shots):12.2f} {sum(r.overruns for r in rs):9d} "
              f"{max(r.worst_pass_us for r in rs) / 1000:9.1f}ms")
        all_outliers += [(hz, k, o) for k, r in enumerate(rs) for o in r.outliers]
    for hz, k, alarm in lost:
        print(f"  run lost: {hz} Hz run {k}: the device was in {alarm} at its start (not counted above)")
    for hz, k, (shot, iv, during, in_it) in all_outliers[:30]:
        said = "; ".join(map(_said, in_it)) or "no gap between passes"
        print(f"  outlier: {hz} Hz run {k} shot {shot}: interval {iv / 1000:.1f} ms (period {1000 / hz:.1f} ms), "
              f"{during} erase(s) begun in it; {said}")
    causes: dict = {}
    for hz, _, (_, _, _, in_it) in all_outliers:
        key = (hz, _cause(max(in_it, key=lambda g: g["us"])) if in_it else "no gap >= 8 ms (the shot sequence itself)")
        causes[key] = causes.get(key, 0) + 1
    print("outliers by what filled their longest gap between control passes:")
    for (hz, cause), count in sorted(causes.items()):
        print(f"  {hz:>2} Hz  {count:4d}  {cause}")
    # every long gap between passes in the whole bench, by what filled it
    by = {"flash busy (> half the gap)": [g for g in gaps if g["busy_us"] * 2 > g["us"]],
          "waiting for a CPU (> half)": [g for g in gaps if g["busy_us"] * 2 <= g["us"] and g["waited_us"] * 2 > g["us"]],
          "running (> half): littlefs traversal": [g for g in gaps if g["busy_us"] * 2 <= g["us"] < g["cpu_us"] * 2
                                                   and g["reads"] > 1000],
          "running (> half): other (GC, code)": [g for g in gaps if g["busy_us"] * 2 <= g["us"] < g["cpu_us"] * 2
                                                 and g["reads"] <= 1000]}
    other = len(gaps) - sum(map(len, by.values()))
    if other:
        by["none over half (mixed)"] = [g for g in gaps if not any(g in v for v in by.values())]
    print(f"gaps >= 8 ms between control passes with the motors on: {len(gaps)}")
    for what, gs in by.items():
        if gs:
            print(f"  {what:<40} {len(gs):4d}, longest {max(g['us'] for g in gs) / 1000:.1f} ms")
    for g in sorted(by.get("none over half (mixed)", []), key=lambda g: -g["us"])[:5]:
        print(f"    mixed: {_said(g)}")
    busy, steal = _cpu_share(cpu0, _cpu_times())
    print(f"the machine meanwhile: CPUs {busy:.0f} % busy, {steal:.1f} % stolen by the hypervisor")
    print("jitter: |interval between needle entries - period| on the model's clock; overruns/worst pass: the device's "
          "STATUS\n(passes later than their 1 ms tick while moving, and the longest one)")
    return 0


def _said(g: dict) -> str:
    return (f"{g['us'] / 1000:.1f} ms gap: ran {g['cpu_us'] / 1000:.1f} ms, waited for a CPU "
            f"{g['waited_us'] / 1000:.1f} ms, {g['reads']} littlefs reads, flash busy {g['busy_us'] / 1000:.1f} ms, "
            f"image file I/O {g['io_us'] / 1000:.1f} ms, serial+control writes {g['send_us'] / 1000:.1f} ms, "
            f"idle wait {g['idle_us'] / 1000:.1f} ms; off the board clock besides the waits (the host's: steal, "
            f"interrupts) {g.get('taken_us', 0) / 1000:.1f} ms, waits asked for {g.get('asked_us', 0) / 1000:.1f} ms")


def _cause(g: dict) -> str:
    if g["busy_us"] * 2 > g["us"]:
        return "flash busy (erase/program time)"
    if g["waited_us"] * 2 > g["us"]:
        return "the board process waited for a CPU (the host machine's load)"
    if g["cpu_us"] * 2 > g["us"]:
        return "the firmware ran (littlefs traversal)" if g["reads"] > 1000 else "the firmware ran (GC, code)"
    if g["idle_us"] * 2 > g["us"]:
        return "the firmware was idle (waiting for input)"
    return "none over half the gap (mixed: I/O, sleeps)"


def _cpu_times() -> list[int]:
    with open("/proc/stat") as f:
        return [int(v) for v in f.readline().split()[1:]]


def _cpu_share(a: list[int], b: list[int]) -> tuple[float, float]:
    d = [y - x for x, y in zip(a, b)]
    total = sum(d[:8]) or 1
    return 100 * (total - d[3] - d[4]) / total, 100 * d[7] / total  # idle, iowait; steal


if __name__ == "__main__":
    sys.exit(main())
