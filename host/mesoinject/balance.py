"""An analytical balance over serial, Mettler Toledo MT-SICS level 0 (S, SI, Z)."""

from __future__ import annotations

import serial

from .link import PortBusy, PortNotFound


class BalanceError(Exception):
    """The balance did not answer, was unstable, or answered in a unit we do not take."""


UNITS_G = {"g": 1.0, "mg": 1e-3}


class Balance:
    def __init__(self, port: str, *, timeout: float = 15.0):
        self.port = port
        try:
            self.serial = serial.serial_for_url(port, baudrate=9600, timeout=timeout, exclusive=True)  # as the link
        except (serial.SerialException, OSError, ValueError) as e:
            if "exclusively lock" in str(e):
                raise PortBusy(port) from e
            raise PortNotFound(port) from e
        self.serial.reset_input_buffer()

    def close(self) -> None:
        self.serial.close()

    def _ask(self, command: str) -> list[str]:
        self.serial.write(command.encode() + b"\r\n")
        line = self.serial.readline()
        if not line.endswith(b"\n"):
            raise BalanceError(f"the balance on {self.port} did not answer {command!r}; check its cable and that "
                               "it speaks MT-SICS at 9600 baud")
        return line.decode(errors="replace").split()

    def zero(self) -> None:
        words = self._ask("Z")
        if words != ["Z", "A"]:
            raise BalanceError(f"the balance could not zero ({' '.join(words)}): it was not stable; shield it "
                               "from draughts and vibration")

    def weigh(self) -> float:
        """A stable weight, in grams."""
        words = self._ask("S")
        if words[:2] != ["S", "S"] or len(words) != 4:
            raise BalanceError(f"no stable weight from the balance ({' '.join(words)}): it stayed unstable")
        value, unit = words[2], words[3]
        if unit not in UNITS_G:
            raise BalanceError(f"the balance reports in {unit!r}; set it to g or mg")
        return float(value) * UNITS_G[unit]
