"""The controlling host's heartbeat on a thread of its own, so the device's link watchdog is fed while the session
runner is held up (a store's fsync or lock wait, drawing the screen, a garbage collection) - within a bound.

The device stops dosing after link_timeout_ms (500 ms) without a session command from us (PROTOCOL.md §8); that
limit stays as it is. The runner polls every poll_s; when it is late, this thread sends the POLL instead. It beats
only while the runner has shown it is alive (touch()) within STALL_S of the host's clock: a runner stuck for
longer lets the device go silent and stop by itself, as before. It never opens a session.
"""

from __future__ import annotations

import threading
import time

from .client import Device

# the longest the session runner may be held up and the device kept dosing: the link's own patience with a
# silent device (link.PATIENCE_S), the same bound the other way round
STALL_S = 2.0


class Heartbeat:
    def __init__(self, device: Device, silent_s: float, stall_s: float = STALL_S):
        # silent_s: a POLL goes out once no session command went out for this long on the board's clock
        self.device = device
        self.silent_s = silent_s
        self.stall_s = stall_s
        self.error: Exception | None = None  # why it stopped beating, if it failed (the runner finds out itself)
        self._alive_at = 0.0  # host clock of the runner's last touch()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopped = False

    def touch(self) -> None:
        """The runner is alive: keep the device fed for the next stall_s (starts the thread if it is not running)."""
        with self._cond:
            self._alive_at = time.monotonic()
            self._stopped = False
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="mesoinject-heartbeat", daemon=True)
                self._thread.start()

    def stop(self) -> None:
        """No more beats (the session ended or was left); returns once the thread is gone."""
        with self._cond:
            self._stopped = True
            thread = self._thread
            self._cond.notify_all()
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _run(self) -> None:
        idle_until = 0.0  # no session to feed: look again after silent_s (the board's clock)
        try:
            while self._wait_until_due(idle_until):
                if not self.device.keep_alive(self.silent_s):
                    idle_until = self.device.clock() + self.silent_s
        except Exception as e:  # the link failed or the session is gone: the runner's own command says so
            self.error = e
            with self._cond:
                self._thread = None

    def _wait_until_due(self, idle_until: float) -> bool:
        """Until a beat may be due (the last session command silent_s ago on the board's clock); False: the thread
        ends (stopped, or the runner was not seen for stall_s)."""
        device = self.device
        with self._cond:
            while not self._stopped and (stall_left := self._alive_at + self.stall_s - time.monotonic()) >= 0:
                left = max(device.signed_at + self.silent_s, idle_until) - device.clock()
                if left <= 0:
                    return True
                # left wall seconds are never too long: the board's clock is no faster
                self._cond.wait(min(left, stall_left))
            self._thread = None  # under the lock: a touch() from now on starts a new thread
            return False
