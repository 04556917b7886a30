"""The clinician console (`mesoinject ui`): a browser page over the mesoinject library. See README.md."""

from .controller import Console
from .server import ConsoleServer

__all__ = ["Console", "ConsoleServer"]
