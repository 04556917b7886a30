"""One session's record as the per-session exports (FHIR, HTML report) read it."""

from __future__ import annotations

import dataclasses


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

    @classmethod
    def load(cls, store, session_id: int) -> SessionRecord:
        check_session(store, session_id)
        rows = store.deliveries(session_id)
        return cls(store.session(session_id), [r for r in rows if r["kind"] != "prime"],
                   [r for r in rows if r["kind"] == "prime"], store.alarms(session_id), store.notes(session_id))

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
