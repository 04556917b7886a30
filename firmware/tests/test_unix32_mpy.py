"""The firmware on the 32-bit unix port (31-bit small ints, ticks wrapping at 2^30, as on an RP2040),
started 5 s before its ticks wrap: no heap allocated per nappage shot in steady state. The whole
firmware suite runs on that build in ./test.sh (MESOINJECT_MICROPYTHON); this one runs wherever the
binary is, whichever port the rest of the tests use."""

import json
import pathlib
import subprocess

import pytest

from mesoinject import compiled, image
from mesosim.harness import RP2040_HEAP as HEAP, UNIX32_HOWTO, unix32_binary

SCRIPT = pathlib.Path(__file__).parent / "mpy_heap.py"


@pytest.mark.req("SR-044")
def test_no_heap_allocation_per_shot_on_32_bit(tmp_path):
    binary = unix32_binary()
    if not binary:
        pytest.skip(UNIX32_HOWTO)
    flash = compiled.stage("sim", tmp_path / "flash", binary)  # the .mpy image a flash writes
    proc = subprocess.run([binary, "-X", "heapsize=" + HEAP, str(SCRIPT), str(flash)], cwd=flash,
                          env={"MICROPYPATH": f"{flash}:{image.VIRTUAL}", "MICROPY_TICKS_WRAP_S": "5"}, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    # binascii.crc32 results >= 2^30 were heap objects on every journal write: 146 B per shot
    assert r["bytes_per_shot"] == 0, r
    assert r["shots"] == 60


@pytest.mark.req("SR-044", "SR-185")
def test_no_heap_allocation_per_shot_with_the_journal_append_area_on_32_bit(tmp_path):
    # the same burst on a board with an append area (as the simulated board has): a shot's open,
    # checkpoints and close are entries programmed there, read back for the host from there
    binary = unix32_binary()
    if not binary:
        pytest.skip(UNIX32_HOWTO)
    flash = image.stage("sim", tmp_path / "flash")
    proc = subprocess.run([binary, "-X", "heapsize=" + HEAP, str(SCRIPT), str(flash), "area"], cwd=flash,
                          env={"MICROPYPATH": f"{flash}:{image.VIRTUAL}", "MICROPY_TICKS_WRAP_S": "5"}, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    print(r)
    assert r["area_entries"] > 0  # the burst's records went to the area
    assert r["bytes_per_shot"] == 0, r
    assert r["shots"] == 60
