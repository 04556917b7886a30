"""The simulated board's watchdog counts the board's time: a process waiting for a CPU is a board frozen (its
clock stops too, firmware/boards/sim/time.py), not a firmware that stopped feeding its watchdog."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import types

import pytest

from mesoprotocol import spec
from mesosim import process


@pytest.fixture
def board(tmp_path, monkeypatch):
    clock = types.SimpleNamespace(host=0.0, waited=0.0)  # the host's clock and the process's CPU wait, s
    monkeypatch.setattr(process, "time", types.SimpleNamespace(monotonic=lambda: clock.host))
    monkeypatch.setattr(process, "cpu_wait_s", lambda pid: clock.waited)
    log = io.BytesIO()
    bp = process.BoardProcess(tmp_path, process.HEAP, log, lambda cause: {}, lambda: None, lambda to_end: 0)
    # a running process that is never really signalled: pausing it and rebooting it are the harness's own
    bp._proc = types.SimpleNamespace(pid=os.getpid(), returncode=None, poll=lambda: None)
    bp._pause = lambda: True
    bp._halt = lambda: None
    bp.spawn = lambda cause, run_main=True: None
    bp.wdt_armed = True
    bp.feed()
    yield bp, clock, log
    bp.close()


@pytest.mark.req("SR-178")
def test_a_board_starved_of_cpu_is_not_reset_by_its_watchdog(board):
    bp, clock, _ = board
    clock.host, clock.waited = 3.0, 2.5  # 3 s on the host's clock, 2.5 of them waiting for a CPU (load 9)
    bp.supervise()
    assert bp.resets == []  # the old wall-clock watchdog reset it here: LINK LOST mid-run on the host
    bp.feed()  # its next feed, 0.5 s of its own time after the last
    clock.host, clock.waited = 5.5, 4.5
    bp.supervise()
    assert bp.resets == []


@pytest.mark.req("SR-178")
def test_a_firmware_that_runs_without_feeding_is_reset_after_two_seconds_of_its_time(board):
    bp, clock, log = board
    clock.host, clock.waited = 3.0, 1.5  # ran 1.5 s unfed: not yet
    bp.supervise()
    assert bp.resets == []
    clock.host = 3.6  # ran 2.1 s unfed
    bp.supervise()
    assert bp.resets == [spec.RESET_WATCHDOG]
    assert b"not fed for 2.1 s of the board's time (3.6 s on the host's clock" in log.getvalue()


def test_the_kernel_reports_a_process_waiting_for_a_cpu():
    # two spinners on one CPU: each waits for it about half the time (what the watchdog takes off)
    spin = [sys.executable, "-c", "import time\nt = time.monotonic() + 0.5\nwhile time.monotonic() < t: pass"]
    cpu = min(os.sched_getaffinity(0))
    procs = [subprocess.Popen(spin) for _ in range(2)]
    try:
        for p in procs:
            os.sched_setaffinity(p.pid, {cpu})
        waited = [process.cpu_wait_s(p.pid) for p in procs]  # read while they live (schedstat goes with them)
        while all(p.poll() is None for p in procs) and max(waited) < 0.05:
            waited = [max(w, process.cpu_wait_s(p.pid)) for w, p in zip(waited, procs)]
    finally:
        for p in procs:
            p.wait(timeout=60)
    assert max(waited) >= 0.05
