"""Run a dose program on a device: configure, prime, arm, record every delivery.

The host polls STATUS every `poll_s` (the device's link watchdog expects a frame
at least every link_timeout_ms while armed) and stores each DELIVERY event
before reporting it. The device decides when a point is given; the host records.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from mesoprotocol import spec

from . import alarms, boots, outcomes, sync, units
from .client import Device, DeviceRefused, Identity, new_session_tag
from .heartbeat import Heartbeat
from .plan import Plan, Step
from .program import CONFIGURE_FIELDS, Program
from .records import RecordStore, RecordStoreError

TERMINAL = {spec.STATE_COMPLETE: "complete", spec.STATE_FAULT: "fault", spec.STATE_IDLE: "aborted"}


class RecordsKeptOnDevice(RuntimeError):
    """The session ran, but the store could not take every record: they are still on the device."""


class PrimingStopped(RuntimeError):
    """Priming ended without the device becoming PRIMED (aborted, an alarm, or it gave up)."""

    def __init__(self, state: int):
        self.state = state
        super().__init__(f"priming did not complete: the device is {spec.STATE_NAMES[state]}")


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
    depth_um: int = 0  # needle depth now
    syringe_left_nl: int = 0
    cadence_mhz: int = 0  # nappage: measured between the last two shots of a burst, 0 if not known
    unstored: int = 0  # records the device holds that the store could not take yet (they stay on the device)
    alarms: list[tuple[int, int]] = dataclasses.field(default_factory=list)  # (ALARM_* code, detail)


@dataclasses.dataclass
class Outcome:
    session_id: int
    outcome: str  # complete | aborted | fault | interrupted
    progress: Progress
    identity: Identity

    words: str = ""  # the outcome as the operator is told it and the record keeps it (mesoinject.outcomes)

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
        self.program: Program | None = None
        self.configured = spec.STATE_IDLE  # the device's state after CONFIGURE (PRIMED: still primed)
        self._last_poll = 0.0
        self._last_shot: tuple[int, int] | None = None  # (shot index, device time_ms) for the measured cadence
        self.given: set[int] = set()  # the session's points (or shots) with a record, full or partial
        self.point_base = 0  # points given before this part of the session (giving the remaining ones)
        self.plan: Plan | None = None
        self.plan_step: Step | None = None  # the plan step the device is configured for
        self.session_cap_nl = 0  # the session's cap on the device (CONFIGURE): a plan's total; 0: none
        # the boot the session began in (IDENTITY boot_count): its RESET, found at begin(), is no alarm of the run;
        # a RESET of a later boot is the device restarting during the run (watchdog, power cut), reported once
        # however the host learnt of it (its event, STATUS boot_count, HELLO: PROTOCOL.md 8 "One RESET per boot")
        self.start_boot: int | None = None
        self.boot: int | None = None  # the boot the device is in, as this runner last learnt it
        self.restarts: set[int] = set()  # boots of restarts during the run already reported
        # feeds the device's link watchdog while this runner is held up between its polls (heartbeat.py)
        self.heartbeat = Heartbeat(device, silent_s=2 * poll_s)
        self.step_totals: dict[int, dict] = {}  # plan step -> given, partial, delivered_nl (stored records)

    def run_plan(self, plan: Plan, *, patient_ref: str | None = None, operator: str | None = None,
                 drug_lot: str | None = None, timeout_s: float | None = None,
                 before_prime: Callable[[], None] | None = None,
                 before_step: Callable[[Step], None] | None = None,
                 before_flush: Callable[[Step, Step, int], None] | None = None) -> Outcome:
        """Every step of a plan in order, as one session whose cap (CONFIGURE's session_cap_nl) is the plan
        total: the device enforces it and forgets it with the session; its settings are never changed.
        before_step(step): the operator confirms the zone before each step (the gun moves only after).
        before_flush(step, before, volume_nl): before a step of the other channel's drug, the operator is asked
        for its flush prime (needle up: it pushes the other drug out of the head); else before_prime asks.
        Stops at the first step that does not complete."""
        identity = self.begin(plan.steps[0].program, patient_ref=patient_ref, operator=operator, drug_lot=drug_lot,
                              plan=plan)
        try:
            before = None
            for step in plan.steps:
                if step.number > 1:
                    self.next_step(step)
                if before_step:
                    before_step(step)
                flush = step.flush_nl(before)
                if flush and before is not None:  # the step before gave the other channel's drug
                    if before_flush:
                        before_flush(step, before, flush)
                    self.flush(step, before, flush)
                else:
                    if before_prime and self.configured != spec.STATE_PRIMED:
                        before_prime()
                    self.prime()
                before = step
                self.arm()
                outcome = self.watch(timeout_s)
                if outcome != "complete":
                    break
        except BaseException:
            self.pause_quietly()
            self.finish("interrupted", retry=False)
            raise
        self.finish(outcome)
        return Outcome(self.current_session_id(), outcome, self.progress, identity, self.words(outcome))

    def next_step(self, step: Step) -> None:
        """The device is configured for the plan's next step under the same session tag and cap, so the
        session's total so far counts against the cap (PROTOCOL.md "Sessions")."""
        if self.store_error:  # a record not stored yet would be filed under the wrong step
            raise RecordsKeptOnDevice(f"{self.store_error}. The plan stops before step {step.number}: the device "
                                      "keeps the records not yet stored; `mesoinject sync` stores them")
        self.point_base = max(self.progress.done, len(self.given), self.point_base)
        self.plan_step, self.program = step, step.program
        self._last_shot = None
        self.configured = self._configure(step.program, self.device.identity or self.device.hello())

    def where(self, f: dict) -> dict:
        """The plan step and zone of a delivery of this session (records of other sessions: none)."""
        if self.plan_step is None or f.get("session") != self.session_tag:
            return {}
        return {"plan_step": self.plan_step.number, "zone": self.plan_step.zone.id}

    def run(self, program: Program, *, patient_ref: str | None = None, operator: str | None = None,
            drug_lot: str | None = None, timeout_s: float | None = None,
            before_prime: Callable[[], None] | None = None) -> Outcome:
        """The whole program: begin, prime, arm, watch until it ends, finish. Ctrl-C pauses the device.
        before_prime: asks the operator to point the needle up (not called if the device is still primed)."""
        identity = self.begin(program, patient_ref=patient_ref, operator=operator, drug_lot=drug_lot)
        try:
            if before_prime and self.configured != spec.STATE_PRIMED:
                before_prime()
            self.prime()
            self.arm()
            outcome = self.watch(timeout_s)
        except BaseException:
            self.pause_quietly()
            self.finish("interrupted", retry=False)  # the error at hand matters more than a last store retry
            raise
        self.finish(outcome)
        return Outcome(self.current_session_id(), outcome, self.progress, identity, self.words(outcome))

    def current_program(self) -> Program:
        if self.program is None:
            raise RuntimeError("no session begun: call begin() first")
        return self.program

    def current_session_id(self) -> int:
        if self.session_id is None:
            raise RuntimeError("no session begun: call begin() first")
        return self.session_id

    # ---- the steps, for a caller that lets a person decide each one (the console) ----------------
    def begin(self, program: Program, *, patient_ref: str | None = None, operator: str | None = None,
              drug_lot: str | None = None, plan: Plan | None = None) -> Identity:
        """Check the program against the device, store what it kept from before, open the session
        and configure the device. Nothing moves yet. plan: program is its first step; every step is
        checked, and the plan total is the session's cap (CONFIGURE's session_cap_nl)."""
        device = self.device
        identity = device.hello()
        if plan is not None:
            plan.check_limits(identity.limits)
        program.check_limits(identity.limits)
        pending = self._pending_alarm(identity)  # the boot's RESET (switched on, or a restart since the last session)
        identity = device.identity or identity  # the boot's own, if it restarted since the HELLO above
        self.earlier = sync.drain(device, self.store)  # anything the device kept from before, first
        self.session_tag = new_session_tag()
        self.session_id = self.store.begin_session(identity, program, patient_ref=patient_ref, operator=operator,
                                                   device_session=self.session_tag, drug_lot=drug_lot, plan=plan)
        self.sessions = {self.session_tag: self.session_id}
        self.boot = self.start_boot = identity.boot_count
        self.program = program
        self.plan, self.plan_step = plan, plan.steps[0] if plan else None
        self.session_cap_nl = plan.total_nl if plan else 0
        self.progress = Progress(planned=plan.count if plan else program.count)
        try:
            if pending:  # stored first (once per boot: its event may come too), then acknowledged
                boots.store_reset(self.store, identity, pending, self.session_id)
                device.abort()
            self.heartbeat.silent_s = self._silent_s(identity)
            self.configured = self._configure(program, identity)
        except BaseException:
            self.finish("interrupted", retry=False)
            raise
        return identity

    def _silent_s(self, identity: Identity) -> float:
        # the heartbeat stands in once our polls are two periods late, and well within the device's link timeout
        link_timeout_s = identity.limits.get("link_timeout_ms", spec.LINK_TIMEOUT_MS) / 1000
        return min(2 * self.poll_s, link_timeout_s / 3)

    def _configure(self, program: Program, identity: Identity) -> int:
        try:
            return self.device.configure(session=self.session_tag, session_cap_nl=self.session_cap_nl,
                                         **program.configure_fields())["state"]
        except DeviceRefused as e:  # a limit the host's check could not see (e.g. a calibrated bore): its words
            fields = CONFIGURE_FIELDS
            if e.command != "CONFIGURE" or e.reason not in ("LIMIT", "INFEASIBLE") or e.field not in fields:
                raise
            reason, field = spec.NACK_NAMES.index(e.reason), fields.index(e.field) + 1
            raise program.refusal(reason, field, e.value, e.limit, identity.limits, self.session_cap_nl) from e

    def prime(self, volume_nl: int | None = None, force: bool = False) -> None:
        """Prime (into the air) unless the device is still primed (force: even so); returns once it is PRIMED.
        volume_nl: the program's prime_volume unless given (a flush)."""
        if self.configured == spec.STATE_PRIMED and not force:
            return
        self.device.prime(volume_nl or self.current_program().prime_nl)
        state = self._wait_for({spec.STATE_PRIMED, spec.STATE_CONFIGURED, spec.STATE_FAULT, spec.STATE_IDLE}, 30)
        if state != spec.STATE_PRIMED:
            raise PrimingStopped(state)

    def flush(self, step: Step, before: Step, volume_nl: int) -> None:
        """The flush prime before a step of the other channel's drug: recorded as a prime of its channel
        (under the step) and in a note naming both drugs."""
        self.prime(volume_nl, force=True)
        prev, now = before.program, step.program
        note = (f"Step {step.number}: flush prime of {units.text(volume_nl, units.VOLUME)} of {now.drug} "
                f"(channel {now.channel}) pushed {prev.drug} (channel {prev.channel}) out of the head's path "
                "into the air before the step's first point.")
        self._store_quietly(self.store.add_note, self.current_session_id(), note)  # the prime's own record: its DELIVERY

    def arm(self) -> None:
        self.device.arm()

    def watch(self, timeout_s: float | None = None) -> str:
        """Until the program ends (complete, aborted or on an alarm); returns how it ended. timeout_s counts the
        board's time (device.clock), as every other wait here: an emulated board running at a fraction of real
        time gets as long in its own time to give the program as a real one."""
        deadline = None if timeout_s is None else self.device.clock() + timeout_s
        while (state := self.step()) not in TERMINAL:
            if deadline is not None and self.device.clock() > deadline:
                raise TimeoutError(f"program not complete after {timeout_s} s of the device's time")
        self.until_needle_home()  # a stopped point is recorded once the plunger is still
        return TERMINAL[state]

    def step(self) -> int:
        """One heartbeat period: store each event the moment it arrives, then poll; the device's state."""
        # poll_s of the board's time (device.clock): a board slower than real time is waited for longer in
        # wall time (a wait of `left` wall seconds is never too long: the board's clock is no faster)
        # the heartbeat thread sends our POLL if storing or showing an event holds this thread up past it
        self.heartbeat.touch()
        due = self._last_poll + self.poll_s
        while (event := self.device.next_event_by(due)) is not None:
            self.handle_event(event)
            self.on_progress(self.progress)
            self.heartbeat.touch()
        self._last_poll = self.device.clock()
        return self._poll()

    def words(self, outcome: str, alarm: str | None = None) -> str:
        """How the session ended, in words; alarm: the host's own reason (a lost link) if the device's is not known.
        A RESET among the run's alarms is the device restarting during the run (a watchdog, a brown-out: named with
        its cause); the routine power-on RESET begin() acknowledged never is one (handle_event, SR-177)."""
        name = outcomes.named(*self.progress.alarms[-1]) if self.progress.alarms else alarm
        unit = self.program.unit_name if self.program else "points"
        return outcomes.words(outcome, partial=self.progress.partial, alarm=name, unit=unit)

    def delivered_words(self) -> str:
        p = self.progress
        unit = self.program.unit_name if self.program else "points"
        return outcomes.delivered(p.done, p.planned, unit, p.delivered_nl, p.partial)

    def remaining(self) -> int:
        """Points (or shots) of the plan not given yet: a partial one counts as given (never more than planned)."""
        return max(0, self.progress.planned - max(self.progress.done, len(self.given)))

    def give_remaining(self) -> int:
        """The session goes on after an alarm was dealt with: the device is configured for the points left,
        under the same session tag (it keeps the session's total against its cap, PROTOCOL.md "Sessions").
        The device must be IDLE (fault cleared). Returns how many points it will give."""
        left = self.remaining()
        if self.plan is not None:  # the points left span steps: a plan is run again from its next step
            raise ValueError("giving the remaining points of a plan is not supported: run the plan's remaining "
                             "steps as a new plan")
        if not left or self.program is None:
            raise ValueError("no points are left to give in this session")
        identity = self.device.hello()
        self.point_base = max(self.progress.done, len(self.given))
        self.store.reopen_session(self.current_session_id())
        self.configured = self._configure(dataclasses.replace(self.program, count=left), identity)
        return left

    def finish(self, outcome: str, *, retry: bool = True, alarm: str | None = None) -> None:
        """Close the session on the store. retry: if the store failed during the session, try once more
        to store what the device holds, and raise RecordsKeptOnDevice if it still cannot."""
        self.heartbeat.stop()  # the session is over: the device is no longer kept from noticing our silence
        self._store_quietly(self.store.end_session, self.session_id, outcome, self.words(outcome, alarm))
        if retry and self.store_error:
            try:
                self._sync(0)  # one last try
            except RecordStoreError as e:
                held = self.device.status()["unacked"]
                raise RecordsKeptOnDevice(f"{e}. The device keeps the {held} records not yet stored; store them "
                                          "with `mesoinject sync --port PORT` once the database is usable") from e

    def _pending_alarm(self, identity: Identity) -> dict | None:
        """The RESET alarm of the device's boot, to record (and then acknowledge); any other fault stops us here."""
        status = self.device.status()
        if status["state"] != spec.STATE_FAULT:
            return None
        alarm = status["alarm"]
        if alarm != spec.ALARM_RESET:
            raise DeviceInFault(alarm, alarms.explain(alarm, 0))
        if status["boot_count"] != identity.boot_count:  # it restarted after the HELLO: the cause is the new boot's
            identity = self.device.hello()
        return boots.reset_of(identity, status["time_ms"])

    def _wait_for(self, states: set[int], timeout_s: float) -> int:
        # timeout_s of the board's time (device.clock): the device's own moves take it on a board of any speed
        deadline = self.device.clock() + timeout_s
        while (state := self.step()) not in states:
            if self.device.clock() > deadline:
                raise TimeoutError(f"device stayed {spec.STATE_NAMES[state]} for {timeout_s} s of its own time")
        return state

    def until_needle_home(self, timeout_s: float = 5.0) -> None:
        """Until the needle is home, or timeout_s of the board's time (device.clock: an emulated board's retraction
        takes its own time, however slowly it runs); the events on the way are stored as they come."""
        # after a fault the device may still be backing off (occlusion) or retracting;
        # its DELIVERY for the stopped point comes before the needle is home
        deadline = self.device.clock() + timeout_s
        self._poll()
        while self.progress.depth_um and self.device.clock() < deadline:
            self.step()

    def _poll(self) -> int:
        # The STATUS reply comes after every event the device sent before it, so
        # draining the queue after the reply leaves no event behind.
        status = self.device.status()
        acked = self.acked
        self._drain_events()
        if self.boot is not None and status["boot_count"] != self.boot:
            self._restarted_since_poll()
        # the STATUS counted the records whose DELIVERY we just acknowledged; any more is a DELIVERY
        # lost on the link, or one the store could not take: the journal still has it
        if status["unacked"] > self.acked - acked:
            self._store_quietly(self._sync, 0)
        p = self.progress
        p.unstored = status["unacked"] if self.store_error else 0
        p.state = spec.STATE_NAMES[status["state"]]
        p.done = max(p.done, self.point_base + status["done"])  # a DELIVERY may have counted it already
        p.depth_um = status["depth_um"]
        p.syringe_left_nl = status["syringe_left_nl"]
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
            code, detail = event.fields["code"], event.fields["detail"]
            self._store_quietly(self._store_alarm, serial, event.fields)  # a boot's RESET: once, whoever stored it
            if code == spec.ALARM_RESET:
                self._restart(event.fields["boot_count"], detail, event.fields["epoch"])
                return
            self.progress.alarms.append((code, detail))

    def _restart(self, boot: int, cause: int, epoch: int) -> None:
        """The device is in boot `boot` (its RESET stored): a restart during the run unless it is the boot the session
        began in (its RESET found at begin()); each restart reported once, from its event or from HELLO, whichever
        came first. A boot skipped since the last we knew (it restarted again before we heard) is stored and
        reported too, its cause unknown: only the current boot's can be read."""
        skipped = boots.skipped(self.boot, boot)
        if skipped is not None and skipped not in self.restarts:
            serial = self.device.identity.serial if self.device.identity else "?"
            self._store_quietly(self.store.add_alarm, self.session_id, serial, boots.unknown_reset(skipped, epoch))
            self._report_restart(skipped, boots.CAUSE_UNKNOWN)
        if self.boot is None or boots.ahead(self.boot, boot):
            self.boot = boot
        self._report_restart(boot, cause)

    def _report_restart(self, boot: int, cause: int) -> None:
        if boot != self.start_boot and boot not in self.restarts:
            self.restarts.add(boot)
            self.progress.alarms.append((spec.ALARM_RESET, cause))

    def _restarted_since_poll(self) -> None:
        """STATUS names another boot than the last we knew, and no RESET event of it came (the device's ring or the
        link lost it, or it restarted while the link was down): HELLO says its cause; stored on this session."""
        identity = self.device.hello()
        serial = identity.serial
        alarm = boots.reset_of(identity)
        self._store_quietly(self.store.add_alarm, self.session_id, serial, alarm)
        self._restart(identity.boot_count, alarm["detail"], identity.journal_epoch)

    def _store_and_ack(self, serial: str, f: dict) -> None:
        session_id = sync.session_of(self.store, self.device.identity, self.sessions, f["session"])
        new = self.store.add_delivery(session_id, serial, f, **self.where(f))  # committed, then acked
        self.tally(f, new)
        self._sync(f["record_id"])
        self.acked += 1

    def _store_alarm(self, serial: str, f: dict) -> None:
        # a journalled alarm is acknowledged once stored, like a delivery; the journal keeps it until then
        self.store.add_alarm(self.session_id, serial, f)
        if f.get("record_id"):
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
        sync.drain(self.device, self.store, ack_id=ack_id, known=self.sessions, on_record=self.tally, where=self.where)

    def tally(self, f: dict, new: bool) -> None:
        """Count a stored record in this session's progress (records of other sessions are not)."""
        p = self.progress
        if not new or f["session"] != self.session_tag or f["kind"] not in spec.DELIVERY_KINDS:
            return
        p.records += 1
        if f["kind"] == spec.KIND_PRIME:
            p.primed_nl += f["delivered_nl"]
            return
        p.delivered_nl += f["delivered_nl"]
        if self.plan_step is not None:
            step = self.step_totals.setdefault(self.plan_step.number, {"given": 0, "partial": 0, "delivered_nl": 0})
            step["given"] += 1
            step["partial"] += bool(f["flags"] & spec.FLAG_PARTIAL)
            step["delivered_nl"] += f["delivered_nl"]
        self.given.add(self.point_base + f["point"])
        if f["flags"] & spec.FLAG_PARTIAL:
            p.partial += 1
            return
        p.done = max(p.done, self.point_base + f["point"] + 1)  # on screen now, not at the next poll
        if f["kind"] == spec.KIND_SHOT:
            last, self._last_shot = self._last_shot, (f["point"], f["time_ms"])
            interval_ms = f["time_ms"] - last[1] if last and last[0] == f["point"] - 1 else 0
            if 0 < interval_ms * self.current_program().cadence_mhz <= 2000000:  # within a burst: < 2 periods apart
                p.cadence_mhz = 1000000 // interval_ms

    def pause_quietly(self) -> None:
        # Ctrl-C or a host error: pause (plunger stops, needle out, program kept),
        # then collect the partial point the device reports.
        try:
            if self.device.status()["state"] in (spec.STATE_ARMED, spec.STATE_DELIVERING):
                self.device.pause()
            self._poll()
        except Exception:
            pass  # the link may be what failed; the device stops itself on link loss
