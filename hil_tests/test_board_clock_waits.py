"""The rig's waits count on the board's clock (Device.clock), not the host's: an emulated Pico runs at 0.05-0.25x
real time, and a wait of N host seconds gave up on a board that had had a fraction of N to do the thing. No board
here: a stand-in on its own clock at a tenth of real time, whose needle is home (and state IDLE) at 0.05 s of it."""

from __future__ import annotations

import queue
import time

import pytest

import hil
from mesoinject.client import Device
from mesoinject.session import SessionRunner
from mesoprotocol import spec

HOME_AT_S = 0.05  # of the board's time: 0.5 s of the host's


class TenthSpeedBoard:
    """What SessionRunner and hil's waits use of a Device, on a clock at a tenth of the host's."""

    RATE = 0.1
    session = 0  # no session of ours: the runner's heartbeat has nothing to feed
    signed_at = float("-inf")
    identity = None
    next_event_by = Device.next_event_by  # the real wait on the board's clock

    def __init__(self):
        self.start = time.monotonic()
        self.polls = 0
        self.events: queue.Queue = queue.Queue()  # none come: every wait lasts its whole time

    def clock(self) -> float:
        return (time.monotonic() - self.start) * self.RATE

    def status(self) -> dict:
        self.polls += 1
        home = self.clock() >= HOME_AT_S
        return {"state": spec.STATE_IDLE if home else spec.STATE_FAULT, "depth_um": 0 if home else 1500,
                "unacked": 0, "done": 0, "syringe_left_nl": 0}

    def next_event(self, timeout: float):
        try:
            return self.events.get(timeout=timeout)
        except queue.Empty:
            return None

    def keep_alive(self, silent_s: float) -> bool:
        return False


@pytest.mark.req("SR-193")
def test_until_needle_home_waits_on_the_boards_clock_and_polls_at_its_pace():
    # before: 0.2 s of the host's clock (x the runner's slowdown, 1 here), the needle still 1.5 mm in, polled
    # every poll_s/4 of the host's time (an emulated board flooded with POLLs)
    board = TenthSpeedBoard()
    runner = SessionRunner(board, store=None, poll_s=0.01)
    runner.until_needle_home(timeout_s=4 * HOME_AT_S)
    assert runner.progress.depth_um == 0
    assert board.polls <= HOME_AT_S / runner.poll_s + 2  # one poll_s of the board's time apart, + first and last


@pytest.mark.req("SR-193")
def test_wait_state_waits_on_the_boards_clock_and_polls_at_its_pace():
    board = TenthSpeedBoard()
    assert hil.wait_state(board, {spec.STATE_IDLE}, timeout=4 * HOME_AT_S) == spec.STATE_IDLE
    assert board.polls <= HOME_AT_S / hil.POLL_S + 2


@pytest.mark.req("SR-193")
def test_wait_state_still_gives_up_after_its_time_on_the_boards_clock():
    board = TenthSpeedBoard()
    with pytest.raises(TimeoutError, match="after 0.01 s of the board's time"):
        hil.wait_state(board, {spec.STATE_IDLE}, timeout=HOME_AT_S / 5)


class TenthSpeedProgram(TenthSpeedBoard):
    """A program that ends (COMPLETE) at HOME_AT_S of the board's time: ARMED until then."""

    def status(self) -> dict:
        self.polls += 1
        done = self.clock() >= HOME_AT_S
        return {"state": spec.STATE_COMPLETE if done else spec.STATE_ARMED, "depth_um": 0, "unacked": 0, "done": 0,
                "syringe_left_nl": 0, "boot_count": 7}


@pytest.mark.req("SR-208")
def test_watch_gives_the_program_its_timeout_on_the_boards_clock():
    # before: watch(timeout_s) counted the host's clock: TimeoutError after 0.2 s of it, when the board had had
    # 0.02 s of its own and its program (0.05 s of its time) was still running
    runner = SessionRunner(TenthSpeedProgram(), store=None, poll_s=0.01)
    assert runner.watch(timeout_s=4 * HOME_AT_S) == "complete"


@pytest.mark.req("SR-208")
def test_watch_still_gives_up_after_its_time_on_the_boards_clock():
    board = TenthSpeedProgram()
    runner = SessionRunner(board, store=None, poll_s=0.01)
    with pytest.raises(TimeoutError, match="after 0.01 s of the device's time"):
        runner.watch(timeout_s=HOME_AT_S / 5)
    assert board.clock() > HOME_AT_S / 5
