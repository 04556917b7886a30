"""The simulated board as this library uses it: mesosim's board, flashed with this package's
firmware image at power-on and factory-paired with a key in the user's key store (as `mesoinject
pair` would leave it). mesosim itself knows nothing of the host library, as a real board does not.

The image is the one a flash writes (modules compiled to .mpy, mesoinject.compiled) in the chip's heap;
sources=True (or MESOSIM_SOURCES=1 in the environment) boots the .py sources instead, for debugging,
with the compiler's working space added to the heap (mesosim.SOURCES_HEAP)."""

from __future__ import annotations

import os

import mesosim
from mesosim.harness import HEAP, SOURCES_HEAP, MicroPythonMissing, micropython_binary

from . import compiled, extras, flash, image
from .keys import KeyStore


class SimBoard(mesosim.SimBoard):
    def __init__(self, *, sources: bool | None = None, heap: str | None = None, **kwargs):
        self.sources = os.environ.get("MESOSIM_SOURCES") == "1" if sources is None else sources
        super().__init__(heap=heap or (SOURCES_HEAP if self.sources else HEAP), **kwargs)

    def start(self) -> SimBoard:
        try:
            micropython_binary()
        except MicroPythonMissing:
            raise extras.MissingExtra("sim", "the simulated board", "the MicroPython unix port") from None
        super().start()
        return self

    def install_firmware(self) -> None:
        if not self.sources:
            compiled.stage("sim", self.flash, micropython_binary())
            return
        sources = {rel for _, rel in image.manifest("sim")}
        for rel in flash.stale_modules(self._modules_on_flash(), sources):  # an .mpy image's modules
            (self.flash / rel).unlink()
        image.stage("sim", self.flash)

    def _modules_on_flash(self) -> set[str]:
        return {str(p.relative_to(self.flash)) for p in self.flash.rglob("*") if p.is_file()}

    def factory_key_in_use(self) -> None:
        KeyStore().put(self.serial, self.factory_key)
