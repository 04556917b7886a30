"""One RESET per boot (PROTOCOL.md 8): the device's restarts, stored once each, on the session they cut short.

Every boot raises ALARM RESET (not journalled) and holds it as FAULT until an ABORT acknowledges it. The host
learns of a boot from its RESET event, from STATUS_REPLY's `boot_count` changing, or from HELLO on a new
connection (IDENTITY `boot_count` and `reset_cause`). Each way stores the same row, keyed in the record store by
(serial, journal epoch, boot_count), so a boot has one RESET however many of them the host saw, in any order,
across reconnects and retries - and it is stored before anything acknowledges it.
"""

from __future__ import annotations

from mesoprotocol import spec

from .records import RecordStore


CAUSE_UNKNOWN = -1  # a RESET's detail for a boot seen only in the count: the device restarted again before any host asked


def ahead(known: int, boot: int) -> bool:
    """boot is later than known (the counter wraps at BOOT_COUNT_MOD: later means less than half way round)."""
    return 0 < (boot - known) % spec.BOOT_COUNT_MOD < spec.BOOT_COUNT_MOD // 2


def skipped(known: int | None, boot: int) -> int | None:
    """The first boot after `known` if the device is now past it (in `boot`): that restart's RESET went with the
    boot after it, unheard, and its cause with it; None if boot follows known (or is not later)."""
    if known is None or not ahead(known, boot) or (boot - known) % spec.BOOT_COUNT_MOD == 1:
        return None
    return (known + 1) % spec.BOOT_COUNT_MOD


def unknown_reset(boot: int, epoch: int) -> dict:
    """The RESET of a boot seen only in the count: it happened, its cause is not known."""
    return {"code": spec.ALARM_RESET, "detail": CAUSE_UNKNOWN, "time_ms": 0, "record_id": 0, "epoch": epoch,
            "boot_count": boot}


def reset_of(identity, time_ms: int = 0) -> dict:
    """The RESET alarm of the boot a HELLO reported: its boot and its cause (IDENTITY)."""
    return {"code": spec.ALARM_RESET, "detail": spec.RESET_NAMES.index(identity.reset_cause), "time_ms": time_ms,
            "record_id": 0, "epoch": identity.journal_epoch, "boot_count": identity.boot_count}


def store_reset(store: RecordStore, identity, alarm: dict, session_id: int | None = None) -> bool:
    """Store a boot's RESET once (False: that boot's was stored before). It goes on the session it cut short - the
    device's latest session begun in an earlier boot that no host saw end - else on session_id (the session that
    found it at its start), else on none (a device-level alarm: `mesoinject sync` with no such session)."""
    cut = store.cut_short_session(identity.serial, alarm["epoch"], alarm["boot_count"])
    return store.add_alarm(session_id if cut is None else cut, identity.serial, alarm)


def store_held_reset(device, store: RecordStore, session_id: int | None = None) -> dict | None:
    """The RESET the device holds (FAULT, not acknowledged yet), stored once; what was stored (or found stored),
    None if the device holds none. The caller may acknowledge it (ABORT) after this."""
    identity = device.hello()
    status = device.status()
    if status["state"] != spec.STATE_FAULT or status["alarm"] != spec.ALARM_RESET:
        return None
    if status["boot_count"] != identity.boot_count:  # it restarted between the two: the cause is this boot's
        identity = device.hello()
    alarm = reset_of(identity, status["time_ms"])
    store_reset(store, identity, alarm, session_id)
    return alarm
