"""RAM and heap allocation of the firmware on MicroPython with the target's heap (192 KB, as an
RP2040); printed, never asserted: RAM after boot, in the middle of a nappage burst, and the heap
allocated per shot in steady state (journal write, DELIVERY event and all), and with the
controlling host's signed POLL answered between shots.

    python bench/bench_heap.py
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
import tempfile

from mesoinject import image
from mesosim.harness import HEAP, micropython_binary

SCRIPT = pathlib.Path(__file__).parents[1] / "firmware" / "tests" / "mpy_heap.py"


def measure() -> dict:
    with tempfile.TemporaryDirectory() as d:
        flash = image.stage("sim", pathlib.Path(d) / "flash")
        proc = subprocess.run([micropython_binary(), "-X", "heapsize=" + HEAP, str(SCRIPT), str(flash)],
                              cwd=flash, env={"MICROPYPATH": str(flash)}, capture_output=True, text=True, timeout=120)
        if proc.returncode:
            raise RuntimeError(proc.stdout + proc.stderr)
        return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    r = measure()
    print(f"heap {r['heap'] // 1024} KB: firmware objects after boot {r['firmware'] / 1024:.1f} KB "
          f"({r['after_boot'] / 1024:.1f} KB in use), in a nappage burst {r['mid_burst'] / 1024:.1f} KB; "
          f"{r['bytes_per_shot']:.0f} bytes of heap allocated per shot in steady state (over {r['shots'] - 10} shots); "
          f"with a signed POLL answered between shots {r['bytes_per_poll_and_shot']:.0f} bytes per POLL and shot "
          f"(the POLL's HMAC check, decode and reply; the shot itself allocates the figure before)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
