"""Simulated board harness: runs the real firmware on the MicroPython unix port.

SimBoard composes the parts, one job each: process.py (the MicroPython process on a pty with its flash
directory as root, power, reset and watchdog), bridge.py (the serial port bridged to a pty and to
socket://127.0.0.1:PORT, through a link that can fail), control.py (ground truth, the operator's inputs and
fault injection on a separate loopback control channel, JSON lines with one schema, never on the serial
port). Here: the board's provisioning (its profile, factory key, flash) and the one I/O thread.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import pathlib
import random
import selectors
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable

from mesoprotocol import spec

from .balance import SimBalance
from .bridge import SerialBridge
from .control import BoardControls, ControlChannel, ControlError, Injection, Penetration, Truth
from .drugs import DrugControls
from .heads import HeadControls, head_profile
from .linkfaults import LinkFaults
from .ports import read
from .process import (HEAP, RP2040_HEAP, SOURCES_HEAP, UNIX32_HOWTO, WATCHDOG_S, BoardProcess, MicroPythonMissing,
                      micropython_binary, ticks_diff, ticks_period, unix32_binary)

# what callers import from here
__all__ = ["SimBoard", "FlashInUse", "FLASHED_BUILD", "Truth", "Penetration", "Injection", "ControlError", "HEAP",
           "RP2040_HEAP", "SOURCES_HEAP", "UNIX32_HOWTO", "WATCHDOG_S", "MicroPythonMissing", "micropython_binary",
           "unix32_binary", "ticks_period", "ticks_diff", "imperfections"]


SERIAL_TAIL = 2048  # bytes of the board's serial output kept to explain a boot that failed
FLASHED_BUILD = "build.json"  # on a flash `mesoinject flash` wrote: what runs is that build, never restaged


class FlashInUse(RuntimeError):
    """Another process runs this simulated flash: two MicroPython processes on one flash corrupt it."""


# The makers' nominal bores (um) as a syringe-pump maker lists them (New Era Pump Systems NE-1000 manual,
# syringe diameter table): the model draws a syringe's true bore from these, not from spec.SYRINGES (the
# firmware's table, from drug libraries), so the two disagree as they do in practice. Sizes that table
# lacks fall back to spec's bore.
MAKER_BORE_UM = {1: 4699, 2: 8585, 3: 11989, 4: 14427, 5: 4700, 6: 8950}
BORE_TOLERANCE = 0.02  # moulding tolerance of a bore about its maker's nominal (ISO 7886-1 leaves it to the maker)


def imperfections(seed: int, syringe: int = 1) -> dict:
    """A board's mechanical imperfections, drawn from the ranges a real injector shows (docs/sim-model.md).

    The same seed gives the same board: print it, and a failure can be replayed.
    """
    rng = random.Random(seed)
    table_um = spec.SYRINGES[syringe][1]
    bore_um = MAKER_BORE_UM.get(syringe, table_um) * (1 + rng.uniform(-BORE_TOLERANCE, BORE_TOLERANCE))
    return {
        "play_um": rng.uniform(20, 100) + rng.uniform(5, 20),  # lead-screw backlash + stopper breakaway
        "compliance_nl_per_kpa_mm2": rng.uniform(0.015, 0.06),  # x stopper area: BD 1 mL 0.3-1.1, BD 10 mL 2.5-9.8
        "creep_share": rng.uniform(0.05, 0.25),  # the stopper's slow (viscoelastic) share of its compliance
        "creep_ms": rng.uniform(200, 1000),
        "slip_um": rng.uniform(0.0, 0.3),  # stick-slip: stopper travel its ribs hold before they let go
        "viscosity_mpa_s": rng.uniform(1.0, 2.0),  # lidocaine and saline ~1; vitamin/HA cocktails more
        "tissue_kpa_per_ul": rng.uniform(0.5, 4.0),  # dermis back-pressure as the wheal grows
        "reflux_share_at_1mm": rng.uniform(0.0, 0.03),  # of the wheal, back along the track at 1 mm
        "needle_play_um": rng.uniform(10, 60),  # the depth axis's own lost motion
        "sensor_offset_kpa": rng.uniform(-3.0, 3.0),  # zero offset of the pressure sensor
        "sensor_noise_kpa": rng.uniform(0.2, 1.0),  # its noise (standard deviation)
        "sensor_lag_ms": rng.uniform(0.3, 1.5),  # its filter's time constant
        "sensor_lsb_kpa": 1.0,  # its quantum
        "sensor_seed": rng.randrange(1 << 30),
        "diameter_error": bore_um / table_um - 1,  # the true bore vs the firmware's table
    }


class SimBoard(BoardControls, HeadControls, DrugControls):
    """A simulated injector board. Use as a context manager or start()/stop().

    seed: draw imperfections (backlash, compliance, tissue, bore) from this seed;
    profile: explicit physical parameters, applied last (e.g. {"diameter_error": 0}).
    stage=False: boot the flash as it is (blank in a new workdir: the REPL), e.g. to flash it.
    The operator's inputs, fault injection and ground truth: BoardControls (control.py).
    """

    def __init__(self, *, syringe: int = 1, serial: str = "SIM-0001", heap: str = HEAP,
                 workdir: str | os.PathLike | None = None, profile: dict | None = None,
                 seed: int | None = None, journal_cells: int | None = None,
                 stage: bool = True, paired: bool = True, head: int = 1):
        self.syringe = syringe
        self.journal_cells = journal_cells  # the firmware's journal size (default: the board's)
        self.stage = stage  # copy this repository's firmware to the flash at start (False: leave it as it is)
        # paired: the board comes with its factory key (derived from the serial: a simulator's key
        # protects nothing) on its flash and in this host's key store, as if paired at manufacture
        self.paired = paired
        self.serial = serial
        self.heap = heap
        self._own_workdir = workdir is None
        self.workdir = pathlib.Path(workdir or tempfile.mkdtemp(prefix="mesosim-"))
        self.flash = self.workdir / "flash"
        self.log_path = self.workdir / "board.log"
        diameter_um = spec.SYRINGES[syringe][1]
        self.profile = {
            "serial": serial,
            "diameter_um": diameter_um,
            "barrel_um": spec.SYRINGES[syringe][4],
            "content_nl": spec.syringe_capacity_nl(syringe),
            "plunger_steps_per_mm": 3200,
            "needle_steps_per_mm": 100,
        }
        self.seed = seed
        self.profile.update(head_profile(head, seed))  # the head it is built with: spec.HEADS, filled
        if seed is not None:
            self.profile.update(imperfections(seed, syringe))
        self.profile.update(profile or {})
        self._init_controls()
        self._init_heads(head)
        self._init_drugs()
        self.balance: SimBalance | None = None
        self.boots = 0
        # inputs held while the board powers up; both (the service gesture): main.py erases the key and
        # stays in the REPL instead of starting the firmware
        self.hold_trigger_at_boot = False
        self.hold_estop_at_boot = False
        self._serial_tail = b""  # the last bytes the board sent on its serial port: what a failing firmware printed
        # a wire tap for benchmarks: called (time.time(), bytes) as the firmware's bytes leave the board
        self.on_device_bytes: Callable[[float, bytes], None] | None = None
        self._cond = threading.Condition()
        self._process: BoardProcess | None = None
        self._bridge: SerialBridge | None = None
        self.control: ControlChannel | None = None  # type: ignore[assignment]
        self._stopping = False
        self._thread: threading.Thread | None = None

    # ---- lifecycle -------------------------------------------------------------------
    def start(self) -> SimBoard:
        self.flash.mkdir(parents=True, exist_ok=True)
        self._lock_flash()
        try:
            return self._start()
        except BaseException:
            self._unlock_flash()
            raise

    def _start(self) -> SimBoard:
        if self.stage and not self.flashed:  # a flashed image stays what runs: its build id names it
            self.install_firmware()
        if self.paired:
            if not (self.flash / "key").exists():
                (self.flash / "key").write_bytes(self.factory_key)
            if (self.flash / "key").read_bytes() == self.factory_key:  # not re-paired since
                self.factory_key_in_use()
        self._log = open(self.log_path, "ab")
        self.control = ControlChannel(self._cond, self._on_message)
        self._process = BoardProcess(self.flash, self.heap, self._log, self._boot_environment, self._soft_reboot_banner,
                                     self.control.drain)
        self._bridge = SerialBridge(self._process.master, self._cond)
        self._link_tty()
        self._sel = selectors.DefaultSelector()
        self._sel.register(self._process.master, selectors.EVENT_READ, self._from_device)
        self._bridge.register(self._sel)
        self.control.register(self._sel)
        self.balance = SimBalance(lambda: self.air_nl, density_g_ml=self.profile.get("density_g_ml", 1.0),
                                  seed=self.seed)
        self._process.spawn(spec.RESET_POWER_ON)
        self._thread = threading.Thread(target=self._io_loop, name="mesosim-io", daemon=True)
        self._thread.start()
        if self.service_gesture_at_boot or not (self.flash / "main.py").exists():
            self.wait(lambda: self.repl is not None, 10, "the simulated board did not boot to its REPL")
        else:
            self.wait(lambda: self.control.connected and self.boots > 0, 10, "the simulated board did not boot")
        return self

    @property
    def flashed(self) -> bool:
        """The flash holds an image `mesoinject flash` wrote (its build in /build.json), not staged sources."""
        return (self.flash / FLASHED_BUILD).exists()

    def _lock_flash(self) -> None:
        # one process per simulated flash, as one MCU per chip: an advisory lock the OS drops when its
        # holder dies (no stale lock after a crash); the holder's pid and command line say who it is
        path = self.workdir / "flash.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 1024).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise FlashInUse(f"the simulated flash {self.flash} is already running in {holder}: stop that one "
                             "first, or give this board another serial number (mesoinject sim --serial) "
                             "or work folder") from None
        os.ftruncate(fd, 0)
        os.write(fd, ("process %d (%s)\n" % (os.getpid(), " ".join(sys.argv) or sys.executable)).encode())
        self._lock_fd: int | None = fd

    def _unlock_flash(self) -> None:
        fd, self._lock_fd = getattr(self, "_lock_fd", None), None
        if fd is not None:
            os.close(fd)  # drops the lock

    def _link_tty(self) -> None:
        # a serial-port path for mpremote and other serial tools: mpremote reads a /dev/pts/* path
        # byte by byte with no timeout (QEMU's ptys), so it hangs for good on a board that does not
        # answer its raw-REPL request (the running firmware); through this link it polls and gives up
        # after 10 s with "could not enter raw repl", as on a USB serial port
        tty = self.tty_path
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tty)
        os.symlink(self.pty_path, tty)

    @property
    def tty_path(self) -> str:
        """The board's serial port for serial tools (mpremote, screen): a link to its pty."""
        return str(self.workdir / "ttyACM0")

    # ---- what the host side provides (mesoinject.simulated): the board knows no host library
    def install_firmware(self) -> None:
        """Put the firmware image on self.flash before power-on; data files on the flash stay."""
        raise NotImplementedError("a SimBoard with stage=True needs a subclass that installs the firmware")

    def factory_key_in_use(self) -> None:
        """The board still holds its factory key (self.factory_key): tell whoever keeps host keys."""

    def stop(self) -> None:
        self._stopping = True
        if self._process:
            self._process.stop()
        if self._thread:
            self._thread.join(timeout=5)
        self._sel.close()
        if self.control:
            self.control.close()
        if self._bridge:
            self._bridge.close()
        if self._process:
            self._process.close()
        self._log.close()
        if self.balance:
            self.balance.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.tty_path)
        self._unlock_flash()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> SimBoard:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _boot_environment(self, reset_cause: int) -> dict:
        # what the sim board layer (firmware/boards/sim/board.py) reads as it boots
        snap = self._channel().snap()  # the model's physical state, handed to the next boot
        env = {"MESOSIM_STATE": json.dumps(snap["state"]) if snap else "",
               "MESOSIM_CTRL": self._channel().address,
               "MESOSIM_PROFILE": json.dumps(self.profile),
               "MESOSIM_RESET": str(reset_cause),
               "MESOSIM_SERIAL": self.serial}
        if self.journal_cells:
            env["MESOSIM_JOURNAL_CELLS"] = str(self.journal_cells)
        env["MESOSIM_BOOT_INPUTS"] = ",".join(name for name, held in (
            ("trigger", self.hold_trigger_at_boot), ("estop", self.hold_estop_at_boot)) if held)
        return env

    def _soft_reboot_banner(self) -> None:
        assert self._bridge is not None
        self._bridge.deliver("host", b"MPY: soft reboot\r\n")

    # ---- the board as a whole -------------------------------------------------------------
    @property
    def url(self) -> str:
        return self._bridge.url if self._bridge else ""

    @property
    def pty_path(self) -> str:
        return self._bridge.pty_path if self._bridge else ""

    @property
    def repl(self) -> str | None:
        """"friendly" or "raw" once this boot's REPL is up."""
        return self._process.repl if self._process else None

    def clock(self) -> float:
        """The board's clock, s (BoardProcess.board_s): what the host's waits on this board count (Device.clock)."""
        return self._process.board_s() if self._process else 0.0

    @property
    def resets(self) -> list[int]:
        """The reset cause of every reboot the harness performed."""
        return self._process.resets if self._process else []

    def power_cut(self, off_s: float = 0.2) -> None:
        """Cut power now; it comes back after off_s and the board boots (POWER_ON)."""
        boots = self.boots
        self._running().power_cut(off_s)
        self.wait(lambda: self.boots > boots, off_s + 10, "the board did not come back after the power cut")

    @property
    def service_gesture_at_boot(self) -> bool:
        return self.hold_trigger_at_boot and self.hold_estop_at_boot

    def boot_to_repl(self, timeout: float = 10.0) -> None:
        """Power-cycle with the E-stop pressed and the trigger held (the service gesture, PAIRING_HOLD_MS):
        the firmware erases the command key, does not start, and the REPL stays on the serial port, for
        mpremote. Both are let go once it is up."""
        process = self._running()
        self.hold_trigger_at_boot = self.hold_estop_at_boot = True
        spawns = process.spawns
        try:
            process.power_cut(0.0)
            self.wait(lambda: process.spawns > spawns and self.repl is not None, timeout,
                      "the board did not boot to its REPL")
        finally:
            self.hold_trigger_at_boot = self.hold_estop_at_boot = False

    @property
    def factory_key(self) -> bytes:
        return hashlib.sha256(b"mesosim factory key " + self.serial.encode()).digest()[: spec.KEY_SIZE]

    # ---- the serial link (bridge.py) --------------------------------------------------------
    def set_link(self, mode: str) -> None:
        """ok, cut (bytes in both directions are lost) or stall (held, delivered on ok)."""
        self._running_bridge().set_link(mode)

    @property
    def link_mode(self) -> str:
        return self._bridge.link_mode if self._bridge else "ok"

    def set_link_faults(self, faults: LinkFaults | None) -> None:
        """Damage the bytes crossing the link, both ways, at these rates (None: a clean link)."""
        self._running_bridge().set_faults(faults)

    @property
    def faults(self) -> LinkFaults:
        return self._bridge.faults if self._bridge else LinkFaults()

    # ---- waiting ------------------------------------------------------------------------------
    def wait(self, predicate, timeout: float, what: str):
        """Block until predicate() is true (checked on every control message); a control message from the
        board outside the schema raises ControlError."""
        control = self.control
        with self._cond:
            ok = self._cond.wait_for(lambda: (control is not None and control.error is not None) or predicate(), timeout)
            if control is not None and control.error is not None:
                error, control.error = control.error, None
                raise error
            if not ok:
                raise TimeoutError("%s within %.1f s%s (board log: %s)" % (what, timeout, self._firmware_said(),
                                                                        self.log_path))

    def firmware_error(self) -> str:
        """The last error the firmware printed on its serial port (main.py prints what stopped it), or ''."""
        lines = self._serial_tail.decode(errors="replace").replace("\r", "").splitlines()
        return next((ln.strip() for ln in reversed(lines) if ln[:1].isalpha() and ("Error" in ln or "Exception" in ln)
                     and ":" in ln), "")

    def _firmware_said(self) -> str:
        error = self.firmware_error()
        if not error:
            return ""
        if error.startswith("MemoryError"):
            return (f": the firmware does not fit the board's {self.heap} heap ({error}); bench/bench_heap.py "
                    "--per-module shows what each module holds")
        return f": the firmware printed {error!r}"

    def wait_led(self, leds, timeout: float) -> int:
        self.wait(lambda: self.led in leds, timeout, "the status LED did not show %s" % (leds,))
        return self.led

    def _running(self) -> BoardProcess:
        if self._process is None:
            raise ConnectionError("the simulated board is not running")
        return self._process

    def _running_bridge(self) -> SerialBridge:
        if self._bridge is None:
            raise ConnectionError("the simulated board is not running")
        return self._bridge

    # ---- I/O thread: serial bridge, control channel, reboot on exit ----------------------
    def _io_loop(self) -> None:
        assert self._bridge is not None and self._process is not None
        bridge, process = self._bridge, self._process
        while not self._stopping:
            for key, _ in self._sel.select(timeout=0.002 if bridge.holding else 0.05):
                key.data()
            bridge.release_held()
            if not self._stopping:
                process.supervise()

    def _from_device(self) -> None:
        assert self._process is not None and self._bridge is not None
        data = read(self._process.master)
        if not data:
            return
        if self.on_device_bytes:
            self.on_device_bytes(time.time(), data)
        self._serial_tail = (self._serial_tail + data)[-SERIAL_TAIL:]
        if self._process.watch_repl(data):  # no firmware running: a REPL may be talking
            with self._cond:
                self._cond.notify_all()
        self._bridge.from_device(data)

    def _on_message(self, msg: dict) -> None:
        # a checked message from the board (cond held, I/O thread)
        if self._on_world(msg) or self._on_head_world(msg) or self._on_drug_world(msg):
            return
        assert self._process is not None
        kind = msg["kind"]
        if kind == "boot":
            self.boots += 1
            self._process.wdt_armed = True
            self.led = spec.LED_OFF
        elif kind == "wdt":
            self._process.feed()
        elif kind == "reset":
            self._process.reset_pulled = True  # the firmware resets itself (board.reset())
