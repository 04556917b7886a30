"""Runs the firmware fuzzer (mpy_fuzz.py) on the MicroPython unix port.

Shared by firmware/tests/test_fuzz_mpy.py (the CI gate) and bench/bench_fuzz.py (longer runs).
The firmware is staged exactly as flashed on the simulated board (mesoinject.image); the
fuzzer runs in a fresh, empty flash directory, which it mounts as / (settings, calibration,
boot count and journal land there). Configuration goes through the environment: an argv
item of 256 bytes or more crashes the unix port.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import subprocess
import tempfile

from mesoinject import image
from mesosim.harness import micropython_binary

HERE = pathlib.Path(__file__).resolve().parent
SCRIPT = HERE / "mpy_fuzz.py"
VECTORS = HERE.parents[1] / "protocol" / "vectors" / "frames.json"
HEAP = "512K"  # the fuzzer's own bookkeeping on top of the firmware's (which the sim runs in 192K)


@dataclasses.dataclass
class FuzzRun:
    returncode: int
    output: str  # what the fuzzer printed for people (its JSON summary line left out)
    stderr: str
    summary: dict | None  # the JSON summary; None if the process died before printing it

    def report(self) -> str:
        return self.output + (("\n" + self.stderr) if self.stderr.strip() else "")


def command(frames: int, seed: int) -> str:
    """The shell line that replays a run."""
    return f"python bench/bench_fuzz.py --frames {frames} --seed {seed}"


def run(frames: int, seed: int, *, journal_cells: int = 64, samples: int = 20, timeout: float | None = None) -> FuzzRun:
    with tempfile.TemporaryDirectory(prefix="mesofuzz-") as tmp:
        staged = image.stage("sim", pathlib.Path(tmp) / "image")
        flash = pathlib.Path(tmp) / "flash"
        flash.mkdir()
        env = {
            "MICROPYPATH": f"{staged}:{image.VIRTUAL}",
            "MESOFUZZ_VECTORS": str(VECTORS),
            "MESOFUZZ_FRAMES": str(frames),
            "MESOFUZZ_SEED": str(seed),
            "MESOFUZZ_SAMPLES": str(samples),
            "MESOFUZZ_JOURNAL_CELLS": str(journal_cells),
        }
        proc = subprocess.run([micropython_binary(), "-X", "heapsize=" + HEAP, str(SCRIPT)], cwd=flash, env=env,
                              capture_output=True, text=True, timeout=timeout)
    lines = proc.stdout.rstrip().splitlines()
    summary = None
    if lines and lines[-1].startswith("{"):
        summary = json.loads(lines.pop())
    return FuzzRun(proc.returncode, "\n".join(lines), proc.stderr, summary)
