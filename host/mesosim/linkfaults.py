"""Link-fault injector between host and simulated board: what a bad cable, a noisy UART or
a congested USB hub does to the bytes, at configurable rates, reproducible from a seed.

Each write crossing the link (a frame, usually) may have a bit flipped, be lost, be sent
twice, be cut short, or be held back for a while; a held-back write also holds back what
follows it in that direction, as a stalled link does (bytes are never reordered).
"""

from __future__ import annotations

import collections
import dataclasses
import random


@dataclasses.dataclass
class LinkFaults:
    flip: float = 0.0  # fraction of writes with one random bit flipped
    drop: float = 0.0  # ...lost entirely
    duplicate: float = 0.0  # ...delivered twice
    truncate: float = 0.0  # ...cut at a random byte
    delay: float = 0.0  # ...held back for delay_s, with everything behind them
    delay_s: float = 0.02
    baud: int = 0  # pace the bytes as a UART at this rate (8N1: 10 bits a byte); 0: as fast as they come
    seed: int = 0
    counts: collections.Counter = dataclasses.field(default_factory=collections.Counter)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    @property
    def active(self) -> bool:
        return bool(self.flip or self.drop or self.duplicate or self.truncate or self.delay or self.baud)

    def apply(self, data: bytes) -> tuple[list[bytes], float]:
        """What reaches the far end for this write, and how long it is held back first."""
        rng = self._rng
        if rng.random() < self.drop:
            self.counts["dropped"] += 1
            return [], 0.0
        out = bytearray(data)
        if rng.random() < self.flip:
            bit = rng.randrange(len(out) * 8)
            out[bit // 8] ^= 1 << (bit % 8)
            self.counts["flipped"] += 1
        if len(out) > 1 and rng.random() < self.truncate:
            del out[rng.randrange(1, len(out)):]
            self.counts["truncated"] += 1
        pieces = [bytes(out)]
        if rng.random() < self.duplicate:
            pieces.append(bytes(out))
            self.counts["duplicated"] += 1
        hold = 0.0
        if rng.random() < self.delay:
            hold = self.delay_s
            self.counts["delayed"] += 1
        self.counts["writes"] += 1
        return pieces, hold

    @property
    def damaged(self) -> int:
        c = self.counts
        return c["dropped"] + c["flipped"] + c["truncated"] + c["duplicated"] + c["delayed"]
