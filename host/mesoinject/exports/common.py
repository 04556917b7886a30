"""One session's record as the per-session exports (FHIR, HTML report) read it."""

from __future__ import annotations

from collections.abc import Sequence

import dataclasses

from .. import outcomes


class NothingToExport(LookupError):
    """An empty database or an unknown session: the message says what to do instead."""


def check_session(store, session_id: int | None) -> None:
    if session_id is not None and store.session(session_id) is not None:
        return
    sessions = store.sessions()
    if not sessions:
        raise NothingToExport(f"{store.where} holds no sessions yet: run a program (`mesoinject run`) or pull a "
                              "device's records (`mesoinject sync --port PORT`) first")
    if session_id is not None:
        raise NothingToExport(f"there is no session {session_id} in {store.where} (sessions "
                              f"{sessions[0]['id']}..{sessions[-1]['id']}); `mesoinject records list` shows them")


@dataclasses.dataclass
class SessionRecord:
    session: dict
    given: list[dict]  # to the patient: points, shots, test doses
    primes: list[dict]  # recorded, never counted as delivered
    alarms: list[dict]
    notes: list[dict]
    marks: list[dict] = dataclasses.field(default_factory=list)  # points tapped on the injection map

    @classmethod
    def load(cls, store, session_id: int) -> SessionRecord:
        check_session(store, session_id)
        rows = store.deliveries(session_id)
        return cls(store.session(session_id), [r for r in rows if r["kind"] != "prime"],
                   [r for r in rows if r["kind"] == "prime"], store.alarms(session_id), store.notes(session_id),
                   store.marks(session_id))

    @property
    def unit(self) -> str:
        return "shots" if self.session.get("technique") == "nappage" else "points"

    @property
    def numbers(self) -> list[int | None]:
        return [n for n in numbered(self.given)]

    @property
    def device_alarms(self) -> list[dict]:
        """The alarms of the session; a routine power-on RESET acknowledged at its start is none (a power cut
        during it, read as POWER_ON too but of a later boot, is one)."""
        return [a for a in self.alarms if not outcomes.is_routine_start(a, self.session.get("boot_count"))]

    @property
    def outcome_words(self) -> str:
        return outcomes.of_session(self.session, self.given, self.device_alarms)

    @property
    def synced(self) -> bool:
        """A placeholder for a session run elsewhere, created when its records were synced."""
        return self.session["outcome"] == "synced"

    @property
    def delivered_nl(self) -> int:
        return sum(r["delivered_nl"] for r in self.given)

    @property
    def programmed_nl(self) -> int:
        """Programmed for the points actually given."""
        return sum(r["programmed_nl"] for r in self.given)

    @property
    def program_total_nl(self) -> int | None:
        s = self.session
        return None if self.synced else s["volume_nl"] * s["planned"]

    @property
    def partial(self) -> int:
        return sum(1 for r in self.given if r["partial"])

    @property
    def primed_nl(self) -> int:
        return sum(r["delivered_nl"] for r in self.primes)


def ul(nl: int) -> str:
    return f"{nl / 1000:.3f}"


def numbered(rows: list[dict]) -> list[int | None]:
    """The point (or shot) number a person reads, from 1, for each row in record order; None for a prime.

    The device counts from 0 in each CONFIGURE: when the remaining points of a session are given after an
    alarm they start at 0 again, so a run that starts over (a lower index, or one after a prime) goes on
    from the highest number given before. A point paused and resumed keeps its number."""
    numbers: list[int | None] = []
    base = top = 0
    last: int | None = None
    primed = False
    for r in rows:
        if r["kind"] == "prime":
            numbers.append(None)
            primed = last is not None
            continue
        if last is not None and (r["point"] < last or (primed and r["point"] == 0)):
            base = top
        primed = False
        last = r["point"]
        top = max(top, base + r["point"] + 1)
        numbers.append(base + r["point"] + 1)
    return numbers


def session_words(session: dict | None, given: Sequence[dict] = (), alarms: Sequence[dict] = ()) -> str:
    return outcomes.of_session(session, list(given), list(alarms)) if session and "outcome" in session else ""
