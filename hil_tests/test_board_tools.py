"""The simulated board as the board tools see it: mpremote (reset, ls, df) at its REPL, `mesoinject repl`
and `info`, one process per simulated flash, and a flashed image that stays what runs."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from mesoinject import cli
from mesoinject.client import Device
from mesoprotocol import spec
from test_deploy import pairing_gesture

pytestmark = pytest.mark.sim_only  # boards of its own, driven through the simulator's control channel

FLASH_BYTES = 352 * 4096  # the simulated flash's size (host/mesosim/rom/flashfs.py): a Pico's littlefs


@pytest.fixture
def fresh_sim(request, tmp_path):
    from mesoinject.simulated import SimBoard

    with SimBoard(workdir=tmp_path / "board", seed=request.config.sim_seed) as sim:
        yield sim


def mpremote(sim, *args, timeout=60):
    # the board's serial port as a serial tool finds it (tty_path); timeout: only against a hang
    return subprocess.run([sys.executable, "-m", "mpremote", "connect", sim.tty_path, *args],
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.req("SR-140")
def test_mpremote_reset_restarts_the_firmware(fresh_sim):
    fresh_sim.boot_to_repl()
    boots, resets = fresh_sim.boots, len(fresh_sim.resets)
    proc = mpremote(fresh_sim, "reset")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # machine.reset() as on a board: the reset line, then boot.py and main.py: the firmware runs again
    fresh_sim.wait(lambda: fresh_sim.boots > boots, 10, "the firmware did not start after mpremote reset")
    assert fresh_sim.resets[-1] == spec.RESET_SOFT and len(fresh_sim.resets) > resets
    with Device.open(fresh_sim.url) as dev:
        assert dev.hello().board == "sim"


@pytest.mark.req("SR-140")
def test_mpremote_ls_and_df_give_the_flash_sizes(fresh_sim):
    fresh_sim.boot_to_repl()
    proc = mpremote(fresh_sim, "ls", "/mesofw")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    listed = {m.group(2): int(m.group(1)) for m in re.finditer(r"^\s*(\d+) (\S+)$", proc.stdout, re.M)}
    on_flash = {p.name: p.stat().st_size for p in (fresh_sim.flash / "mesofw").iterdir() if p.is_file()}
    assert listed == on_flash and min(on_flash.values()) > 0  # the old sim listed every size as 0
    proc = mpremote(fresh_sim, "df")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    size, used, avail = (int(v) for v in re.search(r"^\S+\s+(\d+)\s+(\d+)\s+(\d+)\s+\d+\s+/$", proc.stdout, re.M).groups())
    files = sum(p.stat().st_size for p in fresh_sim.flash.rglob("*") if p.is_file())
    assert size == FLASH_BYTES and used + avail == size  # a flash's size, not the host disk's
    assert files <= used < files + 4096 * (len(list(fresh_sim.flash.rglob("*"))) + 1)


@pytest.mark.req("SR-140")
def test_mpremote_on_the_running_firmware_gives_up_instead_of_hanging(fresh_sim):
    # the firmware takes Ctrl-C and Ctrl-A as data and never answers; mpremote reading a /dev/pts path
    # blocks for good, so the board's serial tty is a link it polls (and gives up after its 10 s)
    proc = mpremote(fresh_sim, "ls")
    assert proc.returncode != 0 and "could not enter raw repl" in proc.stderr
    with Device.open(fresh_sim.url) as dev:
        assert dev.hello().board == "sim"  # still running, untouched


@pytest.mark.req("SR-140")
def test_repl_command_then_mpremote_works(fresh_sim, capsys):
    assert cli.main(["repl", "--port", fresh_sim.url]) == 1  # nobody at the gun
    assert "E-stop and hold the trigger 3 s" in capsys.readouterr().err
    pairing_gesture(fresh_sim)
    assert cli.main(["repl", "--port", fresh_sim.url]) == 0
    out = capsys.readouterr().out
    assert f"mpremote connect {fresh_sim.url} fs ls" in out and "key is erased" in out
    proc = mpremote(fresh_sim, "ls")
    assert proc.returncode == 0 and " main.py" in proc.stdout and " key" not in proc.stdout, proc.stdout + proc.stderr


@pytest.mark.req("SR-142")
def test_info_shows_alarm_build_pairing_journal_and_calibration(fresh_sim, capsys):
    assert cli.main(["info", "--port", fresh_sim.url]) == 0
    out = capsys.readouterr().out
    assert "alarm RESET (" in out  # the boot's alarm, until a host acknowledges it
    assert "build none: a source image" in out
    assert "pairing paired (command counter" in out
    assert "calibration no syringe configured since boot" in out
    journal_free = int(re.search(r"journal room for (\d+) more records \(0 not yet acknowledged", out).group(1))
    assert journal_free > 0
    assert "journal append area 512 entries (a dose's records cost page programs, no erase)" in out  # the sim's 4 blocks
    with Device.open(fresh_sim.url) as dev:
        dev.hello()
        dev.abort()
        dev.calibrate(1, 1_012_300)
        dev.configure(technique=spec.TECHNIQUE_POINT, syringe=1, head=1, vacuum_kpa=0, needle_length_um=4000, depth_um=2000,
                      volume_nl=20_000, count=1, cadence_mhz=0, flow_nl_s=20000)
    assert cli.main(["info", "--port", fresh_sim.url]) == 0
    out = capsys.readouterr().out
    assert "alarm none" in out
    assert "calibration BD 1 mL bore area x 1.0123 (+1.23 %)" in out
    assert "journal room for %d more records" % journal_free in out  # the RESET alarm is not journalled


@pytest.mark.req("SR-141")
def test_two_processes_cannot_run_one_simulated_flash(fresh_sim):
    from mesoinject.simulated import SimBoard
    from mesosim import FlashInUse

    with pytest.raises(FlashInUse, match=rf"already running in process {os.getpid()}\b"):
        SimBoard(workdir=fresh_sim.workdir).start()
    with pytest.raises(cli.UsageError, match="already running in process"):  # the CLI's exit 2, said in one line
        with cli._started(SimBoard(workdir=fresh_sim.workdir)):
            pass
    with Device.open(fresh_sim.url) as dev:
        assert dev.hello().board == "sim"  # the first is untouched: nothing was staged over it


@pytest.mark.req("SR-141")
def test_a_flashed_image_is_not_restaged_at_the_next_start(request, tmp_path):
    from mesoinject import flash
    from mesoinject.simulated import SimBoard

    with SimBoard(workdir=tmp_path, stage=False, seed=request.config.sim_seed) as sim:  # blank: at its REPL
        report = flash.flash("sim", sim.url)
    with SimBoard(workdir=tmp_path, seed=request.config.sim_seed) as sim:  # stage=True, the default
        sources = [p.name for p in sim.flash.rglob("*.py") if p.name not in flash.KEEP_SOURCE]
        assert sources == []  # a staged .py would run instead of its .mpy, under the flashed build's id
        with Device.open(sim.url) as dev:
            assert dev.hello().build == report.build.build_hash
