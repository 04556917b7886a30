"""Shot accuracy of one firmware build, gravimetrically: an HTML report; figures printed, never asserted.

The simulated board is flashed with this checkout's firmware (`mesoinject flash`: the report is named
by the build id HELLO reports), its gun fires into a vessel on its simulated MT-SICS balance (profile
"vessel": no skin, every shot weighed), and each dose setting runs as a sequence of single shots, each
weighed on its own with the device paused (the link watchdog does not wait for a balance); every tenth
shot comes after a pause. mesoinject.accuracy turns the shots into per-shot errors, the trumpet curve
(windows of 1, 2, 5, 10, 20, 50 shots) and a 95 %/95 % tolerance interval per setting.

    python bench/bench_accuracy.py [--quick] [--out DIR] [--seed N] [--shots N] [--pause S] [--source]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import random
import sys
import tempfile
import time

from mesoinject import flash
from mesoinject import program as programs
from mesoinject.accuracy import SettingResult, Shot
from mesoinject.balance import Balance
from mesoinject.calibrate import calibrate
from mesoinject.client import Device
from mesoinject.records import RecordStore
from mesoinject.exports import accuracy as report
from mesoinject.simulated import SimBoard
from mesoprotocol import spec

DENSITY_G_ML = 1.0  # water
PAUSE_EVERY = 10  # shots between pauses; the first shot of a run follows one too (priming, zeroing)
SETTINGS = (("nappage", "2 uL nappage at 6 Hz, 1.5 mm"), ("point-by-point", "30 uL point at 3 mm"))


class RunError(RuntimeError):
    pass


def poll_until(dev: Device, done, what: str, timeout: float = 30.0, seen: list | None = None) -> dict:
    """STATUS (the link's heartbeat) until done(status); events go to seen."""
    deadline = time.monotonic() + timeout
    while True:
        status = dev.status()
        while (event := dev.next_event(0)) is not None:
            if seen is not None:
                seen.append(event)
        if done(status):
            return status
        if status["state"] == spec.STATE_FAULT:
            raise RunError(f"{what}: the device raised {spec.ALARM_NAMES[status['alarm']]}")
        if time.monotonic() > deadline:
            raise RunError(f"{what}: still {spec.STATE_NAMES[status['state']]} after {timeout:.0f} s")
        event = dev.next_event(0.02)  # wakes on the next event
        if event is not None and seen is not None:
            seen.append(event)


def deliveries(events: list) -> list[dict]:
    return [e.fields for e in events if e.type == spec.DELIVERY
            and e.fields["kind"] in (spec.KIND_POINT, spec.KIND_SHOT)]


def run_setting(board: SimBoard, scale: Balance, program: programs.Program, name: str, shots: int,
                pause_s: float) -> tuple[SettingResult, dict]:
    """`shots` single shots of one dose setting, each weighed on its own; a fresh syringe whenever the
    last one would run short (a power cycle makes the device measure the new one)."""
    capacity = spec.syringe_capacity_nl(program.syringe)
    # whole tens of shots, with room for PAUSE_EVERY more (see _run_chunk) and two primes in one syringe
    per_syringe = int((capacity - 2 * program.prime_nl) / program.volume_nl - PAUSE_EVERY) // PAUSE_EVERY * PAUSE_EVERY
    result = SettingResult(name, [])
    counts = {"weighings": 0, "shared": 0, "partial_excluded": 0, "syringes": 0}
    done = 0
    while done < shots:
        chunk = min(max(per_syringe, PAUSE_EVERY), shots - done)
        board.power_cut(0.05)
        board.load_syringe(program.syringe)  # a full one
        counts["syringes"] += 1
        with Device.open(board.url) as dev:
            _run_chunk(dev, board, scale, program, chunk, pause_s, done, result, counts)
        done += chunk
    return result, counts


def _run_chunk(dev: Device, board: SimBoard, scale: Balance, program: programs.Program, shots: int, pause_s: float,
               first: int, result: SettingResult, counts: dict) -> None:
    dev.hello()
    dev.abort()
    # room for shots a slow release lets through (two in one weighing), so the program never ends early
    dev.configure(**dict(program.configure_fields(), count=shots + PAUSE_EVERY))
    dev.prime(program.prime_nl)  # fills the needle, takes up the mechanism's play: not weighed
    poll_until(dev, lambda s: s["state"] == spec.STATE_PRIMED, "priming")
    dev.arm()
    dev.pause()  # not armed while the balance settles: the link watchdog would stop the device
    scale.zero()
    last_g = 0.0
    for i in range(first, first + shots):
        after_pause = i % PAUSE_EVERY == 0
        if after_pause and i:
            time.sleep(pause_s)  # the gun rests (the experiment's pause, not a synchronisation)
        dev.resume()
        seen: list = []
        board.set_trigger(True)
        try:
            poll_until(dev, lambda s, seen=seen: bool(deliveries(seen)), f"shot {i + 1}", seen=seen)
        finally:
            board.set_trigger(False)  # one shot: nappage would go on at its cadence while held
        poll_until(dev, lambda s: s["state"] != spec.STATE_DELIVERING, f"shot {i + 1} ending", seen=seen)
        if dev.status()["state"] == spec.STATE_ARMED:
            dev.pause()
        mass_g = scale.weigh()
        measured_nl = (mass_g - last_g) / DENSITY_G_ML * 1e6
        last_g = mass_g
        records = deliveries(seen)
        counts["weighings"] += 1
        if len(records) > 1:  # the next shot began before the release reached the gun: share the mass
            counts["shared"] += 1
        total_device = sum(r["delivered_nl"] for r in records) or 1
        for r in records:
            if r["flags"] & spec.FLAG_PARTIAL:
                counts["partial_excluded"] += 1
                continue
            share = measured_nl * r["delivered_nl"] / total_device
            result.shots.append(Shot(r["programmed_nl"], share, after_pause and r is records[0], r["delivered_nl"]))
    dev.abort()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="20 nappage shots and 10 points, 0.5 s pauses, 3 calibration shots (./test.sh)")
    parser.add_argument("--shots", type=int, default=100, help="shots per dose setting (default 100)")
    parser.add_argument("--pause", type=float, default=5.0, help="seconds the gun rests every 10 shots (default 5)")
    parser.add_argument("--seed", type=int, default=None, help="the simulated board's imperfections seed")
    parser.add_argument("--out", default="build/accuracy", help="folder for the report (default build/accuracy)")
    parser.add_argument("--source", action="store_true",
                        help="run the .py sources as staged (build 00000000) instead of flashing a build")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(1 << 31)
    counts_by_setting = {"nappage": 20, "point-by-point": 10} if args.quick else {}
    pause_s = 0.5 if args.quick else args.pause
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-accuracy-") as tmp:
        profile = {"vessel": True}
        board = SimBoard(seed=seed, profile=profile, workdir=tmp, stage=args.source, sources=args.source)
        with board:
            if not args.source:  # a blank board at its REPL: flash this checkout's build onto it
                flash.flash("sim", board.url)
            # ISO 8655-6 weighs 1-10 uL on a 0.001 mg balance: a microbalance's readout and repeatability
            # (stable within 2 ug: with the analytical balance's 20 ug, a reading could lag the last shot by
            # 1 % of 2 uL, which the next weighing then showed)
            board.balance.decimals, board.balance.noise_g, board.balance.stable_g = 6, 1e-6, 2e-6
            board.balance.settle_s = 0.05 if args.quick else board.balance.settle_s  # a faster cell for CI
            scale = Balance(board.balance.port)
            try:
                with Device.open(board.url) as dev, RecordStore(pathlib.Path(tmp) / "records.db") as store:
                    # as a clinic would: the syringe's bore calibrated on the balance first (its own shots; the
                    # boot's RESET stored before it is acknowledged)
                    cal = calibrate(dev, scale, syringe=1, store=store, shots=3 if args.quick else 8,
                                    density_g_ml=DENSITY_G_ML)
                    ident = dev.hello()
                    dev.abort()
                results, notes = [], [f"calibrated first: {cal.summary()}"]
                for example, name in SETTINGS:
                    program = programs.load(programs.EXAMPLES / f"{example}.toml")
                    n = counts_by_setting.get(example, args.shots)
                    result, counts = run_setting(board, scale, program, name, n, pause_s)
                    results.append(result)
                    notes.append(f"{name}: {counts['weighings']} weighings, {counts['syringes']} syringes (each "
                                 f"primed, its first shot after a pause); {counts['shared']} held two shots (mass "
                                 f"shared by the device's records); {counts['partial_excluded']} partial shots left out")
            finally:
                scale.close()
    rig = (f"simulated board, imperfections seed {seed}; simulated MT-SICS microbalance (1 ug readout, 1 ug noise); "
           "shots into a vessel (no skin)")
    html = report.render(results, build=ident.build, firmware=ident.firmware, board=ident.board,
                         serial=ident.serial, rig=rig, notes=notes)
    path = out / f"accuracy-{ident.build}.html"
    path.write_text(html)
    figures = {r.name: {**r.summary(), "tolerance_95_95": [r.tolerance().low_pct, r.tolerance().high_pct],
                        "trumpet": [dataclasses.asdict(w) for w in r.trumpet()]} for r in results}
    (out / f"accuracy-{ident.build}.json").write_text(json.dumps(
        {"build": ident.build, "firmware": ident.firmware, "seed": seed, "settings": figures}, indent=1))
    print(f"shot accuracy, firmware {ident.firmware} build {ident.build}, seed {seed} "
          f"({time.monotonic() - t0:.1f} s): {path}")
    for r in results:
        s, ti = r.summary(), r.tolerance()
        trumpet = "  ".join(f"k={w.k}: {w.min_pct:+.2f}..{w.max_pct:+.2f}" for w in r.trumpet())
        after = (f"{s['after_pause_mean_pct']:+.2f} % (n={s['after_pause_n']})" if s["after_pause_n"] else "none")
        print(f"  {r.name}: {s['shots']} shots, mean {s['mean_pct']:+.2f} %, sd {s['sd_pct']:.2f} %, "
              f"max |e| {s['max_abs_pct']:.2f} %; after a pause {after}; "
              f"95/95 TI {ti.low_pct:+.2f}..{ti.high_pct:+.2f} % (k {ti.k:.3f})")
        print(f"    trumpet: {trumpet}")
    for note in notes:
        print(f"  {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
