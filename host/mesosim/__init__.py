"""mesosim: the simulated injector board (harness, physical model, virtual operator)."""

from .control import ControlError
from .harness import FlashInUse, Penetration, SimBoard, Truth
from .linkfaults import LinkFaults
from .operator import VirtualOperator

__all__ = ["SimBoard", "Truth", "Penetration", "VirtualOperator", "LinkFaults", "ControlError", "FlashInUse"]
