"""Device client: the protocol's commands as methods, replies as values, refusals as errors."""

from __future__ import annotations

import contextlib
import dataclasses
from typing import NoReturn
import pathlib
import queue
import secrets
import threading
import time
from collections.abc import Callable

from mesoprotocol import spec

from . import codec, keys, units
from .link import Link


class NotPaired(Exception):
    """This host has no key for the device, or the device has none: commands that act are refused."""


class IncompatibleFirmware(Exception):
    """The device speaks another protocol version."""


class DeviceRefused(Exception):
    """The device NACKed a command; carries the reason, field, value and limit."""

    def __init__(self, nack: dict):
        self.command = codec.NAMES.get(nack["command"], hex(nack["command"]))
        self.reason = spec.NACK_NAMES[nack["reason"]] if nack["reason"] < len(spec.NACK_NAMES) else str(nack["reason"])
        fields = codec.FIELDS.get(nack["command"], ())
        self.field = fields[nack["field"] - 1] if 0 < nack["field"] <= len(fields) else None
        self.value = nack["value"]
        self.limit = nack["limit"]
        self.state = spec.STATE_NAMES[nack["state"]]
        super().__init__(self.describe())

    def describe(self) -> str:
        if self.reason == "SYRINGE":
            return syringe_mismatch(self.value, self.limit)
        if self.reason == "HEAD":
            return head_mismatch(self.value, self.limit)
        if self.reason == "CHANNEL" and self.command == "PRIME":
            return (f"device refused PRIME of {units.text(self.value, units.VOLUME)}: the head's path holds the other "
                    f"channel's drug; prime at least {units.text(self.limit, units.VOLUME)} (prime_volume) to flush it")
        if self.reason == "CHANNEL":
            held = {0: "no drug known since the device started", 255: "both drugs"}.get(self.limit, f"channel {self.limit}'s drug")
            return (f"device refused {self.command}: the program gives channel {self.value}'s drug but the head's path "
                    f"holds {held}; prime this channel (at least twice the head's dead volume) first")
        if self.reason == "LIMIT" and self.command in ("ARM", "RESUME") and not self.field:
            return (f"device refused {self.command}: this session would reach {units.text(self.value, units.VOLUME)}, over the "
                    f"session's cap of {units.text(self.limit, units.VOLUME)} (a plan's total, or max_session_nl). Start a new "
                    "session "
                    "(a new `mesoinject run`) only if a new treatment is intended")
        if self.reason == "BAD_STATE":
            allowed = [n for i, n in enumerate(spec.STATE_NAMES) if self.limit >> i & 1]
            return f"device refused {self.command} in state {self.state}; allowed in {', '.join(allowed)}"
        if self.field:
            tail = {"LIMIT": f" (limit {self.limit})", "INFEASIBLE": f" (feasible maximum {self.limit})",
                    "BAD_VALUE": " (not a known value)"}.get(self.reason, "")
            return f"device refused {self.command}: {self.field}={self.value} [{self.reason}]{tail}"
        return f"device refused {self.command}: {self.reason}"


class OtherHost(DeviceRefused):
    """Another host controls the device (its session is live): this one may read status and stop it only."""

    def describe(self) -> str:
        if self.reason == "OTHER_HOST":
            return (f"device refused {self.command}: another host controls it (heard from {self.value} ms ago; its "
                    f"session lapses after {self.limit} ms of silence outside PRIMING/ARMED/DELIVERING). This host "
                    "may still read STATUS and PAUSE or ABORT; close the other mesoinject first")
        return (f"device refused {self.command}: this host's session has ended and another host now controls the "
                "device. This host may still read STATUS and PAUSE or ABORT")


class OutcomeUnknown(DeviceRefused):
    """The device accepted this command's counter before, but its reply never reached us."""

    def describe(self) -> str:
        return (f"the device had already accepted counter {self.limit} of this session when {self.command} "
                f"(counter {self.value}) arrived again: its first reply was lost. It was not repeated; the device "
                f"is {self.state}: check `mesoinject info` before going on")


def syringe_mismatch(program_code: int, barrel_um: int) -> str:
    """A NACK SYRINGE in clinical words: what the program says, what the clamp measures, what to do."""
    said = spec.SYRINGES[program_code][0] if program_code in spec.SYRINGES else f"syringe code {program_code}"
    fits = [spec.SYRINGES[c][0] for c in spec.syringes_fitting(barrel_um)]
    if not fits:
        return (f"the program is for a {said}, but the syringe clamp reads no known syringe "
                f"({barrel_um / 1000:.1f} mm barrel): seat the syringe in the clamp and close it; if it persists, "
                "the clamp sensor is faulty - do not treat with this device")
    return (f"the program is for a {said}, but the syringe in the clamp measures {barrel_um / 1000:.1f} mm across, "
            f"the size of a {' / '.join(fits)}: load a {said}, or choose the program for the syringe loaded. "
            "Nothing was dispensed")


def head_mismatch(program_head: int, id_mv: int) -> str:
    """A NACK HEAD in clinical words: the head the program is for, the head the gun reads, what to do."""
    said = spec.HEADS[program_head][0] if program_head in spec.HEADS else f"head code {program_head}"
    fitted = spec.head_fitted(id_mv)
    if not fitted:
        return (f"the program is for the {said} head, but the gun reads no known head on its ID contact ({id_mv} mV): "
                "fit the head and press it home; if it persists, the head or its contact is faulty - do not treat with "
                "it. Nothing was dispensed")
    return (f"the program is for the {said} head, but the {spec.HEADS[fitted][0]} head is on the gun: fit the "
            f"{said} head (and prime it), or choose the program for the head fitted. Nothing was dispensed")


@dataclasses.dataclass(frozen=True)
class Identity:
    protocol: int
    firmware: str
    board: str
    serial: str
    syringe: int
    cal_ppm: int
    reset_cause: str
    boot_count: int
    journal_free: int  # records the device can journal before the host acknowledges more
    build: str  # 8 hex digits of the flashed image (`mesoinject flash`); 00000000: a source image
    paired: bool  # the device has a command key
    auth_counter: int  # the highest command counter it accepted
    limits: dict
    journal_epoch: int = 0  # drawn when the device's journal was created; a new one after a flash erase
    journal_area: int = 0  # entry slots of the journal's append area (no erase in a dose); 0: none

    @classmethod
    def from_fields(cls, f: dict) -> Identity:
        limits = {row[0]: f[row[0]] for row in spec.SETTINGS_TABLE}
        return cls(f["protocol"], "%d.%d.%d" % (f["fw_major"], f["fw_minor"], f["fw_patch"]), f["board"],
                   f["serial"], f["syringe"], f["cal_ppm"], spec.RESET_NAMES[f["reset_cause"]], f["boot_count"],
                   f["journal_free"], "%08x" % f["build"], bool(f["paired"]), f["auth_counter"], limits,
                   f.get("journal_epoch", 0), f.get("journal_area", 0))


@dataclasses.dataclass(frozen=True)
class LineResult:
    """A line test's LINE_RESULT (PROTOCOL.md §5 "Line test"): the figures as sent, and in plain units."""

    outcome: int  # spec.LINE_*
    syringe: int
    lag_us: int  # the pressure sensor's time constant; 0: not measured
    compliance_pl: int  # the stopper's fast compliance, pL/kPa; 0: not measured
    creep_permille: int  # its slow (creep) compliance, per mille of the fast one
    creep_ms: int  # the creep's time constant; 0: none seen
    step_kpa16: int  # the step pushed, 1/16 kPa
    peak_kpa: int
    alarms: tuple[tuple[int, int], ...] = ()  # (ALARM_* code, detail) raised while it ran: what stopped it

    @classmethod
    def from_fields(cls, f: dict, alarms: tuple[tuple[int, int], ...] = ()) -> LineResult:
        return cls(f["outcome"], f["syringe"], f["lag_us"], f["compliance_pl"], f["creep_permille"], f["creep_ms"],
                   f["step_kpa16"], f["peak_kpa"], alarms)

    @property
    def outcome_name(self) -> str:
        return spec.LINE_NAMES[self.outcome] if self.outcome < len(spec.LINE_NAMES) else str(self.outcome)

    @property
    def ok(self) -> bool:
        return self.outcome == spec.LINE_OK

    @property
    def lag_ms(self) -> float:
        return self.lag_us / 1000

    @property
    def compliance_nl_per_kpa(self) -> float:
        return self.compliance_pl / 1000

    @property
    def creep_share(self) -> float:
        """The creep's compliance as a share of the fast one (the stopper takes 1 + this in the end)."""
        return self.creep_permille / 1000

    @property
    def step_kpa(self) -> float:
        return self.step_kpa16 / 16


def new_session_tag() -> int:
    return secrets.randbits(32) or 1  # 0 means "no session" on the device


class Device:
    """A connected injector. Methods send one command each and return its reply fields."""

    def __init__(self, link: Link, keystore: keys.KeyStore | None = None):
        self.link = link
        self.keys = keystore or keys.KeyStore()
        self.identity: Identity | None = None
        self.counter = 0  # the last device counter used with this device (OPEN)
        self.session = 0  # our host session (0: none): only it may configure, arm, and feed the watchdog
        self.session_counter = 0  # the last counter used in it
        # the board's clock in seconds, for the heartbeat's schedule (SessionRunner): real time for a board, the
        # emulated clock for an emulated one (0.05-0.25x real time: polled every 0.1 s of wall time it reads a
        # poll every 5-25 ms of its own time, and parsing those bytes left its loop no time to dose)
        self.clock: Callable[[], float] = time.monotonic
        # one command at a time across threads (a heartbeat thread beside the session's): a counter is signed
        # and sent under it, so the device gets the counters in order
        self._lock = threading.RLock()
        self.signed_at = float("-inf")  # board clock when our last session command was sent (it restarts the
        # device's link watchdog); the heartbeat beats only when this is too long ago
        self.beats = 0  # POLLs the heartbeat sent (the session's own polls were late)

    @classmethod
    def open(cls, port: str, keystore: keys.KeyStore | None = None) -> Device:
        return cls(Link(port), keystore)

    def close(self) -> None:
        with self._lock:  # no heartbeat between our CLOSE and forgetting the session
            if self.session:  # another host may take over at once, not after our silence
                try:
                    self.command(spec.CLOSE)
                    self.session = 0
                except Exception:
                    pass  # best effort: the session lapses on its own
        self.link.close()

    def __enter__(self) -> Device:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def command(self, msg_type: int, **fields) -> dict:
        with self._lock:
            if msg_type in spec.AUTHENTICATED:
                return self._authenticated(msg_type, fields)
            reply = self.link.request(msg_type, **fields)
        if reply.type == spec.NACK:
            raise DeviceRefused(reply.fields)
        return reply.fields

    def keep_alive(self, silent_s: float) -> bool:
        """POLL if no session command went out for silent_s of the board's clock (self.clock): the device's link
        watchdog hears us while the caller is held up elsewhere (heartbeat.Heartbeat). Never opens a session (none,
        or the device says it has none: False, and the session's own next command opens one). True: it beat."""
        with self._lock:
            if not self.session or self.clock() - self.signed_at < silent_s:
                return False
            self._authenticated(spec.POLL, {}, retry=False)  # the reply's events come on the queue as any others
            self.beats += 1
            return True

    def sign(self, msg_type: int, **fields) -> dict:
        """The fields with the next counter and their MAC, for a command in spec.AUTHENTICATED;
        a session command opens our session first if we have none."""
        identity = self.identity or self.hello()
        key = self.keys.get(identity.serial)
        if key is None or not identity.paired:
            raise NotPaired(f"device {identity.serial} is not paired with this host, so it refuses commands that "
                            "change its state. Pair it: hold the trigger with the E-stop pressed for 3 s, then run "
                            "`mesoinject pair --port PORT`")
        if msg_type == spec.OPEN:
            self.counter = max(self.counter, identity.auth_counter) + 1
            signed = dict(fields, counter=self.counter)
        else:
            if not self.session:
                self.open_session()
            self.session_counter += 1
            signed = dict(fields, host_session=self.session, counter=self.session_counter)
        signed["mac"] = bytes(spec.MAC_SIZE)
        payload = codec.PAYLOADS[msg_type].build(signed)
        signed["mac"] = keys.mac(key, msg_type, payload[: -spec.MAC_SIZE])
        return signed

    def open_session(self, retry: bool = True) -> int:
        """OPEN: this host becomes the one controlling host, or OtherHost says who holds the device."""
        with self._lock:
            return self._open_session(retry)

    def _open_session(self, retry: bool) -> int:
        self.hello()  # the device's counter now (another host's OPENs move it)
        signed = self.sign(spec.OPEN)
        self.signed_at = self.clock()
        reply = self.link.request(spec.OPEN, **signed)
        if reply.type == spec.NACK:
            nack = reply.fields
            if nack["reason"] == spec.NACK_OTHER_HOST:
                raise OtherHost(nack)
            if nack["reason"] == spec.NACK_AUTH and nack["field"] == 1 and retry:  # another host's OPEN took our counter
                return self._open_session(retry=False)
            self._refused(nack)
        self.session, self.session_counter = signed["counter"], 0
        return self.session

    def _refused(self, nack: dict) -> NoReturn:
        identity = self.identity
        if nack["reason"] == spec.NACK_AUTH:
            raise NotPaired(f"device {identity.serial if identity else ''} refused this host's key "
                            f"({DeviceRefused(nack)}): pair it again with `mesoinject pair --port PORT`")
        raise DeviceRefused(nack)

    def _authenticated(self, msg_type: int, fields: dict, retry: bool = True) -> dict:
        signed = self.sign(msg_type, **fields)
        self.signed_at = self.clock()  # before it is sent: the device hears it no earlier
        reply = self.link.request(msg_type, **signed)
        if reply.type != spec.NACK:
            return reply.fields
        nack = reply.fields
        n_fields = len(codec.FIELDS[msg_type])
        if nack["reason"] == spec.NACK_NO_SESSION:
            self.session = 0
            if nack["limit"] == 0 and retry:  # no session open (the device restarted): open ours, once
                return self._authenticated(msg_type, fields, retry=False)
            raise OtherHost(nack)
        if nack["reason"] == spec.NACK_AUTH and nack["field"] == n_fields - 1:
            # a counter already used in our session: our own frame ran before and its reply was
            # lost. Never taken for "done", never sent again
            raise OutcomeUnknown(nack)
        self._refused(nack)

    def pair(self) -> pathlib.Path:
        """Give the device a new key (it must be in pairing mode) and keep it in the key store."""
        identity = self.hello()
        key = secrets.token_bytes(spec.KEY_SIZE)
        reply = self.link.request(spec.PAIR, key=key)
        if reply.type == spec.NACK:
            raise NotPaired(f"device {identity.serial} is not in pairing mode: hold the trigger with the E-stop "
                            "pressed for 3 s (the window stays open 60 s), then pair again")
        path = self.keys.put(identity.serial, key)
        self.session = 0  # sessions of the old key are gone
        self.hello()
        return path

    def hello(self) -> Identity:
        """HELLO: the device's identity; a device of another protocol version is refused, saying how to fix it."""
        with self._lock:
            return self._hello()

    def _hello(self) -> Identity:
        reply = self.link.request(spec.HELLO)
        if reply.type == spec.NACK and reply.fields["reason"] == spec.NACK_BAD_VERSION:
            theirs = reply.fields["limit"]
            raise IncompatibleFirmware(
                f"the device speaks protocol version {theirs}, this mesoinject speaks version {spec.PROTOCOL_VERSION}: "
                f"flash firmware of this version (`mesoinject flash --board NAME --port PORT`), or install the "
                f"mesoinject release that speaks version {theirs}")
        if reply.type == spec.NACK:
            raise DeviceRefused(reply.fields)
        self.identity = Identity.from_fields(reply.fields)
        return self.identity

    def configure(self, *, session: int | None = None, session_cap_nl: int = 0, **fields) -> dict:
        """session: the tag the device journals with every record of this program (default: random).
        session_cap_nl: the session's total cap (a plan's total), fixed when the session opens; 0: none
        beyond the device's max_session_nl (PROTOCOL.md "Sessions")."""
        return self.command(spec.CONFIGURE, session=session or new_session_tag(), session_cap_nl=session_cap_nl,
                            **fields)

    def prime(self, volume_nl: int) -> dict:
        return self.command(spec.PRIME, volume_nl=volume_nl)

    def line_test(self, timeout_s: float = 20.0, poll_s: float = 0.1) -> LineResult:
        """LINE_TEST (the configured syringe's outlet capped): its LINE_RESULT once the test has ended. The link is
        fed meanwhile as a prime's wait feeds it (PRIMING is watched): events as they come, a POLL every poll_s of
        the board's clock (status(): events the link lost are asked for again). A NACK raises DeviceRefused;
        timeout_s (board's clock) with no result raises TimeoutError. Anything that ends the wait early (the
        timeout, Ctrl-C, a link error) ABORTs first: the device backs its plunger off."""
        self.command(spec.LINE_TEST)
        deadline = self.clock() + timeout_s
        alarms: list[tuple[int, int]] = []
        try:
            while True:
                due = min(self.clock() + poll_s, deadline)
                while (event := self.next_event_by(due)) is not None:
                    # a RESET is a boot's (the one this host connected in, still queued), never what stopped a test
                    if event.type == spec.ALARM and event.fields["code"] != spec.ALARM_RESET:
                        alarms.append((event.fields["code"], event.fields["detail"]))
                    elif event.type == spec.LINE_RESULT:
                        return LineResult.from_fields(event.fields, tuple(alarms))
                if self.clock() >= deadline:
                    raise TimeoutError(f"no LINE_RESULT after {timeout_s} s of the device's time")
                self.status()
        except BaseException:
            with contextlib.suppress(Exception):  # the link may be what failed: the device stops itself on silence
                self.abort()
            raise

    def arm(self) -> dict:
        return self.command(spec.ARM)

    def pause(self) -> dict:
        return self.command(spec.PAUSE)

    def resume(self) -> dict:
        return self.command(spec.RESUME)

    def abort(self) -> dict:
        return self.command(spec.ABORT)

    def settings(self, **limits) -> dict:
        """Lower this device's limits (kept on its flash); unnamed ones keep their value."""
        current = self.hello().limits
        return self.command(spec.SETTINGS, **{**current, **limits})

    def calibrate(self, syringe: int, area_ppm: int) -> dict:
        """Store a syringe's effective bore area (ppm of its table value) on the device."""
        return self.command(spec.CALIBRATE, syringe=syringe, area_ppm=area_ppm)

    def status(self) -> dict:
        """STATUS (POLL while we hold the session: the controlling host's heartbeat); events the
        link lost on the way are asked for again first (EVENTS)."""
        with self._lock:
            reply = self.command(spec.POLL if self.session else spec.STATUS)
            missing = self.link.missing_events(reply["next_event_seq"], reply["boot_count"])
            if missing is not None:
                fetched = self.link.request(spec.EVENTS, from_seq=missing)  # they arrive before its reply
                if fetched.type == spec.NACK:  # older than the device keeps (or it rebooted): lost
                    self.link.skip_events(reply["next_event_seq"])
        return reply

    def records(self, ack_id: int = 0) -> dict:
        """Acknowledge a committed record (0: none); returns the oldest one still unacknowledged
        (record_id 0: none left) and how many are pending."""
        return self.command(spec.RECORDS, ack_id=ack_id)

    def next_event(self, timeout: float) -> codec.Message | None:
        try:
            return self.link.events.get(timeout=timeout)
        except queue.Empty:
            return None

    def next_event_by(self, due: float) -> codec.Message | None:
        """The next event, or None once the board's clock (self.clock) reaches due: a wait counted on the board's
        time, which on an emulated board runs at a fraction of the host's."""
        while (left := due - self.clock()) > 0:
            event = self.next_event(left)  # left wall seconds are never too long: the board's clock is no faster
            if event is not None:
                return event
        return None
