"""A plan's session cap on the device, and the setting it replaced, remembered until it is given back.

A plan lowers the device's max_session_nl to its total (SETTINGS, kept on the device's flash) and
sets it back once the device is idle. If the plan stops where it cannot (an alarm not cleared, a
lost link), the setting it replaced is kept here, beside the device's key, so `mesoinject abort`
or the next session gives it back: a device never keeps a plan's cap by accident, and never gets
a higher one than its engineer set.
"""

from __future__ import annotations

import pathlib

from mesoprotocol import spec

from . import keys


def _path(serial: str) -> pathlib.Path:
    return keys.KeyStore().path(serial).with_suffix(".session-cap")


def remember(serial: str, setting_nl: int) -> None:
    path = _path(serial)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.write_text(f"{int(setting_nl)}\n")


def replaced(serial: str) -> int | None:
    """The device's own max_session_nl a plan replaced and did not give back yet, or None."""
    try:
        return int(_path(serial).read_text().strip())
    except (OSError, ValueError):
        return None


def forget(serial: str) -> None:
    _path(serial).unlink(missing_ok=True)


def give_back(device) -> int | None:
    """Set the device's max_session_nl back to what a plan replaced, if it is idle; the value set, or None."""
    serial = (device.identity or device.hello()).serial
    setting = replaced(serial)
    if setting is None:
        return None
    state = device.status()["state"]
    if state in (spec.STATE_CONFIGURED, spec.STATE_PRIMED, spec.STATE_COMPLETE):
        device.abort()  # no program runs in these states: nothing is ended
    elif state != spec.STATE_IDLE:
        return None
    device.settings(max_session_nl=setting)
    forget(serial)
    return setting
