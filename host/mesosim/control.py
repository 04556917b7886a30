"""The harness's end of the simulated board's control channel: ground truth, the operator's inputs and
injected faults, on a loopback socket beside the serial port (never on it).

JSON lines, one schema: firmware/boards/sim/board_ctrl.py, which the board imports and this module loads
by path (it is MicroPython-compatible), so both ends check the same kinds and fields.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib.util
import pathlib
import selectors
import socket
import threading
import time
from collections.abc import Callable, Iterator
from types import ModuleType

from mesoprotocol import spec

from .ports import loopback_server

SCHEMA_FILE = "board_ctrl.py"
SNAP = b'"kind": "snap"'  # how a snap line says its kind (json.dumps on the board: no other field holds text)
CAP_FACTOR = 1e9  # BoardControls.cap: the outlet capped, as a needle's resistance times this


class ControlError(ValueError):
    """A control message outside the schema (an unknown kind, a missing or unknown field)."""


def schema_path() -> pathlib.Path:
    """Where the sim board's board_ctrl.py is: in this checkout's firmware/, or in the copy of the firmware
    an installed wheel carries as package data (located, not imported: mesosim imports no host library)."""
    checkout = pathlib.Path(__file__).resolve().parents[2] / "firmware" / "boards" / "sim" / SCHEMA_FILE
    if checkout.is_file():
        return checkout
    found = importlib.util.find_spec("mesoinject")
    for folder in (found.submodule_search_locations or []) if found else []:
        installed = pathlib.Path(folder) / "firmware" / "boards" / "sim" / SCHEMA_FILE
        if installed.is_file():
            return installed
    raise FileNotFoundError(f"the simulated board's control schema ({SCHEMA_FILE}) is neither at {checkout} "
                            "nor in an installed mesoinject's firmware: reinstall the package")


@functools.cache
def schema() -> ModuleType:
    """board_ctrl.py loaded as a module: TO_BOARD, FROM_BOARD, encode(), decode()."""
    path = schema_path()
    loader_spec = importlib.util.spec_from_file_location("mesosim_board_ctrl", path)
    assert loader_spec is not None and loader_spec.loader is not None
    module = importlib.util.module_from_spec(loader_spec)
    loader_spec.loader.exec_module(module)
    return module


@dataclasses.dataclass(frozen=True)
class Penetration:
    """One needle entry into the skin, from the model's ground truth."""

    t0_us: int
    t1_us: int
    volume_nl: float
    max_depth_um: float
    t1_ms: int  # the exit on the board's ticks_ms (the clock a record's time_ms is on)
    reflux_nl: float = 0.0  # of volume_nl, what escaped back along the needle track as it left
    creep_nl: float = 0.0  # what the stopper's creep took from the line (given back: negative) while the needle was in


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
    forward_steps: int = 0  # plunger steps forward since the board (re)booted
    # the plunger's hidden state, for a diagnosis: the pusher within its play (steps: 0 pulling, the play pushing
    # contact), what a suck-back drew into the needle (nL), what the compliant line holds (nL)
    gap: float = 0.0
    tip_nl: float = 0.0
    stored_nl: float = 0.0


@dataclasses.dataclass(frozen=True)
class Injection:
    """An input or fault as the board saw it: board time and syringe content at that instant."""

    kind: str
    value: str
    t_us: int
    content_nl: float
    flash_busy: bool = False  # the data flash had the firmware stalled at that instant
    forward_steps: int = 0  # plunger steps forward since the board (re)booted, at that instant
    edge_us: int = 0  # board time of the pin's edge (trigger/E-stop: when the harness set it), else t_us


class ControlChannel:
    """The loopback server the board's firmware connects to as it boots (one connection per boot).

    Checked messages from the board go to on_message(msg) on the I/O thread, with cond held; a message
    outside the schema is kept in .error (the I/O thread goes on) for the next wait to raise.
    """

    def __init__(self, cond: threading.Condition, on_message: Callable[[dict], None]):
        self._cond = cond
        self._on_message = on_message
        self._schema = schema()
        self._srv = loopback_server()
        self._conn: socket.socket | None = None
        self._buf = b""
        self._sel: selectors.BaseSelector | None = None
        self.error: ControlError | None = None
        # the newest "snap" line as it came, across boots: the board sends one every pass that moved (~1000/s,
        # ~1 KB), and only the newest is ever used, so it is checked when used (snap()), not as it comes: an
        # I/O thread decoding each fell behind on a loaded machine, and the serial bridge it also runs with it
        # (the host's heartbeat reached the firmware over 500 ms late: LINK_LOST)
        self._snap = b""

    @property
    def address(self) -> str:
        """host:port, for the board's MESOSIM_CTRL."""
        return "127.0.0.1:%d" % self._srv.getsockname()[1]

    @property
    def connected(self) -> bool:
        return self._conn is not None

    def register(self, sel: selectors.BaseSelector) -> None:
        self._sel = sel
        sel.register(self._srv, selectors.EVENT_READ, self._accept)

    def send(self, kind: str, **fields) -> None:
        """One message to the board; ControlError (naming the kind) if the schema has no such message."""
        try:
            line = self._schema.encode(self._schema.TO_BOARD, dict(kind=kind, **fields))
        except ValueError as e:
            raise ControlError(str(e)) from None
        conn = self._conn
        if conn is None:
            raise ConnectionError("the simulated board is not running")
        conn.sendall(line.encode())

    def snap(self) -> dict | None:
        """The newest "snap" message, checked (ControlError if outside the schema); None before the first."""
        line = self._snap
        if not line:
            return None
        try:
            return self._schema.decode(self._schema.FROM_BOARD, line)
        except ValueError as e:
            raise ControlError("from the simulated board: %s" % e) from None

    def raise_error(self) -> None:
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        for sock in (self._conn, self._srv):
            if sock:
                sock.close()

    def _accept(self) -> None:
        assert self._sel is not None
        conn, _ = self._srv.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self._conn:  # the previous boot's connection
            self._sel.unregister(self._conn)
            self._conn.close()
        with self._cond:
            self._conn = conn
            self._buf = b""
        self._sel.register(conn, selectors.EVENT_READ, lambda: self._readable(conn))

    def _readable(self, conn: socket.socket) -> None:
        if conn is not self._conn:  # replaced by the next boot's earlier in this same select round
            return
        try:
            data = conn.recv(65536)
        except ConnectionResetError:  # the board died with input unread (a reset, not a FIN): what it sent is read
            data = b""
        if not data:
            self._hang_up()
            return
        self._take(data)

    def drain(self, to_end: bool) -> int:
        """Read everything the board sent on this boot's connection, now (I/O thread); how many bytes.

        The board's physical state comes in its messages ("snap"), and a board that stops (power cut, reset
        line, watchdog) hands the next boot the last one read: one still in the socket would send the
        physical world back in time. to_end: the process is dead, read to the end of its stream (the kernel
        still delivers what it queued); else it is stopped (SIGSTOP): read what is there without waiting.
        """
        conn, total = self._conn, 0
        if conn is None:
            return 0
        conn.settimeout(10.0 if to_end else 0.0)  # a dead peer's FIN or RST comes at once: 10 s is a fault
        try:
            while data := conn.recv(65536):
                total += len(data)
                self._take(data)
        except (BlockingIOError, ConnectionResetError, TimeoutError):
            pass
        finally:
            conn.settimeout(None)
        if to_end:
            self._hang_up()
        return total

    def _hang_up(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            assert self._sel is not None
            self._sel.unregister(conn)
            conn.close()

    def _take(self, data: bytes) -> None:
        self._buf += data
        lines = self._buf.split(b"\n")
        self._buf = lines.pop()
        news = False  # a message a waiter may wait for (a snap alone wakes none: ~1000/s of thread switches)
        with self._cond:
            for line in lines:
                if not line.strip():
                    continue
                if SNAP in line:
                    self._snap = line
                    continue
                news = True
                try:
                    msg = self._schema.decode(self._schema.FROM_BOARD, line)
                except ValueError as e:
                    self.error = ControlError("from the simulated board: %s" % e)
                    continue
                self._on_message(msg)
            if news:
                self._cond.notify_all()


class BoardControls:
    """The control channel's side of SimBoard: the operator's inputs, fault injection, ground truth.

    Mixed into SimBoard, which provides self.control (a ControlChannel), self._cond and self.wait.
    """

    control: ControlChannel
    _cond: threading.Condition
    wait: Callable
    syringe: int

    def _init_controls(self) -> None:
        self.led = spec.LED_OFF
        self.trigger_pressed = False
        self.estop_pressed = False
        self.last_input: Injection | None = None
        self.penetrations: list[Penetration] = []
        self.erases = 0  # flash blocks the board began erasing (its journal's writes)
        self.erase_times: list[int] = []  # board time (us) each began, the last 1000
        self.gaps: list[dict] = []  # long gaps between the firmware's passes (the board's "gap"), the last 1000
        self.probes: list[dict] = []  # each prime's compliance estimate, its inputs and the truth (the board's "probe")
        # called (from the I/O thread) the moment the board reports an erase beginning: lets a test
        # or a bench act while the flash has the firmware stalled (e.g. release the trigger)
        self.on_erase: Callable[[], None] | None = None
        self._truth: Truth | None = None

    # ---- the operator -------------------------------------------------------------------
    def set_trigger(self, pressed: bool) -> None:
        self._channel().send("trigger", pressed=bool(pressed), at_ns=time.time_ns())
        self.wait(lambda: self.trigger_pressed == pressed, 2, "the board did not see the trigger")

    def set_estop(self, pressed: bool) -> None:
        self._channel().send("estop", pressed=bool(pressed), at_ns=time.time_ns())
        self.wait(lambda: self.estop_pressed == pressed, 2, "the board did not see the emergency stop")

    def send_input(self, line: str) -> None:
        """A switch set now, without waiting for the board's echo: "trigger 0|1" or "estop 0|1"."""
        name, _, level = line.partition(" ")
        if name not in ("trigger", "estop") or level not in ("0", "1"):
            raise ValueError("send_input takes 'trigger 0|1' or 'estop 0|1', not %r" % line)
        self._channel().send(name, pressed=level == "1", at_ns=time.time_ns())

    # ---- fault injection ----------------------------------------------------------------
    def occlude(self, factor: float, ramp_per_s: float = 0.0) -> None:
        """Multiply the needle's flow resistance (sudden), or let it grow by ramp_per_s (gradual)."""
        self._inject("occlude", "the board did not take the occlusion", factor=float(factor), ramp_per_s=float(ramp_per_s))

    def cap(self, on: bool = True) -> None:
        """The syringe's outlet capped (its tip cap on, no needle: a line test) or open again. The model's occlusion
        stands for it: CAP_FACTOR x the needle's resistance holds a step of the line's time constant for ~10^6 s,
        so the capped line keeps what it is given but for the stopper's creep; off: 1.0 (an occlusion injected
        before is gone with the cap). The model keeps it across resets, as a cap stays on."""
        self.occlude(CAP_FACTOR if on else 1.0)

    @contextlib.contextmanager
    def capped(self) -> Iterator[None]:
        """The outlet capped for what runs inside (a line test), open again however that ends."""
        self.cap(True)
        try:
            yield
        finally:
            self.cap(False)

    def set_content(self, volume_nl: float) -> None:
        """What is left in the syringe (a syringe about to run empty, or a new one loaded)."""
        self._inject("content", "the board did not take the syringe", content_nl=float(volume_nl))

    def fail_pressure_sensor(self, failed: bool = True) -> None:
        """The line-pressure sensor reads 0 (a broken sensor); only stall detection is left."""
        self._inject("sensor", "the board did not take it", working=not failed)

    def load_syringe(self, code: int, content_nl: float | None = None) -> None:
        """Put another syringe in the clamp (full unless content_nl): its bore meters, its barrel is measured."""
        _, diameter_um, _, _, barrel_um = spec.SYRINGES[code]
        content = spec.syringe_capacity_nl(code) if content_nl is None else content_nl
        self._inject("load", "the board did not take the syringe", diameter_um=int(diameter_um),
                     content_nl=float(content), barrel_um=int(barrel_um))
        self.syringe = code

    def fail_clamp_sensor(self, reading_um: int | None = 0) -> None:
        """The syringe clamp sensor reads reading_um whatever is loaded (None: it works again)."""
        self._inject("clamp", "the board did not take it", reading_um=-1 if reading_um is None else int(reading_um))

    def stall(self, ms: int) -> None:
        """Load: the firmware's next loop pass takes ms longer (a flash erase, a collection)."""
        self._inject("stall", "the board did not take it", ms=int(ms))

    def hang(self) -> None:
        """The firmware stops running (an endless loop): only the watchdog can save it."""
        self._channel().send("hang")

    def _channel(self) -> ControlChannel:
        if self.control is None:
            raise ConnectionError("the simulated board is not running")
        return self.control

    def _inject(self, kind: str, what: str, **fields) -> None:
        with self._cond:
            self.last_input = None
        self._channel().send(kind, **fields)
        self.wait(lambda: self.last_input and self.last_input.kind == kind, 2, what)

    # ---- ground truth -------------------------------------------------------------------
    @property
    def air_nl(self) -> float:
        """Fluid expelled outside the skin (the model's newest snapshot): what a balance weighs."""
        snap = self.control.snap() if self.control is not None else None
        return snap["air_nl"] if snap else 0.0

    def truth(self, timeout: float = 2.0) -> Truth:
        with self._cond:
            self._truth = None
        self._channel().send("truth?")
        self.wait(lambda: self._truth is not None, timeout, "no ground truth from the board")
        assert self._truth is not None
        return self._truth

    def _on_world(self, msg: dict) -> bool:
        """What the board reports about its world (cond held, I/O thread); False: not such a message."""
        kind = msg["kind"]
        if kind == "led":
            self.led = msg["code"]
        elif kind == "took":
            value = msg["value"]
            if msg["input"] == "trigger":
                self.trigger_pressed = value
            elif msg["input"] == "estop":
                self.estop_pressed = value
            self.last_input = Injection(msg["input"], str(int(value) if isinstance(value, bool) else value), msg["t_us"],
                                        msg["content_nl"], bool(msg["flash_busy"]), msg["forward_steps"], msg["edge_us"])
        elif kind == "pen":
            self.penetrations.append(Penetration(**_fields(msg)))
        elif kind == "truth":
            self._truth = Truth(**_fields(msg))
        elif kind == "probe":
            self.probes.append(_fields(msg))
            del self.probes[:-1000]
        elif kind == "gap":
            self.gaps.append(_fields(msg))
            del self.gaps[:-1000]
        elif kind == "erase":  # the data flash began erasing a block (a journal write)
            self.erases += 1
            self.erase_times.append(msg["t_us"])
            del self.erase_times[:-1000]
            if self.on_erase:
                self.on_erase()
        else:
            return False
        return True


def _fields(msg: dict) -> dict:
    return {k: v for k, v in msg.items() if k != "kind"}
