"""Optional parts of the package (pip extras): a command that needs one that is not installed says
which, instead of an ImportError traceback."""

from __future__ import annotations

import importlib


class MissingExtra(Exception):
    def __init__(self, extra: str, feature: str, missing: str):
        super().__init__(f"{feature} needs the optional part [{extra}] ({missing} is not installed): "
                         f"pip install 'mesoinject[{extra}]'")
        self.extra = extra


def require(extra: str, feature: str, *modules: str) -> None:
    """Import each module, or raise MissingExtra naming the extra that provides it."""
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError:
            raise MissingExtra(extra, feature, name) from None
