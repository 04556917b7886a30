"""The simulated board's two syringe channels (two drugs): loading channel 2, per-drug ground truth.

The model (firmware/boards/sim/board_model.py) holds a second syringe on its own plunger; the board steps
the channel the firmware selected. Its line joins channel 1's in a Y-piece with check valves before the
head; the head's path is plug flow, so the drug in it leaves first. Mixed into SimBoard beside HeadControls.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable

from mesoprotocol import spec

MIXED = 3  # DrugTruth index of fluid that was both drugs (a path pushed by one channel over the other's remains)


@dataclasses.dataclass(frozen=True)
class DrugTruth:
    channel: int  # the channel the board steps now
    path_front: int  # the drug nearest the tip (a channel, MIXED, 0: dry)...
    front_nl: float  # ...and how much of it is left before path_back's
    path_back: int  # the drug behind it: the last channel that pushed
    out_nl: list  # per drug (index: channel, MIXED): out of the needles since the board was built
    skin_nl: list  # of which into the skin
    content_nl: list  # per channel: left in its syringe
    wrong_nl: float  # into the skin while the other channel's plunger pushed (the wrong drug given)
    switch_moving: int  # channel changes while fluid was still moving or the needle was in


class DrugControls:
    """The drug side of SimBoard's control channel."""

    _cond: threading.Condition
    wait: Callable
    _inject: Callable
    _channel: Callable

    def _init_drugs(self) -> None:
        self._drug_truth: DrugTruth | None = None

    def load_channel(self, channel: int, syringe: int, content_nl: float) -> None:
        """A full `syringe` (SYRINGES code) with content_nl in that channel's clamp."""
        _, diameter_um, _, _, barrel_um = spec.SYRINGES[syringe]
        self._inject("load_channel", "the board did not take the syringe", channel=int(channel),
                     diameter_um=int(diameter_um), content_nl=float(content_nl), barrel_um=int(barrel_um))

    def drug_truth(self, timeout: float = 2.0) -> DrugTruth:
        with self._cond:
            self._drug_truth = None
        self._channel().send("drug_truth?")
        self.wait(lambda: self._drug_truth is not None, timeout, "no drug ground truth from the board")
        assert self._drug_truth is not None
        return self._drug_truth

    def _on_drug_world(self, msg: dict) -> bool:
        """The board's drug report (cond held, I/O thread); False: not such a message."""
        if msg["kind"] != "drug_truth":
            return False
        self._drug_truth = DrugTruth(msg["channel"], msg["path_front"], msg["front_nl"], msg["path_back"],
                                     list(msg["out_nl"]), list(msg["skin_nl"]), list(msg["content_nl"]),
                                     msg["wrong_nl"], msg["switch_moving"])
        return True
