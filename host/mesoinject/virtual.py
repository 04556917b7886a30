"""A virtual device for fast host tests: the real firmware in one MicroPython process, on a stand-in
board with ideal mechanics and a virtual clock (firmware/virtual/virtual_device.py).

The tier under the simulated board (mesoinject.simulated), as python-can's virtual bus is under its
hardware backends: the same protocol, commands, limits, journal and records as a board, over a
socket:// URL any serial program opens (`Device.open(vdev.url)`), but no physical model, no link or
mechanical faults and no real time spent moving: a 0.6 s point passes in one or two of the host's
polls. Factory-paired like the simulated board (its key in the KeyStore, `MESOINJECT_KEYS`).

    with VirtualDevice() as vdev, Device.open(vdev.url) as dev:
        vdev.press_trigger()
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pathlib
import shutil
import socket
import subprocess
import tempfile
import threading

from mesoprotocol import spec

from . import extras, image
from .keys import KeyStore

HEAP = "384K"  # more than the RP2040 gives: the stand-in board and virtual clock add code a real board does not
# carry, and it compiles the .py sources on boot (a flashed board runs .mpy); RAM is not what this tier tests
# (bench_heap and the 32-bit heap test measure the firmware at the RP2040's 192K). 256K ran out compiling
# device.py once session 8's firmware grew (264K was the least that booted), 320K once the line test came (352K)


@dataclasses.dataclass(frozen=True)
class Truth:
    """What the ideal mechanics counted since power-on."""

    plunger_steps: int  # net, forward positive
    needle_steps: int  # depth now
    out_nl: float  # plunger_steps by the syringe table: every step pushes its volume out, nothing else
    clock_us: int  # the virtual clock


class VirtualDevice:
    """Use as a context manager or start()/stop(). `url`: the serial link (socket://127.0.0.1:PORT)."""

    def __init__(self, *, syringe: int = 1, serial: str = "VIRTUAL-0001", journal_cells: int | None = None,
                 workdir: str | os.PathLike | None = None):
        self.syringe = syringe
        self.serial = serial
        self.journal_cells = journal_cells
        self._own_workdir = workdir is None
        self.workdir = pathlib.Path(workdir or tempfile.mkdtemp(prefix="mesovirt-"))
        self.flash = self.workdir / "flash"
        self.log_path = self.workdir / "device.log"  # the firmware's stderr: tracebacks land here
        self.url = ""
        self.led = spec.LED_OFF
        self.trigger_pressed = False
        self.estop_pressed = False
        self._truth: Truth | None = None
        self._listening = False
        self._exited = False
        self._cond = threading.Condition()
        self._proc: subprocess.Popen | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle -------------------------------------------------------------------
    def start(self) -> VirtualDevice:
        try:
            from mesosim.harness import MicroPythonMissing, micropython_binary

            binary = micropython_binary()
        except (ImportError, MicroPythonMissing):
            raise extras.MissingExtra("sim", "the virtual device", "the MicroPython unix port") from None
        staged = image.stage("sim", self.workdir / "image")  # the sim's board layer: the stand-in's constants
        self.flash.mkdir(parents=True, exist_ok=True)
        if not (self.flash / "key").exists():
            (self.flash / "key").write_bytes(self.factory_key)
        if (self.flash / "key").read_bytes() == self.factory_key:
            KeyStore().put(self.serial, self.factory_key)
        for _ in range(5):  # a port picked here may be taken before the device binds it: pick another
            port = _free_port()
            env = {"MICROPYPATH": f"{staged}:{image.VIRTUAL}", "MESOVIRT_PORT": str(port),
                   "MESOVIRT_SERIAL": self.serial, "MESOVIRT_BARREL_UM": str(spec.SYRINGES[self.syringe][4])}
            if self.journal_cells:
                env["MESOVIRT_JOURNAL_CELLS"] = str(self.journal_cells)
            with open(self.log_path, "ab") as log:
                self._proc = subprocess.Popen(
                    [binary, "-X", "heapsize=" + HEAP, str(image.VIRTUAL / "virtual_device.py")], cwd=self.flash,
                    env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True, bufsize=1)
            self._exited = self._listening = False
            self._thread = threading.Thread(target=self._read_loop, name="mesovirt-out", daemon=True)
            self._thread.start()
            self.wait(lambda: self._listening or self._exited, 30, "the virtual device did not start")
            if self._listening:
                self.url = f"socket://127.0.0.1:{port}"
                return self
            self._proc.wait()
        raise RuntimeError(f"the virtual device found no free port (log: {self.log_path})")

    def stop(self) -> None:
        if self._proc:
            if self._proc.poll() is None:
                try:
                    assert self._proc.stdin is not None
                    self._proc.stdin.close()  # power off
                except OSError:
                    pass
                try:
                    self._proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait()
        if self._thread:
            self._thread.join(timeout=5)
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> VirtualDevice:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def factory_key(self) -> bytes:
        return hashlib.sha256(b"mesoinject virtual factory key " + self.serial.encode()).digest()[: spec.KEY_SIZE]

    # ---- the test's hands: trigger and E-stop ----------------------------------------------
    def press_trigger(self) -> None:
        self.set_trigger(True)

    def release_trigger(self) -> None:
        self.set_trigger(False)

    def set_trigger(self, pressed: bool) -> None:
        """Taken by the device when this returns; each level is seen by at least one firmware tick."""
        with self._cond:
            self.trigger_pressed = not pressed
        self._send("trigger %d" % pressed)
        self.wait(lambda: self.trigger_pressed == pressed, 5, "the device did not take the trigger")

    def set_estop(self, pressed: bool) -> None:
        with self._cond:
            self.estop_pressed = not pressed
        self._send("estop %d" % pressed)
        self.wait(lambda: self.estop_pressed == pressed, 5, "the device did not take the emergency stop")

    def truth(self) -> Truth:
        with self._cond:
            self._truth = None
        self._send("truth")
        self.wait(lambda: self._truth is not None, 5, "no count from the virtual device")
        assert self._truth is not None
        return self._truth

    # ---- waiting on what the device shows (the interface mesosim.VirtualOperator works with) ----
    def wait(self, predicate, timeout: float, what: str):
        with self._cond:
            if not self._cond.wait_for(lambda: predicate() or self._exited, timeout) or not predicate():
                gone = " (the device process ended)" if self._exited else ""
                raise TimeoutError("%s within %.1f s%s (log: %s)" % (what, timeout, gone, self.log_path))

    def wait_led(self, leds, timeout: float) -> int:
        self.wait(lambda: self.led in leds, timeout, "the status LED did not show %s" % (leds,))
        return self.led

    def _send(self, line: str) -> None:
        if not self._proc or self._proc.poll() is not None or self._proc.stdin is None:
            raise ConnectionError("the virtual device is not running")
        self._proc.stdin.write(line + "\n")
        self._proc.stdin.flush()

    def _read_loop(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            words = line.split()
            with self._cond:
                if not words:
                    continue
                if words[0] == "led":
                    self.led = int(words[1])
                elif words[0] == "trigger":
                    self.trigger_pressed = words[1] == "1"
                elif words[0] == "estop":
                    self.estop_pressed = words[1] == "1"
                elif words[0] == "truth":
                    steps, needle, clock, steps_per_mm = (int(w) for w in words[1:5])
                    pl = spec.pl_per_step(self.syringe, steps_per_mm)
                    self._truth = Truth(steps, needle, steps * pl / 1000, clock)
                elif words[0] == "listening":
                    self._listening = True
                self._cond.notify_all()
        with self._cond:
            self._exited = True
            self._cond.notify_all()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
