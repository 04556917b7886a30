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

from .client import Device
from .records import RecordStore


@dataclasses.dataclass
class SyncCounts:
    stored: int = 0  # new records committed
    replayed: int = 0  # already stored (a replay), acknowledged again
    sessions: set = dataclasses.field(default_factory=set)  # host session ids the records went to


def session_of(store: RecordStore, identity, known: dict[int, int], tag: int) -> int:
    """The host session of a device session tag: the one begun with it, or a placeholder for a
    session this store never saw. `known` caches tag -> session id across records."""
    if tag not in known:
        known[tag] = store.session_for_device(identity.serial, tag, board=identity.board, firmware=identity.firmware)
    return known[tag]


def drain(device: Device, store: RecordStore, *, ack_id: int = 0, known: dict[int, int] | None = None,
          on_record: Callable[[dict, bool], None] | None = None) -> SyncCounts:
    """Store every record the device holds unacknowledged; ack_id: one already committed.

    known: tag -> host session id already resolved (see session_of); on_record(fields, new)
    is called after each commit.
    """
    identity = device.identity or device.hello()
    known = {} if known is None else known
    counts = SyncCounts()
    while True:
        record = device.records(ack_id)
        if not record["record_id"]:
            return counts
        session_id = session_of(store, identity, known, record["session"])
        new = store.add_delivery(session_id, identity.serial, record)  # committed, or raises: no ack
        counts.stored += new
        counts.replayed += not new
        counts.sessions.add(session_id)
        if on_record:
            on_record(record, new)
        ack_id = record["record_id"]
