"""The emulated Pico: the real MicroPython RPI_PICO firmware (a uf2) in rp2040js, with the
project's firmware image (host/mesoinject/image.py) on its littlefs. The flash erases and programs
as flash does, in its datasheet time with the core stalled (flash.mjs; Flash below), so the
firmware's files are written there and a run can save the flash for the next (a reboot).

The binaries are not in the repository (no registry ships MicroPython firmware): they are looked
for in $MESOINJECT_MCU, then ../shared/mcu beside the checkout, then /work/shared/mcu. Anything
missing raises Unavailable with what to do, for a test to skip on (MESOINJECT_MCU, when set, is
the only place looked). Every wait has a wall-clock timeout: the emulator runs at 0.05-0.25x
real time, so timeouts are generous, never absent.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import shutil
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[1]
RUNNER = HERE / "run.mjs"
RP2040JS_VERSION = json.loads((HERE / "package.json").read_text())["dependencies"]["rp2040js"]
NODE_MIN = 18
FS_OFFSET = 0xA0000  # RPI_PICO: the filesystem's place in the 2 MB flash, 352 blocks of 4 KB
FS_BLOCKS = 352
GET_BINARIES = ("the MicroPython RPI_PICO uf2 and the RP2040 boot ROM are kept outside the repository "
                "(../shared/mcu, README there: rp2/*.uf2, rp2040js/bootrom.mjs); point MESOINJECT_MCU at that folder")


class Unavailable(Exception):
    """The emulator cannot run here; the message says why and how to fix it."""


@dataclasses.dataclass
class Binaries:
    node: str
    uf2: pathlib.Path
    bootrom: pathlib.Path


def mcu_dir() -> pathlib.Path | None:
    if os.environ.get("MESOINJECT_MCU"):  # set: that folder and no other
        return pathlib.Path(os.environ["MESOINJECT_MCU"]) if os.path.isdir(os.environ["MESOINJECT_MCU"]) else None
    for c in (REPO.parent / "shared" / "mcu", pathlib.Path("/work/shared/mcu")):
        if c.is_dir():
            return c
    return None


def locate() -> Binaries:
    mcu = mcu_dir()
    if mcu is None:
        raise Unavailable(f"no MicroPython target binaries: {GET_BINARIES}")
    uf2s = sorted((mcu / "rp2").glob("firmware-RPI_PICO-*.uf2"))
    bootrom = mcu / "rp2040js" / "bootrom.mjs"
    if not uf2s or not bootrom.exists():
        raise Unavailable(f"{mcu} lacks rp2/firmware-RPI_PICO-*.uf2 or rp2040js/bootrom.mjs: {GET_BINARIES}")
    node = shutil.which("node")
    if node is None:
        raise Unavailable(f"no `node` on PATH: install Node.js >= {NODE_MIN}, then `npm ci --prefix tools/pico-emu`")
    try:
        version = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=20).stdout.strip()
        major = int(version.lstrip("v").split(".")[0])
    except (subprocess.TimeoutExpired, ValueError, OSError) as e:
        raise Unavailable(f"`node --version` failed ({e}): install Node.js >= {NODE_MIN}") from e
    if major < NODE_MIN:
        raise Unavailable(f"node {version} is too old for rp2040js: install Node.js >= {NODE_MIN}")
    installed = HERE / "node_modules" / "rp2040js" / "package.json"
    if not installed.exists():
        raise Unavailable("rp2040js is not installed: run `npm ci --prefix tools/pico-emu` (./test.sh does)")
    have = json.loads(installed.read_text()).get("version")
    if have != RP2040JS_VERSION:
        raise Unavailable(f"rp2040js {have} installed, {RP2040JS_VERSION} pinned: run `npm ci --prefix tools/pico-emu`")
    return Binaries(node, uf2s[-1], bootrom)


def build_fs(board: str, out: pathlib.Path, extra: dict[str, bytes] | None = None,
             without: tuple[str, ...] = ()) -> pathlib.Path:
    """A littlefs image of the board's firmware image (the manifest `flash` uses) but `without` those files,
    plus extra files."""
    sys.path.insert(0, str(REPO / "host"))
    from mesoinject import image

    files = {rel: src.read_bytes() for src, rel in image.manifest(board) if rel not in without}
    files.update(extra or {})
    return write_fs(files, out)


def write_fs(files: dict[str, bytes], out: pathlib.Path) -> pathlib.Path:
    """A littlefs image of these files (path on the board -> content), as the rp2 port formats its flash."""
    try:
        from littlefs import LittleFS
    except ImportError as e:
        raise Unavailable("littlefs-python is missing: `pip install -e .[test]` in the venv") from e
    lfs = LittleFS(block_size=4096, block_count=FS_BLOCKS, prog_size=256)  # as MicroPython's rp2 port formats it
    for rel, data in files.items():
        if "/" in rel:
            lfs.makedirs(rel.rsplit("/", 1)[0], exist_ok=True)
        with lfs.open(rel, "wb") as f:
            f.write(data)
    out.write_bytes(lfs.context.buffer)
    return out


def read_fs_file(image: pathlib.Path, path: str) -> bytes:
    """A file from a littlefs image (one build_fs made, or the runner saved with Flash(save=...))."""
    from littlefs import LittleFS

    lfs = LittleFS(block_size=4096, block_count=FS_BLOCKS, prog_size=256, mount=False)
    lfs.context.buffer = bytearray(image.read_bytes()[:4096 * FS_BLOCKS])
    lfs.mount()
    with lfs.open(path, "rb") as f:
        return f.read()


@dataclasses.dataclass
class Run:
    code: int
    stdout: str
    stderr: str
    marks: list[dict]
    edges: dict[str, list[int]]
    emulated_s: float
    wall_s: float
    error: str = ""
    last_edge_us: dict[str, int] = dataclasses.field(default_factory=dict)  # STEP pin -> its last rising edge
    flash: dict = dataclasses.field(default_factory=dict)  # flash.mjs's counts: erases, programs, busy_us, ...
    events: list[dict] = dataclasses.field(default_factory=list)  # every event the runner printed


@dataclasses.dataclass
class Flash:
    """How the emulated flash behaves (tools/pico-emu/flash.mjs). timing: "typ" or "max" datasheet times
    for erase/program, the core stalled meanwhile; "off": rp2040js's own (no writes reach the flash).
    save: the filesystem's flash written back there at exit (boot again from it: a reboot).
    events: a "flash" event per erase/program. on_flash: after "MARK name", drive pin -> level at the
    next erase, `us` emulated microseconds into it: {name: ({pin: level}, us)}."""
    timing: str = "typ"
    save: pathlib.Path | None = None
    events: bool = False
    on_flash: dict[str, tuple[dict[int, int], int]] = dataclasses.field(default_factory=dict)

    def args(self) -> list[str]:
        out = ["--flash-timing", self.timing]
        if self.save:
            out += ["--fs-save", str(self.save)]
        if self.events:
            out.append("--flash-events")
        if self.on_flash:
            out += ["--on-flash", ",".join(f"{name}:{p}={v}@{us}" for name, (pins, us) in self.on_flash.items()
                                           for p, v in pins.items())]
        return out


def _command(bins: Binaries, fs_image: pathlib.Path, watch: dict[int, int], inputs: dict[int, int],
             timeout_s: float, extra: list[str], flash: Flash | None = None) -> list[str]:
    cmd = [bins.node, str(RUNNER), "--uf2", str(bins.uf2), "--bootrom", str(bins.bootrom), "--fs", str(fs_image),
           "--timeout", str(timeout_s)] + (flash or Flash()).args()
    if watch:
        cmd += ["--watch", ",".join(f"{s}:{d}" for s, d in watch.items())]
    if inputs:
        cmd += ["--inputs", ",".join(f"{p}={v}" for p, v in inputs.items())]
    return cmd + extra


def run_script(script: str, fs_image: pathlib.Path, tmp: pathlib.Path, *, watch: dict[int, int] | None = None,
               inputs: dict[int, int] | None = None, on_mark: dict[str, dict[int, int]] | None = None,
               timeout_s: float = 120, flash: Flash | None = None, adc: dict[int, int] | None = None) -> Run:
    """Boot the emulated Pico, run `script` in its raw REPL, return what it printed and the
    STEP edges counted at each "MARK name" line it printed (watch: STEP pin -> DIR pin).
    on_mark: at "MARK name ...", the runner drives those input pins (pin -> level) at once.
    adc: ADC channel -> 12-bit count, held for the run."""
    bins = locate()
    path = tmp / "script.py"
    path.write_text(script)
    extra = ["--script", str(path)]
    if adc:
        extra += ["--adc", ",".join(f"{ch}={v}" for ch, v in adc.items())]
    if on_mark:
        extra += ["--on-mark", ",".join(f"{name}:{p}={v}" for name, pins in on_mark.items() for p, v in pins.items())]
    cmd = _command(bins, fs_image, watch or {}, inputs or {}, timeout_s, extra, flash)
    try:
        proc = subprocess.run(cmd, cwd=HERE, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=timeout_s + 30)  # the runner's own timeout comes first
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"emulator did not end within {timeout_s + 30} s wall") from e
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    done = [e for e in events if e.get("event") == "done"]
    if not done:
        raise AssertionError(f"emulator exited {proc.returncode} without a result:\n{proc.stdout}\n{proc.stderr}")
    d = done[-1]
    return Run(d["code"], d.get("stdout", ""), d.get("stderr", ""), [e for e in events if e.get("event") == "mark"],
               d["edges"], d["emulated_s"], d["wall_s"], d.get("error", ""), d.get("last_edge_us", {}),
               d.get("flash") or {}, events)


class Board:
    """A running emulated Pico with its USB CDC serial on socket://127.0.0.1:PORT (`url`).
    Its runner's events (ready, probe lines, stats) arrive on a queue; inputs and the ADC are
    driven while it runs. Use as a context manager: the emulator is stopped on exit."""

    def __init__(self, fs_image: pathlib.Path, *, watch: dict[int, int] | None = None,
                 inputs: dict[int, int] | None = None, adc0: int | None = None, timeout_s: float = 600,
                 flash: Flash | None = None):
        import queue
        import socket
        import threading

        bins = locate()
        with socket.socket() as s:  # a free port for the bridge
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"socket://127.0.0.1:{self.port}"
        extra = ["--tcp", str(self.port)] + (["--adc0", str(adc0)] if adc0 is not None else [])
        self.proc = subprocess.Popen(_command(bins, fs_image, watch or {}, inputs or {}, timeout_s, extra, flash), cwd=HERE,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        self.events: queue.Queue = queue.Queue()
        self.probes: list[dict] = []  # every PROBE line the board printed, kept (emu_boot.py's figures)
        self.flash_ops: list[dict] = []  # every erase/program, with Flash(events=True)
        self._stats_id = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("{"):
                event = json.loads(line)
                if event.get("event") == "probe":
                    self.probes.append(event)
                elif event.get("event") == "flash":
                    self.flash_ops.append(event)
                    continue  # many: kept in the list, not queued
                self.events.put(event)
        self.events.put({"event": "exited", "code": self.proc.wait()})

    def wait(self, kind: str, timeout_s: float) -> dict:
        """The next event of this kind; AssertionError when the runner exits or the wall timeout passes."""
        import queue
        import time

        end = time.monotonic() + timeout_s
        while True:
            try:
                event = self.events.get(timeout=max(0.0, end - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {kind!r} event from the emulator within {timeout_s} s wall") from None
            if event["event"] == kind:
                return event
            if event["event"] in ("exited", "done"):
                raise AssertionError(f"emulator ended while waiting for {kind!r}: {event}")

    def _send(self, obj: dict) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(obj) + "\n")
        self.proc.stdin.flush()

    def set_pin(self, pin: int, value: int) -> None:
        self._send({"pin": pin, "value": value})

    def set_adc(self, channel: int, value: int) -> None:
        self._send({"adc": channel, "value": value})

    def stats(self, timeout_s: float = 30) -> dict:
        """Emulated us, wall s and STEP edge counts now."""
        self._stats_id += 1
        self._send({"stats": self._stats_id})
        while True:
            event = self.wait("stats", timeout_s)
            if event["id"] == self._stats_id:
                return event

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self._send({"quit": 1})
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> Board:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
