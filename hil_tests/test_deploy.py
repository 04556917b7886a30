"""Deploying the firmware onto a blank simulated board: mpremote's mip, and `mesoinject flash`."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import pytest

from mesoinject import flash, image
from mesoinject.client import Device
from mesoprotocol import spec

pytestmark = pytest.mark.sim_only  # deploys onto fresh simulated boards of its own, never the board under test


@pytest.fixture
def blank_sim(request, tmp_path):
    """A simulated board with nothing on its flash: it boots to the REPL."""
    from mesoinject.simulated import SimBoard

    # mip installs the .py sources, which the board then compiles in its own heap: the sources' heap
    # (the 64-bit port needs more room for that than the RP2040's 32-bit one)
    sources = request.node.get_closest_marker("installs_sources") is not None
    with SimBoard(workdir=tmp_path, stage=False, seed=request.config.sim_seed, sources=sources) as sim:
        assert sim.repl == "friendly"
        yield sim


def flash_files(sim) -> dict[str, str]:
    # the code on the flash; the board's command key is its own, from the factory (mesosim paired)
    return {p.relative_to(sim.flash).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sim.flash.rglob("*") if p.is_file() and p.name != "key"}


@pytest.mark.installs_sources
def test_mip_installs_the_firmware_and_the_board_layer(blank_sim):
    for package in (image.FIRMWARE / "package.json", image.BOARDS / "sim" / "package.json"):
        proc = subprocess.run([sys.executable, "-m", "mpremote", "connect", blank_sim.pty_path,
                               "mip", "install", "--target", "/", str(package)],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    assert flash_files(blank_sim) == {rel: hashlib.sha256(src.read_bytes()).hexdigest()
                                      for src, rel in image.manifest("sim")}
    blank_sim.power_cut(0)  # power-cycle: boot.py, main.py, the firmware
    # asked until it answers, as `mesoinject flash` asks: from sources the board compiles the firmware before it
    # can answer (one HELLO's 2.8 s of tries ran out in a CI run on a loaded host)
    ident = flash.hello_after_reset(blank_sim.url, timeout=60)
    assert (ident["board"], "%d.%d.%d" % (ident["fw_major"], ident["fw_minor"], ident["fw_patch"])) == \
        ("sim", "%d.%d.%d" % image.firmware_version())


@pytest.mark.req("SR-075")
def test_flash_compiles_copies_verifies_and_restarts_a_blank_board(blank_sim):

    report = flash.flash("sim", blank_sim.pty_path)
    build = report.build
    assert report.identity["board"] == "sim"
    assert "%d.%d.%d" % (report.identity["fw_major"], report.identity["fw_minor"], report.identity["fw_patch"]) \
        == "%d.%d.%d" % image.firmware_version()
    # every module as .mpy, boot.py and main.py as source, the build config; nothing else
    expected = {rel[:-3] + ".mpy" if rel not in flash.KEEP_SOURCE else rel for _, rel in image.manifest("sim")}
    on_flash = flash_files(blank_sim)
    assert {rel for rel, _ in build.files} == expected
    assert set(on_flash) - expected == {flash.CONFIG} | _data_files(on_flash)
    assert {rel: on_flash[rel] for rel in expected} == {rel: hashlib.sha256(d).hexdigest() for rel, d in build.files}
    config = json.loads((blank_sim.flash / flash.CONFIG).read_text())
    assert (config["board"], config["build"], config["version"]) == ("sim", build.build_hash, build.version)
    assert blank_sim.resets[-1] == spec.RESET_SOFT and blank_sim.boots == 1  # the firmware started once, on its own
    print(f"\nflash onto the sim: {report.seconds['total']:.2f} s over its pty, {build.mpy_bytes()} bytes of .mpy")


def _data_files(on_flash):
    """What the firmware wrote on its first boot (boot counter, settings, journal)."""
    return {rel for rel in on_flash if not rel.endswith((".py", ".mpy")) and rel != "build.json"}


def test_flash_replaces_a_source_image_in_safe_mode(request, tmp_path):
    """The usual bench case: a board running older firmware, powered up with the E-stop pressed and the
    trigger held (service mode)."""
    from mesoinject.simulated import SimBoard

    with SimBoard(workdir=tmp_path, seed=request.config.sim_seed, sources=True) as sim:  # the .py image, running
        sim.boot_to_repl()
        report = flash.flash("sim", sim.url)
        assert sorted(report.removed) == sorted(rel for _, rel in image.manifest("sim")
                                                if rel not in flash.KEEP_SOURCE)  # no .py shadows its .mpy
        assert not [p for p in flash_files(sim) if p.endswith(".py") and p not in flash.KEEP_SOURCE]
        with Device.open(sim.url) as dev:
            assert dev.hello().board == "sim"  # the firmware is back, from the .mpy files
        sim.boot_to_repl()
        assert flash.verify(sim.url) == []
        (sim.flash / "mesofw" / "dosing.mpy").write_bytes(b"not what was flashed")
        assert flash.verify(sim.url) == ["mesofw/dosing.mpy"]


def test_flash_asks_for_safe_mode_when_the_firmware_has_no_repl_command(request, tmp_path):
    if hasattr(spec, "REPL"):
        pytest.skip("the protocol has a REPL command: test_flash_takes_a_running_firmware_to_its_repl covers it")
    from mesoinject.simulated import SimBoard

    with SimBoard(workdir=tmp_path, seed=request.config.sim_seed) as sim:
        with pytest.raises(flash.FlashError, match="safe mode"):
            flash.flash("sim", sim.url)
        with Device.open(sim.url) as dev:
            assert dev.hello().board == "sim"  # still running, untouched


@pytest.mark.req("SR-073")
@pytest.mark.skipif(not hasattr(spec, "REPL"), reason="needs the protocol's REPL command (spec.REPL), not there yet")
def test_flash_takes_a_running_firmware_to_its_repl(request, tmp_path):
    from mesoinject.simulated import SimBoard

    with SimBoard(workdir=tmp_path, seed=request.config.sim_seed) as sim:
        with pytest.raises(flash.FlashError, match="E-stop and hold the trigger 3 s"):
            flash.flash("sim", sim.url)  # nobody at the gun: the key alone does not replace the firmware
        pairing_gesture(sim)
        report = flash.flash("sim", sim.url)
        assert "REPL command" in report.how
        with Device.open(sim.url) as dev:
            assert not dev.hello().paired  # service mode erased the key: pair again


def pairing_gesture(sim):
    """E-stop pressed and trigger held until the gun shows pairing mode, then both let go (the window
    stays open for PAIRING_WINDOW_MS)."""
    sim.set_estop(True)
    sim.set_trigger(True)
    sim.wait_led((spec.LED_PAIRING,), spec.PAIRING_HOLD_MS / 1000 + 5)
    sim.set_trigger(False)
    sim.set_estop(False)


@pytest.mark.req("SR-073")
def test_service_mode_needs_the_gesture_and_never_shows_the_key(request, tmp_path):
    """Issue 15 row 6: the trigger alone at power-up opened a REPL that read the key and took any firmware."""
    from mesoinject.client import DeviceRefused, NotPaired
    from mesoinject.simulated import SimBoard

    with SimBoard(workdir=tmp_path, seed=request.config.sim_seed) as sim:
        sim.hold_trigger_at_boot = True  # the old safe mode: trigger held at power-up, no E-stop
        try:
            sim.power_cut(0)  # returns once the firmware has booted: no REPL
        finally:
            sim.hold_trigger_at_boot = False
        with Device.open(sim.url) as dev:
            assert dev.hello().paired
            with pytest.raises(DeviceRefused) as e:
                dev.command(spec.REPL)  # signed with the key, but nobody at the gun
            assert e.value.reason == "NOT_PAIRING"
        assert (sim.flash / "key").exists() and sim.repl is None
        sim.boot_to_repl()  # the service gesture: E-stop pressed, trigger held 3 s at power-up
        repl = flash.Repl(sim.url)
        try:
            assert repl.enter(timeout=5)
            assert "'key'" not in repl.exec("import os\nprint(repr(os.listdir('/')))")  # erased before the REPL
        finally:
            repl.close()
        sim.power_cut(0)
        with Device.open(sim.url) as dev:
            assert not dev.hello().paired
            dev.abort()  # the RESET alarm: ABORT stays open
            with pytest.raises(NotPaired):
                dev.configure(technique=1, syringe=1, head=1, vacuum_kpa=0, needle_length_um=4000, depth_um=3000,
                              volume_nl=30000, count=1, cadence_mhz=0, flow_nl_s=50000, session=1)


@pytest.mark.req("SR-075")
@pytest.mark.skipif("build" not in spec.layout(spec.IDENTITY)[1],
                    reason="IDENTITY has no build field yet: flash checks the version and the files' hashes")
def test_hello_reports_the_build_hash_after_a_flash(blank_sim):

    report = flash.flash("sim", blank_sim.pty_path)
    assert report.identity["build"] == int(report.build.build_hash, 16)


@pytest.mark.req("SR-075")
def test_flash_refuses_another_boards_image(blank_sim):

    with pytest.raises(flash.FlashError, match="linux board; --board pico runs on rp2"):
        flash.flash("pico", blank_sim.pty_path)
    assert flash_files(blank_sim) == {}


def test_flash_cli_prints_what_it_did(blank_sim, capsys):
    from mesoinject import cli

    assert cli.main(["flash", "--board", "sim", "--port", blank_sim.url]) == 0
    out = capsys.readouterr().out
    files = len(image.manifest("sim")) + 1  # and the build config
    assert f"verified {files} files by sha256 on the board" in out
    assert f"flashed sim firmware {'%d.%d.%d' % image.firmware_version()} build " in out
    # what the boot made of the journal's append area (the sim's raw blocks; flasharea.py on a pico/esp32s3)
    assert "journal append area: 512 entries: a dose's records cost page programs, no erase" in out
