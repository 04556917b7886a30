"""The simulated board as this library uses it: mesosim's board, flashed with this package's
firmware image at power-on and factory-paired with a key in the user's key store (as `mesoinject
pair` would leave it). mesosim itself knows nothing of the host library, as a real board does not."""

from __future__ import annotations

import mesosim
from mesosim.harness import MicroPythonMissing, micropython_binary

from . import extras, image
from .keys import KeyStore


class SimBoard(mesosim.SimBoard):
    def start(self) -> SimBoard:
        try:
            micropython_binary()
        except MicroPythonMissing:
            raise extras.MissingExtra("sim", "the simulated board", "the MicroPython unix port") from None
        super().start()
        return self

    def install_firmware(self) -> None:
        image.stage("sim", self.flash)

    def factory_key_in_use(self) -> None:
        KeyStore().put(self.serial, self.factory_key)
