"""A simulated analytical balance on its own serial port, speaking MT-SICS level 0.

The vessel on the pan collects what the simulated board expels with the needle out
of the skin (its ground truth), times the fluid's density. The display settles
towards that mass (time constant `settle_s`) with noise; `S` waits for a stable
reading, `SI` answers at once, `Z` zeroes once stable. Replies end in CR LF.
"""

from __future__ import annotations

import math
import os
import random
import select
import threading
import time
import tty


class SimBalance:
    def __init__(self, mass_source, *, density_g_ml: float = 1.0, noise_g: float = 5e-6, settle_s: float = 0.3,
                 seed: int | None = None):
        self.mass_source = mass_source  # () -> nL expelled into the vessel so far
        self.density = density_g_ml
        self.noise_g = noise_g
        self.settle_s = settle_s
        self.mute = False  # a balance that stops answering
        self.unit = "g"
        self.decimals = 5  # readout 0.01 mg (an analytical balance); 6: a microbalance, 0.001 mg
        self.stable_g = 2e-5  # stability detection: within this of its final value (a microbalance: ~2 digits)
        self._rng = random.Random(seed)
        self._tare = 0.0
        self._display = 0.0
        self._true = 0.0
        self._changed = time.monotonic()
        self._t = time.monotonic()
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.port = os.ttyname(self._slave)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="sim-balance", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        os.close(self._master)
        os.close(self._slave)

    # ---- the physics of a weighing cell -----------------------------------------------
    def _update(self) -> None:
        now = time.monotonic()
        true = self.mass_source() * 1e-6 * self.density  # nL -> mL -> g
        if abs(true - self._true) > 1e-7:
            self._true = true
            self._changed = now
        dt, self._t = now - self._t, now
        self._display += (self._true - self._display) * (1 - math.exp(-dt / self.settle_s))

    def _stable(self) -> bool:
        return time.monotonic() - self._changed > 3 * self.settle_s and abs(self._display - self._true) < self.stable_g

    def _reading(self) -> float:
        return self._display + self._rng.gauss(0, self.noise_g) - self._tare

    # ---- MT-SICS --------------------------------------------------------------------------
    def _answer(self, command: str) -> str:
        self._update()
        if command in ("S", "Z"):
            deadline = time.monotonic() + 10 * self.settle_s + 2
            while not self._stable() and time.monotonic() < deadline:
                time.sleep(0.02)  # the balance's own settling time
                self._update()
            if not self._stable():
                return f"{command} I"
            if command == "Z":
                self._tare = self._display
                return "Z A"
            return f"S S {self._reading():11.{self.decimals}f} {self.unit}"
        if command == "SI":
            return f"S {'S' if self._stable() else 'D'} {self._reading():11.{self.decimals}f} {self.unit}"
        return "ES"  # syntax error: not a command this balance knows

    def _serve(self) -> None:
        buf = b""
        while not self._stop.is_set():
            if not select.select([self._master], [], [], 0.1)[0]:
                continue
            try:
                buf += os.read(self._master, 256)
            except OSError:
                return
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                command = line.strip().decode(errors="replace")
                if command and not self.mute:
                    os.write(self._master, (self._answer(command) + "\r\n").encode())
