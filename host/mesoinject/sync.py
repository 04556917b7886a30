"""Pull the device's journal into the record store: commit first, acknowledge after.

The device keeps every delivery on its flash until the host acknowledges the record
id; the host acknowledges only what it has committed. A crash, an unplugged cable
or a locked database between the two leaves the record on the device, to be sent
again; storing is idempotent on (device serial, record id), so a replay is never
counted twice.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from mesoprotocol import spec

from . import records as store_records
from .client import Device
from .records import RecordStore


@dataclasses.dataclass
class SyncCounts:
    stored: int = 0  # new records committed
    replayed: int = 0  # already stored (a replay), acknowledged again
    sessions: set = dataclasses.field(default_factory=set)  # host session ids the records went to
    alarms: int = 0  # of the stored records, alarms
    ends: int = 0  # of the stored records, programs' ends (their sessions' outcomes)
    erased: int = 0  # the device's flash was erased: this many earlier records of it are kept in the store

    def erased_note(self, serial: str) -> str:
        """What happened to a device whose journal was erased, or ''."""
        if not self.erased:
            return ""
        return (f"device {serial}'s flash was erased (a new journal epoch, its record ids start again): "
                f"its {self.erased} earlier records are kept in the store; new ones are stored beside them")


def session_of(store: RecordStore, identity, known: dict[int, int], tag: int) -> int:
    """The host session of a device session tag: the one begun with it, or a placeholder for a
    session this store never saw. `known` caches tag -> session id across records."""
    if tag not in known:
        known[tag] = store.session_for_device(identity.serial, tag, board=identity.board, firmware=identity.firmware,
                                              epoch=identity.journal_epoch)
    return known[tag]


def drain(device: Device, store: RecordStore, *, ack_id: int = 0, known: dict[int, int] | None = None,
          on_record: Callable[[dict, bool], None] | None = None,
          where: Callable[[dict], dict] | None = None) -> SyncCounts:
    """Store every record the device holds unacknowledged; ack_id: one already committed.

    known: tag -> host session id already resolved (see session_of); on_record(fields, new)
    is called after each commit; where(fields) -> {plan_step, zone} of a delivery (a plan running).
    """
    identity = device.identity or device.hello()
    known = {} if known is None else known
    counts = SyncCounts(erased=store.earlier_epochs(identity.serial, identity.journal_epoch))
    while True:
        record = device.records(ack_id)
        if not record["record_id"]:
            return counts
        session_id = session_of(store, identity, known, record["session"])
        new = store_record(store, session_id, identity.serial, record, where(record) if where else {})  # or raises: no ack
        counts.stored += new
        counts.replayed += not new
        counts.alarms += new and record["kind"] == spec.KIND_ALARM
        counts.ends += new and record["kind"] == spec.KIND_END
        counts.sessions.add(session_id)
        if on_record:
            on_record(record, new)
        ack_id = record["record_id"]


def store_record(store: RecordStore, session_id: int, serial: str, record: dict, where: dict | None = None) -> bool:
    """One journal record into the store: a delivery, an alarm, or a program's end (its session's
    outcome); False if it was stored before."""
    kind = record["kind"]
    if kind == spec.KIND_ALARM:
        detail = record["programmed_nl"]
        return store.add_alarm(session_id, serial, {
            "code": record["point"], "detail": detail - (1 << 32) if detail >= 1 << 31 else detail,
            "time_ms": record["time_ms"], "record_id": record["record_id"], "epoch": record["epoch"]})
    if kind == spec.KIND_END:
        outcome = store_records.DEVICE_OUTCOMES.get(record["point"])
        return outcome is not None and store.apply_outcome(session_id, outcome)  # again: changes nothing
    return store.add_delivery(session_id, serial, record, **(where or {}))
