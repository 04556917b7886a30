"""Deploying the firmware onto a blank simulated board: mpremote's mip, and `mesoinject flash`."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import pytest

from mesoinject import image
from mesoinject.client import Device


@pytest.fixture
def blank_sim(request, tmp_path):
    """A simulated board with nothing on its flash: it boots to the REPL."""
    if request.config.getoption("--port"):
        pytest.skip("deploys onto a fresh simulated board, not onto the board under test")
    from mesosim import SimBoard

    with SimBoard(workdir=tmp_path, stage=False, seed=request.config.sim_seed) as sim:
        assert sim.repl == "friendly"
        yield sim


def flash_files(sim) -> dict[str, str]:
    return {p.relative_to(sim.flash).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sim.flash.rglob("*") if p.is_file()}


def test_mip_installs_the_firmware_and_the_board_layer(blank_sim):
    for package in (image.REPO / "package.json", image.BOARDS / "sim" / "package.json"):
        proc = subprocess.run([sys.executable, "-m", "mpremote", "connect", blank_sim.pty_path,
                               "mip", "install", "--target", "/", str(package)],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    assert flash_files(blank_sim) == {rel: hashlib.sha256(src.read_bytes()).hexdigest()
                                      for src, rel in image.manifest("sim")}
    blank_sim.power_cut(0)  # power-cycle: boot.py, main.py, the firmware
    with Device.open(blank_sim.url) as dev:
        ident = dev.hello()
    assert (ident.board, ident.firmware) == ("sim", "%d.%d.%d" % image.firmware_version())
