"""A virtual clinician for the simulated board: works the trigger by the gun's LED.

Point-by-point: wait for READY, press, hold while the LED shows DELIVERING,
release, move to the next point. Nappage: press and hold until the gun stops
delivering (program complete or fault). The operator never sees the protocol.
"""

from __future__ import annotations

import threading

from mesoprotocol import spec

from .harness import SimBoard

NEEDLE_FIT_S = 2.0  # a line test's cap taken off and the needle head fitted, before the prime: the stopper's creep
# from the test's hold (up to ~1 s to relax) leaves the outlet meanwhile, as on a bench (bench_metering: with no
# such time, 17 nL of it came out over a BD 3 mL's first nappage shots, the first +0.48 %, the rest +0.20 %)

class VirtualOperator:
    def __init__(self, board: SimBoard, *, gap_s: float = 0.1, hold_timeout_s: float = 600.0):
        self.board = board
        self.gap_s = gap_s  # moving the gun to the next point
        self.hold_timeout_s = hold_timeout_s
        self.presses = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="virtual-operator", daemon=True)

    def start(self) -> VirtualOperator:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def __enter__(self) -> VirtualOperator:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _run(self) -> None:
        board = self.board
        try:
            while not self._stop.is_set():
                try:
                    board.wait_led((spec.LED_READY,), 0.2)
                except TimeoutError:
                    continue  # not armed (yet): keep watching
                board.set_trigger(True)
                self.presses += 1
                try:
                    board.wait_led((spec.LED_DELIVERING, spec.LED_FAULT, spec.LED_OFF, spec.LED_COMPLETE), 2)
                    board.wait(lambda: board.led != spec.LED_DELIVERING or self._stop.is_set(),
                               self.hold_timeout_s, "the gun kept delivering")
                finally:
                    board.set_trigger(False)
                self._stop.wait(self.gap_s)
        except BaseException as e:  # reported to whoever runs the session
            self.error = e
