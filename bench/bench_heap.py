"""RAM and heap allocation of the firmware on MicroPython with the target's heap (192 KB, as an
RP2040); printed, never asserted: RAM after boot, in the middle of a nappage burst, and the heap
allocated per shot in steady state (journal write, DELIVERY event and all), and with the
controlling host's signed POLL answered between shots. On the unix port the tests use (x86-64)
and, where it is here, on the 32-bit build (31-bit small ints as on an MCU, ticks started 5 s
before their 2^30 wrap).

    python bench/bench_heap.py
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
import tempfile

from mesoinject import image
from mesosim.harness import RP2040_HEAP as HEAP, UNIX32_HOWTO, micropython_binary, unix32_binary

FALLBACK_HEAP = "256K"
SCRIPT = pathlib.Path(__file__).parents[1] / "firmware" / "tests" / "mpy_heap.py"


def measure(binary: str, env: dict | None = None) -> dict:
    """At the target's heap; where the firmware does not fit it that is printed loudly (a finding, not a
    crash of the bench) and the figures are taken at FALLBACK_HEAP so the per-shot figure is still seen."""
    try:
        return measure_at(binary, HEAP, env)
    except RuntimeError as e:
        if "MemoryError" not in str(e):
            raise
        print(f"DOES NOT FIT the target's {HEAP} heap: {str(e).strip().splitlines()[-1]} - figures below at "
              f"{FALLBACK_HEAP}")
        return measure_at(binary, FALLBACK_HEAP, env)


def measure_at(binary: str, heap: str, env: dict | None = None) -> dict:
    with tempfile.TemporaryDirectory() as d:
        flash = image.stage("sim", pathlib.Path(d) / "flash")
        proc = subprocess.run([binary, "-X", "heapsize=" + heap, str(SCRIPT), str(flash)],
                              cwd=flash, env={"MICROPYPATH": f"{flash}:{image.VIRTUAL}", **(env or {})}, capture_output=True, text=True,
                              timeout=120)
        if proc.returncode:
            raise RuntimeError(proc.stdout + proc.stderr)
        return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    report("unix port", measure(micropython_binary()))
    binary = unix32_binary()
    if binary:
        report("32-bit", measure(binary, {"MICROPY_TICKS_WRAP_S": "5"}))
    else:
        print(f"32-bit: skipped: {UNIX32_HOWTO}")
    return 0


def report(port: str, r: dict) -> None:
    print(f"{port}: heap {r['heap'] // 1024} KB: firmware objects after boot {r['firmware'] / 1024:.1f} KB "
          f"({r['after_boot'] / 1024:.1f} KB in use), in a nappage burst {r['mid_burst'] / 1024:.1f} KB; "
          f"{r['bytes_per_shot']:.0f} bytes of heap allocated per shot in steady state (over {r['shots'] - 10} shots); "
          f"with a signed POLL answered between shots {r['bytes_per_poll_and_shot']:.0f} bytes per POLL and shot "
          f"(the POLL's HMAC check, decode and reply; the shot itself allocates the figure before)")


if __name__ == "__main__":
    sys.exit(main())
