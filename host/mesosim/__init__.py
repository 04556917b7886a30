"""mesosim: the simulated injector board (harness, physical model, virtual operator)."""

from .control import ControlError
from .harness import FlashInUse, Penetration, SimBoard, Truth
from .linkfaults import LinkFaults
from .operator import NEEDLE_FIT_S, VirtualOperator

__all__ = ["SimBoard", "Truth", "Penetration", "VirtualOperator", "LinkFaults", "ControlError", "FlashInUse", "NEEDLE_FIT_S"]
