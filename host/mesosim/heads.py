"""The simulated board's needle heads (spec.HEADS): fitting one, blocking a needle, per-needle ground truth.

A head's needles are drawn per board: each needle's conductance (1 / flow resistance) varies by up to
NEEDLE_SPREAD from nominal, as the bores of one lot of 30G needles do; flow splits by conductance.
Mixed into SimBoard beside BoardControls (control.py), whose channel, condition and wait it uses.
"""

from __future__ import annotations

import dataclasses
import random
import threading
from collections.abc import Callable

from mesoprotocol import spec

NEEDLE_SPREAD = spec.HEAD_NEEDLE_SPREAD_PCT / 100  # conductance between the needles of a head (bore tolerance of one lot)


def needle_conductances(needles: int, seed: int | None) -> list[float]:
    """Each needle's conductance relative to nominal; one needle is exactly nominal (1.0)."""
    if needles == 1:
        return [1.0]
    rng = random.Random(seed)
    return [round(1 + rng.uniform(-NEEDLE_SPREAD, NEEDLE_SPREAD), 4) for _ in range(needles)]


def head_profile(code: int, seed: int | None) -> dict:
    """The model's profile entries for a board built with head `code` (filled, as a board's first head)."""
    _, needles, _, _, dead_nl, id_mv = spec.HEADS[code]
    return {"head_mv": id_mv, "head_dead_nl": dead_nl, "head_g": needle_conductances(needles, seed)}


@dataclasses.dataclass(frozen=True)
class HeadTruth:
    id_mv: int  # the head's ID voltage
    dead_nl: float  # its dead volume
    fill_nl: float  # how much of it is filled
    needles_nl: list  # out of each needle since it was fitted
    vacuum_kpa: float = 0.0  # under the head now (kPa below ambient)
    pump: bool = False  # the vacuum pump running


class HeadControls:
    """The head side of SimBoard's control channel (fit, block, ID faults, per-needle ground truth)."""

    _cond: threading.Condition
    wait: Callable
    _inject: Callable
    _channel: Callable
    seed: int | None

    def _init_heads(self, head: int) -> None:
        self.head = head
        self.needle_volumes: list[list[float]] = []  # per penetration, what each needle put in (in order)
        self._head_truth: HeadTruth | None = None
        self.needle_figures: list[dict] = []  # the blocked-needle watch's figures per judged dose (board_ctrl.py)

    def fit_head(self, code: int, conductance: list[float] | None = None) -> None:
        """Put another head on the gun, dry: its ID resistor, dead volume and needles (drawn from the seed)."""
        _, needles, _, _, dead_nl, id_mv = spec.HEADS[code]
        g = conductance or needle_conductances(needles, self.seed)
        self._inject("fit_head", "the board did not take the head", id_mv=int(id_mv), dead_nl=float(dead_nl),
                     conductance=[float(v) for v in g])
        self.head = code

    def block_needle(self, needle: int, factor: float) -> None:
        """Needle `needle`'s flow resistance x factor (1: clear again)."""
        self._inject("block", "the board did not take the blockage", needle=int(needle), factor=float(factor))

    def fail_head_id(self, reading_mv: int | None = 0) -> None:
        """The head ID reads reading_mv whatever is fitted (None: it works again)."""
        self._inject("head_id", "the board did not take it", reading_mv=-1 if reading_mv is None else int(reading_mv))

    def set_contact(self, held: bool) -> None:
        """The operator holds the gun on the skin (True: contact switch closed, a vacuum head sealed) or lifts it."""
        self._inject("contact", "the board did not take the contact", held=bool(held))

    def send_contact(self, held: bool) -> None:
        """The same, without waiting for the board's echo (to aim the edge at a moment)."""
        self._channel().send("contact", held=bool(held))

    def head_truth(self, timeout: float = 2.0) -> HeadTruth:
        with self._cond:
            self._head_truth = None
        self._channel().send("head_truth?")
        self.wait(lambda: self._head_truth is not None, timeout, "no head ground truth from the board")
        assert self._head_truth is not None
        return self._head_truth

    def _on_head_world(self, msg: dict) -> bool:
        """The board's head reports (cond held, I/O thread); False: not such a message."""
        if msg["kind"] == "pen_needles":
            self.needle_volumes.append(list(msg["volumes_nl"]))
        elif msg["kind"] == "needle_figures":
            self.needle_figures.append(msg)
        elif msg["kind"] == "head_truth":
            self._head_truth = HeadTruth(msg["id_mv"], msg["dead_nl"], msg["fill_nl"], list(msg["needles_nl"]),
                                         msg["vacuum_kpa"], msg["pump"])
        else:
            return False
        return True
