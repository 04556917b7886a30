"""Run a dose program on a device: configure, prime, arm, record every delivery.

The host polls STATUS every `poll_s` (the device's link watchdog expects a frame
at least every link_timeout_ms while armed) and stores each DELIVERY event
before reporting it. The device decides when a point is given; the host records.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable

from mesoprotocol import spec

from . import alarms, sync
from .client import Device, Identity, new_session_tag
from .program import Program
from .records import RecordStore, RecordStoreError

TERMINAL = {spec.STATE_COMPLETE: "complete", spec.STATE_FAULT: "fault", spec.STATE_IDLE: "aborted"}


class RecordsKeptOnDevice(RuntimeError):
    """The session ran, but the store could not take every record: they are still on the device."""


class DeviceInFault(Exception):
    """The device is stopped on an alarm from before this session; a person must clear it."""

    def __init__(self, alarm: int, explanation: str):
        self.alarm = alarm
        super().__init__(explanation)


@dataclasses.dataclass
class Progress:
    state: str = "IDLE"
    done: int = 0
    planned: int = 0
    delivered_nl: int = 0  # to the patient, partial points included
    primed_nl: int = 0
    records: int = 0
    partial: int = 0
    unstored: int = 0  # records the device holds that the store could not take yet (they stay on the device)
    alarms: list[tuple[int, int]] = dataclasses.field(default_factory=list)  # (ALARM_* code, detail)


@dataclasses.dataclass
class Outcome:
    session_id: int
    outcome: str  # complete | aborted | fault | interrupted
    progress: Progress
    identity: Identity

    @property
    def completed(self) -> bool:
        return self.outcome == "complete"


class SessionRunner:
    def __init__(self, device: Device, store: RecordStore, *, poll_s: float = 0.1,
                 on_progress: Callable[[Progress], None] | None = None):
        self.device = device
        self.store = store
        self.poll_s = poll_s
        self.on_progress = on_progress or (lambda p: None)
        self.progress = Progress()
        self.session_id: int | None = None
        self.session_tag = 0
        self.sessions: dict[int, int] = {}  # device session tag -> host session id
        self.acked = 0  # DELIVERY events stored and acknowledged
        self.earlier = sync.SyncCounts()  # records of earlier sessions the device still held
        self.store_error: RecordStoreError | None = None  # the store failed mid-session: retried each poll

    def run(self, program: Program, *, patient_ref: str | None = None, operator: str | None = None,
            drug_lot: str | None = None, timeout_s: float | None = None) -> Outcome:
        device = self.device
        identity = device.hello()
        program.check_limits(identity.limits)
        pending = self._pending_alarm(identity)
        self.earlier = sync.drain(device, self.store)  # anything the device kept from before, first
        self.session_tag = new_session_tag()
        self.session_id = self.store.begin_session(identity, program, patient_ref=patient_ref, operator=operator,
                                                   device_session=self.session_tag, drug_lot=drug_lot)
        self.sessions = {self.session_tag: self.session_id}
        self.progress = Progress(planned=program.count)
        outcome = "interrupted"
        try:
            if pending:  # the reset goes on this session's record first, then it is acknowledged
                self.store.add_alarm(self.session_id, identity.serial, pending)
                device.abort()
            reply = device.configure(session=self.session_tag, **program.configure_fields())
            if reply["state"] != spec.STATE_PRIMED:
                device.prime(program.prime_nl)
                state = self._wait_for({spec.STATE_PRIMED, spec.STATE_CONFIGURED, spec.STATE_FAULT}, 30)
                if state != spec.STATE_PRIMED:
                    raise RuntimeError(f"priming failed: device is {spec.STATE_NAMES[state]}")
            device.arm()
            deadline = None if timeout_s is None else time.monotonic() + timeout_s
            while True:
                state = self._poll()
                if state in TERMINAL:
                    outcome = TERMINAL[state]
                    self._until_needle_home()  # a stopped point is recorded once the plunger is still
                    break
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError(f"program not complete after {timeout_s} s")
                time.sleep(self.poll_s)  # heartbeat period, not synchronisation
        except BaseException:
            self._pause_quietly()
            raise
        finally:
            self._store_quietly(self.store.end_session, self.session_id, outcome)
        if self.store_error:
            try:
                self._sync(0)  # one last try
            except RecordStoreError as e:
                held = self.device.status()["unacked"]
                raise RecordsKeptOnDevice(f"{e}. The device keeps the {held} records not yet stored; store them "
                                          "with `mesoinject sync --port PORT` once the database is usable") from e
        return Outcome(self.session_id, outcome, self.progress, identity)

    def _pending_alarm(self, identity: Identity) -> dict | None:
        """A RESET alarm to record (and then acknowledge); any other fault stops us here."""
        status = self.device.status()
        if status["state"] != spec.STATE_FAULT:
            return None
        alarm = status["alarm"]
        if alarm != spec.ALARM_RESET:
            raise DeviceInFault(alarm, alarms.explain(alarm, 0))
        return {"code": alarm, "detail": spec.RESET_NAMES.index(identity.reset_cause), "time_ms": status["time_ms"]}

    def _wait_for(self, states: set[int], timeout_s: float) -> int:
        deadline = time.monotonic() + timeout_s
        while True:
            state = self._poll()
            if state in states:
                return state
            if time.monotonic() > deadline:
                raise TimeoutError(f"device stayed {spec.STATE_NAMES[state]} for {timeout_s} s")
            time.sleep(self.poll_s)

    def _until_needle_home(self, timeout_s: float = 5.0) -> None:
        # after a fault the device may still be backing off (occlusion) or retracting;
        # its DELIVERY for the stopped point comes before the needle is home
        deadline = time.monotonic() + timeout_s
        while self.device.status()["depth_um"] and time.monotonic() < deadline:
            time.sleep(self.poll_s / 4)
        self._poll()

    def _poll(self) -> int:
        # The STATUS reply comes after every event the device sent before it, so
        # draining the queue after the reply leaves no event behind.
        status = self.device.status()
        acked = self.acked
        self._drain_events()
        # the STATUS counted the records whose DELIVERY we just acknowledged; any more is a DELIVERY
        # lost on the link, or one the store could not take: the journal still has it
        if status["unacked"] > self.acked - acked:
            self._store_quietly(self._sync, 0)
        p = self.progress
        p.unstored = status["unacked"] if self.store_error else 0
        p.state = spec.STATE_NAMES[status["state"]]
        p.done = status["done"]
        self.on_progress(p)
        return status["state"]

    def _drain_events(self) -> None:
        while (event := self.device.next_event(0)) is not None:
            self.handle_event(event)

    def handle_event(self, event) -> None:
        serial = self.device.identity.serial if self.device.identity else "?"
        if event.type == spec.DELIVERY:
            self._store_quietly(self._store_and_ack, serial, event.fields)
        elif event.type == spec.ALARM:
            self._store_quietly(self.store.add_alarm, self.session_id, serial, event.fields)
            self.progress.alarms.append((event.fields["code"], event.fields["detail"]))

    def _store_and_ack(self, serial: str, f: dict) -> None:
        session_id = sync.session_of(self.store, self.device.identity, self.sessions, f["session"])
        new = self.store.add_delivery(session_id, serial, f)  # committed, then acked
        self._count(f, new)
        self._sync(f["record_id"])
        self.acked += 1

    def _store_quietly(self, action, *args) -> None:
        # The treatment goes on when the store fails (locked, disk full): the device keeps every
        # record until it is stored, and each poll tries again. Never a reason to stop a patient's
        # session half-way; run() raises at the end if the records are still not stored.
        try:
            action(*args)
            self.store_error = None
        except RecordStoreError as e:
            self.store_error = e

    def _sync(self, ack_id: int) -> None:
        sync.drain(self.device, self.store, ack_id=ack_id, known=self.sessions, on_record=self._count)

    def _count(self, f: dict, new: bool) -> None:
        p = self.progress
        if not new or f["session"] != self.session_tag:
            return
        p.records += 1
        if f["kind"] == spec.KIND_PRIME:
            p.primed_nl += f["delivered_nl"]
        else:
            p.delivered_nl += f["delivered_nl"]
            p.partial += 1 if f["flags"] & spec.FLAG_PARTIAL else 0

    def _pause_quietly(self) -> None:
        # Ctrl-C or a host error: pause (plunger stops, needle out, program kept),
        # then collect the partial point the device reports.
        try:
            if self.device.status()["state"] in (spec.STATE_ARMED, spec.STATE_DELIVERING):
                self.device.pause()
            self._poll()
        except Exception:
            pass  # the link may be what failed; the device stops itself on link loss
