"""Mutational fuzzing of the firmware's frame parser and command dispatcher; figures printed.

Runs firmware/tests/mpy_fuzz.py on the MicroPython unix port (the real firmware on a fake
board with a virtual clock): mutated frames seeded from protocol/vectors/frames.json, every
reply, event and state change checked against PROTOCOL.md. Prints frames tried, frames/s and
failures found (with the frames that caused them); exits 1 if any failure was found.
The CI gate is firmware/tests/test_fuzz_mpy.py (100,000 frames, fixed seed).

    python bench/bench_fuzz.py [--frames N] [--seed S] [--jobs J] [--quick]

A run is deterministic for a given seed, frame count and firmware: --seed S --frames N replays it.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import pathlib
import random
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "firmware" / "tests"))
import fuzzrun  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=1_000_000, help="mutated frames per job (default 1,000,000)")
    ap.add_argument("--seed", type=int, default=None, help="PRNG seed of the first job (default: random, printed)")
    ap.add_argument("--jobs", type=int, default=1, help="parallel fuzzer processes, seeds S, S+1, ... (default 1)")
    ap.add_argument("--journal-cells", type=int, default=64, help="the fake board's journal size (default 64)")
    ap.add_argument("--quick", action="store_true", help="20,000 frames (CI smoke run)")
    args = ap.parse_args()
    frames = 20_000 if args.quick else args.frames
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 32)
    seeds = [(seed + i) & 0xFFFFFFFF for i in range(args.jobs)]
    print(f"bench_fuzz: {args.jobs} job(s) x {frames} frames, seeds {seeds}")
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        runs = list(pool.map(lambda s: fuzzrun.run(frames, s, journal_cells=args.journal_cells), seeds))
    wall = time.monotonic() - t0
    total = failures = 0
    for s, r in zip(seeds, runs):
        print(f"\n--- seed {s} (replay: {fuzzrun.command(frames, s)})")
        print(r.report())
        if r.summary is None:
            print(f"the fuzzer died (exit {r.returncode}): a crash of the firmware or the VM")
            failures += 1
            continue
        total += r.summary["frames"]
        failures += r.summary["failures"]
    print(f"\nframes tried: {total} in {wall:.1f} s wall: {total / wall:.0f} frames/s over {args.jobs} job(s)")
    print(f"failures found: {failures}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
