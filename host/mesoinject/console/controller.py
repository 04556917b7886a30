"""The console's state: one device, one session at a time, owned by a worker thread.

Everything that touches the device or the record store runs on the worker, one
thing after another (`call`). PAUSE and ABORT are the exception: they are sent at
once from whichever thread asks, because stopping must never wait behind a poll
(the link itself takes one request at a time). The worker publishes a snapshot
(plain JSON-able dict) to its listeners whenever what the page shows changes.
"""

from __future__ import annotations

import concurrent.futures
import datetime
import logging
import pathlib
import queue
import threading
import time
from collections.abc import Callable

from mesoprotocol import spec

from .. import alarms, boots, outcomes, people, sync, units, zonemap, zones
from ..client import Device
from ..link import LinkError
from ..program import CEILINGS, ProgramError
from ..records import RecordStore
from ..session import TERMINAL, PrimingStopped, RecordsKeptOnDevice, SessionRunner
from . import forms

log = logging.getLogger(__name__)
POLL_S = 0.05  # heartbeat while a session is open; events are stored the moment they arrive
IDLE_POLL_S = 0.5  # device state on the header between sessions
RECONNECT_S = 1.0
OPEN = ("configured", "priming", "primed", "running")  # phases with a session on the device
# "step-done": a plan's step complete, the next one waits for the clinician (the session stays open)
SYRINGES = forms.syringes()  # the protocol's table, as the form lists it
UNWATCHED = (spec.STATE_PRIMING, spec.STATE_ARMED, spec.STATE_DELIVERING)  # must not run outside a session


class ActionRefused(Exception):
    """The clinician asked for something this phase does not allow; the message says what to do."""


class Console:
    def __init__(self, connect: Callable[[], Device], store: RecordStore, programs_dir: pathlib.Path, *,
                 poll_s: float = POLL_S):
        self._connect = connect
        self.store = store
        self.programs_dir = programs_dir
        self.poll_s = poll_s
        self.device: Device | None = None
        self.status: dict | None = None  # the last STATUS between sessions
        self.link_error: str | None = None
        self.phase = "setup"
        self.runner: SessionRunner | None = None
        self.session: dict | None = None  # what the page shows of the open or last session
        self.alarm: tuple[int, int] | None = None  # (ALARM_* or -1 for the host's own link loss, detail)
        self.outcome: str | None = None
        self.outcome_text: str | None = None  # the outcome in words, as stored (mesoinject.outcomes)
        self.lost_reason = ""  # why the link was lost, kept after the console reconnects
        self.error: str | None = None  # the last refused action, for every open page
        self.armed_at: float | None = None
        self.listeners: list[Callable[[dict], None]] = []
        self.last: dict = {}  # the last snapshot published, numbered ("seq")
        self._shown: dict = {}
        self._jobs: queue.Queue = queue.Queue()
        self._stopping = threading.Event()
        self._alarms_seen = 0
        self._cut_short: SessionRunner | None = None  # the session a lost link ended: its alarm is stored later
        self.library = forms.library(programs_dir)
        self.plans = forms.plan_library(programs_dir)
        self.marks: list[dict] = []  # the open or last plan session's points tapped on the map
        self._shown_limits: tuple = (None, {})
        self._thread = threading.Thread(target=self._work, name="mesoinject-console", daemon=True)

    # ---- lifecycle -----------------------------------------------------------------------------
    def start(self) -> Console:
        self._reconnect()
        self._publish()
        self._thread.start()
        return self

    def stop(self) -> None:
        """Pause an armed device at once; the worker then closes the session and lets go of the device."""
        if self.phase in OPEN and self.device:
            try:
                self.pause()
            except Exception:
                pass  # the link may be what failed: the device stops itself when it hears nothing
        self._stopping.set()
        self._jobs.put((concurrent.futures.Future(), lambda: None, ()))  # wakes a worker waiting for jobs
        self._thread.join(timeout=40)  # a prime in progress returns within its 30 s

    def call(self, action: Callable, *args):
        """Run an action on the worker thread; its result, or the exception it raised."""
        done: concurrent.futures.Future = concurrent.futures.Future()
        self._jobs.put((done, action, args))
        while not concurrent.futures.wait([done], timeout=1.0).done:
            if not self._thread.is_alive():
                raise ActionRefused("the console has stopped; start `mesoinject ui` again")
        return done.result()

    # ---- actions: each runs on the worker (call), except check, pause and abort -----------------
    def check(self, form: dict) -> dict:
        """The set-up form as start_session would take it: ok, or ProgramError naming the field.
        Any thread: it reads only the device's limits."""
        forms.who(form)
        if form.get("plan"):
            plan = forms.plan_of(form, self.programs_dir, self._limits())
            return {"ok": True, "summary": plan.summary(), "total_ul": units.ul(plan.steps_nl)}
        program = forms.check(form, self._limits())
        return {"ok": True, "summary": program.summary(), "total_ul": units.ul(program.total_nl)}

    def start_session(self, form: dict) -> None:
        if self.phase != "setup":
            raise ActionRefused("a session is already open: finish it (or abort it) first")
        device = self._device()
        patient, operator, lot = forms.who(form)
        plan = forms.plan_of(form, self.programs_dir, self._limits()) if form.get("plan") else None
        program = plan.steps[0].program if plan else forms.check(form, self._limits())
        runner = SessionRunner(device, self.store, poll_s=self.poll_s, on_progress=self._on_progress)
        runner.begin(program, patient_ref=patient, operator=operator, drug_lot=lot, plan=plan)
        self.marks = []
        self.runner, self.alarm, self.outcome, self.armed_at, self._alarms_seen = runner, None, None, None, 0
        self.phase = "primed" if runner.configured == spec.STATE_PRIMED else "configured"
        self.session = {
            "id": runner.session_id, "patient_ref": patient, "operator": operator, "drug": program.drug, "lot": lot,
            "summary": program.summary(), "technique": program.technique, "unit": program.unit_name,
            "planned": program.count, "planned_ul": units.ul(program.total_nl), "prime_ul": units.ul(program.prime_nl),
            "cadence_hz": units.hz(program.cadence_mhz) if program.cadence_mhz else None,
            "depth_mm": units.mm(program.depth_um),
            "started_at": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        }
        if plan:
            self.session.update(self._step_view(runner), summary=plan.steps[0].summary(),
                                planned=plan.count, planned_ul=units.ul(plan.steps_nl), unit="doses",
                                plan={"name": plan.name, "total_ul": units.ul(plan.total_nl), "steps": len(plan.steps)})

    def _step_view(self, runner: SessionRunner) -> dict:
        """The session's facts that change with each step of a plan: the step, its zone and program."""
        step = runner.plan_step
        assert step is not None
        program = step.program
        return {"step": step.number, "zone": step.zone.id, "zone_name": step.zone.en, "step_summary": step.summary(),
                "technique": program.technique, "depth_mm": units.mm(program.depth_um),
                "cadence_hz": units.hz(program.cadence_mhz) if program.cadence_mhz else None}

    def next_step(self) -> None:
        """A plan's next step, after the clinician moved to its zone: configured under the same session."""
        runner = self._runner()
        if self.phase != "step-done" or runner.plan is None or runner.plan_step is None:
            raise ActionRefused("there is no plan step waiting: start a plan first")
        runner.device = self._device()
        runner.next_step(runner.plan.steps[runner.plan_step.number])
        assert self.session is not None
        self.session.update(self._step_view(runner))
        self.phase = "primed" if runner.configured == spec.STATE_PRIMED else "configured"

    def mark(self, form: dict) -> dict:
        """form: zone, x, y (map coordinates): where the last point of a plan session went (optional)."""
        runner = self._runner()
        if runner.plan is None or self.phase == "setup":
            raise ActionRefused("points are marked on the map of a plan session")
        zone = str(form.get("zone", ""))
        try:
            x, y = float(form.get("x")), float(form.get("y"))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise ProgramError("mark", "x and y must be numbers (map coordinates)") from None
        if zone not in zones.ZONES or not zonemap.inside(x, y):
            raise ProgramError("mark", f"{zone!r} at ({x:g}, {y:g}) is not a zone of the map")
        step = runner.plan_step.number if runner.plan_step else None
        point = runner.progress.done or None
        self.marks.append({"x": x, "y": y, "zone": zone, "point": point})
        return {"id": self.store.add_mark(runner.current_session_id(), zone, x, y, plan_step=step, point=point)}

    def end_plan(self) -> None:
        """The clinician ends a plan between steps: the session closes with what was given."""
        if self.phase != "step-done":
            raise ActionRefused("only a plan waiting between steps can be ended here; Abort stops a running one")
        self._finish("aborted")
    def prime(self) -> None:
        runner = self._runner_in("configured", "prime")
        self.phase = "priming"
        self._publish()
        try:
            runner.prime()
        except Exception as e:
            if isinstance(e, PrimingStopped) and e.state in TERMINAL:  # aborted, or an alarm
                self._finish(TERMINAL[e.state])
                return
            self.phase = "configured"  # refused, timed out or stopped short: prime again, or abort
            raise
        self.phase = "primed"

    def arm(self) -> None:
        self._runner_in("primed", "arm").arm()
        self.phase = "running"
        self.armed_at = time.monotonic()

    def resume(self) -> None:
        self._runner_in("running", "resume").device.resume()

    def pause(self) -> None:
        """Any thread: stops the plunger and retracts the needle now; the program is kept."""
        self._device().pause()

    def abort(self) -> None:
        """Any thread: stops and ends the program; the worker closes the session when it sees it."""
        self._device().abort()

    def clear_fault(self) -> None:
        if self.phase in OPEN:
            raise ActionRefused("a session is open: abort it instead")
        device = self._device()
        boots.store_held_reset(device, self.store)  # a restart is stored before the ABORT acknowledges it
        device.abort()
        self.status = device.status()

    def acknowledge(self) -> None:
        self.alarm = None

    def give_remaining(self) -> None:
        """After an alarm whose cause was dealt with (fault cleared): the points left, same session."""
        runner = self._runner()
        if self.phase != "finished" or self.outcome not in ("fault", "interrupted"):
            raise ActionRefused("only a session stopped on an alarm has remaining points to give")
        if runner.plan is not None:
            raise ActionRefused("a plan's remaining points span its steps: start the plan's remaining steps as a "
                                "new session")
        if not runner.remaining():
            raise ActionRefused("every planned point of this session has been given")
        device = self._device()
        if device.status()["state"] != spec.STATE_IDLE:
            raise ActionRefused("the device is still stopped on the alarm: deal with its cause, then press "
                                "Clear fault, then give the remaining points")
        runner.device = device  # after a lost link the console holds a new connection
        runner.give_remaining()
        self.alarm, self.outcome, self.outcome_text, self.armed_at = None, None, None, None
        self.phase = "primed" if runner.configured == spec.STATE_PRIMED else "configured"

    def note(self, form: dict) -> dict:
        """form: text, adverse_event (bool); on the open or last session."""
        if not self.session:
            raise ActionRefused("there is no session to add a note to: start one first")
        text = str(form.get("text", "")).strip()
        if not text:
            raise ProgramError("note", "the note is empty: write what happened")
        kind = "adverse-event" if form.get("adverse_event") else "note"
        note_id = self.store.add_note(self.session["id"], text, kind=kind, author=self.session["operator"])
        return {"id": note_id, "notes": self.store.notes(self.session["id"])}

    def new_session(self) -> None:
        if self.phase in OPEN or self.phase == "step-done":
            raise ActionRefused("the session is still open: abort it, end the plan, or let it finish first")
        self.phase, self.runner, self.session, self.outcome, self.alarm = "setup", None, None, None, None
        self.outcome_text = None
        self.library = forms.library(self.programs_dir)  # files edited meanwhile
        self.plans = forms.plan_library(self.programs_dir)

    # reads: any thread, on a connection of their own, so a long export never holds up the heartbeat
    def history(self, patient: str) -> dict:
        """One patient's sessions (newest first) and what they received of each drug over time."""
        ref = people.patient_ref(patient, "patient")
        with self.store.reopen() as store:
            drugs = store.drug_totals(ref)
        return {"patient_ref": ref, "sessions": self.sessions(ref),
                "drugs": [{"drug": d["drug"], "sessions": d["sessions"], "delivered_ul": units.ul(d["delivered_nl"]),
                           "first": d["first"], "last": d["last"],
                           "months": [{"month": m["month"], "sessions": m["sessions"],
                                       "delivered_ul": units.ul(m["delivered_nl"])} for m in d["months"]]}
                          for d in drugs]}

    def sessions(self, patient: str | None = None) -> list[dict]:
        with self.store.reopen() as store:
            rows = store.sessions(patient)
        return [{"id": r["id"], "started_at": r["started_at"], "ended_at": r["ended_at"],
                 "patient_ref": r["patient_ref"], "operator": r["operator"], "program_name": r["program_name"],
                 "outcome": r["outcome"], "delivered_ul": units.ul(r["delivered_nl"]), "points": r["points_done"],
                 "adverse_events": r["adverse_events"]} for r in reversed(rows)]

    def export(self, fmt: str, session_id: int, lang: str | None = None) -> str:
        with self.store.reopen() as store:
            return store.export(fmt, session_id, lang=lang)

    # ---- the worker ------------------------------------------------------------------------------
    def _work(self) -> None:
        while not self._stopping.is_set():
            try:
                self._turn()
            except LinkError as e:
                self._lost(e)
            except Exception as e:  # a bug or a refusal nobody expected: never a silent dead worker
                log.exception("console worker")
                self.error = f"the console stopped the session on an unexpected error: {e!r}"
                self._interrupt()
            self._publish()
        self._interrupt()
        while not self._jobs.empty():
            self._jobs.get_nowait()[0].set_exception(ActionRefused("the console is stopping"))
        if self.device:
            self.device.close()

    def _turn(self) -> None:
        if self.device is None:
            self._reconnect()
        job = self._next_job()
        if job:
            self._run(job)
        elif self.phase in OPEN:
            state = self._runner().step()
            if state in TERMINAL:
                self._end(TERMINAL[state])
        elif self.device is not None:
            self._idle_poll()

    def _next_job(self):
        if self.phase in OPEN:
            wait = 0.0  # runner.step() waits for events instead
        else:
            wait = RECONNECT_S if self.device is None else IDLE_POLL_S
        try:
            return self._jobs.get(timeout=wait) if wait else self._jobs.get_nowait()
        except queue.Empty:
            return None

    def _run(self, job) -> None:
        done, action, args = job
        self.error = None
        try:
            result = action(*args)
        except LinkError as e:
            done.set_exception(e)
            raise
        except Exception as e:  # goes back to the page that asked, and to every page's banner
            self.error = str(e)
            self._publish()
            done.set_exception(e)
            return
        self._publish()  # the reply carries the state after the action, not before
        done.set_result(result)

    def _idle_poll(self) -> None:
        device = self._device()
        self.status = device.status()
        while device.next_event(0) is not None:
            pass  # between sessions: deliveries wait in the device journal, stored at the next start
        if self.status["state"] in UNWATCHED:
            # a program runs that no session here watches (after a lost link, say): stop it
            device.abort()
            self.status = device.status()
            self._store_journal()
            self.error = ("the device was running a program that no open session here watches; the console "
                          "stopped it (ABORT) and stored its records. Start a new session to continue")

    def _on_progress(self, progress) -> None:
        if len(progress.alarms) > self._alarms_seen:  # interrupt the screen the moment it arrives
            self._alarms_seen = len(progress.alarms)
            self.alarm = progress.alarms[-1]
        self._publish()

    def _end(self, outcome: str) -> None:
        runner = self._runner()
        runner.until_needle_home()  # the stopped point's DELIVERY comes before the needle is home
        plan, step = runner.plan, runner.plan_step
        if outcome == "complete" and plan and step and step.number < len(plan.steps) and not runner.store_error:
            self.phase, self.armed_at = "step-done", None  # the session stays open for the next zone
            self._idle_poll()
            return
        self._finish(outcome)
        self._idle_poll()  # the header shows the device as it is now, not as before the session

    def _finish(self, outcome: str, *, retry: bool = True, alarm: str | None = None) -> None:
        runner = self._runner()
        self.phase, self.outcome, self.outcome_text = "finished", outcome, runner.words(outcome, alarm)
        try:
            runner.finish(outcome, retry=retry, alarm=alarm)
        except (RecordsKeptOnDevice, LinkError) as e:
            self.error = str(e)

    def _interrupt(self) -> None:
        """An open session ends here: device paused (needle out, program kept), session closed."""
        if self.runner and self.phase in OPEN:
            self.runner.pause_quietly()
            self._finish("interrupted", retry=False)
        elif self.runner and self.phase == "step-done":  # a plan between steps: nothing moves, the session ends
            self._finish("interrupted", retry=False)

    def _lost(self, e: LinkError) -> None:
        self.link_error = self.lost_reason = str(e)
        if self.phase in OPEN:
            self.alarm = (-1, 0)
            self._cut_short = self.runner
            self._finish("interrupted", retry=False, alarm="LINK LOST")
        if self.device:
            self.device.close()
        self.device = None

    def _reconnect(self) -> None:
        try:
            device = self._connect()
        except (LinkError, OSError) as e:
            self.link_error = str(e)
            return
        try:
            identity = device.hello()
            self.status = device.status()
        except Exception as e:  # a device that does not answer, or speaks another version
            device.close()
            self.link_error = str(e)
            return
        self.device, self.link_error = device, None
        self._store_journal()  # what it delivered while we were away: stored now, not at the next session
        runner, self._cut_short = self._cut_short, None
        code = spec.ALARM_NAMES[self.status["alarm"]] if self.status["state"] == spec.STATE_FAULT else None
        if code == "RESET":  # it restarted while we were away: that boot's RESET with its cause, once (boots.py)
            session = runner.session_id if runner else None
            skipped = boots.skipped(runner.boot if runner else None, identity.boot_count)
            if skipped is not None:  # and restarted before that too: the first restart's cause went with its boot
                boots.store_reset(self.store, identity, boots.unknown_reset(skipped, identity.journal_epoch), session)
            boots.store_reset(self.store, identity, boots.reset_of(identity, self.status["time_ms"]), session)
        elif runner and code and code not in {a["code"] for a in self.store.alarms(runner.current_session_id())}:
            # why it stopped, on that session's record (unless its journal just brought it, with its detail)
            self.store.add_alarm(runner.session_id, identity.serial, {
                "code": self.status["alarm"], "detail": 0, "time_ms": self.status["time_ms"]})

    def _store_journal(self) -> None:
        """Store what the device journaled and no session here heard of; counted in the session shown."""
        runner = self.runner
        try:
            sync.drain(self._device(), self.store, known=runner.sessions if runner else None,
                       on_record=runner.tally if runner else None)
        except Exception as e:  # the store, or a device that refuses our key: the records stay on it
            self.error = f"the device's records could not be stored yet ({e}); they stay on the device"

    def _runner(self) -> SessionRunner:
        if self.runner is None:
            raise ActionRefused("no session is open: start one first")
        return self.runner

    def _device(self) -> Device:
        if self.device is None:
            raise ActionRefused(f"no device connected ({self.link_error}); check the cable: the console "
                                "reconnects by itself")
        return self.device

    def _runner_in(self, phase: str, action: str) -> SessionRunner:
        if self.phase != phase or self.runner is None:
            raise ActionRefused(f"cannot {action} now: the session is {self.phase}")
        return self.runner

    def _limits_view(self) -> dict:
        # in the form's units; worked out again only when a HELLO brought other limits (each publish asks)
        limits = self._limits()
        if self._shown_limits[0] is not limits:
            self._shown_limits = (limits, forms.limits_in_units(limits))
        return self._shown_limits[1]

    def _limits(self) -> dict:
        device = self.device  # check() runs off the worker, which may drop the device meanwhile
        identity = device.identity if device else None
        return identity.limits if identity else CEILINGS

    # ---- what the page shows ---------------------------------------------------------------------
    def _publish(self) -> None:
        snapshot = self._snapshot()
        if snapshot != self._shown:
            self._shown = snapshot
            self.last = {**snapshot, "seq": self.last.get("seq", 0) + 1}  # the page keeps the newest
            for listener in list(self.listeners):
                listener(self.last)

    def _snapshot(self) -> dict:
        identity = self.device.identity if self.device else None
        p = self.runner.progress if self.runner else None
        live = p if self.phase in OPEN else None  # the session's own figures, while one is open
        status = self.status or {}
        device = {
            "connected": self.device is not None, "error": self.link_error,
            "board": identity.board if identity else None, "serial": identity.serial if identity else None,
            "firmware": identity.firmware if identity else None, "paired": identity.paired if identity else None,
            "state": live.state if live else spec.STATE_NAMES[status["state"]] if status else "UNKNOWN",
            "alarm": alarms.describe(status["alarm"], 0)[0] if status.get("alarm") and not live else None,
            "fault": self._fault_view(status, identity) if status.get("alarm") and not live else None,
            "depth_mm": units.mm(live.depth_um if live else status.get("depth_um", 0)),
            "syringe_left_ul": units.ul(live.syringe_left_nl if live else status.get("syringe_left_nl", 0)),
        }
        progress = None if p is None else {
            "state": p.state, "done": p.done, "planned": p.planned, "delivered_ul": units.ul(p.delivered_nl),
            "primed_ul": units.ul(p.primed_nl), "partial": p.partial, "depth_mm": units.mm(p.depth_um),
            "syringe_left_ul": units.ul(p.syringe_left_nl), "cadence_hz": units.hz(p.cadence_mhz) or None,
            "elapsed_s": int(time.monotonic() - self.armed_at) if self.armed_at and live else None,
            "unstored": p.unstored,
        }
        return {
            "phase": self.phase, "device": device, "limits": self._limits_view(), "syringes": SYRINGES,
            "programs": self.library, "plans": self.plans, "zones": self._zones_view(),
            "session": self.session, "progress": progress, "alarm": self._alarm_view(), "outcome": self.outcome,
            "outcome_text": self.outcome_text, "error": self.error,
            "remaining": self.runner.remaining() if self.runner and not self.runner.plan
            and self.outcome in ("fault", "interrupted") else 0,
            "delivered_text": self.runner.delivered_words() if self.runner and self.phase == "finished" else None,
        }

    def _zones_view(self) -> dict | None:
        """A plan session's zones: the current one, and what each step gave so far (its stored records)."""
        runner = self.runner
        if runner is None or runner.plan is None or self.phase == "setup":
            return None
        steps = []
        for step in runner.plan.steps:
            got = runner.step_totals.get(step.number, {})
            steps.append({"step": step.number, "zone": step.zone.id, "zone_name": step.zone.en,
                          "given": got.get("given", 0), "partial": got.get("partial", 0), "planned": step.program.count,
                          "delivered_ul": units.ul(got.get("delivered_nl", 0)), "planned_ul": units.ul(step.total_nl)})
        current = runner.plan_step
        return {"current": current.number if current else None, "zone": current.zone.id if current else None,
                "steps": steps, "marks": list(self.marks)}

    def _fault_view(self, status: dict, identity) -> dict:
        """The device stopped on an alarm between sessions: named, and a routine power-on said to be routine."""
        code = status["alarm"]
        cause = identity.reset_cause if identity else ""
        name, what, todo = alarms.describe(code, None, cause, console=True)  # STATUS carries no detail
        if code == spec.ALARM_RESET and cause in outcomes.ROUTINE_RESETS and self.phase == "setup":
            return {"name": name, "routine": True, "heading": f"Device switched on ({name}, {cause.replace('_', '-')})",
                    "what": "Routine: the device starts stopped after it is switched on or restarted, motors off "
                            "and needle retracted. Nothing was interrupted by this console.",
                    "todo": "Acknowledge to start a new session."}
        return {"name": name, "routine": False, "heading": f"Device stopped on {outcomes.alarm_name(name)}",
                "what": what, "todo": todo}

    def _alarm_view(self) -> dict | None:
        if self.alarm is None:
            return None
        code, detail = self.alarm
        p = self.runner.progress if self.runner else None
        delivered = (f"{self.runner.delivered_words()} to the patient, recorded" if p and self.runner and self.session
                     else "nothing")
        if code < 0:  # this computer lost the device, not the device's own alarm
            delivered = f"{delivered} before the link was lost"
            reason = f" ({self.lost_reason})" if self.lost_reason and self.lost_reason != "None" else ""
            return {"code": code, "name": "LINK LOST", "delivered": delivered,
                    "what": f"this computer lost the serial link to the device{reason}. Without the "
                            "link the device stops the plunger and retracts the needle by itself",
                    "todo": "check the cable or USB port; the console reconnects by itself, then stores the "
                            "records of any points given meanwhile (they wait on the device) and counts them here"}
        reset_cause = self.device.identity.reset_cause if self.device and self.device.identity else ""
        name, what, todo = alarms.describe(code, detail, reset_cause, console=True)
        return {"code": code, "name": name, "what": what, "delivered": delivered, "todo": todo}

