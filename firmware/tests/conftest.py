"""Run firmware code on the MicroPython unix port, staged exactly as on a board: its modules compiled to .mpy,
as a flash writes them (mesoinject.compiled, once per content), for the port the tests run on."""

import json
import os
import subprocess

import pytest

from mesoinject import compiled, image
from mesosim.harness import micropython_binary


def _env(flash):
    # MICROPY_TICKS_WRAP_S (32-bit build: ticks start N s before their wrap) reaches the firmware
    env = {"MICROPYPATH": f"{flash}:{image.VIRTUAL}"}
    if os.environ.get("MICROPY_TICKS_WRAP_S"):
        env["MICROPY_TICKS_WRAP_S"] = os.environ["MICROPY_TICKS_WRAP_S"]
    return env


@pytest.fixture(scope="session")
def flash(tmp_path_factory):
    return compiled.stage("sim", tmp_path_factory.mktemp("flash"), micropython_binary())


@pytest.fixture(scope="session")
def run_mpy(flash):
    """run_mpy(script_path, *args) -> parsed JSON the script prints on its last line.

    Test drivers get a larger heap than the target's: they hold whole vector files
    and results; the firmware itself runs with the target heap in the simulator.
    """

    def run(script, *args, heap="1M"):
        proc = subprocess.run([micropython_binary(), "-X", "heapsize=" + heap, str(script), *map(str, args)],
                              cwd=flash, env=_env(flash), capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return json.loads(proc.stdout.strip().splitlines()[-1])

    return run


@pytest.fixture(scope="module")
def pico_fs(tmp_path_factory):
    """The firmware's modules on an emulated Pico's littlefs image, without main.py: the board boots to its
    REPL for a test's script (service mode would need the E-stop and 3 s of trigger, and erases the key)."""
    import picoemu  # tools/pico-emu, on the path of the tests that use it

    try:
        picoemu.locate()
    except picoemu.Unavailable as e:
        pytest.skip(f"emulated Pico unavailable: {e}")
    return picoemu.build_fs("pico", tmp_path_factory.mktemp("pico") / "littlefs.img", without=("main.py",))
