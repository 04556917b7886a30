"""The firmware as a flash writes it (.mpy) in the RP2040's heap (192K) on the port the tests run on (the
64-bit unix port, or the 32-bit build in ./test.sh's 32-bit tier): it boots and primes, and leaves
HEADROOM_BYTES free, so a firmware that grows toward the chip's limit fails here with its figures, before a
board runs out of heap while dosing. bench/bench_heap.py --per-module says where the bytes went."""

import json
import pathlib
import subprocess

import pytest

from mesoinject import compiled, image
from mesosim.harness import RP2040_HEAP, micropython_binary

SCRIPT = pathlib.Path(__file__).parent / "mpy_heap.py"
# after boot and a prime: what a signed POLL (1.4 KB on the 64-bit port), a burst's journal segment and
# the collector's fragmentation need on top, with room to spare (measured: 55 KB free on 64-bit, 94 KB on 32-bit)
HEADROOM_BYTES = 16 * 1024


@pytest.mark.req("SR-190")
def test_the_flashed_image_fits_the_rp2040_heap_with_headroom(tmp_path):
    binary = micropython_binary()
    flash = compiled.stage("sim", tmp_path / "flash", binary)
    proc = subprocess.run([binary, "-X", "heapsize=" + RP2040_HEAP, str(SCRIPT), str(flash), "boot"], cwd=flash,
                          env={"MICROPYPATH": f"{flash}:{image.VIRTUAL}"}, capture_output=True, text=True, timeout=60)
    out = (proc.stdout + proc.stderr).strip()
    assert "MemoryError" not in out, f"the firmware no longer fits the RP2040's {RP2040_HEAP} heap: {out[-600:]}"
    assert proc.returncode == 0, out
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    free = r["heap"] - max(r["after_boot"], r["after_prime"])
    assert free >= HEADROOM_BYTES, (
        f"the firmware leaves {free} bytes of the {RP2040_HEAP} heap free after boot and a prime, less than "
        f"{HEADROOM_BYTES}: it uses {r['after_boot']} bytes (bench/bench_heap.py --per-module: which module grew)")
