"""Needle heads on the simulated board, against its ground truth; printed, never asserted.

Per head (5- and 9-needle): the dead volume a dry head's prime filled against the head table; for
each point, every needle's volume (ground truth) against the record's share (delivered / needles),
the per-needle error's p99, and the cycle's total against the record; then one needle fully
blocked needles: per board (seed) of each head, a clean session (false NEEDLE_BLOCKED alarms), its narrowest
needle fully blocked mid-session, then re-primed clear and blocked before the first point: caught within two
points, k of N boards. Then skin
contact: the gun lifted mid-point, on a single needle (its contact switch) and on the 5-needle head (its
vacuum leaking away): plunger steps after the lift and the time from the lift to the last step, on the
board's clock (ground truth), p99 over the trials.

    python bench/bench_heads.py [--quick] [--seed N] [--boards N] [--blocks-only] [--head CODE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

from benchlib import percentile

from mesoinject.client import Device
from mesoinject.simulated import SimBoard
from mesoprotocol import spec
from mesosim.harness import ticks_diff

HEADS = (6, 7)  # 5-needle and 9-needle 30G 4 mm
PER_NEEDLE_NL = 5000
BLOCK_PER_NEEDLE_NL = 10000  # the blocked-needle runs: 10 uL a needle at 100 uL/s (9 needles: 0.9 s a point)
SYRINGE = 2  # BD 3 mL: a 9-needle session of 40 points is 1.8 mL


def polled(dev, board, until, timeout=10.0) -> list:
    """Poll (the heartbeat) until until() holds; the events seen meanwhile."""
    seen, deadline = [], time.monotonic() + timeout
    while not until(seen):
        if time.monotonic() > deadline:
            raise TimeoutError("the simulated board did not get there")
        dev.status()
        if (e := dev.next_event(0.02)) is not None:
            seen.append(e)
    return seen


def point(dev, board) -> tuple[dict | None, list, list]:
    """One point: its DELIVERY fields (None if none), the needles' ground truth, every event seen."""
    pens = len(board.needle_volumes)
    board.set_trigger(True)
    seen = polled(dev, board, lambda s: any(e.type in (spec.DELIVERY, spec.ALARM) for e in s)
                  or dev.status()["state"] == spec.STATE_FAULT)
    board.set_trigger(False)
    if any(e.type == spec.ALARM and e.fields["code"] != spec.ALARM_NEEDLE_BLOCKED for e in seen):
        return None, [], seen  # stopped before the needle went in, maybe
    seen += polled(dev, board, lambda s: len(board.needle_volumes) > pens and
                   dev.status()["state"] in (spec.STATE_ARMED, spec.STATE_COMPLETE, spec.STATE_FAULT))
    delivery = next((e.fields for e in seen if e.type == spec.DELIVERY), None)
    return delivery, board.needle_volumes[-1], seen


def run_head(code: int, points: int, seed: int) -> None:
    name, needles, _, length, dead_nl, _ = spec.HEADS[code]
    program = dict(technique=spec.TECHNIQUE_POINT, syringe=SYRINGE, head=code, needle_length_um=length,
                   depth_um=2000, volume_nl=PER_NEEDLE_NL * needles, count=points + 1, cadence_mhz=0,
                   flow_nl_s=50000, vacuum_kpa=40)
    with SimBoard(syringe=SYRINGE, head=code, seed=seed, profile={"diameter_error": 0.0}) as board, \
            Device.open(board.url) as dev:
        dev.hello()
        dev.abort()
        board.fit_head(code)  # dry
        dev.configure(**program)
        dev.prime(dead_nl + 5000)
        polled(dev, board, lambda s: dev.status()["state"] == spec.STATE_PRIMED)
        truth = board.head_truth()
        print(f"  {name}: dead volume filled by the prime {truth.fill_nl:.0f} nL, head table {dead_nl} nL "
              f"({truth.fill_nl - dead_nl:+.1f}); out of the needles {sum(truth.needles_nl) / 1000:.2f} uL of a "
              f"{(dead_nl + 5000) / 1000:.0f} uL prime; needle conductances {board.profile['head_g']}")
        dev.arm()
        errors, cycle_errors, kpa, alarms, partial = [], [], [], [], []
        for _ in range(points):
            delivery, needle_nl, seen = point(dev, board)
            if dev.status()["state"] == spec.STATE_FAULT:
                alarm = next((e for e in seen if e.type == spec.ALARM), None) or dev.next_event(2.0)
                alarms.append(f"{spec.ALARM_NAMES[alarm.fields['code']]} ({alarm.fields['detail']})" if alarm is not None else "?")
                break
            assert delivery is not None
            if delivery["flags"] & spec.FLAG_PARTIAL:  # stopped short (a lost contact, a late loaded host)
                partial.append(delivery["flags"])
                continue
            share = delivery["delivered_nl"] / needles
            errors += [abs(v - share) / share * 100 for v in needle_nl]
            cycle_errors.append(abs(sum(needle_nl) - delivery["delivered_nl"]) / delivery["delivered_nl"] * 100)
            kpa.append(board.truth().pressure_kpa)
        print(f"  {name}: {points} points of {PER_NEEDLE_NL / 1000:g} uL a needle: per-needle volume vs the record's "
              f"share p50 {percentile(errors, 50):.2f} %, p99 {percentile(errors, 99):.2f} %, max {max(errors):.2f} %; "
              f"cycle total vs the record p99 {percentile(cycle_errors, 99):.2f} %"
              + (f"; STOPPED by {alarms[0]} after {len(cycle_errors)} points" if alarms else "; no alarm")
              + (f"; {len(partial)} partial (flags {partial}) left out" if partial else ""))


def prime_alarm(dev) -> dict | None:
    """Prime the configured program; the NEEDLE_BLOCKED alarm it raised (the head table's bound), or None."""
    seen = polled(dev, None, lambda s: dev.status()["state"] in (spec.STATE_PRIMED, spec.STATE_FAULT))
    if dev.status()["state"] != spec.STATE_FAULT:
        return None
    seen += polled(dev, None, lambda s: any(e.type == spec.ALARM for e in s), timeout=3.0)
    alarm = next(e.fields for e in seen if e.type == spec.ALARM)
    if alarm["code"] != spec.ALARM_NEEDLE_BLOCKED:
        raise TimeoutError(f"the prime stopped by {spec.ALARM_NAMES[alarm['code']]}")
    return alarm


def flow_figures(judged: list, blocked_from: int, flow_nl_s: int, seed: int, figures: dict) -> None:
    """The watch's flow figures (needles.py) of one armed run: its prime's, then each point's rise over it, per
    point and as the first two points' average (what the watch judges), clean or with the needle blocked; and
    the prime's and clean points' flow figures against the model's true flow pressure (%)."""
    if not judged or not judged[0]["prime"] or not judged[0]["ref16"]:
        return
    prime, points = judged[0], [f for f in judged[1:] if not f["prime"] and f["flow16"]]
    ref = prime["ref16"]
    figures["prime_err"].append((ref / 16 / (prime["line_kpa_s_per_nl"] * flow_nl_s) - 1) * 100)
    rises = [(f["flow16"] / ref - 1) * 100 for f in points[:2]]
    for k, (f, rise) in enumerate(zip(points[:2], rises)):
        clean = k < blocked_from
        figures["clean" if clean else "blocked"].append(rise)
        if clean:
            figures["clean_err"].append((f["flow16"] / 16 / (f["line_kpa_s_per_nl"] * flow_nl_s) - 1) * 100)
    if len(rises) == 2:
        figures["clean_avg" if blocked_from else "blocked_avg"].append(sum(rises) / 2)
    figures.setdefault("boards", []).append({"seed": seed, "blocked_from": blocked_from, "ref16": ref,
                                             "prime": prime, "points": points[:2]})


def print_figures(name: str, figures: dict, threshold: float) -> None:
    """The first points' flow figures against the prime's: mean +- sd and how many sd from the threshold."""
    def line(values: list, judged: bool = True) -> str:
        if len(values) < 2:
            return f"{values[0]:+.1f} %" if values else "-"
        m, sd = statistics.mean(values), statistics.stdev(values)
        away = f"threshold {abs(threshold - m) / sd:.1f} sd away, " if judged and sd else ""
        return f"{m:+.1f} +- {sd:.1f} % ({min(values):+.1f}..{max(values):+.1f}; {away}n {len(values)})"
    print(f"  {name}: flow figure vs the prime's: clean point {line(figures['clean'])}; first two clean points' "
          f"average {line(figures['clean_avg'])}")
    print(f"  {name}: flow figure vs the prime's: blocked point {line(figures['blocked'])}; first two blocked "
          f"points' average {line(figures['blocked_avg'])}")
    print(f"  {name}: against the model's true flow pressure: the prime's {line(figures['prime_err'], False)}; a "
          f"clean point's {line(figures['clean_err'], False)}")


def run_blocks(code: int, seeds: range, points: int, dump: str | None = None) -> None:
    """One board per seed: a clean session of `points` (false alarms), then its narrowest needle blocked
    mid-session; then re-primed clear, blocked, one point (a needle blocked from the first point); then its
    narrowest one, and two, blocked before the prime (the prime's bound: the head table)."""
    name, needles, _, length, dead_nl, _ = spec.HEADS[code]
    program = dict(technique=spec.TECHNIQUE_POINT, syringe=SYRINGE, head=code, needle_length_um=length,
                   depth_um=2000, volume_nl=BLOCK_PER_NEEDLE_NL * needles, count=points + 3, cadence_mhz=0,
                   flow_nl_s=100000, vacuum_kpa=40)
    false_alarms = clean = mid = first = mid_n = first_n = stalled = prime_false = primes = 0
    figures = {"clean": [], "clean_avg": [], "blocked": [], "blocked_avg": [], "prime_err": [], "clean_err": []}
    before = {1: 0, 2: 0}
    before_n = {1: 0, 2: 0}
    rises, viscosities = [], []
    for seed in seeds:
        with SimBoard(syringe=SYRINGE, head=code, seed=seed, profile={"diameter_error": 0.0}) as board, \
                Device.open(board.url) as dev:
            dev.hello()
            dev.abort()
            g = board.profile["head_g"]
            order = sorted(range(needles), key=lambda i: g[i])  # narrowest first
            narrowest = order[0]
            rises.append(g[narrowest] / (sum(g) - g[narrowest]) * 100)
            viscosities.append(board.profile["viscosity_mpa_s"])
            try:
                for blocked_from in (points, 0):
                    dev.hello()  # after a LINK_LOST (a starved host) ABORT wants a HELLO first
                    dev.abort()
                    board.block_needle(narrowest, 1)
                    dev.configure(**program)
                    judged = len(board.needle_figures)
                    dev.prime(dead_nl + 5000)
                    primes += 1
                    alarm = prime_alarm(dev)
                    if alarm is not None:  # a clear head refused as a reference: a false alarm
                        prime_false += 1
                        print(f"    seed {seed}: a clear head's prime refused, {alarm['detail']} kPa")
                        continue
                    dev.arm()
                    for k in range(blocked_from + 2):  # a blockage is caught at its first or second point
                        if k == blocked_from:
                            board.block_needle(narrowest, 1000)
                            if blocked_from:
                                mid_n += 1
                            else:
                                first_n += 1
                        _, _, seen = point(dev, board)
                        if not any(e.type == spec.ALARM for e in seen) and dev.status()["state"] == spec.STATE_FAULT:
                            # the device in FAULT before its ALARM event was read (one event a poll; a loaded host):
                            # that point was caught - wait for the event rather than count a miss
                            seen += polled(dev, board, lambda s: any(e.type == spec.ALARM for e in s), timeout=3.0)
                        alarm = next((e.fields for e in seen if e.type == spec.ALARM), None)
                        blocked = alarm is not None and alarm["code"] == spec.ALARM_NEEDLE_BLOCKED
                        if k < blocked_from:
                            clean += 1
                            false_alarms += blocked
                            if blocked:
                                print(f"    seed {seed}: a false alarm at clean point {k}, {alarm['detail']} kPa")
                        elif blocked_from:
                            mid += blocked
                        else:
                            first += blocked
                        if k == blocked_from + 1 and not blocked:
                            print(f"    seed {seed}: blocked {'mid-session' if blocked_from else 'from the first point'}, "
                                  f"not caught within 2 points")
                        if alarm is not None:
                            if not blocked:
                                print(f"    seed {seed}: stopped by {spec.ALARM_NAMES[alarm['code']]} at point {k}")
                            break
                    try:  # the last point's figures come on the control channel, beside the link's events
                        expected = judged + 1 + min(k + 1, 2)  # the prime's, then up to two points'
                        board.wait(lambda n=expected: len(board.needle_figures) >= n, 1.0, "figures")
                    except TimeoutError:  # a point not judged (partial): what came
                        pass
                    flow_figures(board.needle_figures[judged:], blocked_from, program["flow_nl_s"], seed, figures)
                for n_blocked in (1, 2):  # blocked before the prime: the prime's flow pressure against the table
                    dev.hello()
                    dev.abort()
                    for i in order[:n_blocked]:
                        board.block_needle(i, 1000)
                    dev.configure(**program)
                    dev.prime(dead_nl + 5000)
                    before_n[n_blocked] += 1
                    before[n_blocked] += prime_alarm(dev) is not None
                    for i in order[:n_blocked]:
                        board.block_needle(i, 1)
            except TimeoutError:  # a starved simulator (loaded host): the rest of this board left out
                stalled += 1
                print(f"    seed {seed}: a point did not end within 10 s (loaded host): the rest of this board left out")
    n = len(seeds)
    print_figures(name, figures, spec.head_block_permille(code) / 10)
    if dump:
        with open(dump, "a") as f:
            f.write(json.dumps({"head": code, "seeds": [seeds.start, seeds.stop], "figures": figures}) + "\n")
    print(f"  {name}: narrowest needle fully blocked (line pressure +{min(rises):.1f}..+{max(rises):.1f} %, threshold "
          f"{spec.head_block_permille(code) / 10:g} %), 100 uL/s, {BLOCK_PER_NEEDLE_NL / 1000:g} uL a needle, {n} boards, "
          f"seeds {seeds.start}..{seeds.stop - 1}: caught within 2 points mid-session {mid} of {mid_n}, from the first "
          f"point {first} of {first_n}; false alarms {false_alarms} in {clean} clean points ({n} sessions)"
          + (f"; {stalled} boards stalled" if stalled else "") + f"; {load()}")
    print(f"  {name}: blocked before the prime (drugs {min(viscosities):.2f}..{max(viscosities):.2f} mPa s; the table's "
          f"bound {spec.head_prime_max16(code, 100000) / 16:.1f} kPa): prime refused with its narrowest needle blocked "
          f"{before[1]} of {before_n[1]}, its two narrowest {before[2]} of {before_n[2]}; clear primes refused "
          f"{prime_false} of {primes}")


def run_contact(code: int, trials: int, seed: int) -> None:
    name, needles, _, length, dead_nl, _ = spec.HEADS[code]
    program = dict(technique=spec.TECHNIQUE_POINT, syringe=SYRINGE, head=code, needle_length_um=length,
                   depth_um=2000, volume_nl=8000 * needles, count=trials, cadence_mhz=0, flow_nl_s=10000 * needles,
                   vacuum_kpa=40 if needles > 1 else 0)  # 0.8 s points
    steps, ms = [], []
    with SimBoard(syringe=SYRINGE, head=code, seed=seed, profile={"diameter_error": 0.0}) as board, \
            Device.open(board.url) as dev:
        dev.hello()
        dev.abort()
        dev.configure(**program)
        dev.prime(dead_nl + 5000)
        polled(dev, board, lambda s: dev.status()["state"] == spec.STATE_PRIMED)
        dev.arm()
        for _ in range(trials):
            board.set_contact(True)
            polled(dev, board, lambda s: dev.status()["state"] == spec.STATE_ARMED)
            start = board.truth().content_nl
            board.set_trigger(True)
            polled(dev, board, lambda s, start=start: start - board.truth().content_nl > 2000)
            board.set_contact(False)
            edge = board.last_input
            seen = polled(dev, board, lambda s: any(e.type == spec.DELIVERY for e in s))
            board.set_trigger(False)
            flags = next(e.fields["flags"] for e in seen if e.type == spec.DELIVERY)
            assert flags & spec.FLAG_CONTACT_LOST, flags
            truth = board.truth()
            steps.append(truth.forward_steps - edge.forward_steps)
            ms.append(max(0, ticks_diff(truth.last_step_us, edge.t_us)) / 1000)
        kind = "vacuum leak (seal broken)" if needles > 1 else "contact switch"
        print(f"  {name}, {kind}: gun lifted mid-point x{trials}: plunger steps after the lift p50 "
              f"{percentile(steps, 50)}, p99 {percentile(steps, 99)}, max {max(steps)}; lift -> last step p99 "
              f"{percentile(ms, 99):.2f} ms (target 2 ms); every point recorded CONTACT_LOST")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="4 points a head, one 9-needle board blocked, 5 lifts (./test.sh)")
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--boards", type=int, default=10, help="boards (seeds) per head for the blocked needles (0: none)")
    parser.add_argument("--blocks-only", action="store_true", help="only the blocked-needle runs")
    parser.add_argument("--head", type=int, choices=HEADS, help="only this head (spec.HEADS code: 6 five-needle, 7 nine-needle)")
    parser.add_argument("--dump", help="append the blocked-needle runs' figures (per board, per point) to this JSON-lines file")
    args = parser.parse_args()
    points = 4 if args.quick else 40
    print(f"bench_heads{' (quick)' if args.quick else ''}: seed {args.seed}, {points} points a head; {load()}")
    heads = (args.head,) if args.head else HEADS
    for code in () if args.blocks_only else heads:
        run_head(code, points, args.seed)
    for code in () if not args.boards else heads[-1:] if args.quick else heads:  # quick: one 9-needle board (CI's budget)
        run_blocks(code, range(args.seed, args.seed + (1 if args.quick else args.boards)), 2 if args.quick else 8,
                   args.dump)
    for code in () if args.blocks_only else (1, 6):
        run_contact(code, 5 if args.quick else 50, args.seed)
    print(f"  end: {load()}")


def load() -> str:
    """The host's load average (1, 5, 15 min), as `uptime` prints it: the simulated board shares the CPUs."""
    return "load average " + ", ".join(f"{v:.2f}" for v in os.getloadavg())


if __name__ == "__main__":
    main()
